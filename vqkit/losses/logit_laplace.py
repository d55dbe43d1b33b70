"""The logit-Laplace reconstruction likelihood of the DALL-E dVAE, with its pixel map and unmap.

Ramesh et al., "Zero-Shot Text-to-Image Generation" (arXiv:2102.12092), §A.3: pixel values in
[0, 1] are mapped into (ε, 1 − ε) by ``y = (1 − 2ε)·x + ε`` with ε = 0.1 (so the likelihood
never meets the bounds), and the decoder parameterises, per value, the logit-Laplace density
on (0, 1)

    f(y | μ, b) = 1 / (2·b·y·(1 − y)) · exp(−|logit(y) − μ| / b),

i.e. ``logit(y)`` is Laplace(μ, b). The decoder emits two maps per image channel, μ and ln b
(concatenated on dim 1: ``(B, 2C, H, W)``, the first C are μ); the reconstruction is
``unmap(sigmoid(μ))``, the image of the Laplace median, as in openai/DALL-E's notebook.

The NLL here is that of the mapped value ``y`` (DALL-E's); the density of the original pixel
differs by the constant Jacobian ``1 − 2ε`` (``−log p(x) = −log f(y) − log(1 − 2ε)``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from vqkit._checks import check_choice, check_number, check_real_device
from vqkit._registry import register
from vqkit.contracts import LossOutput

__all__ = ["LogitLaplace", "logit_laplace_nll", "map_pixels", "unmap_pixels"]

DEFAULT_EPS = 0.1  # Ramesh et al. 2021, §A.3
_REDUCTIONS = ("mean", "sum")


def map_pixels(x: Tensor, eps: float = DEFAULT_EPS) -> Tensor:
    """[0, 1] → [ε, 1 − ε]: ``(1 − 2ε)·x + ε``."""
    return (1 - 2 * eps) * x + eps


def unmap_pixels(y: Tensor, eps: float = DEFAULT_EPS) -> Tensor:
    """The inverse of ``map_pixels``, clamped to [0, 1]: ``clamp((y − ε) / (1 − 2ε), 0, 1)``."""
    return ((y - eps) / (1 - 2 * eps)).clamp(0.0, 1.0)


def logit_laplace_nll(y: Tensor, mu: Tensor, log_b: Tensor) -> Tensor:
    """−log f(y | μ, b) elementwise, for ``y`` in (0, 1) (already mapped), in fp32 at least.

    ``log 2 + ln b + log y + log(1 − y) + |logit(y) − μ| · exp(−ln b)``.
    """
    dtype = torch.promote_types(y.dtype, torch.float32)
    y, mu, log_b = y.to(dtype), mu.to(dtype), log_b.to(dtype)
    log_y, log_1my = torch.log(y), torch.log1p(-y)
    return (
        math.log(2.0) + log_b + log_y + log_1my + (log_y - log_1my - mu).abs() * torch.exp(-log_b)
    )


@register("loss", "logit_laplace")
class LogitLaplace(nn.Module):
    """DALL-E's logit-Laplace likelihood of images in [0, 1] given the decoder's (μ, ln b).

    ``forward(x, stats)`` maps ``x`` with ``map_pixels`` and returns the NLL of the mapped
    values. Any model whose decoder emits ``num_params = 2`` maps per image channel can use it
    (``DVAE`` does); ``mean(stats)`` is the reconstruction in [0, 1].

    Args:
        eps: ε of the pixel map (DALL-E: 0.1), in (0, 0.5).
        reduction: ``"mean"``: nats per pixel value (the mean over batch and values, the scale
            of a per-value MSE); ``"sum"``: nats per image (the sum over values, batch mean; the
            scale of the ELBO).

    Shape:
        - x: (B, C, *) images in [0, 1]
        - stats: (B, 2C, *), μ then ln b on dim 1
        - Output: ``LossOutput`` with a scalar ``loss`` and ``losses`` ``"nll"`` (the same,
          detached) and ``"nll_per_image"`` (nats per image, batch mean)

    Example:
        >>> lik = LogitLaplace()
        >>> x = torch.rand(2, 3, 8, 8)
        >>> out = lik(x, torch.zeros(2, 6, 8, 8))
        >>> out.loss.shape, lik.mean(torch.zeros(2, 6, 8, 8)).shape
        (torch.Size([]), torch.Size([2, 3, 8, 8]))
    """

    num_params = 2

    def __init__(self, eps: float = DEFAULT_EPS, reduction: str = "mean") -> None:
        super().__init__()
        name = type(self).__name__
        self.eps = check_number(name, "eps", eps, low=0.0, high=0.5, low_open=True, high_open=True)
        self.reduction = check_choice(name, "reduction", reduction, _REDUCTIONS)

    def map(self, x: Tensor) -> Tensor:
        """[0, 1] → [ε, 1 − ε]."""
        return map_pixels(x, self.eps)

    def unmap(self, y: Tensor) -> Tensor:
        """[ε, 1 − ε] → [0, 1], clamped."""
        return unmap_pixels(y, self.eps)

    def mean(self, stats: Tensor) -> Tensor:
        """The reconstruction ``unmap(sigmoid(μ))`` (B, C, *) from the decoder's (B, 2C, *)."""
        self._check_stats(stats)
        return self.unmap(torch.sigmoid(stats[:, : stats.shape[1] // 2]))

    def nll(self, x: Tensor, stats: Tensor) -> Tensor:
        """−log f(map(x)) per value, the shape of ``x`` (fp32 at least)."""
        self._check(x, stats)
        mu, log_b = stats.chunk(2, dim=1)  # each (B, C, *)
        return logit_laplace_nll(self.map(x), mu, log_b)

    def forward(self, x: Tensor, stats: Tensor) -> LossOutput:
        values = self.nll(x, stats)  # (B, C, *)
        per_image = values.flatten(1).sum(1).mean()
        loss = values.mean() if self.reduction == "mean" else per_image
        return LossOutput(loss, {"nll": loss.detach(), "nll_per_image": per_image.detach()})

    def _check_stats(self, stats: Tensor) -> None:
        name = type(self).__name__
        if not isinstance(stats, Tensor):
            raise TypeError(f"{name} expects the decoder output as a tensor, got {type(stats)}")
        check_real_device(name, stats, "decoder output")
        if not stats.is_floating_point():
            raise TypeError(f"{name} expects a floating decoder output, got {stats.dtype}")
        if stats.ndim < 2 or stats.shape[1] % 2:
            raise ValueError(
                f"{name} expects a decoder output (B, 2C, *) holding μ and ln b per image "
                f"channel, got shape {tuple(stats.shape)}"
            )

    def _check(self, x: Tensor, stats: Tensor) -> None:
        name = type(self).__name__
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} expects images as a tensor, got {type(x).__name__}")
        check_real_device(name, x, "images")
        if not x.is_floating_point():
            raise TypeError(f"{name} expects floating images in [0, 1], got {x.dtype}")
        self._check_stats(stats)
        expected = (x.shape[0], 2 * x.shape[1], *x.shape[2:]) if x.ndim >= 2 else None
        if expected is None or tuple(stats.shape) != expected:
            raise ValueError(
                f"{name} expects a decoder output of shape {expected} (μ and ln b for each of the "
                f"images' channels) for images of shape {tuple(x.shape)}, got "
                f"{tuple(stats.shape)}"
            )
        if x.shape[0] == 0:
            raise ValueError(f"{name} received an empty batch (B = 0)")
        if torch.compiler.is_compiling():
            return
        low, high = float(x.detach().min()), float(x.detach().max())
        if not (low >= 0.0 and high <= 1.0):  # also catches NaN
            raise ValueError(
                f"{name} expects images in [0, 1] (vqkit's image range), got values in "
                f"[{low:g}, {high:g}]"
            )

    def extra_repr(self) -> str:
        return f"eps={self.eps}, reduction={self.reduction!r}"
