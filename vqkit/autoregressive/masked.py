"""Masked layers for autoregressive models: ``MaskedConv2d`` and ``MaskedLinear``.

MaskedConv2d is the building block of PixelCNN ("Pixel Recurrent Neural Networks", van den Oord,
Kalchbrenner and Kavukcuoglu, 2016, arXiv:1601.06759, §3.4): a convolution whose kernel is zeroed
so that the output at a pixel sees only pixels before it in raster order. MaskedLinear is the
building block of MADE ("MADE: Masked Autoencoder for Distribution Estimation", Germain, Gregor,
Murray and Larochelle, 2015, arXiv:1502.03509): a linear layer whose weight matrix is multiplied by
a fixed 0/1 connectivity mask.

Masks are non-persistent buffers: they are structure derived from the constructor arguments (or
set by the owning model), not learned state, so they never enter a ``state_dict``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vqkit._checks import check_bool, check_choice, check_positive_int

__all__ = ["MaskedConv2d", "MaskedLinear", "conv_mask"]


def _pair_of_odd(kernel_size: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    given = kernel_size
    if isinstance(kernel_size, int) and not isinstance(kernel_size, bool):
        kernel_size = (kernel_size, kernel_size)
    if (
        not isinstance(kernel_size, (tuple, list))
        or len(kernel_size) != 2
        or not all(
            isinstance(k, int) and not isinstance(k, bool) and k > 0 and k % 2 == 1
            for k in kernel_size
        )
    ):
        raise ValueError(f"kernel_size must be a positive odd int or a pair of them, got {given!r}")
    return int(kernel_size[0]), int(kernel_size[1])


def _channel_groups(channels: int, data_channels: int, name: str) -> torch.Tensor:
    """Sub-pixel group of each channel in the blocked layout: channel c -> c * G // channels."""
    if channels % data_channels != 0:
        raise ValueError(
            f"{name}={channels} must be a multiple of data_channels={data_channels} "
            "(channels are split into equal contiguous blocks, one per sub-pixel)"
        )
    return torch.arange(channels) // (channels // data_channels)


def conv_mask(
    out_channels: int,
    in_channels: int,
    kernel_size: int | tuple[int, int],
    mask_type: str,
    data_channels: int = 1,
) -> torch.Tensor:
    """The 0/1 kernel mask of a raster-order masked convolution.

    Taps in rows above the centre, and left of the centre in the centre row, are kept; taps right
    of or below the centre are zeroed. At the centre tap, with ``data_channels = G`` sub-pixels
    (e.g. G = 3 for R, G, B), output group ``g`` sees input groups ``< g`` for type "A" and
    ``<= g`` for type "B". With G = 1 this reduces to "A: centre excluded, B: centre included".

    Args:
        out_channels: number of output channels (a multiple of ``data_channels``).
        in_channels: number of input channels (a multiple of ``data_channels``).
        kernel_size: odd int or pair of odd ints.
        mask_type: ``"A"`` or ``"B"``.
        data_channels: number of ordered sub-pixel groups G (blocked layout, see MaskedConv2d).

    Shape:
        - Output: (out_channels, in_channels, kH, kW), float 0/1.
    """
    kh, kw = _pair_of_odd(kernel_size)
    check_positive_int("conv_mask", "out_channels", out_channels)
    check_positive_int("conv_mask", "in_channels", in_channels)
    check_choice("conv_mask", "mask_type", mask_type, ("A", "B"))
    check_positive_int("conv_mask", "data_channels", data_channels)
    mask = torch.ones(out_channels, in_channels, kh, kw)
    ch, cw = kh // 2, kw // 2
    mask[:, :, ch, cw:] = 0  # centre and right of it in the centre row
    mask[:, :, ch + 1 :, :] = 0  # every row below the centre
    g_out = _channel_groups(out_channels, data_channels, "out_channels")
    g_in = _channel_groups(in_channels, data_channels, "in_channels")
    if mask_type == "A":
        centre = g_out[:, None] > g_in[None, :]  # (out, in)
    else:
        centre = g_out[:, None] >= g_in[None, :]
    mask[:, :, ch, cw] = centre.float()
    return mask


