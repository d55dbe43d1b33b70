"""What the Fashion-MNIST prior examples share: the data and the feature classifier, a small
VQ-VAE first stage (trained once and cached in the run folder), a plain training loop and
chunked encoding.

Fashion-MNIST: Xiao et al. 2017, arXiv:1708.07747 (``apt-get install dataset-fashion-mnist``).
The first stage is a VQ-VAE ("Neural Discrete Representation Learning", van den Oord et al.
2017, arXiv:1711.00937) mapping 28×28 images to 7×7 code grids. Imported by
``fashion_mnist_priors.py`` and ``fashion_mnist_ldm.py`` (run from any folder: Python puts the
script's folder on ``sys.path``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from vqkit import VQVAE, load_dataset
from vqkit.train.frechet import DatasetClassifier, load_or_train_classifier


def train(
    module: nn.Module,
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    data: torch.Tensor,
    steps: int,
    lr: float,
    seed: int,
    label: str,
    batch_size: int = 64,
) -> float:
    """Adam with a cosine learning-rate decay over ``steps`` random minibatches of ``data``
    (gradient norm clipped to 1); returns the seconds it took."""
    gen = torch.Generator().manual_seed(seed)
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    module.train()
    start, running = time.perf_counter(), None
    for step in range(steps):
        batch = data[torch.randint(0, len(data), (batch_size,), generator=gen)]
        loss = loss_fn(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        schedule.step()
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if (step + 1) % max(steps // 5, 1) == 0:
            print(f"  {label} step {step + 1}/{steps}: loss {running:.4f}", flush=True)
    module.eval()
    return time.perf_counter() - start


@torch.no_grad()
def in_chunks(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """``fn`` over ``x`` in chunks of 500 rows, concatenated."""
    return torch.cat([fn(x[i : i + 500]) for i in range(0, len(x), 500)])


def data_and_classifier(
    out: Path,
) -> tuple[torch.Tensor, torch.Tensor, DatasetClassifier]:
    """The training and test images and the feature classifier of the dataset Fréchet distance
    (trained on 10,000 training images for 2 epochs, cached as ``out/classifier.safetensors``)."""
    train_set = load_dataset("fashion-mnist", split="train")
    test_set = load_dataset("fashion-mnist", split="test")
    images, test_images = train_set.data, test_set.data
    print(f"{len(images)} training and {len(test_images)} test images", flush=True)
    classifier = load_or_train_classifier(
        out / "classifier.safetensors", images[:10000], train_set.labels[:10000], epochs=2
    )
    return images, test_images, classifier


def vqvae_config(dim: int, codes: int) -> dict:
    """The first stage's constructor arguments: ResNet encoder/decoder (2 downsamples, width 32)
    around a VQ layer of ``codes`` codes of ``dim`` channels, 28×28 images, a 7×7 grid."""
    hidden = {"hidden_channels": 32, "num_residual_layers": 2, "residual_hidden_channels": 16}
    return {
        "encoder": {"type": "resnet", "in_channels": 1, "num_downsamples": 2, **hidden},
        "quantizer": {"type": "vq", "dim": dim, "codebook_size": codes},
        "decoder": {"type": "resnet", "out_channels": 1, "num_upsamples": 2, **hidden},
        "image_size": [28, 28],
    }


def first_stage(
    out: Path, images: torch.Tensor, dim: int, codes: int, steps: int, seed: int
) -> tuple[VQVAE, float | None]:
    """The ``vqvae_config`` VQ-VAE trained with ``train`` (lr 2e-3, batch 128) and saved to
    ``out/vqvae``, or reloaded from there when a finished one is found; returns it in eval mode
    and its training minutes (None when reused)."""
    torch.manual_seed(seed)
    model = VQVAE(**vqvae_config(dim, codes))
    minutes = None
    if (out / "vqvae" / "config.json").is_file():  # a finished first stage is reused
        model = VQVAE.from_pretrained(out / "vqvae")
    else:
        seconds = train(model, lambda x: model(x).loss, images, steps, 2e-3, seed, "vq-vae", 128)
        minutes = round(seconds / 60, 2)
        print(f"VQ-VAE trained in {minutes} min", flush=True)
        model.save_pretrained(out / "vqvae")
    return model.eval(), minutes
