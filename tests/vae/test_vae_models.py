"""VAE, ImageVAE and BetaVAE: training on 2D data, exact likelihoods, API, errors, Hub."""

import math

import pytest
import torch
from torch.distributions import MultivariateNormal, Normal

import vqkit
from vqkit.vae import VAE, BetaVAE, CapacityKL, ImageVAE, VAEOutput


def _tiny_beta_vae(**kw):
    kw = {"in_channels": 1, "latent_dim": 8, "hidden_dims": (4, 4, 8, 8, 8), **kw}
    return BetaVAE(**kw)


def test_2d_vae_learns_a_correlated_gaussian():
    torch.manual_seed(0)
    cov = torch.tensor([[2.0, -1.2], [-1.2, 1.0]])
    mean = torch.tensor([1.0, -0.5])
    g = torch.Generator().manual_seed(0)
    chol = torch.linalg.cholesky(cov)
    train = torch.randn(4096, 2, generator=g) @ chol.T + mean
    test = torch.randn(1024, 2, generator=g) @ chol.T + mean

    model = VAE(hidden_dims=[32, 32])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    elbo_before = model.elbo(test, generator=torch.Generator().manual_seed(1)).mean()
    for _ in range(800):
        out = model(train[torch.randint(0, 4096, (256,), generator=g)])
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    model.eval()
    elbo_after = model.elbo(test, generator=torch.Generator().manual_seed(1)).mean()
    true_log_p = MultivariateNormal(mean, cov).log_prob(test).mean()
    iw = model.log_likelihood(test, num_samples=64, generator=torch.Generator().manual_seed(2))

    assert elbo_after > elbo_before + 1.0
    assert elbo_after <= true_log_p + 0.05  # a lower bound (up to test-set noise)
    assert elbo_after > true_log_p - 0.3
    assert iw.mean() >= elbo_after - 0.01  # the IW bound is at least as tight

    samples = model.sample(8000, generator=torch.Generator().manual_seed(3), decoder_noise=True)
    got = torch.cov(samples.T)
    corr = got[0, 1] / (got[0, 0] * got[1, 1]).sqrt()
    assert -0.93 < corr < -0.7  # true correlation −0.85
    torch.testing.assert_close(got.diagonal(), cov.diagonal(), rtol=0.25, atol=0.0)
    torch.testing.assert_close(samples.mean(0), mean, rtol=0.0, atol=0.15)
    noiseless = model.sample(8000, generator=torch.Generator().manual_seed(3))
    assert noiseless.shape == (8000, 2)
    assert not torch.equal(noiseless, samples)


def _linear_gaussian_vae(w=1.5, b=0.3, var=0.5):
    """A VAE whose encoder is the exact posterior of p(z) = N(0,1), p(x|z) = N(wz + b, var)."""
    model = VAE(data_dim=1, latent_dim=1, hidden_dims=[], dtype=torch.float64)
    k = w / (w * w + var)
    post_var = var / (w * w + var)
    with torch.no_grad():
        enc, dec = model.encoder[0], model.decoder[0]
        enc.weight.copy_(torch.tensor([[k], [0.0]]))
        enc.bias.copy_(torch.tensor([-k * b, math.log(post_var)]))
        dec.weight.copy_(torch.tensor([[w], [0.0]]))
        dec.bias.copy_(torch.tensor([b, math.log(var)]))
    marginal = Normal(torch.tensor(b, dtype=torch.float64), math.sqrt(w * w + var))
    return model, marginal