def _check_input(owner: str, x: object) -> None:
    """A floating-point tensor on a real device (the shape is checked by the caller)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{owner}: input must be a torch.Tensor, got {type(x).__name__}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"{owner}: input must be a floating-point tensor, got dtype {x.dtype}")
    if x.device.type == "meta":
        raise ValueError(f"{owner}: input is on the 'meta' device (shape only, no data)")


class MaskedConv2d(nn.Conv2d):
    """2D convolution that sees only pixels before the current one in raster order.

    The padding is "same" (``kernel_size // 2``) and the stride 1, so the output grid equals the
    input grid and position (i, j) of the output depends only on inputs at (i', j') with
    ``i' < i``, or ``i' == i and j' < j`` ("A"), plus (i, j) itself for "B".

    Sub-pixel ordering (``data_channels = G > 1``), blocked layout: the channels of every
    tensor are split into G equal contiguous blocks, block g holding the features of sub-pixel g
    (for RGB: channels ``[0, C/G)`` are R, ``[C/G, 2C/G)`` are G, the rest B). At the centre tap,
    block g of the output sees blocks ``< g`` of the input ("A") or ``<= g`` ("B"). A network
    ending with ``G * K`` logit channels is therefore read as ``logits.view(B, G, K, H, W)``
    (sub-pixel first, then category).

    Args:
        in_channels: number of input channels.
        out_channels: number of output channels.
        kernel_size: odd int or pair of odd ints.
        mask_type: ``"A"`` (first layer: the centre is excluded) or ``"B"`` (later layers: the
            centre is included).
        data_channels: number of ordered sub-pixel groups G (1 = whole pixels).
        bias: add a learnable bias.
        device: factory arguments for the parameters.
        dtype: factory arguments for the parameters.

    Shape:
        - Input: (B, C_in, H, W)
        - Output: (B, C_out, H, W)
    """

    mask: torch.Tensor  # buffer registered in __init__

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int] = 3,
        mask_type: str = "B",
        data_channels: int = 1,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        check_positive_int("MaskedConv2d", "in_channels", in_channels)
        check_positive_int("MaskedConv2d", "out_channels", out_channels)
        check_bool("MaskedConv2d", "bias", bias)
        kh, kw = _pair_of_odd(kernel_size)
        mask = conv_mask(out_channels, in_channels, (kh, kw), mask_type, data_channels)
        super().__init__(
            in_channels,
            out_channels,
            (kh, kw),
            padding=(kh // 2, kw // 2),
            bias=bias,
            device=device,
            dtype=dtype,
        )
        self.mask_type = mask_type
        self.data_channels = data_channels
        self.register_buffer(
            "mask", mask.to(device=self.weight.device, dtype=self.weight.dtype), persistent=False
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input("MaskedConv2d", x)
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"MaskedConv2d expected input (B, {self.in_channels}, H, W), got {tuple(x.shape)}"
            )
        return self._conv_forward(x, self.weight * self.mask, self.bias)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, mask_type={self.mask_type!r}, "
            f"data_channels={self.data_channels}"
        )


class MaskedLinear(nn.Linear):
    """Linear layer whose weight is multiplied by a fixed 0/1 connectivity mask.

    ``y = x @ (W ⊙ M)^T + b``. Output unit o is connected to input unit i iff ``M[o, i] = 1``.
    The mask starts as all ones and is set by the owner with ``set_mask`` (MADE derives it
    from the unit degrees).

    Args:
        in_features: size of each input sample.
        out_features: size of each output sample.
        bias: add a learnable bias.
        device: factory arguments for the parameters.
        dtype: factory arguments for the parameters.

    Shape:
        - Input: (*, in_features)
        - Output: (*, out_features)
    """

    mask: torch.Tensor  # buffer registered in __init__

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        check_positive_int("MaskedLinear", "in_features", in_features)
        check_positive_int("MaskedLinear", "out_features", out_features)
        check_bool("MaskedLinear", "bias", bias)
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.register_buffer("mask", torch.ones_like(self.weight), persistent=False)

    def set_mask(self, mask: torch.Tensor) -> None:
        """Replace the connectivity mask; ``mask`` has shape (out_features, in_features) and
        holds only 0 and 1 (bool, integer or floating)."""
        if not isinstance(mask, torch.Tensor):
            raise TypeError(
                f"MaskedLinear.set_mask: mask must be a tensor, got {type(mask).__name__}"
            )
        if tuple(mask.shape) != tuple(self.weight.shape):
            raise ValueError(
                f"mask must have shape {tuple(self.weight.shape)} (out_features, in_features), "
                f"got {tuple(mask.shape)}"
            )
        if mask.device.type == "meta" or not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError(
                "MaskedLinear.set_mask: mask must hold only 0 and 1 (a connectivity mask) on a "
                "real device"
            )
        # Replace rather than copy in place: a forward pass already recorded for autograd keeps
        # the mask it used (MADE switches masks between passes of one training step).
        self.mask = mask.to(device=self.weight.device, dtype=self.weight.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input("MaskedLinear", x)
        if x.dim() == 0 or x.shape[-1] != self.in_features:
            raise ValueError(
                f"MaskedLinear expected input (*, {self.in_features}), got {tuple(x.shape)}"
            )
        return F.linear(x, self.weight * self.mask, self.bias)

    def extra_repr(self) -> str:
        connected = int(self.mask.count_nonzero())
        return f"{super().extra_repr()}, connections={connected}/{self.mask.numel()}"
