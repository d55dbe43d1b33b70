"""A full VQ-VAE training step on the CelebA-64 preset, in images per second.

One step is what the trainer does per batch: zero the gradients, ``model(x)``, ``loss.backward()``,
``optimizer.step()`` (Adam). The preset is ``vqkit.create_model("vqvae-celeba64")``, the VQ-VAE of
"Neural Discrete Representation Learning" (van den Oord et al., arXiv:1711.00937) sized for 64×64
faces. Inputs are random images of the preset's shape: the cost of a step does not depend on pixel
values.

``--bench-size=small`` times a batch of 2 for a few rounds (a smoke pass of seconds); ``full``
times batches of 32 and 128. On CUDA a bf16-autocast variant is timed beside fp32.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from _timing import bench_device, record_peak_memory, run_pedantic, set_throughput

import vqkit
from vqkit.models import preset_config

PRESET = "vqvae-celeba64"
LEARNING_RATE = 2e-4

# (bench_size, device type) -> (batch sizes, timed rounds). On an idle 2-core CPU a step takes
# about 0.3 s at batch 32 and 1.5 s at 128; on a GPU milliseconds, so it gets more rounds.
PLANS = {
    ("small", "cpu"): ((2,), 3),
    ("small", "cuda"): ((2,), 5),
    ("full", "cpu"): ((32, 128), 10),
    ("full", "cuda"): ((32, 128), 50),
}


def image_shape() -> tuple[int, int, int]:
    """``(C, H, W)`` of the preset's training images."""
    config = preset_config(PRESET)
    height, width = config["image_size"]
    return config["encoder"]["in_channels"], height, width


def make_train_step(
    batch: int, device: str, precision: str = "fp32", seed: int = 0
) -> Callable[[], torch.Tensor]:
    """Build the preset, an Adam optimizer and a fixed batch; return one training step.

    Module level (not a fixture) so the CPU memory measurement can rebuild it in a fresh process.
    """
    torch.manual_seed(seed)
    model = vqkit.create_model(PRESET).to(device).train()
    # Stage 1 trains the autoencoder; the preset's prior is trained later on frozen codes.
    prior = getattr(model, "prior", None)
    skip = {id(p) for p in prior.parameters()} if prior is not None else set()
    params = [p for p in model.parameters() if id(p) not in skip]
    optimizer = torch.optim.Adam(params, lr=LEARNING_RATE)
    images = torch.rand(batch, *image_shape(), device=device) * 2 - 1  # (B, 3, 64, 64)
    device_type = torch.device(device).type
    autocast = precision == "bf16-autocast"

    def step() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=autocast):
            loss = model(images).loss
        loss.backward()
        optimizer.step()
        return loss

    return step


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "batch" in metafunc.fixturenames:
        size = metafunc.config.getoption("--bench-size")
        batches, _ = PLANS[size, bench_device().type]
        metafunc.parametrize("batch", batches)


@pytest.mark.parametrize("precision", ["fp32", "bf16-autocast"])
def test_vqvae_train_step(benchmark, device, bench_size, batch, precision):
    if precision != "fp32" and device.type != "cuda":
        pytest.skip("bf16 autocast is timed on CUDA only")
    _, rounds = PLANS[bench_size, device.type]

    benchmark.group = f"vqvae-train-step ({PRESET})"
    benchmark.extra_info.update(
        impl="vqkit",
        preset=PRESET,
        batch=batch,
        image_shape=list(image_shape()),
        precision=precision,
    )
    set_throughput(benchmark, batch, "images")

    step = make_train_step(batch, str(device), precision)
    loss = run_pedantic(benchmark, step, device=device, rounds=rounds)
    assert torch.isfinite(loss), "the training step produced a non-finite loss"
    del step

    record_peak_memory(
        benchmark, make_train_step, batch=batch, device=str(device), precision=precision
    )
