"""KL terms of continuous VAEs: the closed-form Gaussian KL and the β / capacity-controlled loss.

Papers:
    - Kingma & Welling, "Auto-Encoding Variational Bayes", arXiv:1312.6114 (Gaussian KL, App. B).
    - Higgins et al., "β-VAE: Learning Basic Visual Concepts with a Constrained Variational
      Framework", ICLR 2017 ("H-type": reconstruction + β·KL).
    - Burgess et al., "Understanding disentangling in β-VAE", arXiv:1804.03599 ("B-type":
      reconstruction + γ·|KL − C|, with the capacity C rising linearly from 0 to C_max;
      the paper uses γ = 1000, C_max = 25 nats over 100,000 iterations on dSprites).

Scale convention (the paper's): every term is in nats *per example*. The reconstruction term is
the negative log-likelihood −log p(x|z) summed over all pixels/features of one example, the KL is
summed over all latent dimensions of one example, and both are then averaged over the batch. γ,
β and C are only meaningful on this scale. ``kld_weight_to_beta`` converts the weights of
codebases that average the reconstruction over pixels (``F.mse_loss``) instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from vqkit._checks import check_bool, check_real_device
from vqkit._registry import register

__all__ = [
    "CapacityKL",
    "KLLossOutput",
    "beta_kl_loss",
    "gaussian_kl",
    "kl_loss",
    "kld_weight_to_beta",
]


def at_least_float32(t: Tensor) -> Tensor:
    """``t`` in float32, or in float64 if it already is (the precision of every loss term)."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, diag(exp(logvar))) ‖ N(0, I)) in nats, summed over every non-batch dimension.

    Closed form: ``0.5 * Σ (mu² + exp(logvar) − 1 − logvar)``, computed in float32 at least.

    Args:
        mu: posterior means.
        logvar: posterior log-variances, same shape as ``mu``.

    Shape:
        - mu, logvar: (B, *) with at least one dimension after the batch
        - Output: (B,)
    """
    for name, t in (("mu", mu), ("logvar", logvar)):
        if not isinstance(t, Tensor):
            raise TypeError(f"gaussian_kl expects {name} to be a Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"gaussian_kl expects a floating-point {name}, got {t.dtype}")
    if mu.shape != logvar.shape:
        raise ValueError(
            f"gaussian_kl expects mu and logvar of the same shape, got {tuple(mu.shape)} "
            f"and {tuple(logvar.shape)}"
        )
    if mu.dim() < 2:
        raise ValueError(
            f"gaussian_kl expects (B, latent_dim, ...) inputs, got shape {tuple(mu.shape)}"
        )
    mu, logvar = at_least_float32(mu), at_least_float32(logvar)
    kl = 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar)  # (B, *)
    return kl.flatten(1).sum(1)  # (B,)


@dataclass
class KLLossOutput:
    """What ``CapacityKL`` returns.

    Attributes:
        loss: scalar training objective (keeps its graph).
        losses: detached scalars for logging: ``"recon"`` (mean −log p(x|z)), ``"kl"`` (mean KL),
            ``"nelbo"`` (recon + kl, the negative ELBO whatever β/γ are), ``"capacity"`` (C, B-type
            only) and ``"total"`` (the objective).
    """

    loss: Tensor
    losses: dict[str, Tensor]


@register("loss", "capacity_kl")
class CapacityKL(nn.Module):
    """β-VAE objective: H-type ``rec + β·KL`` or B-type ``rec + γ·|KL − C(t)|``.

    Pass ``beta`` for the H-type (Higgins et al. 2017); otherwise the loss is B-type (Burgess et
    al. 2018, arXiv:1804.03599) with the paper's defaults γ = 1000, C_max = 25 nats, 100,000
    steps. All terms follow the paper's scale (see the module docstring): ``rec`` and ``KL`` are
    per-example sums averaged over the batch, and the B-type penalty is taken on the batch-mean KL,
    ``γ·|mean_b KL_b − C|``, as the first author's tuning rule ("keep the batch-average KL within
    about 1 nat of C") reads.

    The capacity ``C(t) = C_max · min(t / capacity_steps, 1)`` where ``t`` is the buffer
    ``iteration`` (saved in ``state_dict``). ``t`` counts optimizer steps. With ``auto_step=True``
    (the default) it advances by one after each call made in training mode with gradients enabled,
    i.e. once per training step for a trainer that does one forward per optimizer step; calls in
    ``eval()`` mode, under ``torch.no_grad()`` or ``torch.inference_mode()`` (validation,
    sampling, evaluation) never move it. With gradient accumulation (several forwards per
    optimizer step), pass ``auto_step=False`` and call ``step`` after each
    ``optimizer.step()``. The value of C used by a call is the one before that call's advance,
    so the first training step uses C(0) = 0.

    Args:
        beta: H-type weight β on the KL (paper symbol β). Excludes the B-type arguments.
        gamma: B-type weight γ on ``|KL − C|``. Default 1000.0.
        max_capacity: C_max in nats. Default 25.0.
        capacity_steps: optimizer steps over which C rises from 0 to C_max. Default 100_000.
        auto_step: advance the step counter in training forwards (see above).

    Shape:
        - recon_nll: (B,) nats per example, −log p(x|z) summed over the example's features
        - kl: (B,) nats per example, summed over latent dimensions
        - Output: ``KLLossOutput`` with a scalar ``loss``
    """

    iteration: Tensor

    def __init__(
        self,
        beta: float | None = None,
        gamma: float | None = None,
        max_capacity: float | None = None,
        capacity_steps: int | None = None,
        auto_step: bool = True,
    ) -> None:
        super().__init__()
        b_args = {"gamma": gamma, "max_capacity": max_capacity, "capacity_steps": capacity_steps}
        if beta is not None:
            given = sorted(k for k, v in b_args.items() if v is not None)
            if given:
                raise ValueError(
                    f"CapacityKL: beta selects the H-type loss (rec + beta*KL) and excludes the "
                    f"B-type arguments, but {given} were also given; pass either beta or "
                    f"gamma/max_capacity/capacity_steps"
                )
            self.beta: float | None = _non_negative("beta", beta)
            self.gamma: float | None = None
            self.max_capacity: float | None = None
            self.capacity_steps: int | None = None
        else:
            self.beta = None
            self.gamma = _non_negative("gamma", 1000.0 if gamma is None else gamma)
            self.max_capacity = _non_negative(
                "max_capacity", 25.0 if max_capacity is None else max_capacity
            )
            steps = 100_000 if capacity_steps is None else capacity_steps
            if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
                raise ValueError(f"CapacityKL: capacity_steps must be an int >= 1, got {steps!r}")
            self.capacity_steps = steps
        self.auto_step = check_bool("CapacityKL", "auto_step", auto_step)
        self.register_buffer("iteration", torch.zeros((), dtype=torch.long))

    @property
    def is_capacity_controlled(self) -> bool:
        """True for the B-type loss (γ·|KL − C|), False for the H-type (β·KL)."""
        return self.beta is None

    @property
    def capacity(self) -> Tensor:
        """C at the current step, in nats (a float32 scalar; 0 for the H-type loss)."""
        if not self.is_capacity_controlled:
            return torch.zeros((), device=self.iteration.device)
        assert self.capacity_steps is not None  # B-type: both are set
        assert self.max_capacity is not None
        progress = (self.iteration.float() / self.capacity_steps).clamp(max=1.0)
        return progress * self.max_capacity

    @torch.no_grad()
    def step(self, n: int = 1) -> None:
        """Advance the step counter by ``n`` (call after ``optimizer.step()`` if ``auto_step``
        is False)."""
        self.iteration.add_(n)

    def forward(self, recon_nll: Tensor, kl: Tensor) -> KLLossOutput:
        _check_per_example("recon_nll", recon_nll)
        _check_per_example("kl", kl)
        if recon_nll.shape != kl.shape:
            raise ValueError(
                f"CapacityKL expects recon_nll and kl of the same shape (B,), got "
                f"{tuple(recon_nll.shape)} and {tuple(kl.shape)}"
            )
        if recon_nll.shape[0] == 0:
            raise ValueError(
                "CapacityKL received an empty batch (B = 0); its terms are batch means and are "
                "undefined for none"
            )
        rec = at_least_float32(recon_nll).mean()
        kl_mean = at_least_float32(kl).mean()
        losses = {"recon": rec.detach(), "kl": kl_mean.detach(), "nelbo": (rec + kl_mean).detach()}
        if self.is_capacity_controlled:
            capacity = self.capacity
            assert self.gamma is not None  # B-type
            total = rec + self.gamma * (kl_mean - capacity).abs()
            losses["capacity"] = capacity
            if self.auto_step and self.training and torch.is_grad_enabled():
                self.step()
        else:
            assert self.beta is not None  # H-type
            total = rec + self.beta * kl_mean
        losses["total"] = total.detach()
        return KLLossOutput(loss=total, losses=losses)

    def extra_repr(self) -> str:
        if not self.is_capacity_controlled:
            return f"H-type, beta={self.beta}"
        return (
            f"B-type, gamma={self.gamma}, max_capacity={self.max_capacity}, "
            f"capacity_steps={self.capacity_steps}, auto_step={self.auto_step}"
        )


@register("loss", "kl")
def kl_loss() -> CapacityKL:
    """The plain VAE objective, the negative ELBO ``rec + KL`` (an H-type loss with β = 1)."""
    return CapacityKL(beta=1.0)


@register("loss", "beta_kl")
def beta_kl_loss(beta: float = 4.0) -> CapacityKL:
    """H-type β-VAE objective ``rec + β·KL`` (Higgins et al. 2017; β = 4 for dSprites)."""
    return CapacityKL(beta=beta)


def kld_weight_to_beta(
    kld_weight: float,
    *,
    num_pixels: int | None = None,
    reconstruction: str = "mse",
    beta: float = 1.0,
) -> float:
    """The KL weight on vqkit's scale equivalent to another codebase's ``kld_weight``.

    Many codebases minimise ``rec + kld_weight·β·KL`` (or ``... ·γ·|KL − C|``) where ``rec`` is
    ``F.mse_loss`` / ``F.binary_cross_entropy`` averaged over the ``num_pixels`` = C·H·W values of
    an image. vqkit's reconstruction term is the per-example negative log-likelihood summed over
    pixels: ``0.5·Σ(x − x̂)² + const`` for the unit-variance Gaussian decoder (``"mse"``) and
    ``Σ BCE`` for the Bernoulli decoder (``"bce"``). Multiplying their loss by ``num_pixels/2``
    (MSE) or ``num_pixels`` (BCE) turns their reconstruction term into ours, so the same minimiser
    is reached with β (or γ) on our scale equal to::

        beta * kld_weight * num_pixels * (0.5 for "mse", 1 for "bce")

    Pass ``num_pixels=None`` when their reconstruction is already summed over pixels. Example:
    AntixK/PyTorch-VAE's B-type config (γ = 10, kld_weight = 0.00025, 64×64×3 images, pixel-mean
    MSE) is γ ≈ 15.4 here, not the paper's 1000. (The overall loss scale differs by the same
    factor, i.e. the learning rate for SGD; Adam is nearly invariant to it.)

    Args:
        kld_weight: their KL multiplier (AntixK's ``kld_weight`` / ``M_N``).
        num_pixels: number of values their reconstruction loss averages over per example
            (C·H·W), or None when it is summed.
        reconstruction: ``"mse"`` (squared error, maps onto a unit-variance Gaussian) or
            ``"bce"`` (binary cross-entropy, maps onto a Bernoulli decoder).
        beta: their β or γ, multiplied in.
    """
    if reconstruction not in ("mse", "bce"):
        raise ValueError(f"reconstruction must be 'mse' or 'bce', got {reconstruction!r}")
    if num_pixels is not None and (not isinstance(num_pixels, int) or num_pixels < 1):
        raise ValueError(f"num_pixels must be a positive int or None, got {num_pixels!r}")
    pixels = 1 if num_pixels is None else num_pixels
    return beta * kld_weight * pixels * (0.5 if reconstruction == "mse" else 1.0)


def _non_negative(name: str, value: float) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"CapacityKL: {name} must be a number >= 0, got {value!r}")
    return float(value)


def _check_per_example(name: str, t: Tensor) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"CapacityKL expects {name} to be a Tensor, got {type(t).__name__}")
    check_real_device("CapacityKL", t, name)
    if t.dim() != 1 or not t.is_floating_point():
        raise ValueError(
            f"CapacityKL expects {name} as a floating (B,) tensor of per-example nats, got "
            f"shape {tuple(t.shape)} and dtype {t.dtype}"
        )
