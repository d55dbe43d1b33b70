"""The "logit_laplace" loss: a normalised density, the pixel map round trip, float64 parity."""

import math

import pytest
import torch

import vqkit
from vqkit.losses.logit_laplace import (
    LogitLaplace,
    logit_laplace_nll,
    map_pixels,
    unmap_pixels,
)


@pytest.mark.parametrize(("mu", "log_b"), [(0.0, 0.0), (1.5, -1.0), (-2.0, 0.5), (3.0, -2.5)])
def test_density_integrates_to_one_over_the_unit_interval(mu, log_b):
    # substitute y = sigmoid(t): ∫_0^1 f(y) dy = ∫ f(σ(t)) σ(t)(1 − σ(t)) dt on a fine t grid
    # with a node at the kink t = μ
    t = mu + torch.linspace(-60, 60, 400_001, dtype=torch.float64)
    y = torch.sigmoid(t)
    inside = (y > 0) & (y < 1)
    t, y = t[inside], y[inside]
    nll = logit_laplace_nll(y, torch.full_like(y, mu), torch.full_like(y, log_b))
    density = torch.exp(-nll) * y * (1 - y)
    assert abs(float(torch.trapezoid(density, t)) - 1.0) < 1e-5  # trapezoid error ~1e-6


def test_density_on_y_directly_integrates_to_one():
    y = torch.linspace(0, 1, 2_000_001, dtype=torch.float64)[1:-1]
    nll = logit_laplace_nll(y, torch.full_like(y, 0.3), torch.full_like(y, 0.2))
    assert abs(float(torch.trapezoid(torch.exp(-nll), y)) - 1.0) < 1e-3


def test_nll_matches_a_float64_direct_formula():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 4, 4, generator=g)
    stats = torch.randn(2, 6, 4, 4, generator=g)
    lik = LogitLaplace()
    got = lik.nll(x, stats)
    y = 0.8 * x.double() + 0.1
    mu, log_b = stats.double()[:, :3], stats.double()[:, 3:]
    b = log_b.exp()
    density = 1 / (2 * b * y * (1 - y)) * torch.exp(-(torch.log(y / (1 - y)) - mu).abs() / b)
    torch.testing.assert_close(got.double(), -density.log(), atol=1e-5, rtol=1e-5)
    out = lik(x, stats)
    torch.testing.assert_close(out.loss.double(), -density.log().mean(), atol=1e-5, rtol=1e-5)
    per_image = -density.log().flatten(1).sum(1).mean()
    torch.testing.assert_close(
        out.losses["nll_per_image"].double(), per_image, rtol=1e-5, atol=1e-4
    )
    summed = LogitLaplace(reduction="sum")(x, stats).loss
    torch.testing.assert_close(summed.double(), per_image, rtol=1e-5, atol=1e-4)


def test_map_unmap_round_trip_and_range():
    x = torch.rand(1000, dtype=torch.float64)
    y = map_pixels(x)
    assert float(y.min()) >= 0.1
    assert float(y.max()) <= 0.9
    torch.testing.assert_close(unmap_pixels(y), x)
    assert torch.equal(unmap_pixels(torch.tensor([0.0, 1.0])), torch.tensor([0.0, 1.0]))  # clamped
    lik = LogitLaplace(eps=0.05)
    torch.testing.assert_close(lik.unmap(lik.map(x)), x)


def test_mean_is_the_unmapped_sigmoid_of_mu():
    stats = torch.randn(2, 4, 3, 3)
    expected = unmap_pixels(torch.sigmoid(stats[:, :2]))
    assert torch.equal(LogitLaplace().mean(stats), expected)


def test_the_nll_is_smallest_at_the_median():
    x = torch.full((1, 1, 1, 1), 0.3)
    y = map_pixels(x)
    best = torch.log(y / (1 - y))
    mus = best + torch.linspace(-1, 1, 21).view(-1, 1, 1, 1)
    nll = torch.stack(
        [LogitLaplace().nll(x, torch.cat([m[None], torch.zeros_like(m[None])], 1)) for m in mus]
    ).flatten()
    assert int(nll.argmin()) == 10


def test_registered_and_gradients_reach_both_inputs():
    lik = vqkit.build("loss", "logit_laplace")
    assert isinstance(lik, LogitLaplace)
    assert lik.eps == 0.1
    stats = torch.randn(2, 2, 3, 3, requires_grad=True)
    lik(torch.rand(2, 1, 3, 3), stats).loss.backward()
    assert torch.isfinite(stats.grad).all()
    assert stats.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("x", "stats", "match"),
    [
        (torch.rand(2, 1, 3, 3), torch.randn(2, 1, 3, 3), r"\(B, 2C, \*\)"),
        (torch.rand(2, 1, 3, 3), torch.randn(2, 4, 3, 3), r"expects a decoder output of shape"),
        (torch.rand(2, 1, 3, 3) * 2, torch.randn(2, 2, 3, 3), r"images in \[0, 1\]"),
        (torch.full((1, 1, 2, 2), math.nan), torch.randn(1, 2, 2, 2), r"images in \[0, 1\]"),
        (torch.ones(2, 1, 3, 3, dtype=torch.long), torch.randn(2, 2, 3, 3), "floating images"),
        (torch.rand(0, 1, 3, 3), torch.randn(0, 2, 3, 3), "empty batch"),
        ([[0.5]], torch.randn(1, 2), "as a tensor"),
    ],
)
def test_input_validation(x, stats, match):
    with pytest.raises((TypeError, ValueError), match=match):
        LogitLaplace()(x, stats)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"eps": 0.0}, "eps"), ({"eps": 0.5}, "eps"), ({"reduction": "max"}, "reduction")],
)
def test_constructor_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LogitLaplace(**kwargs)
