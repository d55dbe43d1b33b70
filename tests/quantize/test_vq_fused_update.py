"""The VQ training update after the overhead cut (issue 19): same numbers as the unfused formulas.

The update fuses the three EMA lerps into one ``torch._foreach_lerp_``, writes masked updates in
place, counts with ``bincount``, sums with ``index_add_`` on one thread (the sparse product on
more), and skips the dead-code reseed when no code is dead. Each of these must give the bits the
straightforward formulas give, and those must agree with a float64 evaluation.
"""

from __future__ import annotations

import pytest
import torch

import vqkit.functional as VF
from vqkit import VectorQuantizer


def _reference_step(state: dict, x: torch.Tensor, decay: float, eps: float, debias_on: bool):
    """One EMA step written out op by op, as before the fusion, in the dtype of ``state``."""
    codes = state["embed"]
    idx = torch.cdist(x.double(), codes.double()).argmin(1)
    k = codes.shape[0]
    counts = torch.zeros(k, dtype=x.dtype).index_add_(0, idx, torch.ones(len(x), dtype=x.dtype))
    sums = torch.zeros_like(codes).index_add_(0, idx, x)
    steps = state["steps"] + 1
    debias = 1.0 - decay**steps if debias_on else 1.0
    size = state["cluster_size"] * decay + counts * (1 - decay)
    embed_sum = state["embed_sum"] * decay + sums * (1 - decay)
    sizes = size / debias
    total = sizes.sum()
    smoothed = (sizes + eps) / (total + k * eps) * total
    updated = embed_sum / (smoothed * debias)[:, None]
    embed = torch.where((size > 0)[:, None], updated, codes)
    return {"embed": embed, "cluster_size": size, "embed_sum": embed_sum, "steps": steps}


@pytest.mark.parametrize("bias_correction", [False, True])
def test_fused_ema_update_equals_the_float64_formula_step_by_step(bias_correction):
    torch.manual_seed(0)
    decay, eps, k, d = 0.9, 1e-3, 16, 5
    vq = VectorQuantizer(
        d, k, decay=decay, eps=eps, bias_correction=bias_correction, reseed=None, channel_last=True
    )
    state = {
        "embed": vq.embed.double().clone(),
        "cluster_size": vq.cluster_size.double().clone(),
        "embed_sum": vq.embed_sum.double().clone(),
        "steps": 0,
    }
    g = torch.Generator().manual_seed(1)
    for _ in range(6):
        x = torch.randn(40, d, generator=g, dtype=torch.float64)
        vq(x.float())
        state = _reference_step(state, x.float().double(), decay, eps, bias_correction)
        for name in ("embed", "cluster_size", "embed_sum"):
            torch.testing.assert_close(
                getattr(vq, name).double(), state[name], rtol=1e-5, atol=1e-6, msg=name
            )
    assert int(vq.steps) == 6


def test_cluster_stats_one_and_two_threads_give_the_same_bits_and_the_float64_sums():
    g = torch.Generator().manual_seed(2)
    n, k, d = 3000, 37, 9
    x = torch.randn(n, d, generator=g) * 5 + 3
    idx = torch.randint(0, k, (n,), generator=g)
    idx[:500] = 4  # a crowded code: the order of the additions matters here
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        counts_1, sums_1 = VF.cluster_stats(idx, x, k)  # index_add_
        torch.set_num_threads(2)
        counts_2, sums_2 = VF.cluster_stats(idx, x, k)  # sparse product
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(counts_1, counts_2)
    assert torch.equal(sums_1, sums_2)
    assert counts_1.dtype == torch.float32
    assert counts_1.shape == (k,)
    exact_counts = torch.bincount(idx, minlength=k).double()
    exact_sums = torch.zeros(k, d, dtype=torch.float64).index_add_(0, idx, x.double())
    assert torch.equal(counts_1.double(), exact_counts)
    torch.testing.assert_close(sums_1.double(), exact_sums, rtol=1e-5, atol=1e-4)


def test_cluster_stats_counts_codes_never_used_as_zero():
    x = torch.ones(3, 2)
    counts, sums = VF.cluster_stats(torch.tensor([0, 0, 2]), x, 5)
    assert counts.tolist() == [2.0, 0.0, 1.0, 0.0, 0.0]
    assert sums[:, 0].tolist() == [2.0, 0.0, 1.0, 0.0, 0.0]


def test_perplexity_with_a_given_total_equals_the_computed_one():
    counts = torch.tensor([3.0, 0.0, 1.0, 4.0])
    assert torch.equal(VF.perplexity(counts, counts.sum()), VF.perplexity(counts))


def _busy_quantizer() -> VectorQuantizer:
    """A codebook where every code is used every step: nothing is ever dead."""
    torch.manual_seed(0)
    vq = VectorQuantizer(2, 4, channel_last=True, reseed="dead_code", dead_code_threshold=0.5)
    vq.set_codebook(torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]]))
    return vq


def test_a_step_without_dead_codes_draws_no_random_numbers_and_reseeds_nothing():
    vq = _busy_quantizer()
    x = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]]).repeat(5, 1)
    before = torch.get_rng_state()
    out = vq(x + 0.01)
    assert torch.equal(torch.get_rng_state(), before)
    assert float(out.metrics["dead_codes"]) == 0.0
    assert float(out.metrics["reseeded"]) == 0.0
    assert out.indices.tolist() == [0, 1, 2, 3] * 5


def test_a_step_with_dead_codes_still_draws_candidates_and_replaces_exactly_those():
    vq = _busy_quantizer()
    x = torch.tensor([[0.0, 0.0], [10.0, 0.0]]).repeat(10, 1)  # codes 2 and 3 unused
    before_codes = vq.embed.clone()
    before_rng = torch.get_rng_state()
    out = vq(x)
    assert not torch.equal(torch.get_rng_state(), before_rng)
    assert float(out.metrics["reseeded"]) == 2.0
    # the dead codes became batch vectors; the used ones followed the EMA only
    batch_rows = {tuple(r) for r in x.tolist()}
    assert {tuple(r) for r in vq.embed[2:].tolist()} <= batch_rows
    torch.testing.assert_close(vq.embed[:2], before_codes[:2], atol=1e-5, rtol=0)
