"""The ``vqkit`` command: ``vqkit train | sample | eval | push | list``.

``vqkit train`` with no arguments trains the ``vqvae-digits`` preset and its Gated PixelCNN prior
on scikit-learn's 8×8 digits (no download) and writes a run folder with pictures, metrics and the
model. ``vqkit <command> --help`` explains every option. Under ``torchrun`` the same command trains
with DistributedDataParallel (``torchrun --nproc_per_node 2 -m vqkit train``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["build_parser", "main"]

DEFAULT_MODEL = "vqvae-digits"
DEFAULT_DATA = "digits"
#: Registered VAE classes the CLI can build from the data's shape alone.
VAE_MODELS = ("vae", "image_vae", "beta_vae", "vlae")
# Settings of the default digits run: about a minute of CPU time for both stages on 2 cores.
_DEFAULTS = {"epochs": 30, "prior_epochs": 30}


def _json_arg(text: str) -> dict:
    """A JSON object given inline or as a path to a .json file."""
    path = Path(text)
    raw = path.read_text() if text.endswith(".json") and path.is_file() else text
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def _size_arg(text: str) -> list[int]:
    parts = text.lower().replace("x", ",").split(",")
    try:
        sizes = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"image size must be N or HxW, got {text!r}") from None
    if len(sizes) == 1:
        sizes *= 2
    if len(sizes) != 2 or min(sizes) <= 0:
        raise argparse.ArgumentTypeError(f"image size must be N or HxW, got {text!r}")
    return sizes


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default only where there is one (not None, not a plain flag)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        hidden = action.default is None or action.default is False
        if hidden or action.default is argparse.SUPPRESS or "%(default)" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``vqkit`` command."""
    parser = argparse.ArgumentParser(
        prog="vqkit",
        description="Train, sample, evaluate and share discrete-latent generative models.",
        epilog="Run `vqkit train` with no arguments for a VQ-VAE + Gated PixelCNN on 8x8 digits.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    t = sub.add_parser(
        "train",
        help="train a model and write a run folder",
        description="Train a model (a VQ-VAE then its prior, or a VAE) and write a run folder with "
        "config.json, metrics.json, PNG pictures and the model in save_pretrained format. "
        "Re-running with the same --out resumes from the newest checkpoint.",
        formatter_class=_HelpFormatter,
    )
    t.add_argument(
        "--data",
        default=DEFAULT_DATA,
        help="'digits' (scikit-learn's 8x8 digits), 'fashion-mnist[:FOLDER]', 'mnist:FOLDER', "
        "'toy:correlated_gaussian|gaussian_ring|gaussian_grid', a folder of images, a .npy/.npz "
        "file or an IDX file",
    )
    t.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help="a preset (see `vqkit list`) or a model class: vqvae (needs --model-config), "
        "vae (2-D points), image_vae, beta_vae, vlae",
    )
    t.add_argument(
        "--model-config",
        type=_json_arg,
        default=None,
        help="JSON object (inline or a .json file) of constructor arguments merged into the "
        'preset, e.g. \'{"quantizer": {"codebook_size": 64}}\'',
    )
    t.add_argument("--out", default=None, help="run folder (default: runs/<model>-<data>)")
    t.add_argument(
        "--new", action="store_true", help="never resume: use <out>-2, <out>-3... if <out> exists"
    )
    t.add_argument("--image-size", type=_size_arg, default=None, help="resize images to N or HxW")
    t.add_argument(
        "--color",
        choices=("auto", "gray", "rgb"),
        default="auto",
        help="image folders: read as grayscale or RGB ('auto': grayscale if all images are)",
    )
    t.add_argument(
        "--fit",
        choices=("crop", "stretch"),
        default="crop",
        help="with --image-size: keep the aspect ratio and centre-crop, or stretch",
    )
    t.add_argument(
        "--val-fraction", type=float, default=0.1, help="share of the data held out for validation"
    )
    t.add_argument(
        "--subset", type=float, default=1.0, help="train (and test) on this seeded fraction only"
    )
    t.add_argument("--seed", type=int, default=0, help="seed of splits, initialisation and order")
    g = t.add_argument_group("training (the VQ-VAE or VAE stage)")
    g.add_argument(
        "--epochs", type=int, default=None, help="epochs (default: 30, or no limit with --steps)"
    )
    g.add_argument("--steps", type=int, default=None, help="stop after this many steps")
    g.add_argument("--batch-size", type=int, default=64, help="global batch size")
    g.add_argument("--lr", type=float, default=2e-3, help="learning rate")
    g.add_argument("--optimizer", choices=("adam", "adamw"), default="adam", help="optimizer")
    g.add_argument("--weight-decay", type=float, default=0.0, help="weight decay")
    g.add_argument(
        "--lr-schedule", choices=("constant", "cosine"), default="cosine", help="learning rate"
    )
    g.add_argument("--warmup-steps", type=int, default=0, help="linear warm-up steps")
    g.add_argument("--grad-clip", type=float, default=1.0, help="max gradient norm (0: off)")
    g.add_argument(
        "--precision", choices=("fp32", "bf16"), default="fp32", help="bf16 autocast or fp32"
    )
    g.add_argument(
        "--patience", type=int, default=None, help="early stopping after N epochs w/o improvement"
    )
    g.add_argument(
        "--checkpoint-every", type=int, default=None, help="also checkpoint every N steps"
    )
    p = t.add_argument_group("prior (second stage of a VQ-VAE)")
    p.add_argument(
        "--prior-epochs",
        type=int,
        default=None,
        help="epochs (default: 30, or no limit with --prior-steps)",
    )
    p.add_argument("--prior-steps", type=int, default=None, help="stop the prior after N steps")
    p.add_argument("--prior-lr", type=float, default=2e-3, help="prior learning rate")
    p.add_argument(
        "--prior-patience", type=int, default=5, help="prior early stopping patience (0: off)"
    )
    p.add_argument("--no-prior", action="store_true", help="skip the prior stage")
    t.add_argument(
        "--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)"
    )
    t.add_argument("--device", default=None, help="cpu, cuda, cuda:1... (default: cuda if any)")
    t.add_argument("--no-progress", action="store_true", help="no progress bars")

    s = sub.add_parser(
        "sample",
        help="draw samples from a trained model into a PNG grid",
        description="Sample images from a run folder's model (or a Hub repo) and save a grid.",
        formatter_class=_HelpFormatter,
    )
    s.add_argument("source", help="a run folder written by `vqkit train`, or a Hub repo id")
    s.add_argument("-n", "--num", type=int, default=64, help="number of samples")
    s.add_argument("--out", default=None, help="PNG path (default: <run>/samples-seed<seed>.png)")
    s.add_argument("--seed", type=int, default=0, help="seed of the sampler")
    s.add_argument("--temperature", type=float, default=1.0, help="prior softmax temperature")
    s.add_argument("--nrow", type=int, default=8, help="images per row of the grid")
    s.add_argument("--model-class", default="vqvae", help="registered class of a Hub repo's model")
    s.add_argument(
        "--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)"
    )
    s.add_argument("--device", default=None, help="device to sample on")

    e = sub.add_parser(
        "eval",
        help="evaluate a trained model on a dataset",
        description="Compute MSE, PSNR, SSIM, codebook usage and perplexity, prior NLL and "
        "bits/dim (VQ-VAE) or the ELBO (VAEs) over a whole dataset and print them as JSON.",
        formatter_class=_HelpFormatter,
    )
    e.add_argument("run", help="a run folder written by `vqkit train`")
    e.add_argument(
        "--data",
        default=None,
        help="dataset spec (default: the run's own held-out data: its test split, or the "
        "validation split `vqkit train` made)",
    )
    e.add_argument(
        "--split",
        choices=("train", "test"),
        default="test",
        help="'test': held-out data; 'train': the training split (or an IDX source's split)",
    )
    e.add_argument("--image-size", type=_size_arg, default=None, help="resize images to N or HxW")
    e.add_argument("--out", default=None, help="also write the metrics to this JSON file")
    e.add_argument("--batch-size", type=int, default=256, help="evaluation batch size")
    e.add_argument(
        "--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)"
    )
    e.add_argument("--device", default=None, help="device to evaluate on")

    u = sub.add_parser(
        "push",
        help="upload a run's model to the Hugging Face Hub",
        description="Push the model of a run folder (config.json, model.safetensors, model card) "
        "to a Hub repository.",
    )
    u.add_argument("run", help="a run folder written by `vqkit train`")
    u.add_argument("repo_id", help="target repository, e.g. user/vqvae-digits")
    u.add_argument("--private", action="store_true", help="create the repository as private")
    u.add_argument("--token", default=None, help="Hub token (default: the logged-in one)")
    u.add_argument("--message", default="Upload vqkit model", help="commit message")

    li = sub.add_parser(
        "list",
        help="list models, presets, parts and datasets",
        description="List registered names (models and presets by default) matching a pattern.",
    )
    li.add_argument("pattern", nargs="?", default="*", help="shell wildcard, e.g. 'vqvae-*'")
    li.add_argument(
        "--kind",
        default="model",
        help="registry kind: model, quantizer, encoder, decoder, prior, loss, or 'all'",
    )
    return parser


