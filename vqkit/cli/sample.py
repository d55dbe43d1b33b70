"""``vqkit sample``: draw samples from a trained model into a PNG grid (or a scatter of points)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from vqkit.cli._common import (
    CLIError,
    HelpFormatter,
    load_model,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    writable_path,
)


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    s = sub.add_parser(
        "sample",
        parents=parents,
        help="draw samples from a trained model into a PNG grid",
        description="Sample images from a run folder's model (or a Hub repo) and save a grid.",
        formatter_class=HelpFormatter,
    )
    s.add_argument("source", help="a run folder written by `vqkit train`, or a Hub repo id")
    s.add_argument("-n", "--num", type=positive_int, default=64, help="number of samples")
    s.add_argument("--out", default=None, help="PNG path (default: <run>/samples-seed<seed>.png)")
    s.add_argument("--seed", type=non_negative_int, default=0, help="seed of the sampler")
    s.add_argument(
        "--temperature", type=positive_float, default=1.0, help="prior softmax temperature"
    )
    s.add_argument("--nrow", type=positive_int, default=8, help="images per row of the grid")
    o = s.add_argument_group(
        "prior sampling options (only for priors whose sample() takes them)",
        "transformer: --top-k, --top-p; maskgit: --steps, --choice-temperature, "
        "--guidance-scale (class-conditional priors); latent_diffusion: --steps, --sampler, "
        "--eta",
    )
    o.add_argument("--top-k", type=positive_int, default=None, help="keep the k likeliest codes")
    o.add_argument(
        "--top-p", type=unit_interval, default=None, help="nucleus: smallest set with mass >= p"
    )
    o.add_argument(
        "--steps", type=positive_int, default=None, help="MaskGIT / diffusion sampling steps"
    )
    o.add_argument(
        "--sampler", choices=("ddim", "ddpm"), default=None, help="latent diffusion: the sampler"
    )
    o.add_argument(
        "--eta",
        type=non_negative_float,
        default=None,
        help="latent diffusion: DDIM's eta (0: deterministic, 1: DDPM-like noise)",
    )
    o.add_argument(
        "--choice-temperature",
        type=non_negative_float,
        default=None,
        help="MaskGIT: scale of the Gumbel noise of the confidence (0: greedy)",
    )
    o.add_argument(
        "--guidance-scale",
        type=non_negative_float,
        default=None,
        help="MaskGIT: classifier-free guidance scale (1: none)",
    )
    s.add_argument("--model-class", default="vqvae", help="registered class of a Hub repo's model")
    s.set_defaults(handler=run)
    return s


#: The sampling options of ``vqkit sample``: option name → keyword of ``prior.sample``.
SAMPLE_OPTIONS = {
    "--top-k": "top_k",
    "--top-p": "top_p",
    "--steps": "steps",
    "--choice-temperature": "choice_temperature",
    "--guidance-scale": "guidance_scale",
    "--sampler": "sampler",
    "--eta": "eta",
}


def unit_interval(text: str) -> float:
    """A number in (0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}")
    return value


def prior_sample_options(prior) -> tuple[str, ...]:
    """The keyword options ``prior.sample`` declares: its class's ``sample_options`` when it
    has one, else the keyword-only parameters of its ``sample`` signature (beyond the
    contract's ``cond``, ``temperature`` and ``generator``)."""
    import inspect

    declared = getattr(type(prior), "sample_options", None)
    if declared is not None:
        return tuple(declared)
    parameters = inspect.signature(type(prior).sample).parameters.values()
    contract = {"cond", "temperature", "generator"}
    return tuple(p.name for p in parameters if p.kind is p.KEYWORD_ONLY and p.name not in contract)


def draw(model, num: int, *, seed: int = 0, temperature: float = 1.0, options=None):
    """``num`` samples of ``model``, dispatched on its declared family.

    ``options`` (keyword → value) go to the prior's ``sample``; each must be among the options
    the prior declares (``prior_sample_options``), else a one-line error names them.
    """
    import torch

    options = {k: v for k, v in (options or {}).items() if v is not None}
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    flags = {v: k for k, v in SAMPLE_OPTIONS.items()}
    if model.family == "discrete":
        if model.prior is None:
            raise CLIError(
                f"{type(model).__name__} has no prior (trained with --no-prior?): there is "
                "nothing to sample from; `vqkit eval` still measures its reconstructions",
                1,
            )
        if model.latent_size is None:
            raise CLIError(
                f"{type(model).__name__} was built without image_size, so the latent grid to "
                "sample is unknown; rebuild it with image_size=[H, W]",
                1,
            )
        if not options:
            return model.generate(num, generator=generator, temperature=temperature)
        prior = model.prior
        takes = prior_sample_options(prior)
        refused = [flags.get(k, k) for k in options if k not in takes]
        if refused:
            offered = [flags[k] for k in takes if k in flags]
            raise CLIError(
                f"{', '.join(refused)} do(es) not apply to the {type(prior).__name__} prior "
                f"(it takes {', '.join(offered) or 'none of the sampling options'})"
            )
        return model.generate(num, generator=generator, temperature=temperature, **options)
    if options:
        raise CLIError(
            f"{', '.join(flags.get(k, k) for k in options)} apply to priors over codes, not to "
            f"{model.family} models"
        )
    if temperature != 1.0:
        raise CLIError(f"--temperature applies to priors over codes, not to {model.family} models")
    return model.sample(num, generator=generator)


def run(args: argparse.Namespace) -> int:
    from vqkit.train import image_grid, save_image, scatter_plot

    if args.out:
        out = Path(args.out)
        if out.suffix.lower() not in (".png", ".jpg", ".jpeg", ".webp", ".bmp"):
            raise CLIError(f"--out {args.out!r}: expected an image file name such as samples.png")
    elif Path(args.source).is_dir():
        out = Path(args.source) / f"samples-seed{args.seed}.png"
    else:
        out = Path(f"samples-seed{args.seed}.png")
    writable_path(out, "--out")
    if out.is_dir():
        raise CLIError(f"--out {str(out)!r} is a folder; give a file name such as samples.png")
    model = load_model(args.source, model_class=args.model_class, device=args.device)
    options = {keyword: getattr(args, keyword) for keyword in SAMPLE_OPTIONS.values()}
    images = draw(model, args.num, seed=args.seed, temperature=args.temperature, options=options)
    if images.ndim == 2:
        save_image(scatter_plot({"samples": images}), out)
    else:
        scale = max(1, 64 // images.shape[-2])
        save_image(image_grid(images.clamp(0, 1), nrow=args.nrow, scale=scale), out)
    print(f"wrote {args.num} samples to {out}")
    return 0
