"""vqkit.functional: nearest codes against float64 brute force, EMA pieces, perplexity, k-means,
the straight-through and rotation-trick estimators."""

from __future__ import annotations

import pytest
import torch

from vqkit import functional as VF


def brute_force_distances(x: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Exact squared distances in float64 by differences (no expansion). (N, K)"""
    return (x.double()[:, None, :] - codebook.double()[None]).square().sum(-1)


def naive_fp32_search(x: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """The usual uncentred expansion in fp32, as most libraries write it."""
    d = x.square().sum(1, keepdim=True) - 2 * x @ codebook.t() + codebook.square().sum(1)
    return d.argmin(1)


def assert_nearest(x, codebook, indices, rtol=1e-5, atol=1e-4):
    d = brute_force_distances(x, codebook)
    chosen = d.gather(1, indices[:, None]).squeeze(1)
    best = d.min(1).values
    assert torch.all(chosen - best <= atol + rtol * best), (chosen - best).max()


@pytest.mark.parametrize("chunk_size", [None, 7, 64, 1000])
def test_nearest_code_matches_float64_brute_force(chunk_size):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 16, generator=g)
    codebook = torch.randn(50, 16, generator=g)
    idx = VF.nearest_code(x, codebook, chunk_size=chunk_size)
    assert idx.dtype == torch.int64
    assert idx.shape == (300,)
    assert_nearest(x, codebook, idx)
    # Away from ties the answer is exactly the float64 argmin.
    assert torch.equal(idx, brute_force_distances(x, codebook).argmin(1))


def test_nearest_code_survives_a_large_common_offset():
    g = torch.Generator().manual_seed(1)
    offset = 1000.0
    x = offset + torch.randn(2000, 32, generator=g)
    codebook = offset + torch.randn(256, 32, generator=g)
    exact = brute_force_distances(x, codebook).argmin(1)
    # The data are hard: the uncentred fp32 expansion picks wrong codes on them ...
    naive = naive_fp32_search(x, codebook)
    assert_fails = (naive != exact).float().mean()
    assert assert_fails > 0.05
    # ... and the centred chunked search does not.
    idx = VF.nearest_code(x, codebook, chunk_size=128)
    assert_nearest(x, codebook, idx)


def test_nearest_code_is_fp32_under_bf16_autocast():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(512, 64, generator=g)
    codebook = torch.randn(128, 64, generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        idx = VF.nearest_code(x, codebook)
    assert torch.equal(idx, VF.nearest_code(x, codebook))
    assert_nearest(x, codebook, idx)


def test_nearest_code_cosine_maximises_dot_product():
    g = torch.Generator().manual_seed(3)
    x = torch.nn.functional.normalize(torch.randn(200, 8, generator=g), dim=-1)
    codebook = torch.nn.functional.normalize(torch.randn(30, 8, generator=g), dim=-1)
    idx = VF.nearest_code(x, codebook, cosine=True, chunk_size=33)
    assert torch.equal(idx, (x.double() @ codebook.double().t()).argmax(1))


def test_nearest_code_closest_rows_per_code():
    g = torch.Generator().manual_seed(4)
    x = 50 + torch.randn(257, 8, generator=g)
    codebook = 50 + torch.randn(20, 8, generator=g)
    idx, rows, dists = VF.nearest_code(x, codebook, chunk_size=40, closest_rows=True)
    d = brute_force_distances(x, codebook)  # (N, K)
    assert torch.equal(idx, d.argmin(1))
    assert torch.equal(rows, d.argmin(0))
    torch.testing.assert_close(dists.double(), d.min(0).values, rtol=1e-4, atol=1e-3)


def test_cluster_stats_equal_one_hot_reference():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(100, 6, generator=g)
    idx = torch.randint(0, 9, (100,), generator=g)
    counts, sums = VF.cluster_stats(idx, x, 9)
    one_hot = torch.nn.functional.one_hot(idx, 9).double()  # fine at this size, for reference
    torch.testing.assert_close(counts.double(), one_hot.sum(0))
    torch.testing.assert_close(sums.double(), one_hot.t() @ x.double(), rtol=1e-5, atol=1e-5)


def test_ema_and_laplace_smoothing_closed_forms():
    avg = torch.tensor([1.0, 2.0])
    VF.ema_(avg, torch.tensor([3.0, 0.0]), decay=0.9)
    torch.testing.assert_close(avg, torch.tensor([0.9 + 0.3, 1.8]))
    counts = torch.tensor([0.0, 1.0, 3.0])
    eps = 0.1
    expected = (counts + eps) / (4.0 + 3 * eps) * 4.0
    torch.testing.assert_close(VF.laplace_smooth(counts, eps), expected)
    assert VF.laplace_smooth(counts, eps).sum().item() == pytest.approx(4.0)


def test_perplexity_one_code_and_uniform():
    assert VF.perplexity(torch.tensor([0.0, 7.0, 0.0])).item() == pytest.approx(1.0)
    assert VF.perplexity(torch.full((16,), 3.0)).item() == pytest.approx(16.0, rel=1e-6)
    assert VF.perplexity(torch.zeros(4)).item() == pytest.approx(1.0)
    # two codes used 1:3 → exp(H) with H = −(¼ ln ¼ + ¾ ln ¾)
    h = -(0.25 * torch.tensor(0.25).log() + 0.75 * torch.tensor(0.75).log())
    assert VF.perplexity(torch.tensor([1.0, 3.0])).item() == pytest.approx(h.exp().item())


def test_index_perplexity_matches_counting():
    g = torch.Generator().manual_seed(6)
    idx = torch.randint(0, 37, (1000,), generator=g)
    counts = torch.bincount(idx, minlength=37).float()
    assert VF.index_perplexity(idx).item() == pytest.approx(VF.perplexity(counts).item(), rel=1e-5)
    assert VF.index_perplexity(torch.full((50,), 5)).item() == pytest.approx(1.0)


def test_kmeans_recovers_separated_clusters_and_reduces_inertia():
    g = torch.Generator().manual_seed(7)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    x = torch.cat([c + 0.1 * torch.randn(50, 2, generator=g) for c in centres])
    init = x[[0, 1, 2]]  # all three seeds in the first cluster
    found, counts = VF.kmeans(x, init, iters=10)
    inertia = brute_force_distances(x, found).min(1).values.sum()
    start = brute_force_distances(x, init).min(1).values.sum()
    assert inertia < start / 10
    assert counts.sum().item() == 150
    # One seed per cluster: the centres are the cluster means.
    good, counts = VF.kmeans(x, x[[0, 50, 100]], iters=5)
    means = torch.stack([x[:50].mean(0), x[50:100].mean(0), x[100:].mean(0)])
    torch.testing.assert_close(good, means, rtol=0, atol=1e-5)
    assert counts.tolist() == [50.0, 50.0, 50.0]


def test_straight_through_value_is_exact_and_gradient_identity():
    z = torch.randn(5, 3, requires_grad=True)
    q = torch.randn(5, 3) * 1e3
    out = VF.straight_through(z, q)
    assert torch.equal(out, q)
    g = torch.randn(5, 3)
    out.backward(g)
    assert torch.equal(z.grad, g)


def test_rotation_trick_value_and_gradient_against_explicit_matrix():
    g = torch.Generator().manual_seed(8)
    z = torch.randn(4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    q = torch.randn(4, 5, generator=g, dtype=torch.float64)
    out = VF.rotate_to(z, q)
    assert torch.equal(out, q)
    up = torch.randn(4, 5, generator=g, dtype=torch.float64)
    out.backward(up)
    for i in range(4):
        zi, qi = z[i].detach(), q[i]
        u, v = zi / zi.norm(), qi / qi.norm()
        r = (u + v) / (u + v).norm()
        rot = torch.eye(5, dtype=torch.float64) - 2 * torch.outer(r, r) + 2 * torch.outer(v, u)
        # R is a rotation taking u to v
        torch.testing.assert_close(rot @ u, v)
        torch.testing.assert_close(rot.t() @ rot, torch.eye(5, dtype=torch.float64))
        lam = qi.norm() / zi.norm()
        torch.testing.assert_close(z.grad[i], lam * rot.t() @ up[i])


def test_fused_straight_through_commitment_values_gradients_and_retained_graph():
    g = torch.Generator().manual_seed(9)
    z = torch.randn(6, 4, generator=g, dtype=torch.float64, requires_grad=True)
    q = torch.randn(6, 4, generator=g, dtype=torch.float64)
    out, loss = VF.straight_through_commitment(z, q)
    assert torch.equal(out, q)
    torch.testing.assert_close(loss, ((z.detach() - q) ** 2).mean())
    upstream = torch.randn(6, 4, generator=g, dtype=torch.float64)
    total = (out * upstream).sum() + 0.3 * loss
    expected = upstream + 0.3 * 2 * (z.detach() - q) / z.numel()
    total.backward(retain_graph=True)  # the first backward reuses the saved difference ...
    first = z.grad.clone()
    z.grad = None
    total.backward()  # ... so a second one through the retained graph recomputes it
    torch.testing.assert_close(first, expected)
    torch.testing.assert_close(z.grad, expected)
    assert torch.autograd.gradcheck(lambda z: VF.straight_through_commitment(z, q)[1], (z,))


@pytest.mark.parametrize(
    ("k", "block"), [(64, None), (256, 32), (512, 32), (1000, None), (4096, 64)]
)
def test_blocked_argmin_is_the_float64_nearest_code_at_every_codebook_size(k, block):
    assert VF._argmin_block(k) == block  # the CPU path each size takes
    g = torch.Generator().manual_seed(20)
    x = torch.randn(333, 8, generator=g)
    codebook = torch.randn(k, 8, generator=g)
    exact = brute_force_distances(x, codebook).argmin(1)
    for chunk_size in (None, 77):  # a partial last chunk
        assert torch.equal(VF.nearest_code(x, codebook, chunk_size=chunk_size), exact)


@pytest.mark.parametrize("block", [32, 64])
def test_blocked_argmin_breaks_ties_toward_the_first_index(block):
    g = torch.Generator().manual_seed(21)
    dist = torch.randint(0, 3, (500, 16 * block), generator=g).float()  # ties everywhere
    dist[7] = 5.0  # a whole row of ties
    dist[8, -1] = -1.0  # the minimum in the last column
    out = torch.empty(500, dtype=torch.long)
    VF._blocked_argmin(dist, block, out)
    first = (dist == dist.amin(1, keepdim=True)).int().argmax(1)  # first index of the minimum
    assert torch.equal(out, first)
    assert torch.equal(out, dist.min(1).indices)
    assert out[7] == 0
    assert out[8] == 16 * block - 1