# ---- train ------------------------------------------------------------------------------------
def _load_splits(
    spec: str,
    *,
    image_size: list[int] | None = None,
    color: str = "auto",
    fit: str = "crop",
    val_fraction: float = 0.1,
    subset_fraction: float = 1.0,
    seed: int = 0,
) -> tuple[Any, Any, Any]:
    """``(train, val, test)`` as `vqkit train` makes them; ``test`` only for IDX sources."""
    from vqkit.data import load_dataset, subset, train_val_split

    options: dict[str, Any] = {}
    if image_size is not None or color != "auto":
        if not Path(spec).is_dir():
            raise ValueError("--image-size and --color apply to image folders only")
        options["image_size"] = tuple(image_size) if image_size else None
        options["mode"] = {"auto": None, "gray": "L", "rgb": "RGB"}[color]
        options["fit"] = fit
    data = load_dataset(spec, split="train", seed=seed, **options)
    test = None
    if spec.startswith(("fashion-mnist", "mnist")):
        test = load_dataset(spec, split="test")
        test.name = f"{test.name}-test"
    if subset_fraction < 1:
        data = subset(data, subset_fraction, seed=seed)
        test = subset(test, subset_fraction, seed=seed) if test is not None else None
    train, val = train_val_split(data, val_fraction, seed=seed)
    return train, val, test


