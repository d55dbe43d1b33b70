"""Latent diffusion prior: sampling time per image against the number of steps, and training
images/s.

The prior (Rombach et al. 2022, arXiv:2112.10752) runs a diffusers ``UNet2DModel`` once per
sampling step, so the cost of a sample is linear in the number of DDIM (Song et al. 2020,
arXiv:2010.02502) or DDPM (Ho et al. 2020, arXiv:2006.11239) steps; the rows record it at 10, 25
and 50 steps (full: also 250) so the per-step cost can be read off. One training step (forward,
backward, Adam) is measured in images/s.

Weights are random: the cost does not depend on them. Sizes: latents D = 16 on a 7×7 grid (the
Fashion-MNIST VQ-VAE of ``examples/fashion_mnist_ldm.py``; padded to 8×8 inside the UNet), UNet
widths [32, 64], one block per level, batch 32 (``--bench-size=small``: widths [16, 32], batch 8).
Skipped without the ``vqkit[diffusion]`` extra.
"""

from __future__ import annotations

import pytest
import torch
from _timing import run_pedantic, set_throughput

pytest.importorskip("diffusers")

from vqkit import LatentDiffusion

SIZES = {
    "small": {"widths": [16, 32], "batch": 8, "steps": [10, 25]},
    "full": {"widths": [32, 64], "batch": 32, "steps": [10, 25, 50, 250]},
}
GRID, DIM = (7, 7), 16


def _prior(device, bench_size):
    torch.manual_seed(0)
    widths = SIZES[bench_size]["widths"]
    prior = LatentDiffusion(
        channels=DIM,
        block_out_channels=widths,
        layers_per_block=1,
        norm_num_groups=8,
        attention_head_dim=16,
        scale_factor=1.0,
    )
    return prior.to(device)


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
@pytest.mark.parametrize("steps", SIZES["full"]["steps"])
def test_sampling_time_per_image(benchmark, device, bench_size, sampler, steps):
    if steps not in SIZES[bench_size]["steps"]:
        pytest.skip(f"{steps} steps only with --bench-size=full")
    prior = _prior(device, bench_size).eval()
    batch = SIZES[bench_size]["batch"]
    benchmark.group = f"latent-diffusion-sampling ({GRID[0]}x{GRID[1]}x{DIM}, batch {batch})"
    benchmark.extra_info.update(sampler=sampler, steps=steps, batch=batch, grid=list(GRID))
    set_throughput(benchmark, batch, "images")

    def run() -> torch.Tensor:
        gen = torch.Generator(device=device).manual_seed(0)
        return prior.sample(batch, GRID, steps=steps, sampler=sampler, generator=gen)

    z = run_pedantic(benchmark, run, device=device, rounds=2 if steps >= 250 else 3, warmup=1)
    assert z.shape == (batch, DIM, *GRID)


def test_training_step(benchmark, device, bench_size):
    prior = _prior(device, bench_size).train()
    optimizer = torch.optim.Adam(prior.parameters(), lr=1e-4)
    batch = 2 * SIZES[bench_size]["batch"]
    z = torch.randn(batch, DIM, *GRID, generator=torch.Generator().manual_seed(0)).to(device)
    benchmark.group = f"latent-diffusion-training ({GRID[0]}x{GRID[1]}x{DIM}, batch {batch})"
    benchmark.extra_info.update(batch=batch, grid=list(GRID))
    set_throughput(benchmark, batch, "images")

    def step() -> torch.Tensor:
        loss = prior.loss(z).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    loss = run_pedantic(benchmark, step, device=device, rounds=5, warmup=1)
    assert torch.isfinite(loss)
