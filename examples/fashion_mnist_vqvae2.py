"""VQ-VAE-2 against a one-level VQ-VAE at the same bits per image on Fashion-MNIST.

*Generating Diverse High-Fidelity Images with VQ-VAE-2*, Razavi, van den Oord, Vinyals, 2019
(arXiv:1906.00446); Fashion-MNIST: Xiao et al., arXiv:1708.07747.

- VQ-VAE-2 (preset ``vqvae2-fashion-mnist``): 28 → 14 → 7, top 7×7 codes with K = 256 (8 bits)
  and bottom 14×14 codes with K = 16 (4 bits): 7·7·8 + 14·14·4 = 1176 bits per image, plus the
  top-only decoder (weight 1) so that the top codes describe the image on their own.
- VQ-VAE: one 14×14 grid with K = 64 (6 bits): 14·14·6 = 1176 bits per image, the same widths.

Both train for the same number of Adam steps at the same batch size on one CPU thread, then
are scored on the test split: PSNR, SSIM, the dataset Fréchet distance of the reconstructions
(one ``DatasetClassifier`` trained on the training split scores both) and codebook usage per
level. ``--prior-steps N`` also trains the preset's hierarchical prior (top Gated PixelCNN, bottom
Gated PixelCNN conditioned on the top codes: needs ``GatedPixelCNN(cond_channels=...)``) and
draws samples.

    python examples/fashion_mnist_vqvae2.py --steps 1500            # ~5 min per model, 1 thread
    python examples/fashion_mnist_vqvae2.py --steps 20 --eval 256   # smoke run

Writes ``results.json`` and small PNGs to ``--out`` (default ``docs/images/vqvae2``).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
from torch import nn

import vqkit
from vqkit.data import load_fashion_mnist
from vqkit.train.evaluate import (
    evaluate_codebook,
    evaluate_reconstruction,
    evaluate_sample_quality,
)
from vqkit.train.frechet import train_dataset_classifier
from vqkit.train.images import image_grid, labelled, save_image

NET = {"hidden_channels": 64, "num_residual_layers": 1, "residual_hidden_channels": 32}


def one_level_config() -> dict:
    """The baseline: 14×14 codes, K = 64, D = 32, the VQ-VAE-2 preset's widths."""
    return {
        "encoder": {"type": "resnet", "in_channels": 1, "num_downsamples": 1, **NET},
        "quantizer": {"type": "vq", "dim": 32, "codebook_size": 64, "commitment_weight": 0.25},
        "decoder": {"type": "resnet", "out_channels": 1, **NET},
        "image_size": [28, 28],
    }


def bits(model: nn.Module) -> float:
    sizes = model.latent_size if isinstance(model.codebook_size, tuple) else [model.latent_size]
    ks = model.codebook_size if isinstance(model.codebook_size, tuple) else [model.codebook_size]
    return sum(h * w * math.log2(k) for (h, w), k in zip(sizes, ks, strict=True))


