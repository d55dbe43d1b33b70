"""VLAE: the flow prior enters the KL estimate, the loss terms match a manual computation."""

import pytest
import torch
from torch.distributions import Bernoulli, Normal

from vqkit.autoregressive.flow import MADEFlowPrior
from vqkit.vae import VLAE, ImageVAE, gaussian_kl

KW = {"in_channels": 1, "image_size": 8, "latent_dim": 6, "hidden_dims": (8, 16)}


def _vlae(perturb: bool) -> VLAE:
    torch.manual_seed(0)
    model = VLAE(**KW, prior_hidden_features=(32, 32))
    if perturb:  # leave the identity flow the prior starts as
        with torch.no_grad():
            last = model.prior.net.layers[-1]
            last.weight.normal_(0.0, 0.3)
            last.bias.normal_(0.0, 0.3)
    return model


def _binary(n=4, seed=1):
    return (torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed)) > 0.5).float()


def test_loss_terms_match_a_manual_computation():
    model = _vlae(perturb=True)
    assert isinstance(model.prior, MADEFlowPrior)
    x = _binary()
    out = model(x, generator=torch.Generator().manual_seed(2))
    std = torch.exp(0.5 * out.logvar)
    log_q = Normal(out.mu, std).log_prob(out.z).sum(1)
    log_p = model.prior.log_prob(out.z)
    standard = Normal(0.0, 1.0).log_prob(out.z).sum(1)
    assert (log_p - standard).abs().max() > 0.1  # the prior is not N(0, I) any more
    torch.testing.assert_close(out.kl, log_q - log_p)
    logits = model.decoder(out.z)
    recon = -Bernoulli(logits=logits).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(out.recon_nll, recon)
    torch.testing.assert_close(out.loss, (recon + log_q - log_p).mean())
    out.loss.backward()
    for part in (model.prior, model.encoder, model.decoder):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())


def test_identity_flow_reduces_to_a_standard_vae():
    model = _vlae(perturb=False)
    x = _binary(8)
    # One-sample KL estimates average to the closed form under the N(0, I) prior.
    mu, logvar = model.encode(x)
    z = model.reparameterize(mu[:1].expand(20000, -1), logvar[:1].expand(20000, -1))
    estimate = (model.posterior_log_prob(z, mu[:1], logvar[:1]) - model.prior_log_prob(z)).mean()
    assert estimate.item() == pytest.approx(gaussian_kl(mu[:1], logvar[:1]).item(), abs=0.05)
    # With the same encoder and decoder, the importance-weighted bound equals ImageVAE's.
    vae = ImageVAE(**KW, likelihood="bernoulli")
    vae.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("prior.")})
    a = model.log_likelihood(x, num_samples=5, generator=torch.Generator().manual_seed(3))
    b = vae.log_likelihood(x, num_samples=5, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b)


def test_sampling_uses_the_flow_and_is_deterministic():
    model = _vlae(perturb=True).eval()
    s1 = model.sample(5, generator=torch.Generator().manual_seed(0))
    s2 = model.sample(5, generator=torch.Generator().manual_seed(0))
    assert s1.shape == (5, 1, 8, 8)
    assert torch.equal(s1, s2)
    eps = torch.randn(5, 6, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(s1, model.decode(model.prior.inverse(eps)))
    assert model.interpolate(_binary(1)[0], _binary(1, 2)[0], steps=4).shape == (4, 1, 8, 8)


def test_training_improves_the_elbo_on_digits():
    from vqkit.data import load_digits

    x = (load_digits().data[:256] > 0.5).float()
    model = _vlae(perturb=False)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    before = model.elbo(x, generator=torch.Generator().manual_seed(0)).mean()
    for step in range(60):
        out = model(x[(step * 64) % 256 :][:64])
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    after = model.elbo(x, generator=torch.Generator().manual_seed(0)).mean()
    assert after > before + 5.0


def test_hub_round_trip(tmp_path):
    model = _vlae(perturb=True)
    model.save_pretrained(tmp_path)
    loaded = VLAE.from_pretrained(tmp_path)
    assert loaded.prior.net.layers[0].weight.shape[1] == 6
    x = _binary()
    torch.testing.assert_close(
        loaded.log_likelihood(x, 3, generator=torch.Generator().manual_seed(0)),
        model.log_likelihood(x, 3, generator=torch.Generator().manual_seed(0)),
    )
