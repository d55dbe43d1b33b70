"""MADEFlowPrior: an autoregressive-flow prior for continuous VAE latents.

"Variational Lossy Autoencoder", Chen, Kingma, Salimans, Duan, Dhariwal, Schulman, Sutskever and
Abbeel, 2016, arXiv:1611.02731, §2.2 / §3: the prior p(z) is an autoregressive flow (AF) from z
to white noise,

    ε = z ⊙ σ(z) + μ(z),    σ_i, μ_i functions of z_{<i} only (a MADE network),
    log p(z) = log N(ε; 0, I) + Σ_i log |σ_i|,

so the density of z costs one network pass, and sampling inverts one dimension at a time
(z_i = (ε_i - μ_i) / σ_i, D passes). MADE: Germain et al. 2015, arXiv:1502.03509.

Scale parameterisation: ``σ = softplus(s + c) + min_scale`` with ``c`` chosen so that σ = 1 when
the network outputs s = 0. The output layer starts at zero, so the initial flow is the identity
and the initial prior is N(0, I). σ stays in [min_scale, ∞) without an ``exp`` that could
overflow, and ``log σ`` is bounded below by ``log(min_scale)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar, cast

import torch
import torch.nn.functional as F
from torch import nn

from vqkit._checks import check_generator, check_number, check_positive_int
from vqkit._hub import HubMixin
from vqkit._registry import register
from vqkit.autoregressive.made import MaskedMLP
from vqkit.autoregressive.masked import MaskedLinear
from vqkit.contracts import LossOutput, likelihood_loss

__all__ = ["MADEFlowPrior"]

_LOG_2PI = math.log(2 * math.pi)


@register("prior", "made_flow")
class MADEFlowPrior(nn.Module, HubMixin):
    """Autoregressive flow prior ε = z ⊙ σ(z_<i) + μ(z_<i) over ``dim``-dimensional latents.

    Args:
        dim: latent dimension D.
        hidden_features: widths of the MADE's hidden layers (VLAE default: two of 512).
        ordering: ``"natural"`` (σ_i, μ_i depend on z_0..z_{i-1}), ``"reversed"`` or
            ``"random"``.
        seed: seed of the MADE masks.
        min_scale: lower bound of σ.
        device: factory arguments for the parameters.
        dtype: factory arguments for the parameters.

    Shape:
        - z: (B, D) float
        - ``forward(z)``: (ε (B, D), log_det (B,)); ``inverse(ε)``: (B, D);
          ``log_prob(z)``: (B,) nats; ``sample(n)``: (n, D).
    """

    domain: ClassVar[str] = "continuous"
    exact_likelihood: ClassVar[bool] = True
    num_embeddings: int | None = None
    num_classes: int | None = None

    def __init__(
        self,
        dim: int,
        hidden_features: Sequence[int] = (512, 512),
        ordering: str = "natural",
        seed: int = 0,
        min_scale: float = 1e-3,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        check_positive_int("MADEFlowPrior", "dim", dim)
        check_number(
            "MADEFlowPrior", "min_scale", min_scale, low=0, high=1, low_open=True, high_open=True
        )
        self.dim, self.min_scale = dim, float(min_scale)
        self.net = MaskedMLP(
            dim,
            hidden_features,
            in_per_feature=1,
            out_per_feature=2,
            ordering=ordering,
            seed=seed,
            device=device,
            dtype=dtype,
        )
        last = cast(MaskedLinear, self.net.layers[-1])  # ModuleList items are typed Module
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        # softplus(c) + min_scale = 1 at s = 0: c = log(exp(1 - min_scale) - 1).
        self._scale_offset = math.log(math.expm1(1.0 - self.min_scale))

    def _check(self, z: torch.Tensor, name: str = "z") -> None:
        if not isinstance(z, torch.Tensor) or not z.dtype.is_floating_point:
            raise TypeError(
                f"{name} must be a floating-point tensor (B, {self.dim}), got {z!r:.60}"
            )
        if z.dim() != 2 or z.shape[1] != self.dim:
            raise ValueError(f"{name} must have shape (B, {self.dim}), got {tuple(z.shape)}")
        if z.device.type == "meta":
            raise ValueError(f"MADEFlowPrior: {name} is on the 'meta' device (shape only, no data)")

    def shift_and_scale(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """μ(z) and σ(z), each (B, D); coordinate i depends only on z's earlier coordinates."""
        params = self.net(z).view(z.shape[0], self.dim, 2)  # (B, D, 2), unit d·2 + p
        shift = params[..., 0]
        scale = F.softplus(params[..., 1] + self._scale_offset) + self.min_scale
        return shift, scale

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z -> (ε, log|det ∂ε/∂z|): one network pass.

        Shape:
            - z: (B, D); output: ε (B, D), log_det (B,).
        """
        self._check(z)
        shift, scale = self.shift_and_scale(z)
        return z * scale + shift, scale.log().sum(dim=1)

    def inverse(self, eps: torch.Tensor) -> torch.Tensor:
        """ε -> z, one coordinate per pass in the ordering (D passes).

        After pass t the first t coordinates in the ordering are exact, because each depends only
        on coordinates already fixed; D passes make all of them exact.

        Shape:
            - eps: (B, D); output: (B, D).
        """
        self._check(eps, "eps")
        z = torch.zeros_like(eps)
        for _ in range(self.dim):
            shift, scale = self.shift_and_scale(z)
            z = (eps - shift) / scale
        return z

    def log_prob(self, z: torch.Tensor, cond: None = None) -> torch.Tensor:
        """log p(z) = log N(ε; 0, I) + Σ_i log σ_i, in nats.

        Shape:
            - z: (B, D); output: (B,).
        """
        if cond is not None:
            raise ValueError("cond was given but MADEFlowPrior is unconditional")
        eps, log_det = self(z)
        return -0.5 * (eps.pow(2) + _LOG_2PI).sum(dim=1) + log_det

    def loss(self, z: torch.Tensor, cond: None = None) -> LossOutput:
        """Training objective: negative log-density in nats per latent dimension; an empty batch
        raises ``ValueError``."""
        log_prob = self.log_prob(z, cond)
        if log_prob.shape[0] == 0:
            raise ValueError(
                "MADEFlowPrior.loss: the batch is empty; the mean NLL of no latents is undefined"
            )
        return likelihood_loss(log_prob, self.dim)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw ``n`` latents: ε ~ N(0, I), then z = inverse(ε) (D passes).

        Shape:
            - Output: (n, D) on the prior's device and dtype.
        """
        weight = cast(MaskedLinear, self.net.layers[0]).weight
        check_positive_int("MADEFlowPrior.sample", "n", n)
        check_generator("MADEFlowPrior.sample", generator, weight.device)
        if weight.device.type == "meta":
            raise ValueError("MADEFlowPrior.sample: the prior is on the 'meta' device (no weights)")
        gen_device = generator.device if generator is not None else weight.device
        eps = torch.randn(n, self.dim, generator=generator, device=gen_device, dtype=weight.dtype)
        return self.inverse(eps.to(weight.device))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, min_scale={self.min_scale}"