def test_exact_posterior_gives_exact_log_likelihood():
    model, marginal = _linear_gaussian_vae()
    x = torch.linspace(-3, 3, 7, dtype=torch.float64)[:, None]
    expected = marginal.log_prob(x[:, 0])
    # With q equal to the true posterior every importance weight equals p(x).
    iw = model.log_likelihood(x, num_samples=3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(iw, expected)
    elbo = model.elbo(x, num_samples=4000, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(elbo, expected, rtol=0.0, atol=0.05)
    # The training loss is the negative ELBO, in nats per example.
    out = model(x, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(out.loss, (out.recon_nll + out.kl).mean())
    torch.testing.assert_close(out.losses["nelbo"], out.loss.detach())


def test_image_vae_defaults_and_unit_variance_nll():
    model = ImageVAE(in_channels=1, image_size=8)
    assert model.latent_dim == 16
    assert model.likelihood.name == "gaussian"
    x = torch.rand(3, 1, 8, 8)
    out = model(x)
    assert isinstance(out, VAEOutput)
    assert out.reconstruction.shape == x.shape
    assert out.z.shape == (3, 16)
    assert out.decoder_logvar is None
    expected = 0.5 * (x - out.reconstruction).square().flatten(1).sum(1) + 32 * math.log(
        2 * math.pi
    )
    torch.testing.assert_close(out.recon_nll, expected)
    assert out.loss.dim() == 0
    assert out.loss.requires_grad
    assert set(out.losses) == {"recon", "kl", "nelbo", "total"}


@pytest.mark.parametrize(("channels", "latent"), [(3, 128), (1, 256)])
def test_beta_vae_default_architecture(channels, latent):
    model = BetaVAE(in_channels=channels, latent_dim=latent).eval()
    convs = [m for m in model.encoder if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 64, 128, 256, 512]
    assert all(c.stride == (2, 2) for c in convs)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.encoder) == 5
    assert sum(isinstance(m, torch.nn.LeakyReLU) for m in model.encoder) == 5
    assert isinstance(model.loss_fn, CapacityKL)
    assert model.loss_fn.is_capacity_controlled
    x = torch.rand(2, channels, 64, 64)
    out = model(x)
    assert out.reconstruction.shape == x.shape
    assert out.mu.shape == (2, latent)
    assert "capacity" in out.losses
    assert model.sample(2).shape == (2, channels, 64, 64)


def test_sample_reconstruct_interpolate_shapes_and_determinism():
    model = _tiny_beta_vae().eval()
    s1 = model.sample(4, generator=torch.Generator().manual_seed(0))
    s2 = model.sample(4, generator=torch.Generator().manual_seed(0))
    s3 = model.sample(4, generator=torch.Generator().manual_seed(1))
    assert s1.shape == (4, 1, 64, 64)
    assert torch.equal(s1, s2)
    assert not torch.equal(s1, s3)
    noisy = model.sample(4, generator=torch.Generator().manual_seed(0), decoder_noise=True)
    assert set(noisy.unique().tolist()) <= {0.0, 1.0}  # Bernoulli draws

    x = torch.rand(3, 1, 64, 64, generator=torch.Generator().manual_seed(2))
    rec = model.reconstruct(x)
    assert rec.shape == x.shape
    assert torch.equal(rec, model.reconstruct(x))
    path = model.interpolate(x[0], x[1], steps=5)
    assert path.shape == (5, 1, 64, 64)
    torch.testing.assert_close(path[0], rec[0])
    torch.testing.assert_close(path[-1], rec[1])
    assert model.interpolate(x[:2], x[1:], steps=3).shape == (2, 3, 1, 64, 64)

    o1 = model(x, generator=torch.Generator().manual_seed(3))
    o2 = model(x, generator=torch.Generator().manual_seed(3))
    assert torch.equal(o1.z, o2.z)
    assert torch.equal(o1.loss, o2.loss)


def test_capacity_steps_once_per_training_forward_only():
    model = _tiny_beta_vae(loss={"type": "capacity_kl", "capacity_steps": 10})
    x = torch.rand(2, 1, 64, 64)
    model(x).loss.backward()
    model(x).loss.backward()
    assert model.loss_fn.iteration.item() == 2
    with torch.no_grad():  # validation in training mode
        model(x)
    model.eval()
    model(x)
    model.sample(2)
    model.reconstruct(x)
    model.interpolate(x[0], x[1])
    model.elbo(x)
    model.log_likelihood(x, num_samples=2)
    assert model.loss_fn.iteration.item() == 2
    assert model(x).losses["capacity"].item() == pytest.approx(5.0)


def test_hub_round_trip_keeps_weights_config_and_step(tmp_path):
    loss = {"type": "capacity_kl", "gamma": 100.0, "max_capacity": 20.0, "capacity_steps": 50}
    model = _tiny_beta_vae(loss=loss, likelihood="gaussian")
    for _ in range(3):
        model(torch.rand(2, 1, 64, 64)).loss.backward()
    model.save_pretrained(tmp_path)
    loaded = BetaVAE.from_pretrained(tmp_path)
    assert loaded.loss_fn.iteration.item() == 3
    assert loaded.loss_fn.gamma == 100.0
    assert loaded.likelihood.name == "gaussian"
    for (k, a), b in zip(model.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    model.eval()
    loaded.eval()
    x = torch.rand(2, 1, 64, 64)
    torch.testing.assert_close(model.reconstruct(x), loaded.reconstruct(x))


def test_registry_builds_every_model():
    assert {"vae", "image_vae", "beta_vae", "vlae"} <= set(vqkit.list_registered("model"))
    assert {"kl", "beta_kl", "capacity_kl"} <= set(vqkit.list_registered("loss"))
    model = vqkit.build("model", {"type": "image_vae", "image_size": 8, "loss": "beta_kl"})
    assert isinstance(model, ImageVAE)
    assert model.loss_fn.beta == 4.0
    assert isinstance(vqkit.build("model", "vae"), VAE)
    assert "likelihood='diag_gaussian'" in repr(vqkit.build("model", "vae"))


def test_bad_input_errors():
    model = _tiny_beta_vae()
    with pytest.raises(ValueError, match=r"wrong number of channels \(expected 1, received 3\)"):
        model(torch.rand(2, 3, 64, 64))
    with pytest.raises(ValueError, match=r"built for 64×64 images, received 32×32"):
        model(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match=r"\(B, 1, 64, 64\), got \(1, 64, 64\)"):
        model(torch.rand(1, 64, 64))
    x = torch.rand(2, 1, 64, 64)
    x[1, 0, 3, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        model(x)
    with pytest.raises(ValueError, match=r"Bernoulli decoder and expects x in \[0, 1\]"):
        model(torch.rand(2, 1, 64, 64) * 2)
    with pytest.raises(TypeError, match=r"floating-point x, got torch\.uint8"):
        model(torch.zeros(2, 1, 64, 64, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"latents of shape \(B, 8\), got \(2, 7\)"):
        model.decode(torch.zeros(2, 7))
    with pytest.raises(ValueError, match="positive int number of samples, got 0"):
        model.sample(0)
    with pytest.raises(ValueError, match="steps as an int >= 2, got 1"):
        model.interpolate(x[0], x[0], steps=1)
    with pytest.raises(ValueError, match=r"\(B, 2\), got \(4, 3\)"):
        VAE()(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="VAE received x containing NaN or infinite values"):
        VAE()(torch.tensor([[0.0, float("inf")]]))


def test_constructor_errors():
    with pytest.raises(ValueError, match="need image_size divisible by 32, got 60"):
        BetaVAE(image_size=60)
    with pytest.raises(ValueError, match="unknown likelihood 'laplace'"):
        ImageVAE(likelihood="laplace")
    with pytest.raises(ValueError, match="latent_dim must be a positive int, got 0"):
        VAE(latent_dim=0)
    with pytest.raises(ValueError, match="non-empty list of positive ints"):
        ImageVAE(hidden_dims=[])
    with pytest.raises(KeyError, match="unknown loss 'capacity'"):
        ImageVAE(loss="capacity")
