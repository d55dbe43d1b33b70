"""Train a VQ-VAE (K = 512 codes) and a Gated PixelCNN prior on Fashion-MNIST, report test figures.

van den Oord et al., "Neural Discrete Representation Learning" (arXiv:1711.00937): a residual
encoder with one stride-2 convolution maps 28×28 images to 14×14 grids of 512 codes
(``--downsamples 2``: two, and 7×7 grids); the prior is trained on the frozen codes afterwards.
Fashion-MNIST: Xiao et al., arXiv:1708.07747.

Data: the IDX files of Debian's ``dataset-fashion-mnist`` package (``apt-get install
dataset-fashion-mnist``, files in /usr/share/datasets/fashion-mnist) or any folder holding
``train-images-idx3-ubyte.gz`` etc. (``--data``).

    python examples/fashion_mnist_vqvae.py --threads 1            # ~25 min on a CPU core
    python examples/fashion_mnist_vqvae.py --subset 0.05 --epochs 1 --prior-epochs 1   # smoke run

Writes the run folder (``--out``: checkpoints, metrics.json, model/, PNGs) and copies the PNGs
and metrics to ``--pictures``. Re-running with the same ``--out`` resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

from vqkit.data import FASHION_MNIST_PATH
from vqkit.train import DataSpec, RunSpec, TrainConfig, train_run


def model_config(downsamples: int = 1, prior: bool = True) -> dict:
    """K = 512 codes of dimension 32 on a (28 / 2**downsamples)² grid: 14×14 by default."""
    hidden = {"hidden_channels": 64, "num_residual_layers": 2, "residual_hidden_channels": 32}
    gated = {"type": "gated_pixelcnn", "hidden_channels": 32, "num_layers": 6, "head_channels": 128}
    return {
        "encoder": {"type": "resnet", "in_channels": 1, "num_downsamples": downsamples, **hidden},
        "quantizer": {"type": "vq", "dim": 32, "codebook_size": 512},
        "decoder": {"type": "resnet", "out_channels": 1, "num_upsamples": downsamples, **hidden},
        "prior": gated if prior else None,
        "image_size": [28, 28],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=FASHION_MNIST_PATH, help="folder with the IDX files")
    parser.add_argument("--out", default="runs/fashion-mnist-vqvae", help="run folder")
    parser.add_argument("--pictures", default="docs/img/fashion_mnist", help="copy PNGs here")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--prior-epochs", type=int, default=1, help="0 skips the prior")
    parser.add_argument(
        "--downsamples", type=int, default=1, help="1: 14x14 latents, 2: 7x7 latents"
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--subset", type=float, default=1.0, help="fraction of the data to use")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    settings = {
        "batch_size": args.batch_size,
        "lr": args.lr,
        "lr_schedule": "cosine",
        "grad_clip": 1.0,
        "seed": args.seed,
        "checkpoint_every": 100,
    }
    # The same run as `vqkit train --model vqvae --model-config ...`: its config.json replays it.
    spec = RunSpec(
        data=DataSpec(
            f"fashion-mnist:{args.data}",
            val_fraction=0.05,
            subset_fraction=args.subset,
            seed=args.seed,
        ),
        model="vqvae",
        model_config=model_config(args.downsamples, prior=args.prior_epochs > 0),
        train=TrainConfig(epochs=args.epochs, **settings),
        prior_train=TrainConfig(epochs=args.prior_epochs, **settings)
        if args.prior_epochs
        else None,
        seed=args.seed,
    )
    start = time.perf_counter()
    result = train_run(spec, args.out)
    minutes = (time.perf_counter() - start) / 60
    data = json.loads((Path(args.out) / "config.json").read_text())["data"]
    print(
        f"train {data['num_train']}, val {data['num_val']}, test {data['num_test']} images of 28x28"
    )
    m = result.metrics
    print(
        f"test: PSNR {m['psnr']:.2f} dB, SSIM {m['ssim']:.4f}, MSE {m['mse']:.5f}, "
        f"codebook usage {m['codebook_usage']:.1%} ({m['codebook_used_codes']}/512), "
        f"perplexity {m['codebook_perplexity']:.1f}, "
        f"prior {m.get('prior_bits_per_dim', float('nan')):.3f} bits/dim ({minutes:.1f} min)"
    )
    pictures = Path(args.pictures)
    pictures.mkdir(parents=True, exist_ok=True)
    for path in result.pictures.values():
        shutil.copy(path, pictures / path.name)
    (pictures / "metrics.json").write_text(json.dumps(m, indent=2) + "\n")
    print(f"pictures and metrics: {pictures}/ ; model: {result.model_dir}")


if __name__ == "__main__":
    main()
