"""Encoder and decoder networks of the continuous VAEs: an MLP and a stride-2 conv stack.

The conv stack is the DCGAN-style architecture used by β-VAE implementations (Higgins et al.,
ICLR 2017; Burgess et al., arXiv:1804.03599): 4×4 convolutions with stride 2 that halve the
image at each layer, mirrored by 4×4 transposed convolutions that double it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from torch import nn

__all__ = ["conv_decoder", "conv_encoder", "mlp"]


def mlp(
    in_features: int, hidden_dims: Sequence[int], out_features: int, device=None, dtype=None
) -> nn.Sequential:
    """Linear → SiLU → ... → Linear.

    Shape:
        - Input: (B, in_features)
        - Output: (B, out_features)
    """
    layers: list[nn.Module] = []
    prev = in_features
    for width in hidden_dims:
        layers += [nn.Linear(prev, width, device=device, dtype=dtype), nn.SiLU()]
        prev = width
    layers.append(nn.Linear(prev, out_features, device=device, dtype=dtype))
    return nn.Sequential(*layers)


def _block(conv: nn.Module, width: int, batch_norm: bool, device, dtype) -> list[nn.Module]:
    norm = [nn.BatchNorm2d(width, device=device, dtype=dtype)] if batch_norm else []
    return [conv, *norm, nn.LeakyReLU(0.2)]


def conv_encoder(
    in_channels: int,
    image_size: int,
    hidden_dims: Sequence[int],
    out_features: int,
    batch_norm: bool,
    device=None,
    dtype=None,
) -> nn.Sequential:
    """Stride-2 convolutions (each halving H and W), then a linear map of the flattened grid.

    Shape:
        - Input: (B, in_channels, image_size, image_size)
        - Output: (B, out_features)
    """
    layers: list[nn.Module] = []
    prev = in_channels
    for width in hidden_dims:
        conv = nn.Conv2d(prev, width, 4, stride=2, padding=1, device=device, dtype=dtype)
        layers += _block(conv, width, batch_norm, device, dtype)
        prev = width
    side = image_size // 2 ** len(hidden_dims)
    layers += [
        nn.Flatten(),  # (B, hidden_dims[-1]·side·side)
        nn.Linear(prev * side * side, out_features, device=device, dtype=dtype),
    ]
    return nn.Sequential(*layers)


def conv_decoder(
    in_features: int,
    image_size: int,
    hidden_dims: Sequence[int],
    out_channels: int,
    batch_norm: bool,
    device=None,
    dtype=None,
) -> nn.Sequential:
    """The mirror of :func:`conv_encoder`: linear map to the smallest grid, then stride-2
    transposed convolutions (``hidden_dims`` is given encoder-wise, small to large).

    Shape:
        - Input: (B, in_features)
        - Output: (B, out_channels, image_size, image_size)
    """
    widths = list(hidden_dims)[::-1]  # e.g. 512, 256, ..., 32
    side = image_size // 2 ** len(widths)
    layers: list[nn.Module] = [
        nn.Linear(in_features, widths[0] * side * side, device=device, dtype=dtype),
        nn.Unflatten(1, (widths[0], side, side)),  # (B, widths[0], side, side)
    ]
    for prev, width in itertools.pairwise(widths):
        conv = nn.ConvTranspose2d(prev, width, 4, stride=2, padding=1, device=device, dtype=dtype)
        layers += _block(conv, width, batch_norm, device, dtype)
    layers.append(
        nn.ConvTranspose2d(
            widths[-1], out_channels, 4, stride=2, padding=1, device=device, dtype=dtype
        )
    )
    return nn.Sequential(*layers)
