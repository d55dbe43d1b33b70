"""Raster-order sampling: fast == naive, completion, distribution, temperature, errors."""

from __future__ import annotations

import itertools

import pytest
import torch

from vqkit import GatedPixelCNN, PixelCNN
from vqkit.autoregressive.sampling import draw_codes

K = 4


def tiny_gated(**kw) -> GatedPixelCNN:
    torch.manual_seed(1)
    args = {
        "num_embeddings": K,
        "hidden_channels": 6,
        "num_layers": 3,
        "first_kernel_size": 3,
        "head_channels": 12,
    }
    return GatedPixelCNN(**{**args, **kw}).double()


def sample(model, *args, seed=0, **kw):
    return model.sample(*args, generator=torch.Generator().manual_seed(seed), **kw)


@pytest.mark.parametrize(
    ("model_kw", "sample_kw"),
    [
        ({}, {}),
        ({"first_kernel_size": 5, "num_layers": 4}, {"temperature": 0.6}),
        ({"num_classes": 3}, {"cond": torch.tensor([0, 1, 2, 1, 0])}),
        ({"kernel_size": 5}, {"temperature": 1.7}),
    ],
)
@pytest.mark.parametrize("size", [(5, 5), (3, 7)])
def test_fast_sampler_equals_naive(model_kw, sample_kw, size):
    model = tiny_gated(**model_kw)
    naive = sample(model, 5, size, method="naive", **sample_kw)
    fast = sample(model, 5, size, method="fast", **sample_kw)
    assert naive.shape == (5, *size)
    assert torch.equal(naive, fast)
    assert torch.equal(sample(model, 5, size, **sample_kw), fast)  # "auto" is the fast one
    # and the draws are not degenerate
    assert naive.unique().numel() > 1


def test_fast_equals_naive_in_float32():
    model = tiny_gated(hidden_channels=8).float()
    naive = sample(model, 4, (4, 6), method="naive", seed=3)
    fast = sample(model, 4, (4, 6), method="fast", seed=3)
    assert torch.equal(naive, fast)


@pytest.mark.parametrize("method", ["naive", "fast"])
def test_completion_keeps_given_codes(method):
    model = tiny_gated(num_classes=2)
    n, h, w = 4, 4, 5
    given = torch.randint(0, K, (n, h, w))
    mask = torch.rand(n, h, w) < 0.5
    mask[:, 0, :] = True  # whole first row known for every sample
    out = sample(model, n, (h, w), cond=1, given=given, given_mask=mask, method=method)
    assert torch.equal(out[mask], given[mask])
    # the -1 convention: unknown codes written as -1, no mask
    partial = torch.where(mask, given, torch.full_like(given, -1))
    again = sample(model, n, None, cond=1, given=partial, method=method)
    assert torch.equal(again, out)
    # a shared (H, W) pattern broadcasts over the batch
    shared = sample(model, n, (h, w), cond=1, given=given[0], given_mask=mask[0], method=method)
    assert torch.equal(shared[:, mask[0]], given[0][mask[0]].expand(n, -1))


def test_completion_matches_a_reference_loop_over_the_forward_pass():
    """Parity with a hand-written sampler: given codes are context, one uniform per position."""
    model = tiny_gated(num_classes=2)
    n, h, w, temperature = 6, 4, 3, 0.8
    given = torch.randint(0, K, (n, h, w))
    mask = torch.rand(n, h, w) < 0.4
    mask[:, :2] = True
    g = torch.Generator().manual_seed(11)
    codes = torch.where(mask, given, torch.zeros_like(given))
    cond = torch.tensor([0, 1, 0, 1, 0, 1])
    for i, j in itertools.product(range(h), range(w)):
        u = torch.rand(n, generator=g, dtype=torch.float64)
        drawn = draw_codes(model(codes, cond)[:, :, i, j], u, temperature)
        codes[:, i, j] = torch.where(mask[:, i, j], codes[:, i, j], drawn)
    for method in ("naive", "fast"):
        out = sample(
            model,
            n,
            (h, w),
            cond,
            temperature,
            given=given,
            given_mask=mask,
            seed=11,
            method=method,
        )
        assert torch.equal(out, codes), method


