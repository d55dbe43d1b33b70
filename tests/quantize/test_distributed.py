"""Two gloo processes on CPU: EMA statistics are all-reduced and reseeding is coordinated, so
both ranks end with identical codebooks, equal to one process seeing both ranks' data."""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
from gloo_workers import run_workers

from vqkit import ResidualVQ, VectorQuantizer

WORLD = 2
STEPS = 4
CONFIGS = {
    "ema": {"reseed": None},
    "dead_code": {"reseed": "dead_code", "dead_code_threshold": 0.5},
    "cvq_closest": {"reseed": "cvq", "anchor": "closest"},
    "kmeans_learnable": {"kmeans_init": True, "kmeans_iters": 3, "ema": False},
}


def batch(rank: int, step: int) -> torch.Tensor:
    """Each rank's batch: different data per rank and step, reproducible in the parent."""
    g = torch.Generator().manual_seed(100 * rank + step)
    return torch.randn(1, 24 + 8 * rank, 4, generator=g) + 3 * rank  # uneven batch sizes


def make(name: str) -> torch.nn.Module:
    torch.manual_seed(0)  # the same initial codebook on every rank (as DDP's broadcast gives)
    if name == "rvq":
        return ResidualVQ(4, 16, num_quantizers=2, channel_last=True, dead_code_threshold=0.5)
    return VectorQuantizer(4, 16, channel_last=True, **CONFIGS[name])


def run(name: str, rank: int, steps: int = STEPS) -> tuple[dict, float]:
    quantizer = make(name)
    torch.manual_seed(1000 + rank)  # each rank draws its own random rows
    reseeded = 0.0
    for step in range(steps):
        x = batch(rank, step).requires_grad_()
        out = quantizer(x)
        (out.quantized.square().sum() + out.loss).backward()
        reseeded += float(out.metrics["reseeded"])
    return {k: v.clone() for k, v in quantizer.state_dict().items()}, reseeded


def worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        results = {name: run(name, rank) for name in [*CONFIGS, "rvq"]}
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def rank_results(tmp_path_factory) -> list[dict]:
    tmp = tmp_path_factory.mktemp("ddp")
    run_workers(worker, tmp, WORLD)  # workers use 1 thread
    return [torch.load(tmp / f"rank{r}.pt") for r in range(WORLD)]


@pytest.mark.parametrize("name", [*CONFIGS, "rvq"])
def test_ranks_end_with_identical_codebooks(rank_results, name):
    (state0, reseeded0), (state1, reseeded1) = rank_results[0][name], rank_results[1][name]
    assert state0.keys() == state1.keys()
    for key in state0:
        assert torch.equal(state0[key], state1[key]), key
    assert reseeded0 == reseeded1
    if name in ("dead_code", "cvq_closest", "rvq"):
        assert reseeded0 > 0  # reseeding happened, and identically


def test_all_reduced_ema_equals_one_process_on_the_union(rank_results):
    state, _ = rank_results[0]["ema"]
    single = make("ema")
    for step in range(STEPS):
        single(torch.cat([batch(r, step) for r in range(WORLD)], dim=1))
    for key in ("embed", "cluster_size", "embed_sum", "usage", "last_used", "steps"):
        torch.testing.assert_close(state[key], single.state_dict()[key], msg=key)


def test_kmeans_under_ddp_uses_both_ranks_data(rank_results):
    state, _ = rank_results[0]["kmeans_learnable"]
    codes = state["embed"]
    # rank 1's data sit around +3: some centres must come from there, some from rank 0's
    assert (codes.mean(1) > 1.5).any()
    assert (codes.mean(1) < 1.5).any()