def _data_settings(args) -> dict[str, Any]:
    return {
        "spec": args.data,
        "image_size": args.image_size,
        "color": args.color,
        "fit": args.fit,
        "val_fraction": args.val_fraction,
        "subset_fraction": args.subset,
        "seed": args.seed,
    }


def _build_model(args, sample_shape: tuple[int, ...]):
    import torch

    import vqkit

    overrides = dict(args.model_config or {})
    name = args.model
    if name in VAE_MODELS:
        if len(sample_shape) == 1:
            overrides.setdefault("data_dim", sample_shape[0])
        else:
            c, h, w = sample_shape
            if h != w:
                raise ValueError(f"{name} needs square images, the data is {h}x{w}")
            overrides.setdefault("in_channels", c)
            overrides.setdefault("image_size", h)
    elif name in vqkit.models.PRESETS:
        if len(sample_shape) != 3:
            raise ValueError(f"{name} is an image model; the data has samples of {sample_shape}")
        c, h, w = sample_shape
        preset = vqkit.models.preset_config(name)
        overrides.setdefault("image_size", [h, w])
        if preset["encoder"].get("in_channels") != c:
            overrides.setdefault("encoder", {}).setdefault("in_channels", c)
            overrides.setdefault("decoder", {}).setdefault("out_channels", c)
    torch.manual_seed(args.seed)
    return vqkit.create_model(name, **overrides)


