"""Two gloo processes on CPU: the latent scale factor estimated from the first batch is pooled
over the ranks, so both replicas set the same value, 1 / std of the concatenated batches."""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
from gloo_workers import run_workers

pytest.importorskip("diffusers")

from vqkit.diffusion import LatentDiffusion

WORLD = 2
TINY = {"block_out_channels": [8], "layers_per_block": 1, "norm_num_groups": 4, "ema_decay": None}


def batch(rank: int) -> torch.Tensor:
    """Uneven, differently scaled first batches per rank (reproducible in the parent)."""
    g = torch.Generator().manual_seed(rank)
    return (1 + 2 * rank) * torch.randn(2 + rank, 2, 4, 4, generator=g) + rank


def worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        torch.manual_seed(0)
        prior = LatentDiffusion(channels=2, **TINY).train()
        prior.loss(batch(rank))
        torch.save(prior.scale_factor.clone(), os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_the_scale_factor_is_pooled_over_ranks(tmp_path) -> None:
    run_workers(worker, tmp_path, WORLD)
    scales = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]
    pooled = torch.cat([batch(r).flatten() for r in range(WORLD)]).double().std()
    assert torch.equal(scales[0], scales[1])  # identical replicas
    torch.testing.assert_close(scales[0].double(), 1 / pooled, rtol=1e-6, atol=0)
    # and not either rank's own estimate
    for r in range(WORLD):
        own = 1 / batch(r).double().std()
        assert abs(float(scales[0]) - float(own)) > 0.05 * float(own)
