"""``vqkit eval``: evaluate a run's model on its own held-out data (from the run's spec) or on
another dataset, and print the figures as JSON."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from vqkit.cli._common import (
    CLIError,
    HelpFormatter,
    image_size,
    load_model,
    one_line,
    positive_int,
    writable_path,
)


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    e = sub.add_parser(
        "eval",
        parents=parents,
        help="evaluate a trained model on a dataset",
        description="Compute MSE, PSNR, SSIM, codebook usage and perplexity, prior NLL and "
        "bits per latent position (VQ-VAE) or the ELBO (VAEs) over a whole dataset and print "
        "them as JSON.",
        formatter_class=HelpFormatter,
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
    e.add_argument("--image-size", type=image_size, default=None, help="resize images to N or HxW")
    e.add_argument("--out", default=None, help="also write the metrics to this JSON file")
    e.add_argument("--batch-size", type=positive_int, default=256, help="evaluation batch size")
    e.add_argument("--model-class", default="vqvae", help="registered class of a Hub repo's model")
    e.set_defaults(handler=run)
    return e


def eval_data(args: argparse.Namespace):
    """The dataset to score: the run's own (from its spec) or the one ``--data`` names."""
    from vqkit.train.run import DataSpec, held_out, read_run_spec

    try:
        if args.data is None:
            if args.image_size is not None:
                raise CLIError("--image-size applies with --data (the run's data has its own size)")
            if not (Path(args.run) / "config.json").is_file():
                raise CLIError(f"{args.run!r} is not a run folder: pass the data with --data")
            return held_out(read_run_spec(args.run).data, args.split)
        return held_out(
            DataSpec(args.data, image_size=args.image_size, val_fraction=0.0), args.split
        )
    except CLIError:
        raise
    except (ValueError, TypeError, KeyError, FileNotFoundError) as exc:
        where = f"--data {args.data!r}" if args.data is not None else f"the data of {args.run!r}"
        raise CLIError(f"{where}: {one_line(exc)}") from None


def run(args: argparse.Namespace) -> int:
    from vqkit.train import evaluate_model

    if args.out:
        writable_path(Path(args.out), "--out")
    model = load_model(args.run, model_class=args.model_class, device=args.device)
    data = eval_data(args)
    if len(data) == 0:
        raise CLIError(f"{data.name} has no samples to evaluate")
    metrics = evaluate_model(model, data, batch_size=args.batch_size)
    metrics["eval_split"] = data.name
    text = json.dumps(metrics, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0