def _out_dir(args, data_name: str) -> Path:
    out = Path(args.out) if args.out else Path("runs") / f"{args.model}-{data_name}"
    if args.new and out.exists():
        k = 2
        while Path(f"{out}-{k}").exists():
            k += 1
        out = Path(f"{out}-{k}")
    return out


def _train(args) -> int:
    from vqkit.train import TrainConfig, find_latest_checkpoint, train_vae_run, train_vqvae_run
    from vqkit.train.distributed import is_main_process, setup_distributed

    setup_distributed(args.device)
    say = print if is_main_process() else (lambda *a, **k: None)
    data_settings = _data_settings(args)
    train, val, test = _load_splits(**data_settings)
    model = _build_model(args, train.sample_shape)
    out = _out_dir(args, train.name)
    config = TrainConfig(
        epochs=args.epochs if args.epochs is not None or args.steps else _DEFAULTS["epochs"],
        max_steps=args.steps,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        lr=args.lr,
        weight_decay=args.weight_decay,
        lr_schedule=args.lr_schedule,
        warmup_steps=args.warmup_steps,
        grad_clip=args.grad_clip or None,
        precision=args.precision,
        patience=args.patience if val is not None else None,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
        progress=not args.no_progress,
        device=args.device,
    )
    run_config = {
        "data": {
            **data_settings,
            "num_train": len(train),
            "num_val": len(val) if val is not None else 0,
            "num_test": len(test) if test is not None else 0,
        },
        "command": "vqkit " + " ".join(sys.argv[1:]),
    }
    say(
        f"data: {train.name} {tuple(train.sample_shape)}: {len(train)} train, "
        f"{len(val) if val is not None else 0} val, {len(test) if test is not None else 0} test"
    )
    for stage in ("vqvae", "prior", "vae"):
        latest = find_latest_checkpoint(out / stage / "checkpoints")
        if latest is not None:
            say(f"resuming {stage} from {latest}")
    say(f"run folder: {out}")
    if hasattr(model, "encode_indices"):
        prior_config = None
        if not args.no_prior and getattr(model, "prior", None) is not None:
            prior_epochs = args.prior_epochs
            if prior_epochs is None and not args.prior_steps:
                prior_epochs = _DEFAULTS["prior_epochs"]
            prior_config = TrainConfig(
                **{
                    **config.to_dict(),
                    "epochs": prior_epochs,
                    "max_steps": args.prior_steps,
                    "lr": args.prior_lr,
                    "patience": (args.prior_patience or None) if val is not None else None,
                }
            )
        result = train_vqvae_run(
            model,
            train,
            val,
            out,
            config=config,
            prior_config=prior_config,
            test=test,
            run_config=run_config,
        )
    else:
        result = train_vae_run(
            model, train, val, out, config=config, test=test, run_config=run_config
        )
    if is_main_process():
        _report(result)
    return 0


def _report(result) -> None:
    shown = {k: v for k, v in result.metrics.items() if isinstance(v, (int, float))}
    print("metrics (" + str(result.metrics.get("eval_split", "")) + "):")
    for key, value in shown.items():
        print(f"  {key}: {value:.4f}" if isinstance(value, float) else f"  {key}: {value}")
    print("pictures:")
    for name, path in result.pictures.items():
        print(f"  {name}: {path}")
    print(f"model: {result.model_dir}  (load with vqkit.load_run_model({str(result.out_dir)!r}))")
    print(f"metrics file: {result.out_dir / 'metrics.json'}")


