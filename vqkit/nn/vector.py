"""Encoders and decoders between data and latent *vectors*: the networks of the continuous VAEs.

Two families, each registered as an ``"encoder"`` and a ``"decoder"``:

- ``"mlp"``: Linear → SiLU → … → Linear, for vector data (Kingma & Welling, "Auto-Encoding
  Variational Bayes", arXiv:1312.6114, use MLPs).
- ``"vector_conv"``: the DCGAN-style stack of the β-VAE implementations (Higgins et al., ICLR
  2017; Burgess et al., "Understanding disentangling in β-VAE", arXiv:1804.03599): 4×4 stride-2
  convolutions (optional BatchNorm, LeakyReLU 0.2) that halve the image at each layer, then a
  linear map of the flattened grid to a vector; the decoder mirrors it with a linear map and 4×4
  stride-2 transposed convolutions. The conv layers are ``vqkit.nn.blocks.strided_convs``,
  the same stack as the ``"conv"`` encoder's.

Every class is an ``nn.Sequential`` (so state_dict keys are ``0.weight``, ``1.weight``, …, those of
the 0.1 release) and exposes the encoder / decoder contract of ``vqkit.contracts``:
``in_channels`` / ``out_channels`` (features for vectors) and ``downsample_factor`` /
``upsample_factor`` (1 for an MLP; the image side for a conv stack that ends in a vector).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from vqkit._checks import (
    check_bool,
    check_input_dtype,
    check_positive_int,
    check_positive_ints,
    check_real_device,
)
from vqkit._registry import register
from vqkit.nn.blocks import strided_convs, strided_transposed_convs

__all__ = [
    "ConvVectorDecoder",
    "ConvVectorEncoder",
    "MLPDecoder",
    "MLPEncoder",
    "conv_decoder",
    "conv_encoder",
    "mlp",
]


def _leaky_relu() -> nn.Module:
    return nn.LeakyReLU(0.2)


def _check_input(module: nn.Module, x: torch.Tensor, shape: tuple[int, ...]) -> None:
    who = type(module).__name__
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{who} expects a tensor, got {type(x).__name__}")
    check_real_device(who, x)
    if x.dim() != 1 + len(shape) or tuple(x.shape[1:]) != shape:
        expected = ", ".join(str(s) for s in shape)
        raise ValueError(f"{who} expects input of shape (B, {expected}), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{who} expects a floating-point input, got {x.dtype}")


class _MLP(nn.Sequential):
    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden_dims: Sequence[int],
        device: torch.device | str | None,
        dtype: torch.dtype | None,
    ) -> None:
        owner = type(self).__name__
        in_features = check_positive_int(owner, "in_features", in_features)
        out_features = check_positive_int(owner, "out_features", out_features)
        widths = check_positive_ints(owner, "hidden_dims", hidden_dims, allow_empty=True)
        layers: list[nn.Module] = []
        prev = in_features
        for width in widths:
            layers += [nn.Linear(prev, width, device=device, dtype=dtype), nn.SiLU()]
            prev = width
        layers.append(nn.Linear(prev, out_features, device=device, dtype=dtype))
        super().__init__(*layers)
        self.in_features, self.out_features, self.hidden_dims = in_features, out_features, widths
        self.in_channels, self.out_channels = in_features, out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(self, x, (self.in_features,))
        check_input_dtype(type(self).__name__, x, self)
        return super().forward(x)  # (B, out_features)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"hidden_dims={self.hidden_dims}"
        )


@register("encoder", "mlp")
class MLPEncoder(_MLP):
    """MLP encoder of vector data: Linear → SiLU → … → Linear.

    Args:
        in_features: features per example (the data dimension).
        out_features: output features (``2 · latent_dim`` for a Gaussian posterior's mean and
            log-variance).
        hidden_dims: hidden widths, first to last (may be empty: one linear map).

    Shape:
        - Input: (B, in_features)
        - Output: (B, out_features)
    """

    downsample_factor = 1

    def __init__(
        self,
        in_features: int = 2,
        out_features: int = 4,
        hidden_dims: Sequence[int] = (64, 64),
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(in_features, out_features, hidden_dims, device, dtype)


@register("decoder", "mlp")
class MLPDecoder(_MLP):
    """MLP decoder of latent vectors: Linear → SiLU → … → Linear.

    Args:
        in_features: latent dimensions.
        out_features: output features (``num_params · data_dim`` for a VAE's likelihood).
        hidden_dims: hidden widths, first to last (a VAE passes its encoder's, reversed).

    Shape:
        - Input: (B, in_features)
        - Output: (B, out_features)
    """

    upsample_factor = 1

    def __init__(
        self,
        in_features: int = 2,
        out_features: int = 2,
        hidden_dims: Sequence[int] = (64, 64),
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(in_features, out_features, hidden_dims, device, dtype)


def _square_stack(owner: str, image_size: int, hidden_dims: Sequence[int]) -> tuple[int, list]:
    image_size = check_positive_int(owner, "image_size", image_size)
    widths = check_positive_ints(owner, "hidden_dims", hidden_dims)
    factor = 2 ** len(widths)
    if image_size % factor:
        raise ValueError(
            f"{owner}: {len(widths)} stride-2 layers (hidden_dims={widths}) need image_size "
            f"divisible by {factor}, got {image_size}"
        )
    return image_size, widths


@register("encoder", "vector_conv")
class ConvVectorEncoder(nn.Sequential):
    """Stride-2 4×4 convs (each halving H and W), then a linear map of the flattened grid.

    Args:
        in_channels: image channels.
        out_features: output features (``2 · latent_dim`` for a Gaussian posterior).
        image_size: height and width of the square images.
        hidden_dims: conv widths, small to large; ``image_size`` must be divisible by
            ``2 ** len(hidden_dims)``.
        batch_norm: BatchNorm after every conv.

    Shape:
        - Input: (B, in_channels, image_size, image_size)
        - Output: (B, out_features)
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_features: int = 32,
        image_size: int = 28,
        hidden_dims: Sequence[int] = (32, 64),
        batch_norm: bool = False,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        owner = type(self).__name__
        in_channels = check_positive_int(owner, "in_channels", in_channels)
        out_features = check_positive_int(owner, "out_features", out_features)
        image_size, widths = _square_stack(owner, image_size, hidden_dims)
        batch_norm = check_bool(owner, "batch_norm", batch_norm)
        dd: dict[str, Any] = {"device": device, "dtype": dtype}
        side = image_size // 2 ** len(widths)
        layers = strided_convs(in_channels, widths, _leaky_relu, batch_norm=batch_norm, **dd)
        layers += [
            nn.Flatten(),  # (B, widths[-1]·side·side)
            nn.Linear(widths[-1] * side * side, out_features, **dd),
        ]
        super().__init__(*layers)
        self.in_channels, self.out_features = in_channels, out_features
        self.out_channels = out_features  # the encoder contract's name for the output size
        self.image_size, self.hidden_dims, self.batch_norm = image_size, widths, batch_norm
        self.downsample_factor = image_size  # the whole image becomes one vector

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(self, x, (self.in_channels, self.image_size, self.image_size))
        check_input_dtype(type(self).__name__, x, self)
        return super().forward(x)  # (B, out_features)

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, out_features={self.out_features}, "
            f"image_size={self.image_size}, hidden_dims={self.hidden_dims}, "
            f"batch_norm={self.batch_norm}"
        )


@register("decoder", "vector_conv")
class ConvVectorDecoder(nn.Sequential):
    """The mirror of ``ConvVectorEncoder``: a linear map to the smallest grid, then 4×4
    stride-2 transposed convs (``hidden_dims`` is given encoder-wise, small to large).

    Args:
        in_features: latent dimensions.
        out_channels: output channels (``num_params · C`` for a VAE's likelihood).
        image_size: height and width of the output images.
        hidden_dims: the encoder's conv widths, small to large.
        batch_norm: BatchNorm after every hidden transposed conv.

    Shape:
        - Input: (B, in_features)
        - Output: (B, out_channels, image_size, image_size)
    """

    def __init__(
        self,
        in_features: int = 16,
        out_channels: int = 1,
        image_size: int = 28,
        hidden_dims: Sequence[int] = (32, 64),
        batch_norm: bool = False,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        owner = type(self).__name__
        in_features = check_positive_int(owner, "in_features", in_features)
        out_channels = check_positive_int(owner, "out_channels", out_channels)
        image_size, widths = _square_stack(owner, image_size, hidden_dims)
        batch_norm = check_bool(owner, "batch_norm", batch_norm)
        dd: dict[str, Any] = {"device": device, "dtype": dtype}
        reversed_widths = widths[::-1]  # e.g. 512, 256, ..., 32
        side = image_size // 2 ** len(widths)
        layers: list[nn.Module] = [
            nn.Linear(in_features, reversed_widths[0] * side * side, **dd),
            nn.Unflatten(1, (reversed_widths[0], side, side)),  # (B, widths[-1], side, side)
        ]
        layers += strided_transposed_convs(
            reversed_widths, out_channels, _leaky_relu, batch_norm=batch_norm, **dd
        )
        super().__init__(*layers)
        self.in_features, self.out_channels = in_features, out_channels
        self.in_channels = in_features  # the decoder contract's name for the input size
        self.image_size, self.hidden_dims, self.batch_norm = image_size, widths, batch_norm
        self.upsample_factor = image_size  # one vector becomes the whole image

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        _check_input(self, z, (self.in_features,))
        check_input_dtype(type(self).__name__, z, self)
        return super().forward(z)  # (B, out_channels, image_size, image_size)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_channels={self.out_channels}, "
            f"image_size={self.image_size}, hidden_dims={self.hidden_dims}, "
            f"batch_norm={self.batch_norm}"
        )


def mlp(
    in_features: int, hidden_dims: Sequence[int], out_features: int, device=None, dtype=None
) -> nn.Sequential:
    """Linear → SiLU → ... → Linear (an ``MLPEncoder``; kept for the 0.1 import path).

    Shape:
        - Input: (B, in_features)
        - Output: (B, out_features)
    """
    return MLPEncoder(in_features, out_features, hidden_dims, device=device, dtype=dtype)


def conv_encoder(
    in_channels: int,
    image_size: int,
    hidden_dims: Sequence[int],
    out_features: int,
    batch_norm: bool,
    device=None,
    dtype=None,
) -> nn.Sequential:
    """A ``ConvVectorEncoder`` (kept for the 0.1 import path).

    Shape:
        - Input: (B, in_channels, image_size, image_size)
        - Output: (B, out_features)
    """
    return ConvVectorEncoder(
        in_channels, out_features, image_size, hidden_dims, batch_norm, device=device, dtype=dtype
    )


def conv_decoder(
    in_features: int,
    image_size: int,
    hidden_dims: Sequence[int],
    out_channels: int,
    batch_norm: bool,
    device=None,
    dtype=None,
) -> nn.Sequential:
    """A ``ConvVectorDecoder`` (kept for the 0.1 import path).

    Shape:
        - Input: (B, in_features)
        - Output: (B, out_channels, image_size, image_size)
    """
    return ConvVectorDecoder(
        in_features, out_channels, image_size, hidden_dims, batch_norm, device=device, dtype=dtype
    )
