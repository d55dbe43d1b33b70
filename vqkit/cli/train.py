"""``vqkit train``: build a ``RunSpec`` from the options (or read one with
``--config``) and run it with ``train_run``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from vqkit.cli._common import (
    CLIError,
    HelpFormatter,
    fraction,
    image_size,
    json_object,
    non_negative_float,
    non_negative_int,
    one_line,
    positive_float,
    positive_int,
    writable_path,
)

DEFAULT_MODEL = "vqvae-digits"
DEFAULT_DATA = "digits"
# Settings of the default digits run: about a minute of CPU time for both stages on 2 cores.
DEFAULT_EPOCHS = 30
DEFAULT_PRIOR_EPOCHS = 30
#: Options that may accompany --config: they place the run, they do not change it.
PLACEMENT_OPTIONS = (
    "config",
    "out",
    "new",
    "device",
    "threads",
    "no_progress",
    "debug",
    "lazy",
    "cache",
    "num_workers",
    "pin_memory",
)


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    t = sub.add_parser(
        "train",
        parents=parents,
        help="train a model and write a run folder",
        description="Train a model (a VQ-VAE then its prior, or a VAE) and write a run folder with "
        "config.json, metrics.json, PNG pictures and the model in save_pretrained format. "
        "Re-running with the same --out resumes from the newest checkpoint; --config "
        "RUN/config.json replays a run exactly.",
        formatter_class=HelpFormatter,
    )
    t.add_argument(
        "--config",
        type=Path,
        default=None,
        help="replay the run a config.json describes (with --out, --device, --threads, "
        "--no-progress, --new only)",
    )
    t.add_argument(
        "--data",
        default=DEFAULT_DATA,
        help="'digits' (scikit-learn's 8x8 digits), 'fashion-mnist[:FOLDER]', 'mnist:FOLDER', "
        "'toy:correlated_gaussian|gaussian_ring|gaussian_grid', a folder of images, a .npy/.npz "
        "file, an IDX file, or 'hf:NAME[:split]' / 'hf:PATH' (Hugging Face datasets)",
    )
    t.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help="a preset (see `vqkit list`) or a model class: vqvae (needs --model-config), "
        "vae (2-D points), image_vae, beta_vae, vlae",
    )
    t.add_argument(
        "--model-config",
        type=json_object,
        default=None,
        help="JSON object (inline or a .json file) of constructor arguments merged into the "
        'preset, e.g. \'{"quantizer": {"codebook_size": 64}}\'',
    )
    t.add_argument("--out", default=None, help="run folder (default: runs/<model>-<data>)")
    t.add_argument(
        "--new", action="store_true", help="never resume: use <out>-2, <out>-3... if <out> exists"
    )
    t.add_argument("--image-size", type=image_size, default=None, help="resize images to N or HxW")
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
        "--val-fraction",
        type=fraction(low_open=False),
        default=0.1,
        help="share of the data held out for validation",
    )
    t.add_argument(
        "--subset",
        type=fraction(low_open=True),
        default=1.0,
        help="train (and test) on this seeded fraction only",
    )
    t.add_argument(
        "--seed", type=non_negative_int, default=0, help="seed of splits, initialisation and order"
    )
    g = t.add_argument_group("training (the VQ-VAE or VAE stage)")
    g.add_argument(
        "--epochs",
        type=positive_int,
        default=None,
        help=f"epochs (default: {DEFAULT_EPOCHS}, or no limit with --steps)",
    )
    g.add_argument("--steps", type=positive_int, default=None, help="stop after this many steps")
    g.add_argument("--batch-size", type=positive_int, default=64, help="global batch size")
    g.add_argument("--lr", type=positive_float, default=2e-3, help="learning rate")
    g.add_argument("--optimizer", choices=("adam", "adamw"), default="adam", help="optimizer")
    g.add_argument("--weight-decay", type=non_negative_float, default=0.0, help="weight decay")
    g.add_argument(
        "--lr-schedule", choices=("constant", "cosine"), default="cosine", help="learning rate"
    )
    g.add_argument("--warmup-steps", type=non_negative_int, default=0, help="linear warm-up steps")
    g.add_argument(
        "--grad-clip", type=non_negative_float, default=1.0, help="max gradient norm (0: off)"
    )
    g.add_argument(
        "--precision", choices=("fp32", "bf16"), default="fp32", help="bf16 autocast or fp32"
    )
    g.add_argument(
        "--patience",
        type=positive_int,
        default=None,
        help="early stopping after N epochs w/o improvement",
    )
    g.add_argument(
        "--checkpoint-every", type=positive_int, default=None, help="also checkpoint every N steps"
    )
    p = t.add_argument_group("prior (second stage of a VQ-VAE)")
    p.add_argument(
        "--prior-epochs",
        type=positive_int,
        default=None,
        help=f"epochs (default: {DEFAULT_PRIOR_EPOCHS}, or no limit with --prior-steps)",
    )
    p.add_argument(
        "--prior-steps", type=positive_int, default=None, help="stop the prior after N steps"
    )
    p.add_argument("--prior-lr", type=positive_float, default=2e-3, help="prior learning rate")
    p.add_argument(
        "--prior-patience",
        type=non_negative_int,
        default=5,
        help="prior early stopping patience (0: off)",
    )
    p.add_argument(
        "--prior",
        default=None,
        metavar="NAME",
        help="a registered prior replacing the model's (e.g. latent_diffusion, which trains on "
        "the pre-quantisation latents); its settings come from --model-config's 'prior'",
    )
    p.add_argument(
        "--no-prior",
        action="store_true",
        help="no prior: the model is built without one (nothing to sample from)",
    )
    d = t.add_argument_group("data loading (placement: may change on resume or with --config)")
    d.add_argument(
        "--lazy",
        action="store_true",
        default=None,
        help="read images on access instead of into memory (folders, .npy, uncompressed IDX; "
        "hf: sources always are)",
    )
    d.add_argument(
        "--cache",
        action="store_true",
        default=None,
        help="with --lazy on an image folder: keep a uint8 copy of the images in memory",
    )
    d.add_argument(
        "--num-workers",
        type=non_negative_int,
        default=None,
        help="DataLoader worker processes decoding lazy data (default: 0, in-process)",
    )
    d.add_argument(
        "--pin-memory",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="page-locked batches for fast copies to CUDA (default: on CUDA devices)",
    )
    gan = t.add_argument_group("VQ-GAN (vqgan models only; written into the model config)")
    gan.add_argument(
        "--disc-start",
        type=non_negative_int,
        default=None,
        help="step from which the discriminator and the adversarial term run (the presets: "
        "1000 / 2000; start it once reconstructions have converged)",
    )
    gan.add_argument(
        "--disc-weight",
        type=non_negative_float,
        default=None,
        help="factor on the adaptive adversarial weight λ (taming: 0.8)",
    )
    gan.add_argument(
        "--disc-lr",
        type=positive_float,
        default=None,
        help="the discriminator's learning rate (default: --lr); recorded in config.json",
    )
    gan.add_argument(
        "--perceptual",
        type=Path,
        default=None,
        metavar="FILE",
        help="LPIPS weights (safetensors; made once with `python -m vqkit.losses.lpips`, see "
        "docs/vqgan.md) for the perceptual loss; sets perceptual_weight to 1.0 (taming's) "
        "where the preset has 0 and --model-config does not set it",
    )
    t.add_argument("--no-progress", action="store_true", help="no progress bars")
    t.set_defaults(handler=run, parser=t)
    return t


def spec_from_args(args: argparse.Namespace):
    """The ``RunSpec`` the options describe."""
    from vqkit.train import TrainConfig
    from vqkit.train.run import DataSpec, RunSpec

    data = DataSpec(
        spec=args.data,
        image_size=args.image_size,
        color=args.color,
        fit=args.fit,
        val_fraction=args.val_fraction,
        subset_fraction=args.subset,
        seed=args.seed,
        lazy=bool(args.lazy),
        cache=bool(args.cache),
    )
    has_val = args.val_fraction > 0
    epochs = args.epochs if args.epochs is not None or args.steps else DEFAULT_EPOCHS
    train = TrainConfig(
        epochs=epochs,
        max_steps=args.steps,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        lr=args.lr,
        weight_decay=args.weight_decay,
        lr_schedule=args.lr_schedule,
        warmup_steps=args.warmup_steps,
        grad_clip=args.grad_clip or None,
        precision=args.precision,
        patience=args.patience if has_val else None,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
        progress=not args.no_progress,
        device=args.device,
        num_workers=args.num_workers or 0,
        pin_memory=args.pin_memory,
    )
    model_config = dict(args.model_config or {})
    _gan_flags(args, model_config)
    gan = _gan_spec(args, model_config)
    prior_train = None
    if args.prior is not None:
        if args.no_prior:
            raise CLIError("--prior and --no-prior contradict each other; give one of them")
        _check_prior_name(args.prior)
        given = model_config.get("prior")
        model_config["prior"] = {**(given if isinstance(given, dict) else {}), "type": args.prior}
    if args.no_prior:
        model_config["prior"] = None
    elif _has_prior(args.model, model_config):
        prior_epochs = args.prior_epochs
        if prior_epochs is None and not args.prior_steps:
            prior_epochs = DEFAULT_PRIOR_EPOCHS
        prior_train = TrainConfig(
            **{
                **train.to_dict(),
                "epochs": prior_epochs,
                "max_steps": args.prior_steps,
                "lr": args.prior_lr,
                "patience": (args.prior_patience or None) if has_val else None,
            }
        )
    return RunSpec(
        data=data,
        model=args.model,
        model_config=model_config,
        train=train,
        prior_train=prior_train,
        seed=args.seed,
        gan=gan,
    )


def _check_prior_name(name: str) -> None:
    import vqkit

    try:
        vqkit.get("prior", name)
    except KeyError as exc:
        raise CLIError(f"--prior: {one_line(exc)}") from None


def _require_gan_model(flag: str, model: str) -> None:
    """Refuse ``flag`` unless ``model`` is a VQ-GAN preset or an adversarial model class."""
    import vqkit
    from vqkit.models.presets import GAN_PRESETS

    if model in GAN_PRESETS:
        return
    try:
        adversarial = getattr(vqkit.get("model", model), "adversarial", False)
    except KeyError as exc:
        raise CLIError(f"--model: {one_line(exc)}") from None
    if not adversarial:
        raise CLIError(
            f"{flag} applies to VQ-GAN models (vqgan, {', '.join(sorted(GAN_PRESETS))}), "
            f"not {model!r}"
        )


def _gan_flags(args: argparse.Namespace, model_config: dict) -> None:
    """Merge ``--disc-start`` / ``--disc-weight`` into ``model_config`` (VQ-GAN models only)."""
    for flag, key in (("--disc-start", "disc_start"), ("--disc-weight", "disc_weight")):
        value = getattr(args, key, None)
        if value is None:
            continue
        _require_gan_model(flag, args.model)
        if key in model_config and model_config[key] != value:
            raise CLIError(f"{flag} {value} contradicts --model-config {key}={model_config[key]!r}")
        model_config[key] = value


def _gan_spec(args: argparse.Namespace, model_config: dict):
    """The ``GANSpec`` of ``--disc-lr`` / ``--perceptual`` (None without them); with
    ``--perceptual`` a preset's ``perceptual_weight`` of 0 becomes taming's 1.0."""
    from vqkit.models.presets import find_preset
    from vqkit.train.run import GANSpec

    disc_lr, perceptual = getattr(args, "disc_lr", None), getattr(args, "perceptual", None)
    if disc_lr is None and perceptual is None:
        return None
    for flag, value in (("--disc-lr", disc_lr), ("--perceptual", perceptual)):
        if value is not None:
            _require_gan_model(flag, args.model)
    if disc_lr is not None and "disc_lr" in model_config:
        raise CLIError(
            f"--disc-lr {disc_lr} contradicts --model-config disc_lr="
            f"{model_config['disc_lr']!r} (the discriminator's learning rate is a training "
            "setting, not a model argument: give --disc-lr only)"
        )
    if perceptual is not None:
        given = model_config.get("perceptual_weight")
        if given is not None and not given:
            raise CLIError(
                f"--perceptual {str(perceptual)!r} contradicts --model-config "
                f"perceptual_weight={given!r} (the perceptual loss would not be used)"
            )
        if given is None:
            preset = find_preset(args.model)
            if preset is not None and not preset.config.get("perceptual_weight", 1.0):
                model_config["perceptual_weight"] = 1.0
    return GANSpec(disc_lr=disc_lr, perceptual=None if perceptual is None else str(perceptual))


def _has_prior(name: str, model_config: dict) -> bool:
    """Whether the model the options name is a discrete model with a prior."""
    import vqkit
    from vqkit.models.presets import find_preset

    preset = find_preset(name)  # any family's preset (VQ-VAE, VQ-GAN, dVAE, VQ-VAE-2)
    if preset is not None:
        return model_config.get("prior", preset.config.get("prior")) is not None
    try:
        cls: Any = vqkit.get("model", name)  # a registered model class
    except KeyError as exc:
        raise CLIError(f"--model: {one_line(exc)}") from None
    return cls.family == "discrete" and model_config.get("prior") is not None


def _explicit(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[str]:
    """Options given on the command line with a value other than their default."""
    given = []
    for action in parser._actions:
        dest = action.dest
        skipped = dest in PLACEMENT_OPTIONS or dest in ("help", "handler", "parser")
        if skipped or dest not in vars(args):
            continue
        if getattr(args, dest) != action.default:
            given.append(action.option_strings[-1] if action.option_strings else dest)
    return given


def _data_name(spec: str) -> str:
    """A short name of a data spec for the default run folder: digits, fashion-mnist,
    gaussian_ring, or a folder's / file's name."""
    name, _, arg = spec.partition(":")
    if name in ("fashion-mnist", "mnist"):
        return name
    if name == "toy" and arg:
        return arg
    return Path(spec).stem or "data"


def _out_dir(args: argparse.Namespace, spec) -> Path:
    if args.out:
        out = Path(args.out)
    else:
        out = Path("runs") / f"{spec.model}-{_data_name(spec.data.spec)}"
    writable_path(out, "--out")
    if args.new and out.exists():
        k = 2
        while Path(f"{out}-{k}").exists():
            k += 1
        out = Path(f"{out}-{k}")
    return out


def run(args: argparse.Namespace) -> int:
    from vqkit.train import find_latest_checkpoint
    from vqkit.train.distributed import is_main_process, setup_distributed
    from vqkit.train.run import read_run_spec, train_run

    if args.config is not None:
        extra = _explicit(args, args.parser)
        if extra:
            raise CLIError(
                f"--config replays a run exactly; {', '.join(extra)} would change it (edit a copy "
                "of the config.json instead)"
            )
        if not args.config.exists():
            raise CLIError(f"--config: no such file: {str(args.config)!r}")
        try:
            spec = read_run_spec(args.config)
        except (ValueError, TypeError) as exc:
            raise CLIError(f"--config: {one_line(exc)}") from None
        try:
            spec = spec.with_placement(
                device=args.device,
                progress=False if args.no_progress else None,
                num_workers=args.num_workers,
                pin_memory=args.pin_memory,
                lazy=args.lazy,
                cache=args.cache,
            )
        except (ValueError, TypeError) as exc:
            raise CLIError(one_line(exc)) from None
    else:
        try:
            spec = spec_from_args(args)
        except (ValueError, TypeError) as exc:
            raise CLIError(one_line(exc)) from None
    out = _out_dir(args, spec)
    args.out_dir = out  # for the Ctrl-C message
    setup_distributed(spec.train.device)
    say = print if is_main_process() else (lambda *a, **k: None)
    for stage in ("vqvae", "prior", "vae"):
        latest = find_latest_checkpoint(out / stage / "checkpoints")
        if latest is not None:
            say(f"resuming {stage} from {latest}")
    say(f"run folder: {out}")
    result = train_run(spec, out, command="vqkit " + " ".join(sys.argv[1:]))
    if is_main_process():
        report(result)
    return 0


def report(result) -> None:
    """Print a run's figures, pictures and paths."""
    import json

    data = json.loads((result.out_dir / "config.json").read_text()).get("data", {})
    print(
        f"data: {data.get('spec')}: {data.get('num_train')} train, {data.get('num_val')} val, "
        f"{data.get('num_test')} test"
    )
    shown = {k: v for k, v in result.metrics.items() if isinstance(v, (int, float))}
    print("metrics (" + str(result.metrics.get("eval_split", "")) + "):")
    for key, value in shown.items():
        print(f"  {key}: {value:.4f}" if isinstance(value, float) else f"  {key}: {value}")
    print("pictures:")
    for name, path in result.pictures.items():
        print(f"  {name}: {path}")
    print(f"model: {result.model_dir}  (load with vqkit.load_run_model({str(result.out_dir)!r}))")
    print(f"metrics file: {result.out_dir / 'metrics.json'}")
    print(f"report: {result.out_dir / 'report.html'}  (metrics, pictures and config on one page)")
