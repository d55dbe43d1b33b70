"""Latent diffusion prior (LDM-VQ, Rombach et al. 2022, arXiv:2112.10752): the sampling loops
against the closed-form optimal denoiser of Gaussian data, DDIM inversion, the latent scale
factor, EMA, quantised denoising, save/reload, the missing-extra error and validation."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch

pytest.importorskip("diffusers")

import vqkit
from vqkit.diffusion import (
    LatentDiffusion,
    ddim_invert,
    gaussian_optimal_eps,
    sample_loop,
)

TINY = {"block_out_channels": [16, 32], "layers_per_block": 1, "norm_num_groups": 8}
MU, SIGMA = 0.8, 0.5


def _prior(**kw) -> LatentDiffusion:
    torch.manual_seed(0)
    return LatentDiffusion(channels=kw.pop("channels", 2), **{**TINY, **kw})


def _vqvae(prior=None) -> vqkit.VQVAE:
    torch.manual_seed(0)
    hidden = {"hidden_channels": 8, "num_residual_layers": 1, "residual_hidden_channels": 4}
    return vqkit.VQVAE(
        encoder={"type": "resnet", "in_channels": 1, "num_downsamples": 2, **hidden},
        quantizer={"type": "vq", "dim": 4, "codebook_size": 8},
        decoder={"type": "resnet", "out_channels": 1, "num_upsamples": 2, **hidden},
        prior={"type": "latent_diffusion", **TINY, **(prior or {})},
        image_size=[12, 20],  # a 3×5 latent grid: odd sizes, padded inside the UNet
    )


def _analytic(scheduler):
    alphas = scheduler.alphas_cumprod.double()

    def eps(x, t):
        return gaussian_optimal_eps(x, alphas[t], MU, SIGMA)

    return eps


# ----------------------------------------------------------------- the closed-form denoiser
def test_gaussian_optimal_eps_is_the_regression_of_eps_on_x_t():
    """E[ε | x_t] is linear for Gaussian x₀: least squares on samples recovers the formula."""
    g = torch.Generator().manual_seed(0)
    n = 400_000
    for alpha_bar in (0.05, 0.5, 0.95):
        ab = torch.tensor(alpha_bar, dtype=torch.float64)
        x0 = MU + SIGMA * torch.randn(n, generator=g, dtype=torch.float64)
        eps = torch.randn(n, generator=g, dtype=torch.float64)
        x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
        design = torch.stack([x_t, torch.ones_like(x_t)], 1)
        slope, intercept = torch.linalg.lstsq(design, eps[:, None]).solution[:, 0]
        # the formula at x_t = 0 and 1 gives its intercept and slope
        f0 = gaussian_optimal_eps(torch.zeros((), dtype=torch.float64), ab, MU, SIGMA)
        f1 = gaussian_optimal_eps(torch.ones((), dtype=torch.float64), ab, MU, SIGMA)
        assert abs(float(slope) - float(f1 - f0)) < 5e-3
        assert abs(float(intercept) - float(f0)) < 5e-3


def _draw(sampler: str, steps: int, eta: float, mean: float = MU, std: float = SIGMA):
    prior = _prior()
    scheduler = prior.make_scheduler(sampler)
    scheduler.set_timesteps(steps)
    alphas = scheduler.alphas_cumprod.double()
    g = torch.Generator().manual_seed(1)
    x_T = torch.randn(5000, 1, 2, 2, generator=g, dtype=torch.float64)

    def eps(x, t):
        return gaussian_optimal_eps(x, alphas[t], mean, std)

    return sample_loop(eps, scheduler, x_T, eta=eta, generator=g), float(alphas[-1])


@pytest.mark.parametrize(("sampler", "eta"), [("ddim", 0.0), ("ddpm", 0.0)])
def test_sampling_loop_with_the_optimal_denoiser_recovers_the_gaussian(sampler, eta):
    """DDPM and DDIM over the full chain (T = 1000 steps), through the prior's own schedule and
    loop, recover N(μ, σ²): mean and variance within four standard errors.

    x_T ~ N(0, I) differs from the true q(x_T) = N(√ᾱ_T μ, ᾱ_T σ² + 1 − ᾱ_T); the shift of the
    mean it causes, about √ᾱ_T μ σ, is added to the tolerance."""
    out, ab_T = _draw(sampler, 1000, eta)
    n = out.numel()
    bias = math.sqrt(ab_T) * abs(MU) * SIGMA / math.sqrt(ab_T * SIGMA**2 + 1 - ab_T)
    mean, var = float(out.mean()), float(out.var())
    assert abs(mean - MU) < 4 * SIGMA / math.sqrt(n) + bias
    assert abs(var - SIGMA**2) < 4 * SIGMA**2 * math.sqrt(2 / n) + 2 * bias * SIGMA
    # the test can fail: the same loop with the denoiser of another Gaussian lands elsewhere
    off, _ = _draw(sampler, 1000, eta, mean=0.0, std=1.0)
    assert abs(float(off.mean()) - MU) > 0.5
    assert abs(float(off.var()) - SIGMA**2) > 0.5


def test_fewer_ddim_steps_converge_to_the_gaussian():
    """With fewer steps DDIM (η = 0 and η = 1) is a coarser discretisation: its variance error
    shrinks as the number of steps grows (25 → 50 → 250), and the mean stays within 0.01."""
    for eta in (0.0, 1.0):
        errors = []
        for steps in (25, 50, 250):
            out, _ = _draw("ddim", steps, eta)
            assert abs(float(out.mean()) - MU) < 0.015
            errors.append(abs(float(out.var()) - SIGMA**2))
        assert errors[0] > errors[1] > errors[2], errors
        assert errors[2] < 0.02, errors


def test_schedule_is_ldms_scaled_linear_betas():
    """LDM's "linear" is linspace(√0.0015, √0.0195, 1000)² (diffusers' "scaled_linear")."""
    prior = _prior()
    betas = torch.linspace(0.0015**0.5, 0.0195**0.5, 1000, dtype=torch.float64) ** 2
    expected = torch.cumprod(1 - betas, 0)
    torch.testing.assert_close(prior.alphas_cumprod.double(), expected, rtol=1e-5, atol=1e-7)
    for sampler in ("ddim", "ddpm"):
        cfg = prior.make_scheduler(sampler).config
        assert cfg.clip_sample is False
        assert cfg.timestep_spacing == "trailing"
        assert cfg.beta_schedule == "scaled_linear"
        assert (cfg.beta_start, cfg.beta_end) == (0.0015, 0.0195)
    ddim = prior.make_scheduler("ddim")
    ddim.set_timesteps(25)
    assert int(ddim.timesteps[0]) == 999  # trailing
    assert int(ddim.timesteps[-1]) == 39


def test_ddim_inversion_reconstructs_with_the_optimal_denoiser():
    prior = _prior()
    scheduler = prior.make_scheduler("ddim")
    scheduler.set_timesteps(50)
    eps = _analytic(scheduler)
    g = torch.Generator().manual_seed(2)
    x0 = MU + SIGMA * torch.randn(8, 1, 4, 4, generator=g, dtype=torch.float64)
    x_T = ddim_invert(eps, scheduler, x0, refine=5)
    back = sample_loop(eps, scheduler, x_T, eta=0.0)
    torch.testing.assert_close(back, x0, atol=1e-6, rtol=0)
    # without the fixed-point refinement the classic approximation is only close
    rough = sample_loop(eps, scheduler, ddim_invert(eps, scheduler, x0, refine=0), eta=0.0)
    assert (rough - x0).abs().max() > 1e-6


def test_prior_invert_runs_the_same_inversion_on_scaled_latents():
    prior = _prior(scale_factor=0.5).eval()
    z = torch.randn(2, 2, 5, 3, generator=torch.Generator().manual_seed(3))
    scheduler = prior.make_scheduler("ddim")
    scheduler.set_timesteps(3)
    expected = ddim_invert(prior.eps_fn(), scheduler, z * 0.5, refine=1)
    torch.testing.assert_close(prior.invert(z, steps=3, refine=1), expected)


# ----------------------------------------------------------------- scale factor, EMA, v
def test_the_stored_scale_factor_makes_the_training_latents_unit_variance(tmp_path):
    model = _vqvae()
    x = torch.rand(6, 1, 12, 20, generator=torch.Generator().manual_seed(0))
    model.prior.train()
    assert torch.isnan(model.prior.scale_factor)
    out = model.prior_loss(x)
    latents = model.encode_latents(x)
    assert out.latents.shape == (6, 4, 3, 5)
    assert out.indices is None
    torch.testing.assert_close(out.latents, latents)
    scaled = latents * model.prior.scale_factor
    assert abs(float(scaled.std()) - 1) < 1e-5
    first = model.prior.scale_factor.clone()
    model.prior_loss(3 * x)  # later batches leave it alone
    assert torch.equal(model.prior.scale_factor, first)
    model.save_pretrained(tmp_path)
    loaded = vqkit.VQVAE.from_pretrained(tmp_path)
    assert torch.equal(loaded.prior.scale_factor, first)
    assert loaded.prior._scale_known


def test_an_unknown_scale_factor_is_a_clear_error_outside_training():
    prior = _prior().eval()
    with pytest.raises(RuntimeError, match="scale factor is not known"):
        prior.sample(1, (2, 2))
    with pytest.raises(RuntimeError, match="scale factor is not known"):
        prior.loss(torch.randn(2, 2, 2, 2))


def test_ema_follows_litemas_warmed_up_decay():
    prior = _prior(ema_decay=0.5, scale_factor=1.0)
    name, param = next(iter(prior.unet.named_parameters()))
    ema = prior.ema_parameters()[name]
    start = param.detach().clone()
    with torch.no_grad():
        param.add_(1.0)
    prior.update_ema()  # n = 0: decay = min(0.5, 1/10) = 0.1
    torch.testing.assert_close(ema, 0.1 * start + 0.9 * (start + 1))
    before = ema.clone()
    with torch.no_grad():
        param.add_(1.0)
    prior.update_ema()  # n = 1: decay = min(0.5, 2/11)
    d = 2 / 11
    torch.testing.assert_close(ema, d * before + (1 - d) * (start + 2))
    # sampling uses the EMA weights: they differ from the raw ones here
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    a = prior.sample(1, (2, 2), steps=2, generator=g())
    b = prior.sample(1, (2, 2), steps=2, generator=g(), use_ema=False)
    assert not torch.equal(a, b)


def test_a_training_loss_updates_the_ema_and_an_eval_loss_is_a_fixed_draw():
    prior = _prior(scale_factor=1.0)
    z = torch.randn(3, 2, 4, 4)
    prior.train()
    prior.loss(z)
    assert int(prior.ema_updates) == 1
    prior.eval()
    assert torch.equal(prior.loss(z).loss, prior.loss(z).loss)
    assert int(prior.ema_updates) == 1


def test_v_prediction_targets_convert_to_eps():
    prior = _prior(prediction_type="v_prediction", scale_factor=1.0)
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(4, 2, 3, 3, generator=g), torch.randn(4, 2, 3, 3, generator=g)
    t = torch.tensor([0, 10, 500, 999])
    ab = prior.alphas_cumprod[t].view(-1, 1, 1, 1)
    x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    v = ab.sqrt() * eps - (1 - ab).sqrt() * x0
    torch.testing.assert_close(prior._to_eps(v, x_t, t), eps, atol=1e-5, rtol=1e-5)


# ----------------------------------------------------------------- the model
def test_generate_quantises_and_decodes_and_quantize_denoised_lands_on_codes():
    model = _vqvae({"quantize_denoised": True, "scale_factor": 2.0}).eval()
    g = torch.Generator().manual_seed(0)
    images = model.generate(3, generator=g, steps=4)
    assert images.shape == (3, 1, 12, 20)
    # with quantize_denoised the last DDIM step (to ᾱ = 1) returns the quantised x₀ itself
    z = model.prior.sample(2, (3, 5), steps=4, quantize=model.quantize_latents)
    torch.testing.assert_close(model.quantize_latents(z), z, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="quantize_denoised=True needs"):
        model.prior.sample(2, (3, 5), steps=4)


def test_saved_and_reloaded_model_samples_the_same_images(tmp_path):
    model = _vqvae()
    x = torch.rand(4, 1, 12, 20, generator=torch.Generator().manual_seed(0))
    optimizer = torch.optim.Adam(model.prior.parameters(), lr=1e-2)
    model.prior.train()
    for _ in range(2):
        loss = model.prior_loss(x).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    model.save_pretrained(tmp_path)
    loaded = vqkit.from_pretrained(tmp_path)
    assert isinstance(loaded.prior, LatentDiffusion)
    for options in ({"steps": 5}, {"steps": 4, "sampler": "ddpm"}, {"steps": 3, "eta": 1.0}):
        a = model.generate(3, generator=torch.Generator().manual_seed(5), **options)
        b = loaded.generate(3, generator=torch.Generator().manual_seed(5), **options)
        assert torch.equal(a, b), options
    c = model.generate(3, generator=torch.Generator().manual_seed(6), steps=5)
    d = model.generate(3, generator=torch.Generator().manual_seed(5), steps=5)
    assert not torch.equal(c, d)


def test_class_conditioning():
    prior = _prior(num_classes=3, scale_factor=1.0).eval()
    z = torch.randn(2, 2, 4, 4)
    assert torch.isfinite(prior.loss(z, torch.tensor([0, 2])).loss)
    with pytest.raises(ValueError, match="class-conditional"):
        prior.loss(z)
    a = prior.sample(2, (4, 4), cond=0, steps=3, generator=torch.Generator().manual_seed(0))
    b = prior.sample(2, (4, 4), cond=2, steps=3, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(a, b)


# ----------------------------------------------------------------- errors
def test_without_diffusers_import_works_and_the_prior_names_the_extra():
    code = (
        "import sys; sys.modules['diffusers'] = None; import vqkit\n"
        "try:\n    vqkit.LatentDiffusion(channels=2)\n"
        "except ImportError as e:\n    print(e)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert 'pip install "vqkit[diffusion]"' in result.stdout


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"channels": 0}, "channels must be a positive integer"),
        ({"block_out_channels": []}, "block_out_channels must be a non-empty list"),
        ({"norm_num_groups": 5}, "norm_num_groups=5 must divide"),
        ({"down_block_types": ["DownBlock2D"]}, "one block per width"),
        ({"beta_end": 0.001}, "beta_end must be in"),
        ({"timestep_spacing": "uniform"}, "timestep_spacing must be one of"),
        ({"prediction_type": "sample"}, "prediction_type must be one of"),
        ({"scale_factor": 0.0}, "scale_factor must be in"),
        ({"quantize_denoised": 1}, "quantize_denoised must be True or False"),
        ({"ema_decay": 1.0}, "ema_decay must be in"),
        ({"sampler": "euler"}, "sampler must be one of"),
        ({"steps": 2000}, "steps must be in"),
    ],
)
def test_constructor_validation(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        _prior(**kwargs)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: [[0.0]], "must be a tensor"),
        (lambda: torch.zeros(2, 2, 3, 3, dtype=torch.long), "floating point"),
        (lambda: torch.zeros(2, 3, 3, 3), r"shape \(B, 2, h, w\)"),
        (lambda: torch.zeros(0, 2, 3, 3), "empty"),
        (lambda: torch.full((2, 2, 3, 3), float("nan")), "NaN"),
        (lambda: torch.zeros(2, 2, 3, 3, device="meta"), "'meta' device"),
    ],
)
def test_loss_validation(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        _prior(scale_factor=1.0).loss(make())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": (3,)}, "size must be"),
        ({"steps": 0}, "steps must be in"),
        ({"sampler": "ddpm", "eta": 0.5}, "eta applies to the 'ddim' sampler"),
        ({"eta": -1.0}, "eta must be in"),
        ({"temperature": 0.5}, "temperature must be 1.0"),
        ({"generator": 3}, "generator must be a torch.Generator"),
        ({"noise": torch.zeros(1, 2, 2, 2)}, "noise must have shape"),
    ],
)
def test_sample_validation(kwargs, message):
    prior = _prior(scale_factor=1.0)
    kwargs = {"size": (3, 3), **kwargs}
    with pytest.raises((ValueError, TypeError), match=message):
        prior.sample(2, **kwargs)


def test_a_vqvae_refuses_a_continuous_prior_of_other_channels():
    with pytest.raises(ValueError, match="channels=3 but the quantizer dim is 4"):
        _vqvae({"channels": 3})
