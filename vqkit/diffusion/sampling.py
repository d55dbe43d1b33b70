"""The sampling loops of latent diffusion: DDPM and DDIM ancestral steps, DDIM inversion.

*Denoising Diffusion Probabilistic Models*, Ho, Jain, Abbeel, 2020 (arXiv:2006.11239), Algorithm 2;
*Denoising Diffusion Implicit Models*, Song, Meng, Ermon, 2020 (arXiv:2010.02502), eq. 12 (the
η-controlled step) and §4.3 (η = 0 is an ODE that can be run backwards to encode a sample).

The loops are written against an ε-predictor ``eps_fn(x_t, t)`` and a diffusers scheduler
(``DDPMScheduler`` or ``DDIMScheduler``), so the same code runs the trained UNet and, in the tests,
the closed-form optimal denoiser of Gaussian data (``gaussian_optimal_eps``). The schedulers are
always handed ε: a v-predicting network is converted to ε before the step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["ddim_invert", "gaussian_optimal_eps", "sample_loop"]

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def gaussian_optimal_eps(
    x_t: torch.Tensor, alpha_bar: torch.Tensor, mean: float, std: float
) -> torch.Tensor:
    """The minimum-MSE ε-prediction when every element of x₀ is N(mean, std²) independently.

    With ``x_t = √ᾱ x₀ + √(1−ᾱ) ε``, ``(x_t, ε)`` is jointly Gaussian, so
    ``E[ε | x_t] = Cov(ε, x_t) / Var(x_t) · (x_t − √ᾱ μ) = √(1−ᾱ) (x_t − √ᾱ μ) / (ᾱ σ² + 1 − ᾱ)``.
    Driven through an exact sampler it must reproduce N(μ, σ²).

    Args:
        x_t: noisy samples, any shape.
        alpha_bar: ᾱ_t, a scalar tensor or one broadcastable to ``x_t``.
        mean: μ of the data.
        std: σ of the data.
    """
    alpha_bar = torch.as_tensor(alpha_bar, dtype=x_t.dtype, device=x_t.device)
    var = alpha_bar * std**2 + (1 - alpha_bar)  # Var(x_t)
    return (1 - alpha_bar).sqrt() * (x_t - alpha_bar.sqrt() * mean) / var


def _is_ddim(scheduler: object) -> bool:
    return type(scheduler).__name__ == "DDIMScheduler"


def sample_loop(
    eps_fn: EpsFn,
    scheduler: object,
    x: torch.Tensor,
    *,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    quantize_x0: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Run ``scheduler.timesteps`` from the noise ``x`` (x_T) down to x₀.

    Args:
        eps_fn: ``eps_fn(x_t, t) → ε̂`` with ``t`` a 0-d int64 tensor.
        scheduler: a diffusers ``DDPMScheduler`` or ``DDIMScheduler`` after ``set_timesteps``,
            built with ``prediction_type="epsilon"``.
        x: the starting noise x_T.
        eta: DDIM's η (0: deterministic; 1: DDPM-like variance); ignored by DDPM.
        generator: the source of every noise draw of the steps.
        quantize_x0: optional map applied to each step's predicted x₀ (LDM's
            ``quantize_denoised``); ε̂ is then recomputed from the quantised x₀ so that the
            scheduler's step uses it.

    Shape:
        - x: (B, C, h, w); output: the same.
    """
    alphas_cumprod = scheduler.alphas_cumprod.to(x.device)  # type: ignore[attr-defined]
    ddim = _is_ddim(scheduler)
    for t in scheduler.timesteps:  # type: ignore[attr-defined]
        eps = eps_fn(x, t)
        if quantize_x0 is not None:
            ab = alphas_cumprod[t].to(x.dtype)
            x0 = (x - (1 - ab).sqrt() * eps) / ab.sqrt()
            x0 = quantize_x0(x0)
            eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()
        if ddim:
            out = scheduler.step(eps, t, x, eta=eta, generator=generator)  # type: ignore[attr-defined]
        else:
            out = scheduler.step(eps, t, x, generator=generator)  # type: ignore[attr-defined]
        x = out.prev_sample
    return x


def _ddim_prev_alpha(scheduler: object, t: int) -> torch.Tensor:
    """ᾱ of the timestep a DDIM step from ``t`` lands on (diffusers' rule: t − T // S)."""
    cfg = scheduler.config  # type: ignore[attr-defined]
    prev = t - cfg.num_train_timesteps // scheduler.num_inference_steps  # type: ignore[attr-defined]
    if prev >= 0:
        return scheduler.alphas_cumprod[prev]  # type: ignore[attr-defined]
    return scheduler.final_alpha_cumprod  # type: ignore[attr-defined]


def ddim_invert(
    eps_fn: EpsFn, scheduler: object, x0: torch.Tensor, *, refine: int = 3
) -> torch.Tensor:
    """Encode x₀ into the x_T from which DDIM (η = 0) with ``scheduler`` returns x₀.

    Runs the η = 0 update backwards (Song et al. 2020, §4.3): each deterministic step
    ``x_p = √ᾱ_p (x_n − √(1−ᾱ_n) ε̂(x_n)) / √ᾱ_n + √(1−ᾱ_p) ε̂(x_n)`` is solved for ``x_n``;
    the usual inversion evaluates ε̂ at ``x_p`` instead, and ``refine`` fixed-point iterations
    ``x_n ← √ᾱ_n/√ᾱ_p (x_p − √(1−ᾱ_p) ε̂(x_n)) + √(1−ᾱ_n) ε̂(x_n)`` then make the step exact.

    Args:
        eps_fn: ``eps_fn(x_t, t) → ε̂``.
        scheduler: a diffusers ``DDIMScheduler`` after ``set_timesteps`` (the one the samples
            will be drawn with).
        x0: the clean latents.
        refine: fixed-point iterations per step (0: the plain approximation).
    """
    if not _is_ddim(scheduler):
        raise TypeError(f"ddim_invert needs a DDIMScheduler, got {type(scheduler).__name__}")
    x = x0
    for t in reversed(scheduler.timesteps):  # type: ignore[attr-defined]
        ab_n = scheduler.alphas_cumprod[t].to(x.device, x.dtype)  # type: ignore[attr-defined]
        ab_p = _ddim_prev_alpha(scheduler, int(t)).to(x.device, x.dtype)
        x_p = x
        eps = eps_fn(x_p, t)
        x0_hat = (x_p - (1 - ab_p).sqrt() * eps) / ab_p.sqrt()
        x = ab_n.sqrt() * x0_hat + (1 - ab_n).sqrt() * eps
        for _ in range(refine):
            eps = eps_fn(x, t)
            x = (ab_n / ab_p).sqrt() * (x_p - (1 - ab_p).sqrt() * eps) + (1 - ab_n).sqrt() * eps
    return x
