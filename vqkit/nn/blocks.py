"""Convolutional encoders and decoders for discrete-latent autoencoders.

Two families, each registered as an ``"encoder"`` and a ``"decoder"``:

- ``"resnet"``: the design of *Neural Discrete Representation Learning* (van den Oord, Vinyals,
  Kavukcuoglu, 2017, arXiv:1711.00937, §4.1): strided 4×4 convolutions (stride 2) and a stack of
  residual blocks ``ReLU → 3×3 conv → ReLU → 1×1 conv`` whose hidden width is narrower than the
  trunk's (32 against 128 in DeepMind's Sonnet VQ-VAE example).
- ``"conv"``: the plain strided-conv stack of the β-VAE encoders (*β-VAE*, Higgins et al., ICLR
  2017; *Understanding disentangling in β-VAE*, Burgess et al., 2018, arXiv:1804.03599): 4×4
  convolutions of stride 2 with ReLUs, mirrored by transposed convolutions in the decoder.

Encoders map ``(B, C, H, W)`` images to ``(B, D, H / 2**n, W / 2**n)`` feature maps and decoders
map them back; any channel count, non-square sizes and any number ``n`` of down/upsamplings
(``H`` and ``W`` must be divisible by ``2**n``). Every block exposes ``in_channels``,
``out_channels`` and ``downsample_factor`` / ``upsample_factor``, which ``vqkit.VQVAE`` uses
to wire and check sizes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from vqkit._checks import (
    check_input_dtype,
    check_non_negative_int,
    check_positive_int,
    check_real_device,
)
from vqkit._registry import register

__all__ = [
    "ConvDecoder",
    "ConvEncoder",
    "ResNetDecoder",
    "ResNetEncoder",
    "ResidualStack",
    "strided_convs",
    "strided_transposed_convs",
]


def _check_image(x: torch.Tensor, channels: int, factor: int, who: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{who} expects a tensor, got {type(x).__name__}")
    check_real_device(who, x)
    if not x.is_floating_point():
        raise TypeError(f"{who} expects a floating-point input, got {x.dtype}")
    if x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(
            f"{who} expects input of shape (B, {channels}, H, W), got {tuple(x.shape)}"
        )
    if x.shape[2] % factor or x.shape[3] % factor:
        raise ValueError(
            f"{who} downsamples by {factor}: H and W must be divisible by {factor}, "
            f"got H={x.shape[2]}, W={x.shape[3]}"
        )


def strided_convs(
    in_channels: int,
    widths: Sequence[int],
    activation: Callable[[], nn.Module],
    *,
    batch_norm: bool = False,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> list[nn.Module]:
    """The β-VAE / DCGAN downsampling stack: per width, a 4×4 stride-2 conv (halving H and W),
    an optional BatchNorm and the activation.

    The one strided-conv stack of vqkit: ``ConvEncoder`` (ReLU) and the continuous VAEs'
    ``"vector_conv"`` encoder (BatchNorm + LeakyReLU) are built from it.

    Shape:
        - Input: (B, in_channels, H, W)
        - Output: (B, widths[-1], H / 2**n, W / 2**n) for ``n = len(widths)``
    """
    dd: dict[str, Any] = {"device": device, "dtype": dtype}
    layers: list[nn.Module] = []
    prev = in_channels
    for width in widths:
        layers.append(nn.Conv2d(prev, width, 4, stride=2, padding=1, **dd))
        if batch_norm:
            layers.append(nn.BatchNorm2d(width, **dd))
        layers.append(activation())
        prev = width
    return layers


def strided_transposed_convs(
    widths: Sequence[int],
    out_channels: int,
    activation: Callable[[], nn.Module],
    *,
    batch_norm: bool = False,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> list[nn.Module]:
    """The mirror of ``strided_convs``: 4×4 stride-2 transposed convs from ``widths[0]``
    through ``widths[1:]`` to ``out_channels``, each but the last followed by an optional
    BatchNorm and the activation.

    Shape:
        - Input: (B, widths[0], h, w)
        - Output: (B, out_channels, h * 2**n, w * 2**n) for ``n = len(widths)``
    """
    dd: dict[str, Any] = {"device": device, "dtype": dtype}
    layers: list[nn.Module] = []
    outs = [*widths[1:], out_channels]
    for i, (c_in, c_out) in enumerate(zip(widths, outs, strict=True)):
        layers.append(nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, **dd))
        if i < len(widths) - 1:
            if batch_norm:
                layers.append(nn.BatchNorm2d(c_out, **dd))
            layers.append(activation())
    return layers


class ResidualStack(nn.Module):
    """Residual blocks ``x + conv1x1(relu(conv3x3(relu(x))))`` followed by a final ReLU.

    Args:
        channels: trunk width (input and output channels).
        num_layers: number of residual blocks (may be 0: then only the final ReLU).
        hidden_channels: width inside each block (the paper's narrower residual width).

    Shape:
        - Input: (B, channels, H, W)
        - Output: (B, channels, H, W)
    """

    def __init__(
        self,
        channels: int,
        num_layers: int,
        hidden_channels: int,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        dd: dict[str, Any] = {"device": device, "dtype": dtype}
        self.channels = check_positive_int(owner, "channels", channels)
        self.num_layers = check_non_negative_int(owner, "num_layers", num_layers)
        self.hidden_channels = check_positive_int(owner, "hidden_channels", hidden_channels)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.ReLU(),
                nn.Conv2d(channels, hidden_channels, 3, padding=1, bias=False, **dd),
                nn.ReLU(),
                nn.Conv2d(hidden_channels, channels, 1, bias=False, **dd),
            )
            for _ in range(num_layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = x + block(x)
        return torch.relu(x)

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, num_layers={self.num_layers}, "
            f"hidden_channels={self.hidden_channels}"
        )


@register("encoder", "resnet")
class ResNetEncoder(nn.Module):
    """VQ-VAE encoder: strided 4×4 convs, a 3×3 conv, a residual stack, a 1×1 projection.

    The ``num_downsamples`` strided convs have ``hidden_channels // 2`` outputs except the last,
    which has ``hidden_channels`` (as in the Sonnet VQ-VAE example); ``num_downsamples=0`` keeps
    the resolution.

    Args:
        in_channels: image channels ``C``.
        out_channels: latent channels ``D`` (the quantizer's ``dim``).
        hidden_channels: trunk width (the paper uses 256 on CIFAR-10, Sonnet 128).
        num_residual_layers: residual blocks in the stack.
        residual_hidden_channels: width inside each residual block.
        num_downsamples: stride-2 convolutions; the latent grid is ``H / 2**n × W / 2**n``.

    Shape:
        - Input: (B, C, H, W), with H and W divisible by ``2**num_downsamples``
        - Output: (B, D, H / 2**num_downsamples, W / 2**num_downsamples)
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 64,
        hidden_channels: int = 128,
        num_residual_layers: int = 2,
        residual_hidden_channels: int = 32,
        num_downsamples: int = 2,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        dd: dict[str, Any] = {"device": device, "dtype": dtype}
        self.in_channels = check_positive_int(owner, "in_channels", in_channels)
        self.out_channels = check_positive_int(owner, "out_channels", out_channels)
        self.hidden_channels = check_positive_int(owner, "hidden_channels", hidden_channels)
        self.num_downsamples = check_non_negative_int(owner, "num_downsamples", num_downsamples)
        self.downsample_factor = 2**num_downsamples
        if num_downsamples > 1 and hidden_channels < 2:
            raise ValueError(f"hidden_channels must be >= 2 to halve it, got {hidden_channels}")
        layers: list[nn.Module] = []
        channels = in_channels
        for i in range(num_downsamples):
            width = hidden_channels if i == num_downsamples - 1 else hidden_channels // 2
            layers += [nn.Conv2d(channels, width, 4, stride=2, padding=1, **dd), nn.ReLU()]
            channels = width
        layers.append(nn.Conv2d(channels, hidden_channels, 3, padding=1, **dd))
        self.trunk = nn.Sequential(*layers)
        self.residual = ResidualStack(
            hidden_channels, num_residual_layers, residual_hidden_channels, **dd
        )
        self.project = nn.Conv2d(hidden_channels, out_channels, 1, **dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_image(x, self.in_channels, self.downsample_factor, type(self).__name__)
        check_input_dtype(type(self).__name__, x, self)
        h = self.residual(self.trunk(x))  # (B, hidden, H/f, W/f)
        return self.project(h)  # (B, D, H/f, W/f)

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, out_channels={self.out_channels}, "
            f"hidden_channels={self.hidden_channels}, num_downsamples={self.num_downsamples}"
        )


@register("decoder", "resnet")
class ResNetDecoder(nn.Module):
    """VQ-VAE decoder: a 3×3 conv, a residual stack, then strided 4×4 transposed convs.

    Mirrors ``ResNetEncoder``: the transposed convs output ``hidden_channels // 2`` except
    the last, which outputs the image channels; ``num_upsamples=0`` ends with a 3×3 conv.

    Args:
        in_channels: latent channels ``D`` (the quantizer's ``dim``).
        out_channels: image channels ``C``.
        hidden_channels: trunk width.
        num_residual_layers: residual blocks in the stack.
        residual_hidden_channels: width inside each residual block.
        num_upsamples: stride-2 transposed convolutions.

    Shape:
        - Input: (B, D, h, w)
        - Output: (B, C, h * 2**num_upsamples, w * 2**num_upsamples)
    """

    def __init__(
        self,
        in_channels: int = 64,
        out_channels: int = 3,
        hidden_channels: int = 128,
        num_residual_layers: int = 2,
        residual_hidden_channels: int = 32,
        num_upsamples: int = 2,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        dd: dict[str, Any] = {"device": device, "dtype": dtype}
        self.in_channels = check_positive_int(owner, "in_channels", in_channels)
        self.out_channels = check_positive_int(owner, "out_channels", out_channels)
        self.hidden_channels = check_positive_int(owner, "hidden_channels", hidden_channels)
        self.num_upsamples = check_non_negative_int(owner, "num_upsamples", num_upsamples)
        self.upsample_factor = 2**num_upsamples
        if num_upsamples > 1 and hidden_channels < 2:
            raise ValueError(f"hidden_channels must be >= 2 to halve it, got {hidden_channels}")
        self.stem = nn.Conv2d(in_channels, hidden_channels, 3, padding=1, **dd)
        self.residual = ResidualStack(
            hidden_channels, num_residual_layers, residual_hidden_channels, **dd
        )
        layers: list[nn.Module] = []
        channels = hidden_channels
        for i in range(num_upsamples):
            last = i == num_upsamples - 1
            width = out_channels if last else hidden_channels // 2
            layers.append(nn.ConvTranspose2d(channels, width, 4, stride=2, padding=1, **dd))
            if not last:
                layers.append(nn.ReLU())
            channels = width
        if num_upsamples == 0:
            layers.append(nn.Conv2d(hidden_channels, out_channels, 3, padding=1, **dd))
        self.head = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        _check_image(z, self.in_channels, 1, type(self).__name__)
        check_input_dtype(type(self).__name__, z, self)
        h = self.residual(self.stem(z))  # (B, hidden, h, w)
        return self.head(h)  # (B, C, h*f, w*f)

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, out_channels={self.out_channels}, "
            f"hidden_channels={self.hidden_channels}, num_upsamples={self.num_upsamples}"
        )


def _widths(owner: str, hidden_channels: int | Sequence[int], count: int, name: str) -> list[int]:
    if isinstance(hidden_channels, int) and not isinstance(hidden_channels, bool):
        widths = [hidden_channels] * count
    elif isinstance(hidden_channels, Sequence) and not isinstance(hidden_channels, str):
        widths = list(hidden_channels)
    else:
        raise TypeError(
            f"{owner}: {name} must be an int or a list of ints, got {hidden_channels!r}"
        )
    if len(widths) != count:
        raise ValueError(
            f"{owner}: {name} needs one width per stride-2 layer ({count}), got {widths}"
        )
    for w in widths:
        check_positive_int(owner, name, w)
    return widths


@register("encoder", "conv")
class ConvEncoder(nn.Module):
    """β-VAE style encoder: ``n`` 4×4 stride-2 convs with ReLUs, then a 1×1 projection.

    Args:
        in_channels: image channels ``C``.
        out_channels: latent channels ``D``.
        hidden_channels: width of every strided conv, or a list with one width per conv
            (Burgess et al. use 32 for all four on 64×64 images).
        num_downsamples: stride-2 convolutions (4 in the β-VAE papers).

    Shape:
        - Input: (B, C, H, W), with H and W divisible by ``2**num_downsamples``
        - Output: (B, D, H / 2**num_downsamples, W / 2**num_downsamples)
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 64,
        hidden_channels: int | list[int] = 32,
        num_downsamples: int = 4,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        dd: dict[str, Any] = {"device": device, "dtype": dtype}
        self.in_channels = check_positive_int(owner, "in_channels", in_channels)
        self.out_channels = check_positive_int(owner, "out_channels", out_channels)
        self.num_downsamples = check_non_negative_int(owner, "num_downsamples", num_downsamples)
        self.widths = _widths(owner, hidden_channels, num_downsamples, "hidden_channels")
        self.downsample_factor = 2**num_downsamples
        layers = strided_convs(in_channels, self.widths, nn.ReLU, **dd)
        last = self.widths[-1] if self.widths else in_channels
        layers.append(nn.Conv2d(last, out_channels, 1, **dd))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_image(x, self.in_channels, self.downsample_factor, type(self).__name__)
        check_input_dtype(type(self).__name__, x, self)
        return self.net(x)  # (B, D, H/f, W/f)

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, out_channels={self.out_channels}, "
            f"widths={self.widths}"
        )


@register("decoder", "conv")
class ConvDecoder(nn.Module):
    """Mirror of ``ConvEncoder``: a 1×1 conv, then ``n`` 4×4 stride-2 transposed convs.

    Args:
        in_channels: latent channels ``D``.
        out_channels: image channels ``C``.
        hidden_channels: channels entering each transposed conv (the last one outputs ``C``);
            an int for all of them or a list with one width per transposed conv, first to last.
        num_upsamples: stride-2 transposed convolutions.

    Shape:
        - Input: (B, D, h, w)
        - Output: (B, C, h * 2**num_upsamples, w * 2**num_upsamples)
    """

    def __init__(
        self,
        in_channels: int = 64,
        out_channels: int = 3,
        hidden_channels: int | list[int] = 32,
        num_upsamples: int = 4,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        dd: dict[str, Any] = {"device": device, "dtype": dtype}
        self.in_channels = check_positive_int(owner, "in_channels", in_channels)
        self.out_channels = check_positive_int(owner, "out_channels", out_channels)
        self.num_upsamples = check_non_negative_int(owner, "num_upsamples", num_upsamples)
        self.widths = _widths(owner, hidden_channels, num_upsamples, "hidden_channels")
        self.upsample_factor = 2**num_upsamples
        if num_upsamples:
            layers: list[nn.Module] = [nn.Conv2d(in_channels, self.widths[0], 1, **dd), nn.ReLU()]
            layers += strided_transposed_convs(self.widths, out_channels, nn.ReLU, **dd)
        else:
            layers = [nn.Conv2d(in_channels, out_channels, 1, **dd)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        _check_image(z, self.in_channels, 1, type(self).__name__)
        check_input_dtype(type(self).__name__, z, self)
        return self.net(z)  # (B, C, h*f, w*f)

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, out_channels={self.out_channels}, "
            f"widths={self.widths}"
        )
