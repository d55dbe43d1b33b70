"""Gaussian KL, the H-/B-type β-VAE losses, the capacity schedule and the kld_weight mapping."""

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Independent, Normal, kl_divergence

import vqkit
from vqkit.vae import CapacityKL, gaussian_kl, kld_weight_to_beta


@pytest.mark.parametrize("shape", [(5, 3), (4, 2, 3, 3)])
def test_gaussian_kl_matches_torch_distributions(shape):
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(shape, generator=g, dtype=torch.float64) * 2
    logvar = torch.randn(shape, generator=g, dtype=torch.float64)
    q = Independent(Normal(mu, torch.exp(0.5 * logvar)), len(shape) - 1)
    p = Independent(Normal(torch.zeros_like(mu), torch.ones_like(mu)), len(shape) - 1)
    expected = kl_divergence(q, p)
    got = gaussian_kl(mu, logvar)
    assert got.shape == (shape[0],)
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_gaussian_kl_is_zero_at_the_prior_and_fp32_for_half_inputs():
    zeros = torch.zeros(3, 4, dtype=torch.float16)
    assert gaussian_kl(zeros, zeros).dtype == torch.float32
    assert torch.equal(gaussian_kl(zeros, zeros), torch.zeros(3))


def test_gaussian_kl_bad_input():
    with pytest.raises(ValueError, match=r"same shape.*\(2, 3\).*\(2, 4\)"):
        gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(TypeError, match=r"floating-point mu, got torch\.int64"):
        gaussian_kl(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"\(B, latent_dim, \.\.\.\).*\(3,\)"):
        gaussian_kl(torch.zeros(3), torch.zeros(3))


def _train_call(loss_fn, rec=None, kl=None):
    rec = torch.tensor([10.0, 20.0], requires_grad=True) if rec is None else rec
    kl = torch.tensor([3.0, 5.0], requires_grad=True) if kl is None else kl
    return loss_fn(rec, kl)


def test_capacity_schedule_is_linear_and_stops_at_max():
    loss_fn = CapacityKL(gamma=1.0, max_capacity=25.0, capacity_steps=10)
    seen = [_train_call(loss_fn).losses["capacity"].item() for _ in range(14)]
    # C(0) = 0, C(5) = C_max / 2, C(t >= 10) = C_max, one advance per training call.
    assert seen[0] == 0.0
    assert seen[5] == pytest.approx(12.5)
    assert seen[:11] == pytest.approx([2.5 * t for t in range(11)])
    assert seen[10:] == [25.0] * 4
    assert loss_fn.iteration.item() == 14


def test_capacity_schedule_at_paper_scale():
    loss_fn = CapacityKL()  # γ = 1000, C_max = 25, 100,000 steps
    assert loss_fn.capacity.item() == 0.0
    loss_fn.step(50_000)
    assert loss_fn.capacity.item() == pytest.approx(12.5)
    loss_fn.step(60_000)
    assert loss_fn.capacity.item() == 25.0


def test_capacity_does_not_move_in_eval_or_without_grad():
    loss_fn = CapacityKL(gamma=1.0, max_capacity=25.0, capacity_steps=10)
    _train_call(loss_fn)
    assert loss_fn.iteration.item() == 1
    loss_fn.eval()
    for _ in range(3):
        assert _train_call(loss_fn).losses["capacity"].item() == 2.5
    loss_fn.train()
    with torch.no_grad():
        _train_call(loss_fn)
    with torch.inference_mode():
        _train_call(loss_fn, torch.ones(2), torch.ones(2))
    assert loss_fn.iteration.item() == 1
    _train_call(loss_fn)
    assert loss_fn.iteration.item() == 2


def test_manual_stepping_when_auto_step_is_off():
    loss_fn = CapacityKL(gamma=1.0, max_capacity=10.0, capacity_steps=4, auto_step=False)
    for _ in range(3):
        assert _train_call(loss_fn).losses["capacity"].item() == 0.0
    loss_fn.step()
    assert _train_call(loss_fn).losses["capacity"].item() == 2.5


def test_b_type_loss_on_hand_computed_numbers():
    loss_fn = CapacityKL(gamma=1000.0, max_capacity=25.0, capacity_steps=10)
    rec = torch.tensor([10.0, 20.0], requires_grad=True)
    kl = torch.tensor([3.0, 5.0], requires_grad=True)
    out = loss_fn(rec, kl)  # C(0) = 0: 15 + 1000 * |4 - 0|, then the step advances to 1
    assert out.loss.item() == pytest.approx(4015.0)
    loss_fn.step()  # C(2) = 5 > KL: 15 + 1000 * |4 - 5|
    out = loss_fn(rec, kl)
    assert out.loss.item() == pytest.approx(1015.0)
    assert {k: v.item() for k, v in out.losses.items()} == pytest.approx(
        {"recon": 15.0, "kl": 4.0, "nelbo": 19.0, "capacity": 5.0, "total": 1015.0}
    )
    out.loss.backward()
    # d/dKL_b of γ |mean KL − C| = γ · sign(4 − 5) / B
    torch.testing.assert_close(kl.grad, torch.tensor([-500.0, -500.0]))
    torch.testing.assert_close(rec.grad, torch.tensor([0.5, 0.5]))


