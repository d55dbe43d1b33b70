"""``vqkit sample``: draw samples from a trained model into a PNG grid (or a scatter of points)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from vqkit.cli._common import (
    CLIError,
    HelpFormatter,
    load_model,
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
    s.add_argument("--model-class", default="vqvae", help="registered class of a Hub repo's model")
    s.set_defaults(handler=run)
    return s


def draw(model, num: int, *, seed: int = 0, temperature: float = 1.0):
    """``num`` samples of ``model``, dispatched on its declared family."""
    import torch

    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
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
        return model.generate(num, generator=generator, temperature=temperature)
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
    images = draw(model, args.num, seed=args.seed, temperature=args.temperature)
    if images.ndim == 2:
        save_image(scatter_plot({"samples": images}), out)
    else:
        scale = max(1, 64 // images.shape[-2])
        save_image(image_grid(images.clamp(0, 1), nrow=args.nrow, scale=scale), out)
    print(f"wrote {args.num} samples to {out}")
    return 0
