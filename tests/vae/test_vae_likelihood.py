"""Decoder likelihoods against torch.distributions in float64."""

import math

import pytest
import torch
from torch.distributions import Bernoulli, Normal

from vqkit.vae.likelihood import LIKELIHOODS, get_likelihood


def _reference_log_prob(name, x, out):
    if name == "gaussian":
        return Normal(out, 1.0).log_prob(x)
    if name == "diag_gaussian":
        mean, logvar = out.chunk(2, dim=1)
        return Normal(mean, torch.exp(0.5 * logvar)).log_prob(x)
    return Bernoulli(logits=out).log_prob(x)


@pytest.mark.parametrize("name", sorted(LIKELIHOODS))
def test_nll_matches_torch_distributions(name):
    g = torch.Generator().manual_seed(0)
    lik = get_likelihood(name)
    x = torch.rand(3, 2, 4, 4, generator=g, dtype=torch.float64)
    if name == "bernoulli":
        x = x.round()
    out = torch.randn(3, 2 * lik.num_params, 4, 4, generator=g, dtype=torch.float64)
    expected = -_reference_log_prob(name, x, out).flatten(1).sum(1)
    torch.testing.assert_close(lik.nll(x, out).double(), expected, rtol=1e-6, atol=1e-5)


def test_sampling_moments_and_generator_determinism():
    g = torch.Generator().manual_seed(0)
    lik = get_likelihood("diag_gaussian")
    out = torch.cat([torch.full((20000, 1), 3.0), torch.full((20000, 1), math.log(4.0))], dim=1)
    s = lik.sample(out, generator=g)
    assert s.mean().item() == pytest.approx(3.0, abs=0.05)
    assert s.std().item() == pytest.approx(2.0, abs=0.05)
    b = get_likelihood("bernoulli")
    logits = torch.zeros(8, 16)
    a1 = b.sample(logits, torch.Generator().manual_seed(5))
    a2 = b.sample(logits, torch.Generator().manual_seed(5))
    assert torch.equal(a1, a2)
    assert set(a1.unique().tolist()) <= {0.0, 1.0}


def test_unknown_likelihood():
    with pytest.raises(ValueError, match=r"unknown likelihood 'poisson'; expected one of"):
        get_likelihood("poisson")