def test_h_type_and_plain_kl_losses():
    rec, kl = torch.tensor([10.0, 20.0]), torch.tensor([3.0, 5.0])
    h = CapacityKL(beta=4.0)
    out = h(rec, kl)
    assert out.loss.item() == pytest.approx(15.0 + 4.0 * 4.0)
    assert set(out.losses) == {"recon", "kl", "nelbo", "total"}
    assert out.losses["nelbo"].item() == pytest.approx(19.0)
    plain = vqkit.build("loss", "kl")
    assert plain(rec, kl).loss.item() == pytest.approx(19.0)
    assert vqkit.build("loss", "beta_kl").beta == 4.0
    assert vqkit.build("loss", {"type": "beta_kl", "beta": 10.0}).beta == 10.0


def test_registry_capacity_kl_has_paper_defaults():
    loss_fn = vqkit.build("loss", "capacity_kl")
    assert isinstance(loss_fn, CapacityKL)
    assert loss_fn.is_capacity_controlled
    assert (loss_fn.gamma, loss_fn.max_capacity, loss_fn.capacity_steps) == (1000.0, 25.0, 100_000)
    assert "B-type, gamma=1000.0" in repr(loss_fn)
    assert "H-type, beta=4.0" in repr(CapacityKL(beta=4.0))


def test_state_dict_round_trip_keeps_the_step():
    loss_fn = CapacityKL(max_capacity=25.0, capacity_steps=100)
    loss_fn.step(37)
    state = loss_fn.state_dict()
    assert state["iteration"].item() == 37
    fresh = CapacityKL(max_capacity=25.0, capacity_steps=100)
    fresh.load_state_dict(state)
    assert fresh.iteration.item() == 37
    assert fresh.capacity.item() == pytest.approx(9.25)


def test_constructor_errors():
    with pytest.raises(ValueError, match=r"beta selects the H-type.*\['gamma'\]"):
        CapacityKL(beta=4.0, gamma=10.0)
    with pytest.raises(ValueError, match="gamma must be a number >= 0, got -1"):
        CapacityKL(gamma=-1)
    with pytest.raises(ValueError, match="capacity_steps must be an int >= 1, got 0"):
        CapacityKL(capacity_steps=0)


def test_forward_input_errors():
    loss_fn = CapacityKL(beta=1.0)
    with pytest.raises(ValueError, match=r"recon_nll as a floating \(B,\).*\(2, 3\)"):
        loss_fn(torch.zeros(2, 3), torch.zeros(2))
    with pytest.raises(ValueError, match=r"same shape \(B,\), got \(2,\) and \(3,\)"):
        loss_fn(torch.zeros(2), torch.zeros(3))


@pytest.mark.parametrize("reconstruction", ["mse", "bce"])
def test_kld_weight_mapping_gives_proportional_gradients(reconstruction):
    """A pixel-mean loss ``rec_mean + w·β·KL`` times D/2 (MSE) or D (BCE) is vqkit's loss."""
    g = torch.Generator().manual_seed(1)
    b, c, h, w = 4, 3, 5, 5
    d = c * h * w
    x = torch.rand(b, c, h, w, generator=g, dtype=torch.float64)
    out = torch.randn(b, c, h, w, generator=g, dtype=torch.float64, requires_grad=True)
    mu = torch.randn(b, 6, generator=g, dtype=torch.float64, requires_grad=True)
    logvar = torch.randn(b, 6, generator=g, dtype=torch.float64, requires_grad=True)
    kld_weight, beta = 0.00025, 10.0

    kl = gaussian_kl(mu, logvar)
    if reconstruction == "mse":
        theirs_rec = F.mse_loss(out, x)
        ours_rec = 0.5 * (out - x).square().flatten(1).sum(1)
        scale = d / 2
    else:
        theirs_rec = F.binary_cross_entropy_with_logits(out, x)
        ours_rec = F.binary_cross_entropy_with_logits(out, x, reduction="none").flatten(1).sum(1)
        scale = d
    theirs = theirs_rec + kld_weight * beta * kl.mean()
    mapped = kld_weight_to_beta(kld_weight, num_pixels=d, reconstruction=reconstruction, beta=beta)
    ours = CapacityKL(beta=mapped)(ours_rec, kl).loss
    g_theirs = torch.autograd.grad(theirs, (out, mu, logvar), retain_graph=True)
    g_ours = torch.autograd.grad(ours, (out, mu, logvar))
    for a, o in zip(g_theirs, g_ours, strict=True):
        torch.testing.assert_close(o, scale * a)


def test_kld_weight_to_beta_numbers_and_errors():
    # AntixK's B-type config on 64×64×3 images: γ = 10, kld_weight = 0.00025.
    assert kld_weight_to_beta(0.00025, num_pixels=64 * 64 * 3, beta=10.0) == pytest.approx(15.36)
    assert kld_weight_to_beta(0.5, reconstruction="bce") == 0.5
    with pytest.raises(ValueError, match="'mse' or 'bce', got 'l1'"):
        kld_weight_to_beta(1.0, reconstruction="l1")
