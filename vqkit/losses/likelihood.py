"""Decoder likelihoods p(x|z) of the continuous VAEs, each a negative log-likelihood in nats.

Every NLL is summed over all features of one example (pixels and channels), the scale of
Kingma & Welling, "Auto-Encoding Variational Bayes" (arXiv:1312.6114) and of the β-VAE papers.
The decoder network emits ``num_params`` tensors per data value (concatenated on dim 1):

- ``"gaussian"``: unit-variance Gaussian; the output is the mean.
- ``"diag_gaussian"``: Gaussian with a learned diagonal covariance; mean and log-variance.
- ``"bernoulli"``: Bernoulli; the output is the logit (data in [0, 1]).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from vqkit.losses.kl import at_least_float32 as _f32

__all__ = ["LIKELIHOODS", "Likelihood"]

_LOG_2PI = math.log(2.0 * math.pi)


class Likelihood:
    """A decoder distribution: NLL, mean and sampling from the decoder's raw output."""

    name: str
    num_params: int

    def nll(self, x: Tensor, out: Tensor) -> Tensor:
        """−log p(x|z) per example, shape (B,), in float32 at least."""
        raise NotImplementedError

    def mean(self, out: Tensor) -> Tensor:
        """E[x|z], the shape of ``x``."""
        raise NotImplementedError

    def logvar(self, out: Tensor) -> Tensor | None:
        """The decoder log-variance where it is learned, else None."""
        return None

    def sample(self, out: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """x ~ p(x|z), the shape of ``x``."""
        raise NotImplementedError


class _Gaussian(Likelihood):
    name = "gaussian"
    num_params = 1

    def nll(self, x: Tensor, out: Tensor) -> Tensor:
        sq = (_f32(x) - _f32(out)).square()  # (B, *)
        return 0.5 * (sq + _LOG_2PI).flatten(1).sum(1)  # (B,)

    def mean(self, out: Tensor) -> Tensor:
        return out

    def sample(self, out: Tensor, generator: torch.Generator | None = None) -> Tensor:
        eps = torch.randn(out.shape, generator=generator, device=out.device, dtype=out.dtype)
        return out + eps


class _DiagGaussian(Likelihood):
    name = "diag_gaussian"
    num_params = 2

    def nll(self, x: Tensor, out: Tensor) -> Tensor:
        mean, logvar = _f32(out).chunk(2, dim=1)  # each (B, C, ...)
        sq = (_f32(x) - mean).square()
        return 0.5 * (sq * torch.exp(-logvar) + logvar + _LOG_2PI).flatten(1).sum(1)  # (B,)

    def mean(self, out: Tensor) -> Tensor:
        return out.chunk(2, dim=1)[0]

    def logvar(self, out: Tensor) -> Tensor:
        return out.chunk(2, dim=1)[1]

    def sample(self, out: Tensor, generator: torch.Generator | None = None) -> Tensor:
        mean, logvar = out.chunk(2, dim=1)
        eps = torch.randn(mean.shape, generator=generator, device=out.device, dtype=out.dtype)
        return mean + torch.exp(0.5 * logvar) * eps


class _Bernoulli(Likelihood):
    name = "bernoulli"
    num_params = 1

    def nll(self, x: Tensor, out: Tensor) -> Tensor:
        bce = F.binary_cross_entropy_with_logits(_f32(out), _f32(x), reduction="none")
        return bce.flatten(1).sum(1)  # (B,)

    def mean(self, out: Tensor) -> Tensor:
        return torch.sigmoid(out)

    def sample(self, out: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return torch.bernoulli(torch.sigmoid(out), generator=generator)


LIKELIHOODS: dict[str, Likelihood] = {
    lik.name: lik for lik in (_Gaussian(), _DiagGaussian(), _Bernoulli())
}


def get_likelihood(name: str) -> Likelihood:
    """The likelihood called ``name``; raises ValueError listing the known ones."""
    if name not in LIKELIHOODS:
        raise ValueError(f"unknown likelihood {name!r}; expected one of {sorted(LIKELIHOODS)}")
    return LIKELIHOODS[name]