# ---- sample, eval, push, list ------------------------------------------------------------------
def _load_model(source: str, model_class: str, device: str | None):
    import vqkit
    from vqkit.train import load_run_model

    run = Path(source)
    if (run / "config.json").is_file() and (run / "model").is_dir():
        return load_run_model(source, device=device)
    # A Hub repo id or a bare save_pretrained folder.
    model = vqkit.get("model", model_class).from_pretrained(source)
    return model.to(device or "cpu").eval()


def _sample(args) -> int:
    import torch

    from vqkit.train import image_grid, save_image

    if args.num < 1:
        raise ValueError(f"--num must be positive, got {args.num}")
    model = _load_model(args.source, args.model_class, args.device)
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(args.seed)
    if hasattr(model, "generate"):
        images = model.generate(args.num, generator=generator, temperature=args.temperature)
    elif hasattr(model, "sample"):
        images = model.sample(args.num, generator=generator)
    else:
        raise ValueError(f"{type(model).__name__} cannot sample")
    out = (
        Path(args.out)
        if args.out
        else (
            Path(args.source) / f"samples-seed{args.seed}.png"
            if Path(args.source).is_dir()
            else Path(f"samples-seed{args.seed}.png")
        )
    )
    if images.ndim == 2:
        from vqkit.train import scatter_plot

        save_image(scatter_plot({"samples": images}), out)
    else:
        scale = max(1, 64 // images.shape[-2])
        save_image(image_grid(images.clamp(0, 1), nrow=args.nrow, scale=scale), out)
    print(f"wrote {args.num} samples to {out}")
    return 0


def _eval(args) -> int:
    from vqkit.data import load_dataset
    from vqkit.train import evaluate_model

    run = Path(args.run)
    model = _load_model(args.run, "vqvae", args.device)
    config = json.loads((run / "config.json").read_text())
    if args.data is None:
        # The run's own held-out data: its test split, else its validation split.
        settings = {k: v for k, v in config["data"].items() if not k.startswith("num_")}
        train, val, test = _load_splits(**settings)
        held_out = test if test is not None else val
        data = train if args.split == "train" else (held_out if held_out is not None else train)
    else:
        options = {"image_size": tuple(args.image_size)} if args.image_size else {}
        data = load_dataset(args.data, split=args.split, **options)
    metrics = evaluate_model(model, data, batch_size=args.batch_size)
    metrics["eval_split"] = data.name
    text = json.dumps(metrics, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


def _push(args) -> int:
    model = _load_model(args.run, "vqvae", None)
    url = model.push_to_hub(
        args.repo_id, private=args.private, token=args.token, commit_message=args.message
    )
    print(f"pushed {args.run} to {args.repo_id}: {url}")
    return 0


def _list(args) -> int:
    import vqkit
    from vqkit._registry import KINDS

    kinds = KINDS if args.kind == "all" else (args.kind,)
    for kind in kinds:
        names = vqkit.list_registered(kind, args.pattern)
        if args.kind == "all" and names:
            print(f"[{kind}]")
        for name in names:
            preset = vqkit.models.PRESETS.get(name) if kind == "model" else None
            print(f"{name:24s} {preset.description}" if preset else name)
    if args.kind in ("model", "all"):
        print(
            "datasets: digits, fashion-mnist[:FOLDER], mnist:FOLDER, toy:NAME, "
            "a folder of images, a .npy/.npz file"
        )
    return 0


_COMMANDS = {"train": _train, "sample": _sample, "eval": _eval, "push": _push, "list": _list}


def main(argv: list[str] | None = None) -> int:
    """Run the ``vqkit`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)
    try:
        return _COMMANDS[args.command](args)
    except (ValueError, TypeError, KeyError, FileNotFoundError, RuntimeError) as exc:
        if args.debug:
            raise
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"vqkit {args.command}: error: {message}", file=sys.stderr)
        return 2
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
