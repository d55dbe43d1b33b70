"""A VQ-GAN training step beside the VQ-VAE step of the same generator, in images per second.

The GAN step is :class:`vqkit.train.gan.GANStep` past ``disc_start`` (*Taming Transformers for
High-Resolution Image Synthesis*, Esser et al., arXiv:2012.09841): a generator update with the
adversarial term and the adaptive weight (two extra gradients at the decoder's last layer), then a
discriminator update on real and reconstructed images. The VQ-VAE step trains the *same* model on
its reconstruction + quantizer loss only (``model(x).loss``, Adam), so the difference is the cost
of the adversarial training. The ``+lpips`` variant adds the perceptual loss with a randomly
initialised VGG16 (the same cost as the pretrained one; no weights are needed here).

``--bench-size=small`` times the Fashion-MNIST preset (28×28) at batch 8 for a few rounds;
``full`` adds taming's ImageNet f16 preset (at 64×64 on the CPU, 256×256 on CUDA). Peak memory
comes from ``record_peak_memory`` (CUDA allocator peak, or a fresh process's RSS on the CPU).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from _timing import bench_device, record_peak_memory, run_pedantic, set_throughput

import vqkit
from vqkit.losses import LPIPS
from vqkit.train.gan import GANStep

LEARNING_RATE = 1e-4

# (bench_size, device type) -> [(preset, image side, batch)], timed rounds.
PLANS = {
    ("small", "cpu"): ([("vqgan-fashion-mnist", 28, 8)], 3),
    ("small", "cuda"): ([("vqgan-fashion-mnist", 28, 8)], 5),
    ("full", "cpu"): ([("vqgan-fashion-mnist", 28, 32), ("vqgan-imagenet-f16-1024", 64, 2)], 5),
    ("full", "cuda"): ([("vqgan-fashion-mnist", 28, 128), ("vqgan-imagenet-f16-1024", 256, 8)], 20),
}
STEPS = ("vqvae", "gan", "gan+lpips")


def make_step(
    preset: str, side: int, batch: int, kind: str, device: str, seed: int = 0
) -> Callable[[], torch.Tensor]:
    """Build the preset and one training step of ``kind``; module level for the memory child."""
    torch.manual_seed(seed)
    perceptual = LPIPS(random_init=True).to(device) if kind == "gan+lpips" else None
    model = vqkit.create_model(
        preset,
        image_size=[side, side],
        disc_start=0,
        perceptual_weight=1.0 if perceptual is not None else 0.0,
    ).to(device)
    channels = model.encoder.in_channels
    images = torch.rand(batch, channels, side, side, device=device) * 2 - 1
    if kind == "vqvae":
        prior = {id(p) for p in model.prior.parameters()} if model.prior is not None else set()
        params = [p for p in model.parameters() if id(p) not in prior]
        optimizer = torch.optim.Adam(params, lr=LEARNING_RATE, betas=(0.5, 0.9))
        model.train()

        def vqvae_step() -> torch.Tensor:
            optimizer.zero_grad(set_to_none=True)
            loss = model(images).loss
            loss.backward()
            optimizer.step()
            return loss.detach()

        return vqvae_step
    gan = GANStep(model, perceptual=perceptual, lr=LEARNING_RATE)
    return lambda: gan(images)["total"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "case" in metafunc.fixturenames:
        size = metafunc.config.getoption("--bench-size")
        cases, _ = PLANS[size, bench_device().type]
        metafunc.parametrize("case", cases, ids=[f"{p}-{s}px-b{b}" for p, s, b in cases])


@pytest.mark.parametrize("kind", STEPS)
def test_gan_train_step(benchmark, device, bench_size, case, kind):
    preset, side, batch = case
    _, rounds = PLANS[bench_size, device.type]
    benchmark.group = f"gan-train-step ({preset}, {side}×{side}, batch {batch})"
    benchmark.extra_info.update(
        impl="vqkit", preset=preset, batch=batch, image_side=side, step=kind
    )
    set_throughput(benchmark, batch, "images")

    step = make_step(preset, side, batch, kind, str(device))
    loss = run_pedantic(benchmark, step, device=device, rounds=rounds)
    assert torch.isfinite(loss), "the training step produced a non-finite loss"
    del step

    record_peak_memory(
        benchmark, make_step, preset=preset, side=side, batch=batch, kind=kind, device=str(device)
    )
