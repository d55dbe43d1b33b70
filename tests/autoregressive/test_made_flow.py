"""MADEFlowPrior: inverse, log-determinant against autograd, triangular Jacobian, density."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch.autograd.functional import jacobian

import vqkit
from vqkit import MADEFlowPrior


def trained_like_flow(dim=5, ordering="natural", **kw) -> MADEFlowPrior:
    """A float64 flow whose output layer is random (it starts at zero: the identity)."""
    torch.manual_seed(0)
    flow = MADEFlowPrior(dim, hidden_features=[32, 32], ordering=ordering, **kw).double()
    with torch.no_grad():
        torch.nn.init.normal_(flow.net.layers[-1].weight, std=0.5)
        torch.nn.init.normal_(flow.net.layers[-1].bias, std=0.5)
    return flow


def test_initial_flow_is_identity_and_prior_is_standard_normal():
    flow = MADEFlowPrior(4, dtype=torch.float64)
    z = torch.randn(3, 4, dtype=torch.float64)
    eps, log_det = flow(z)
    torch.testing.assert_close(eps, z)
    torch.testing.assert_close(log_det, torch.zeros(3, dtype=torch.float64))
    normal = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(1)
    torch.testing.assert_close(flow.log_prob(z), normal)
    assert flow.net.hidden_features == [512, 512]


@pytest.mark.parametrize("ordering", ["natural", "reversed", "random"])
def test_inverse_of_forward_is_identity(ordering):
    flow = trained_like_flow(ordering=ordering)
    z = torch.randn(16, 5, dtype=torch.float64) * 2
    eps, _ = flow(z)
    torch.testing.assert_close(flow.inverse(eps), z, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(flow(flow.inverse(eps))[0], eps, atol=1e-9, rtol=1e-9)


@pytest.mark.parametrize("ordering", ["natural", "random"])
def test_log_det_equals_autograd_and_jacobian_is_triangular(ordering):
    flow = trained_like_flow(ordering=ordering)
    order = flow.net.order(0)
    z = torch.randn(4, 5, dtype=torch.float64)
    _, log_det = flow(z)
    for b in range(4):
        jac = jacobian(lambda t: flow(t[None])[0][0], z[b])  # (D, D): d eps_i / d z_j
        sign, logabs = torch.linalg.slogdet(jac)
        torch.testing.assert_close(log_det[b], logabs)
        assert sign > 0
        permuted = jac[order][:, order]  # rows and columns in generation order
        assert torch.equal(permuted.triu(1), torch.zeros_like(permuted))  # eps_i: z_{<i} and z_i
        assert (permuted.diagonal() > 0).all()
        assert (permuted.tril(-1) != 0).any()  # and the earlier coordinates are really used


def test_density_integrates_to_one_in_two_dimensions():
    flow = trained_like_flow(dim=2)
    grid = torch.linspace(-9, 9, 401, dtype=torch.float64)
    zz = torch.cartesian_prod(grid, grid)
    mass = flow.log_prob(zz).exp().sum() * (grid[1] - grid[0]) ** 2
    torch.testing.assert_close(mass, torch.tensor(1.0, dtype=torch.float64), atol=2e-3, rtol=0)


def test_sample_matches_inverse_of_noise_and_is_reproducible():
    flow = trained_like_flow(dim=3)
    g = torch.Generator().manual_seed(5)
    z = flow.sample(7, generator=g)
    assert z.shape == (7, 3)
    assert z.dtype == torch.float64
    eps = torch.randn(7, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    torch.testing.assert_close(z, flow.inverse(eps))
    torch.testing.assert_close(flow.sample(7, generator=torch.Generator().manual_seed(5)), z)
    # the sample moments follow the flow: mean of eps(z) ~ 0, var ~ 1
    big = flow.sample(4000, generator=torch.Generator().manual_seed(0))
    eps_big, _ = flow(big)
    assert eps_big.mean(0).abs().max() < 0.1
    assert (eps_big.var(0) - 1).abs().max() < 0.1


def test_scale_is_stable_for_extreme_network_outputs():
    flow = trained_like_flow(dim=3, min_scale=1e-3)
    with torch.no_grad():
        flow.net.layers[-1].bias.fill_(-1e4)
    z = torch.randn(2, 3, dtype=torch.float64)
    eps, log_det = flow(z)
    assert torch.isfinite(eps).all()
    torch.testing.assert_close(log_det, torch.full((2,), 3 * math.log(1e-3), dtype=torch.float64))
    with torch.no_grad():
        flow.net.layers[-1].bias.fill_(1e4)
    assert torch.isfinite(flow.log_prob(z)).all()


def test_one_dimensional_flow():
    flow = trained_like_flow(dim=1)
    z = torch.randn(3, 1, dtype=torch.float64)
    torch.testing.assert_close(flow.inverse(flow(z)[0]), z)


def test_flow_training_fits_a_correlated_gaussian():
    torch.manual_seed(0)
    flow = MADEFlowPrior(2, hidden_features=[32, 32])
    data = torch.randn(512, 2)
    data[:, 1] = 0.9 * data[:, 0] + 0.2 * data[:, 1]
    opt = torch.optim.Adam(flow.parameters(), lr=1e-2)
    for _ in range(150):
        loss = -flow.log_prob(data).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    # N(0, I) gives ~2.5 nats; the true density has entropy ~1.2 nats
    assert loss.item() < 1.6


def test_flow_errors_and_hub(tmp_path):
    flow = MADEFlowPrior(3, hidden_features=[8])
    with pytest.raises(ValueError, match=r"shape \(B, 3\), got \(2, 4\)"):
        flow.log_prob(torch.zeros(2, 4))
    with pytest.raises(TypeError, match="floating-point"):
        flow.log_prob(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="unconditional"):
        flow.log_prob(torch.zeros(2, 3), cond=torch.zeros(2))
    with pytest.raises(ValueError, match="dim must be a positive int"):
        MADEFlowPrior(0)
    with pytest.raises(ValueError, match="n must be a positive int"):
        flow.sample(0)
    flow.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["dim"] == 3
    assert config["hidden_features"] == [8]
    loaded = MADEFlowPrior.from_pretrained(tmp_path)
    z = torch.randn(4, 3)
    torch.testing.assert_close(loaded.log_prob(z), flow.log_prob(z))
    built = vqkit.build("prior", {"type": "made_flow", "dim": 3})
    assert built.net.hidden_features == [512, 512]
