"""GAN losses against closed forms; the adaptive weight on a linear last layer; R1."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vqkit.losses import adaptive_weight, discriminator_loss, generator_loss, r1_penalty


def test_losses_at_zero_logits():
    zeros = torch.zeros(4, 1, 3, 3)
    # hinge: ½(relu(1) + relu(1)) = 1 (the "stuck at 1.0" of taming #44 / #93), generator −0
    assert discriminator_loss(zeros, zeros, "hinge").item() == 1.0
    assert generator_loss(zeros, "hinge").item() == 0.0
    log2 = math.log(2.0)
    assert discriminator_loss(zeros, zeros, "non_saturating").item() == pytest.approx(log2)
    assert discriminator_loss(zeros, zeros, "vanilla").item() == pytest.approx(log2)
    assert generator_loss(zeros, "non_saturating").item() == pytest.approx(log2)
    assert generator_loss(zeros, "vanilla").item() == pytest.approx(-log2)


def test_losses_match_float64_closed_forms():
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(3, 1, 5, 4, generator=g) * 3, torch.randn(3, 1, 5, 4, generator=g) * 3
    r, f = real.double(), fake.double()
    sigmoid = torch.sigmoid
    expected = {
        ("d", "hinge"): 0.5 * ((1 - r).clamp(min=0).mean() + (1 + f).clamp(min=0).mean()),
        ("d", "non_saturating"): -0.5 * (sigmoid(r).log().mean() + (1 - sigmoid(f)).log().mean()),
        ("g", "hinge"): -f.mean(),
        ("g", "non_saturating"): -sigmoid(f).log().mean(),
        ("g", "vanilla"): (1 - sigmoid(f)).log().mean(),
    }
    expected["d", "vanilla"] = expected["d", "non_saturating"]
    for (side, kind), value in expected.items():
        got = discriminator_loss(real, fake, kind) if side == "d" else generator_loss(fake, kind)
        assert got.dtype == torch.float32
        assert got.item() == pytest.approx(value.item(), rel=1e-5), (side, kind)


def test_losses_compute_in_fp32_from_bf16_logits():
    x = torch.randn(8, 1, 4, 4).bfloat16()
    assert discriminator_loss(x, x).dtype == torch.float32
    assert generator_loss(x).dtype == torch.float32


def _linear_problem(seed: int = 0):
    """A decoder whose last layer is y = W h; both losses have closed-form gradients in W."""
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(16, 5, generator=g, dtype=torch.float64)
    target = torch.randn(16, 3, generator=g, dtype=torch.float64)
    weight = torch.randn(3, 5, generator=g, dtype=torch.float64, requires_grad=True)
    critic = torch.randn(3, generator=g, dtype=torch.float64)
    y = h @ weight.T  # (16, 3)
    rec = (y - target).pow(2).mean()
    g_loss = -(y @ critic).mean()  # a linear "discriminator"
    grad_rec = 2 * (y.detach() - target).T @ h / y.numel()  # (3, 5)
    grad_g = -torch.outer(critic, h.mean(0))  # (3, 5)
    return rec, g_loss, weight, grad_rec, grad_g


def test_adaptive_weight_on_a_linear_last_layer_matches_the_formula():
    rec, g_loss, weight, grad_rec, grad_g = _linear_problem()
    lam = adaptive_weight(rec, g_loss, weight)
    expected = grad_rec.norm() / (grad_g.norm() + 1e-4)
    assert lam.dtype == torch.float64  # at least fp32: fp64 parameters keep fp64
    assert not lam.requires_grad
    assert lam.item() == pytest.approx(expected.item(), rel=1e-6)
    # the graph is retained: the caller can still backpropagate the combined loss
    (rec + lam * g_loss).backward()
    assert weight.grad is not None


@pytest.mark.parametrize("c", [0.01, 3.0, 250.0])
def test_adaptive_weight_scales_inversely_with_the_adversarial_loss(c):
    rec, g_loss, weight, *_ = _linear_problem(1)
    base = adaptive_weight(rec, g_loss, weight, eps=0.0)
    scaled = adaptive_weight(rec, c * g_loss, weight, eps=0.0)
    assert scaled.item() == pytest.approx(base.item() / c, rel=1e-5)


def test_adaptive_weight_is_clamped():
    rec, g_loss, weight, *_ = _linear_problem(2)
    huge = adaptive_weight(1e9 * rec, g_loss, weight, max_weight=5.0)
    assert huge.item() == 5.0


def test_adaptive_weight_is_zero_not_nan_for_zero_or_non_finite_gradients():
    rec, g_loss, weight, *_ = _linear_problem(3)
    assert adaptive_weight(rec, 0.0 * g_loss, weight, eps=0.0).item() == 0.0  # ‖∇L_G‖ = 0
    assert adaptive_weight(0.0 * rec, g_loss, weight).item() == 0.0  # ‖∇L_rec‖ = 0
    inf = adaptive_weight(rec * float("inf"), g_loss, weight)
    nan = adaptive_weight(rec, g_loss * float("nan"), weight)
    assert inf.item() == 0.0
    assert nan.item() == 0.0
    unrelated = torch.zeros(2, requires_grad=True)
    assert adaptive_weight(rec + unrelated.sum(), g_loss, unrelated).item() == 0.0


def test_adaptive_weight_norms_are_fp32_for_bf16_parameters():
    g = torch.Generator().manual_seed(4)
    weight = (torch.randn(4, 4, generator=g) * 1e3).bfloat16().requires_grad_()
    h = torch.randn(64, 4, generator=g).bfloat16()
    y = h @ weight.T
    lam = adaptive_weight(y.float().pow(2).mean(), -y.float().mean(), weight)
    assert lam.dtype == torch.float32
    assert torch.isfinite(lam)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda r, g, w: adaptive_weight(r.detach(), g, w), ValueError, "does not require grad"),
        (lambda r, g, w: adaptive_weight(r, g.reshape(1).repeat(2), w), ValueError, "scalar"),
        (lambda r, g, w: adaptive_weight(r, 1.0, w), ValueError, "scalar tensor"),
        (lambda r, g, w: adaptive_weight(r, g, w.detach()), ValueError, "requires_grad=True"),
        (lambda r, g, w: adaptive_weight(r, g, w, eps=-1.0), ValueError, "eps"),
        (lambda r, g, w: adaptive_weight(r, g, w, max_weight=0.0), ValueError, "max_weight"),
        (lambda r, g, w: adaptive_weight(r, g, w, eps=float("nan")), ValueError, "finite"),
    ],
)
def test_adaptive_weight_bad_input(call, error, match):
    rec, g_loss, weight, *_ = _linear_problem()
    with pytest.raises(error, match=match):
        call(rec, g_loss, weight)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda x: discriminator_loss(x, x, "wgan"), ValueError, "kind must be one of"),
        (lambda x: generator_loss(x, "lsgan"), ValueError, "kind must be one of"),
        (lambda x: discriminator_loss(x.tolist(), x), TypeError, "logits_real must be a tensor"),
        (lambda x: generator_loss(x.long()), TypeError, "floating point"),
        (lambda x: discriminator_loss(x, x[:0]), ValueError, "logits_fake is empty"),
        (lambda x: generator_loss(x.to("meta")), ValueError, "meta"),
        (lambda x: r1_penalty(x, x), ValueError, "requires_grad=True"),
        (lambda x: r1_penalty(x.tolist(), x), TypeError, "must be a tensor"),
        (lambda x: r1_penalty(x[:0], x.requires_grad_()), ValueError, "logits_real is empty"),
        (lambda x: r1_penalty(x.int(), x.requires_grad_()), TypeError, "floating point"),
        (lambda x: r1_penalty(x.to("meta"), x), ValueError, "meta"),
        (lambda x: r1_penalty(x, x.tolist()), ValueError, "requires_grad=True"),
    ],
)
def test_loss_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call(torch.randn(2, 1, 3, 3))


def test_r1_of_a_linear_discriminator_is_the_squared_weight_norm():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(1, 2, 4, 4, generator=g, dtype=torch.float64)
    real = torch.randn(3, 2, 4, 4, generator=g, dtype=torch.float64, requires_grad=True)
    logits = F.conv2d(real, w)  # (3, 1, 1, 1): D(x) = <w, x>
    penalty = r1_penalty(logits, real)
    assert penalty.item() == pytest.approx(w.pow(2).sum().item(), rel=1e-6)
    # differentiable (create_graph): for D(x) = <w, x>² the penalty depends on x
    quad = r1_penalty(F.conv2d(real, w).pow(2), real)
    (grad,) = torch.autograd.grad(quad, real)
    assert grad.abs().sum() > 0