def train(model: nn.Module, images: torch.Tensor, steps: int, batch: int, lr: float, seed: int):
    """``steps`` Adam steps on random minibatches (seeded), a cosine learning-rate decay."""
    gen = torch.Generator().manual_seed(seed)
    params = [p for n, p in model.named_parameters() if not n.startswith("prior.")]
    optimizer = torch.optim.Adam(params, lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    model.train()
    start = time.perf_counter()
    for step in range(steps):
        x = images[torch.randint(0, images.shape[0], (batch,), generator=gen)]
        out = model(x)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        optimizer.step()
        schedule.step()
        if step % 250 == 0 or step == steps - 1:
            print(f"  step {step:5d}  loss {float(out.loss.detach()):.4f}", flush=True)
    model.eval()
    return time.perf_counter() - start


def train_prior(model: nn.Module, images: torch.Tensor, steps: int, batch: int, seed: int):
    """The second stage: the hierarchical prior on the frozen model's (top, bottom) codes."""
    codes = [model.encode_indices(x) for x in images.split(512)]
    top = torch.cat([c[0] for c in codes])
    bottom = torch.cat([c[1] for c in codes])
    gen = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.prior.parameters(), lr=1e-3)
    model.prior.train()
    for step in range(steps):
        idx = torch.randint(0, top.shape[0], (batch,), generator=gen)
        out = model.prior.loss((top[idx], bottom[idx]))
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        optimizer.step()
        if step % 250 == 0 or step == steps - 1:
            terms = {k: round(float(v), 3) for k, v in out.losses.items() if "bits" in k}
            print(f"  prior step {step:5d}  {terms}", flush=True)
    model.prior.eval()
    return {k: float(v) for k, v in model.prior.loss((top[:512], bottom[:512])).losses.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None, help="folder with the IDX files")
    parser.add_argument("--out", default="docs/images/vqvae2", help="results.json and PNGs")
    parser.add_argument("--steps", type=int, default=1500, help="Adam steps per model")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--eval", type=int, default=2000, help="test images scored")
    parser.add_argument("--prior-steps", type=int, default=0, help="train the prior (0: no)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)

    train_set = load_fashion_mnist(args.data, "train")
    test_set = load_fashion_mnist(args.data, "test")
    images, test = train_set.data.float(), test_set.data[: args.eval].float()
    classifier = train_dataset_classifier(images[:20000], train_set.labels[:20000], seed=0)

    torch.manual_seed(args.seed)
    prior = (
        None
        if args.prior_steps == 0
        else vqkit.models.presets.VQVAE2_PRESETS["vqvae2-fashion-mnist"].config["prior"]
    )
    models = {
        "VQ-VAE (14×14, K=64)": vqkit.VQVAE(**one_level_config()),
        "VQ-VAE-2 (7×7 K=256 + 14×14 K=16)": vqkit.create_model(
            "vqvae2-fashion-mnist", prior=prior
        ),
    }
    results: dict[str, dict] = {}
    for name, model in models.items():
        print(f"{name}: {bits(model):.0f} bits per image", flush=True)
        seconds = train(model, images, args.steps, args.batch_size, args.lr, args.seed)
        with torch.no_grad():
            figures = {**evaluate_reconstruction(model, test), **evaluate_codebook(model, test)}
            quality = evaluate_sample_quality(model, test, classifier, num_samples=len(test))
        figures["reconstruction_dataset_fd"] = quality["reconstruction_dataset_fd"]
        figures.update(bits=bits(model), train_seconds=seconds, steps=args.steps)
        results[name] = figures
        print(f"  {json.dumps({k: round(v, 4) for k, v in figures.items()})}", flush=True)

    vq, vq2 = models.values()
    x = test[:8]
    with torch.no_grad():
        top, bottom = vq2.encode_indices(x)
        rows = [x, vq(x).reconstruction, vq2.decode_indices((top, bottom)), vq2.decode_top(top)]
        # a bottom grid of one constant code shows what the top codes carry through the decoder
        constant = torch.full_like(bottom, int(torch.mode(bottom.flatten()).values))
        rows.append(vq2.decode_indices((top, constant)))
    grid = image_grid(torch.cat(rows).clamp(0, 1), nrow=8, scale=2)
    labels = ["input", "VQ-VAE", "VQ-VAE-2", "top only", "top + fixed bottom"]
    grid = labelled(grid, title="Fashion-MNIST test images, 1176 bits each", row_labels=labels,
                    row_height=60)  # fmt: skip
    save_image(grid, out_dir / "reconstructions.png")

    if args.prior_steps:
        results["prior"] = train_prior(vq2, images, args.prior_steps, args.batch_size, args.seed)
        with torch.no_grad():
            samples = vq2.generate(16, generator=torch.Generator().manual_seed(0))
        picture = labelled(image_grid(samples.clamp(0, 1), nrow=8, scale=2), title="samples")
        save_image(picture, out_dir / "samples.png")

    results["load_average"] = Path("/proc/loadavg").read_text().split()[:3]
    (out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
