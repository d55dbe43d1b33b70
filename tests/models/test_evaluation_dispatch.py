"""Evaluation and the second stage choose what to do from what a model and its prior declare
(``family``, ``prior is None``, ``exact_likelihood``), never from which methods exist."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from models_helpers import TINY
from torch import nn

import vqkit
from vqkit import _registry
from vqkit.contracts import LossOutput
from vqkit.train.evaluate import evaluate_model, evaluate_prior_loss


@pytest.fixture(autouse=True)
def isolated_registry(monkeypatch):
    monkeypatch.setattr(
        _registry, "_REGISTRY", {kind: dict(names) for kind, names in _registry._REGISTRY.items()}
    )


class MaskedTokenPrior(nn.Module):
    """A prior without an exact likelihood (as MaskGIT): a fixed masked-token NLL of log K."""

    domain, exact_likelihood = "codes", False

    def __init__(self, num_embeddings: int = 8) -> None:
        super().__init__()
        self.num_embeddings, self.num_classes = num_embeddings, None
        self.logits = nn.Parameter(torch.zeros(num_embeddings))

    def loss(self, x, cond=None):
        logp = torch.log_softmax(self.logits, 0)[x.long()]  # (B, h, w)
        nll = -logp.mean()
        return LossOutput(nll, {"masked_nll": nll.detach(), "batch": torch.tensor(x.shape[0])})

    def log_prob(self, x, cond=None):
        raise NotImplementedError("no exact likelihood")

    def sample(self, n, size=None, **options):
        return torch.zeros(n, *size, dtype=torch.long)


def _model_with(prior):
    vqkit.register("prior", "masked_token")(MaskedTokenPrior)
    config = copy.deepcopy(TINY)
    config["prior"] = prior
    torch.manual_seed(0)
    return vqkit.VQVAE(**config).eval()


def test_a_prior_without_exact_likelihood_reports_its_loss_figures():
    model = _model_with({"type": "masked_token"})
    data = torch.rand(5, 1, 8, 4, generator=torch.Generator().manual_seed(0))
    figures = evaluate_model(model, data, batch_size=2)
    assert figures["prior_masked_nll"] == pytest.approx(math.log(8), rel=1e-6)
    assert figures["prior_loss"] == pytest.approx(math.log(8), rel=1e-6)
    # Batch-size-weighted means: batches of 2, 2 and 1 examples.
    assert figures["prior_batch"] == pytest.approx((2 * 2 + 2 * 2 + 1 * 1) / 5)
    assert "prior_nll" not in figures
    assert "bits_per_latent" not in figures
    out = model.prior_loss(data)
    torch.testing.assert_close(out.loss, torch.tensor(math.log(8)))
    with pytest.raises(TypeError, match="has no exact likelihood"):
        model.prior_nll(out.indices)


def test_an_exact_prior_reports_nll_and_bits_per_latent():
    model = _model_with(TINY["prior"])
    data = torch.rand(4, 1, 8, 4, generator=torch.Generator().manual_seed(0))
    figures = evaluate_model(model, data)
    codes = model.encode_indices(data)
    with torch.no_grad():
        nll = -model.prior.log_prob(codes).double().mean().item()
    assert figures["prior_nll"] == pytest.approx(nll, rel=1e-5)
    assert figures["bits_per_latent"] == pytest.approx(nll / (8 * math.log(2)), rel=1e-5)
    assert figures["prior_bits_per_dim"] == figures["bits_per_latent"]
    losses = evaluate_prior_loss(model.prior, codes)
    assert losses["prior_bits_per_latent"] == pytest.approx(figures["bits_per_latent"], rel=1e-5)


def test_no_prior_means_no_prior_figures():
    model = _model_with(None)
    figures = evaluate_model(model, torch.rand(3, 1, 8, 4))
    assert "codebook_usage" in figures
    assert not [k for k in figures if k.startswith("prior") or k == "bits_per_latent"]


def test_continuous_models_report_the_elbo_and_no_codebook():
    vae = vqkit.VAE(hidden_dims=[4]).eval()
    figures = evaluate_model(vae, torch.randn(6, 2))
    assert set(figures) == {"mse", "elbo", "nelbo_bits_per_dim", "num_examples"}


def test_an_undeclared_family_is_refused():
    class Strange(nn.Module):
        family = "quantum"

    with pytest.raises(ValueError, match="family must be 'discrete' or 'continuous'"):
        evaluate_model(Strange(), torch.zeros(2, 3))
