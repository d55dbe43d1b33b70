"""Image and code metrics: MSE, PSNR, SSIM, codebook usage and perplexity, bits per dimension.

SSIM follows Wang et al., "Image quality assessment: from error visibility to structural
similarity" (IEEE TIP 2004) with scikit-image's conventions (``structural_similarity``): a 7×7
uniform window with sample covariance by default, or an 11-tap Gaussian window (σ = 1.5,
truncated at 3.5 σ) with ``gaussian_weights=True``; K1 = 0.01, K2 = 0.03; the SSIM map is averaged
after cropping ``(win_size - 1) // 2`` pixels from each border; colour images are averaged over
channels. The result agrees with scikit-image to float rounding.

Bits per dimension: ``bits/dim = NLL_nats / (num_dims · ln 2)``, where ``num_dims`` counts what the
model's likelihood is over: the ``h · w`` latent positions for a prior over VQ codes, the
``C · H · W`` pixel values for a model of images.
"""

from __future__ import annotations

import math
from typing import overload

import torch
import torch.nn.functional as F

__all__ = ["CodebookUsage", "bits_per_dim", "bits_per_latent", "mse", "psnr", "ssim"]


def _check_pair(x: torch.Tensor, y: torch.Tensor, name: str) -> None:
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError(f"{name} expects two tensors, got {type(x).__name__}, {type(y).__name__}")
    if x.shape != y.shape:
        raise ValueError(f"{name} needs equal shapes, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.ndim < 2:
        raise ValueError(f"{name} expects a batch (B, ...), got shape {tuple(x.shape)}")


def mse(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error of each sample.

    Shape:
        - x, y: ``(B, ...)``
        - Output: ``(B,)``
    """
    _check_pair(x, y, "mse")
    return (
        (x.double() - y.double())
        .square()
        .flatten(1)
        .mean(1)
        .to(torch.promote_types(x.dtype, torch.float32))
    )


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio of each sample, ``10 · log10(data_range² / MSE)`` in dB.

    Identical samples give ``inf``. Average the per-sample values for a dataset figure.

    Shape:
        - x, y: ``(B, ...)``
        - Output: ``(B,)``
    """
    if data_range <= 0:
        raise ValueError(f"data_range must be positive, got {data_range}")
    err = mse(x, y).double()
    return (10 * torch.log10(data_range**2 / err)).to(torch.promote_types(x.dtype, torch.float32))


def _gaussian_kernel(sigma: float, truncate: float) -> torch.Tensor:
    # As scipy.ndimage.gaussian_filter: radius int(truncate·σ + 0.5), weights normalised to 1.
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    w = torch.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


def _symmetric_pad(x: torch.Tensor, pad: int) -> torch.Tensor:
    # scipy.ndimage's "reflect" mode (d c b a | a b c d | d c b a), which torch does not have.
    if pad == 0:
        return x
    h, w = x.shape[-2:]

    def index(n: int) -> torch.Tensor:
        i = torch.arange(-pad, n + pad)
        period = 2 * n
        i = torch.remainder(i, period)
        return torch.where(i < n, i, period - 1 - i).to(x.device)

    return x.index_select(-2, index(h)).index_select(-1, index(w))


def _filter(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Separable filter of ``(N, 1, H, W)`` with ``kernel``, "reflect" borders, same size."""
    k = kernel.numel()
    x = _symmetric_pad(x, k // 2)
    x = F.conv2d(x, kernel.view(1, 1, k, 1))  # (N, 1, H, W + k - 1)
    return F.conv2d(x, kernel.view(1, 1, 1, k))  # (N, 1, H, W)


def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: float = 1.0,
    *,
    win_size: int | None = None,
    gaussian_weights: bool = False,
    sigma: float = 1.5,
    use_sample_covariance: bool = True,
    K1: float = 0.01,
    K2: float = 0.03,
) -> torch.Tensor:
    """Mean structural similarity of each image, as scikit-image's ``structural_similarity``.

    Args:
        x: images; grayscale or colour (SSIM is computed per channel and averaged).
        y: images to compare with ``x``, same shape.
        data_range: the range of the pixel values (1.0 for images in ``[0, 1]``, 255 for bytes).
        win_size: odd window side; defaults to 7 (uniform) or 11 (Gaussian, σ = 1.5).
        gaussian_weights: Gaussian instead of uniform window weights.
        sigma: standard deviation of the Gaussian window.
        use_sample_covariance: normalise (co)variances by ``N - 1`` rather than ``N``. Set
            ``gaussian_weights=True, use_sample_covariance=False`` to match Wang et al. (2004).
        K1: the stabilising constants of the paper.
        K2: the stabilising constants of the paper.

    Shape:
        - x, y: ``(B, C, H, W)`` or ``(B, H, W)``
        - Output: ``(B,)`` in float64
    """
    _check_pair(x, y, "ssim")
    if x.ndim == 3:
        x, y = x.unsqueeze(1), y.unsqueeze(1)
    if x.ndim != 4:
        raise ValueError(f"ssim expects (B, C, H, W) or (B, H, W) images, got {tuple(x.shape)}")
    if data_range <= 0:
        raise ValueError(f"data_range must be positive, got {data_range}")
    if K1 < 0 or K2 < 0 or sigma <= 0:
        raise ValueError(f"K1, K2 must be >= 0 and sigma > 0, got {K1}, {K2}, {sigma}")
    truncate = 3.5
    if win_size is None:
        win_size = 2 * int(truncate * sigma + 0.5) + 1 if gaussian_weights else 7
    if win_size % 2 != 1 or win_size < 1:
        raise ValueError(f"win_size must be a positive odd number, got {win_size}")
    b, c, h, w = x.shape
    if h < win_size or w < win_size:
        raise ValueError(
            f"win_size {win_size} exceeds the image extent {h}x{w}; pass a smaller odd win_size"
        )
    if gaussian_weights:
        kernel = _gaussian_kernel(sigma, truncate)
    else:
        kernel = torch.full((win_size,), 1.0 / win_size, dtype=torch.float64)
    kernel = kernel.to(x.device)
    # Every channel is an image of its own: (B*C, 1, H, W), in float64 as scikit-image does.
    x = x.reshape(b * c, 1, h, w).double()
    y = y.reshape(b * c, 1, h, w).double()
    moments = _filter(torch.cat([x, y, x * x, y * y, x * y]), kernel)  # (5·B·C, 1, H, W)
    ux, uy, uxx, uyy, uxy = moments.chunk(5)
    n_points = win_size**2
    cov_norm = n_points / (n_points - 1) if use_sample_covariance else 1.0
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    s_map = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    pad = (win_size - 1) // 2
    s_map = s_map[..., pad : h - pad, pad : w - pad]  # (B*C, 1, H - 2p, W - 2p)
    return s_map.flatten(1).mean(1).view(b, c).mean(1)  # (B,)


def bits_per_dim(nll_nats: torch.Tensor | float, num_dims: int) -> torch.Tensor | float:
    """``NLL_nats / (num_dims · ln 2)``: a per-sample negative log-likelihood in bits per dimension.

    Args:
        nll_nats: negative log-likelihood of one sample (or a tensor of them), in nats.
        num_dims: dimensions the likelihood covers: ``h · w`` latent positions for a prior over
            codes, ``C · H · W`` for a model of pixels.
    """
    if num_dims <= 0:
        raise ValueError(f"num_dims must be positive, got {num_dims}")
    return nll_nats / (num_dims * math.log(2))


@overload
def bits_per_latent(nll_nats: torch.Tensor, positions: int) -> torch.Tensor: ...
@overload
def bits_per_latent(nll_nats: float, positions: int) -> float: ...
def bits_per_latent(nll_nats: torch.Tensor | float, positions: int) -> torch.Tensor | float:
    """Bits per latent position: ``NLL_nats / (positions · ln 2)``.

    The one name vqkit uses for this figure (the API, ``losses["bits_per_latent"]`` of every
    likelihood prior, ``metrics.json``).

    Args:
        nll_nats: negative log-likelihood of one code grid or latent vector (or a tensor of
            them), in nats.
        positions: latent positions it covers (``h · w`` for a code grid).
    """
    if isinstance(positions, bool) or not isinstance(positions, int) or positions < 1:
        raise ValueError(
            f"bits_per_latent: positions must be a positive integer, got {positions!r}"
        )
    return bits_per_dim(nll_nats, positions)


class CodebookUsage:
    """Counts of code indices accumulated over a whole evaluation set.

    Per-batch perplexity depends on the batch size; usage over the full set does not, so both are
    reported: ``usage`` (fraction of codes hit at least once), ``dead_codes`` (codes never hit)
    and ``perplexity`` ``exp(H(p))`` of the code frequencies ``p`` (K for uniform use, 1 for one
    code).

    Args:
        codebook_size: K.
    """

    def __init__(self, codebook_size: int) -> None:
        if codebook_size <= 0:
            raise ValueError(f"codebook_size must be positive, got {codebook_size}")
        self.codebook_size = codebook_size
        self.counts = torch.zeros(codebook_size, dtype=torch.int64)

    def update(self, indices: torch.Tensor) -> None:
        """Add a batch of indices of any shape (integer values in ``[0, K)``)."""
        if indices.dtype.is_floating_point or indices.dtype == torch.bool:
            raise TypeError(f"indices must be an integer tensor, got {indices.dtype}")
        flat = indices.reshape(-1).to("cpu", torch.int64)
        if flat.numel() and (flat.min() < 0 or flat.max() >= self.codebook_size):
            raise ValueError(
                f"indices must lie in [0, {self.codebook_size}), got range "
                f"[{int(flat.min())}, {int(flat.max())}]"
            )
        self.counts += torch.bincount(flat, minlength=self.codebook_size)

    def compute(self) -> dict[str, float]:
        """``{"usage", "used_codes", "dead_codes", "perplexity"}`` over everything seen."""
        total = int(self.counts.sum())
        if total == 0:
            raise ValueError("no indices were recorded; call update() first")
        p = self.counts.double() / total
        entropy = -(p[p > 0] * p[p > 0].log()).sum()
        used = int((self.counts > 0).sum())
        return {
            "usage": used / self.codebook_size,
            "used_codes": used,
            "dead_codes": self.codebook_size - used,
            "perplexity": float(entropy.exp()),
        }