@pytest.mark.parametrize("model", ["gated", "pixelcnn"])
def test_samples_follow_the_model_distribution(model):
    if model == "gated":
        prior = tiny_gated()
    else:
        torch.manual_seed(0)
        prior = PixelCNN(K, hidden_channels=6, num_layers=1, head_channels=8).double()
    with torch.no_grad():  # sharpen the distribution a little so the check has power
        prior.head[-1].weight.mul_(4.0)
    grids = torch.tensor(list(itertools.product(range(K), repeat=2))).view(-1, 1, 2)
    probs = prior.log_prob(grids).exp()  # (K²,)
    n = 4000
    draws = sample(prior, n, (1, 2), temperature=1.0)
    counts = torch.bincount(draws[:, 0, 0] * K + draws[:, 0, 1], minlength=K * K).double()
    # every cell within 4.5 standard deviations of its binomial mean
    std = (n * probs * (1 - probs)).sqrt()
    assert ((counts - n * probs).abs() <= 4.5 * std + 1).all()


def test_draw_codes_inverse_cdf_and_temperature():
    logits = torch.tensor([[0.0, 1.0, 2.0]]).expand(5, 3)
    u = torch.tensor([0.0, 0.05, 0.2, 0.5, 0.999], dtype=torch.float64)
    probs = torch.softmax(torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64) / 0.5, 0)
    cdf = probs.cumsum(0)
    expected = torch.tensor([int((cdf <= x).sum()) for x in u])  # min k: cdf_k > u
    assert torch.equal(draw_codes(logits, u, 0.5), expected)
    # a tiny temperature is (almost) greedy
    assert (draw_codes(logits[:4], u[:4], 1e-3) == 2).all()


def test_sampling_is_reproducible_and_generator_dependent():
    model = tiny_gated()
    a = sample(model, 3, (3, 3), seed=7)
    assert torch.equal(a, sample(model, 3, (3, 3), seed=7))
    assert not torch.equal(a, sample(model, 3, (3, 3), seed=8))
    assert a.dtype == torch.long


def test_sampling_errors():
    model = tiny_gated()
    with pytest.raises(ValueError, match="unknown method 'fastest'"):
        model.sample(1, (2, 2), method="fastest")
    with pytest.raises(ValueError, match="unknown method 'fast'"):
        PixelCNN(K, hidden_channels=4, num_layers=1).sample(1, (2, 2), method="fast")
    with pytest.raises(ValueError, match="temperature must be > 0"):
        model.sample(1, (2, 2), temperature=0.0)
    with pytest.raises(ValueError, match="size must be a pair"):
        model.sample(1, (2,))
    with pytest.raises(ValueError, match="pass size"):
        model.sample(1)
    with pytest.raises(ValueError, match=r"n .* must be a positive int"):
        model.sample(0, (2, 2))
    with pytest.raises(ValueError, match="unconditional"):
        model.sample(1, (2, 2), cond=0)
    with pytest.raises(ValueError, match="class-conditional"):
        tiny_gated(num_classes=2).sample(1, (2, 2))
    with pytest.raises(ValueError, match=r"given codes at known positions must lie in \[0, 4\)"):
        model.sample(1, (2, 2), given=torch.full((2, 2), 4))
    with pytest.raises(ValueError, match=r"given must have shape \(2, H, W\)"):
        model.sample(2, (2, 2), given=torch.zeros(3, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="does not match"):
        model.sample(1, (3, 3), given=torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(TypeError, match="given_mask must be a bool tensor"):
        model.sample(
            1, None, given=torch.zeros(2, 2, dtype=torch.long), given_mask=torch.ones(2, 2)
        )
    with pytest.raises(ValueError, match="does not broadcast"):
        model.sample(
            1,
            None,
            given=torch.zeros(2, 2, dtype=torch.long),
            given_mask=torch.ones(3, dtype=torch.bool),
        )
