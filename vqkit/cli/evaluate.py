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
    non_negative_int,
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
        "bits per latent position (VQ-VAE; MaskGIT's masked-token NLLs for priors without an "
        "exact likelihood) or the ELBO (VAEs), and the dataset Fréchet distance and KID of "
        "reconstructions and samples, over a whole dataset and print them as JSON.",
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
    q = e.add_argument_group(
        "sample quality",
        "dataset Fréchet distance and KID of reconstructions and prior samples, in the features "
        "of a small classifier trained once on the run's training split and cached in the run "
        "folder (dataset_classifier.safetensors); not FID",
    )
    q.add_argument(
        "--num-samples",
        type=positive_int,
        default=1000,
        help="held-out images, reconstructions and samples per set (at least 2)",
    )
    q.add_argument(
        "--no-sample-quality",
        action="store_true",
        help="skip the sample-quality figures (written as null)",
    )
    q.add_argument(
        "--seed", type=non_negative_int, default=0, help="seed of the samples and of KID's subsets"
    )
    q.add_argument(
        "--inception",
        metavar="FILE",
        default=None,
        help="the FID Inception-v3 weights (a safetensors file made once from pytorch-fid's "
        "pt_inception-2015-12-05-6726825d.pth by `python -m vqkit.train.inception`): adds the "
        "true FID of reconstructions and samples (reconstruction_fid, sample_fid); nothing is "
        "downloaded",
    )
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


def classifier_for(args: argparse.Namespace):
    """The run folder's cached dataset classifier (trained on the run's training split on first
    use); None for a Hub source or data without labels."""
    from vqkit.train.frechet import DatasetClassifier
    from vqkit.train.recipes import CLASSIFIER_FILE, run_classifier
    from vqkit.train.run import held_out, read_run_spec

    run_dir = Path(args.run)
    if not (run_dir / "config.json").is_file():
        return None
    cached = run_dir / CLASSIFIER_FILE
    if cached.is_file():
        try:
            return DatasetClassifier.load(cached)
        except (ValueError, OSError) as exc:
            raise CLIError(f"{str(cached)!r}: {one_line(exc)}; delete it to retrain", 1) from None
    try:
        spec = read_run_spec(run_dir)
        train = held_out(spec.data, "train")
    except (ValueError, TypeError, KeyError, FileNotFoundError) as exc:
        raise CLIError(f"the training data of {args.run!r}: {one_line(exc)}") from None
    return run_classifier(run_dir, train, seed=spec.train.seed)


def inception_for(args: argparse.Namespace):
    """The FID network from ``--inception``, or None."""
    if args.inception is None:
        return None
    if args.no_sample_quality:
        raise CLIError("--inception and --no-sample-quality contradict each other")
    from vqkit.train.inception import FIDInceptionV3

    try:
        return FIDInceptionV3(weights=args.inception)
    except FileNotFoundError:
        raise CLIError(
            f"--inception {args.inception!r}: no such file; make it once with `python -m "
            "vqkit.train.inception --pth pt_inception-2015-12-05-6726825d.pth --out FILE` "
            "(docs/vqgan.md says where to get the .pth)"
        ) from None
    except (ValueError, OSError) as exc:
        raise CLIError(f"--inception {args.inception!r}: {one_line(exc)}") from None


def run(args: argparse.Namespace) -> int:
    from vqkit.train import evaluate_model
    from vqkit.train.evaluate import SAMPLE_QUALITY_KEYS

    if args.out:
        writable_path(Path(args.out), "--out")
    if args.num_samples < 2:
        raise CLIError(f"--num-samples must be at least 2, got {args.num_samples}")
    inception = inception_for(args)  # before the model: a wrong file fails fast
    model = load_model(args.run, model_class=args.model_class, device=args.device)
    data = eval_data(args)
    if len(data) == 0:
        raise CLIError(f"{data.name} has no samples to evaluate")
    classifier = None if args.no_sample_quality else classifier_for(args)
    metrics = evaluate_model(
        model,
        data,
        batch_size=args.batch_size,
        seed=args.seed,
        classifier=classifier,
        num_samples=args.num_samples,
        inception=inception,
    )
    for key in SAMPLE_QUALITY_KEYS:  # the same keys for every model (null: skipped)
        metrics.setdefault(key, None)
    metrics["eval_split"] = data.name
    text = json.dumps(metrics, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0
