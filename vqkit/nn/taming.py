"""The VQ-GAN encoder and decoder: residual blocks, self-attention, GroupNorm and swish.

*Taming Transformers for High-Resolution Image Synthesis*, Esser, Rombach, Ommer 2021
(arXiv:2012.09841), Appendix (Table 7), as implemented in CompVis/taming-transformers
(``modules/diffusionmodules/model.py``, after the DDPM U-Net of Ho et al. 2020,
arXiv:2006.11239). Registered as ``encoder/taming`` and ``decoder/taming``.

Encoder: a 3×3 conv to ``ch`` channels; one level per entry of ``ch_mult``, each with
``num_res_blocks`` residual blocks of width ``ch · ch_mult[i]`` (and self-attention after each
block at the levels listed in ``attention_factors``) and a stride-2 3×3 conv between levels; a
middle block (residual, attention, residual); GroupNorm, swish and a 3×3 conv to ``out_channels``.
The decoder mirrors it with ``num_res_blocks + 1`` blocks per level and nearest-neighbour ×2
upsampling followed by a 3×3 conv. ``len(ch_mult) - 1`` levels downsample, so the factor is
``2**(len(ch_mult) - 1)`` (taming's ImageNet f16 model: ``ch_mult = [1, 1, 2, 2, 4]``).

Attention placement: taming writes ``attn_resolutions=[16]`` for 256×256 images, i.e. at the
level whose feature maps are 16×16. Here levels are named by their downsampling factor instead
(``attention_factors=[16]``), which means the same thing for any image size and aspect ratio.

Optional ``z_channels`` reproduces taming's split between the network and the quantizer: the
encoder then ends in ``z_channels`` followed by a 1×1 ``quant_conv`` to ``out_channels``, and the
decoder starts with a 1×1 ``post_quant_conv`` from ``in_channels`` to ``z_channels``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from vqkit._checks import (
    check_input_dtype,
    check_int,
    check_number,
    check_positive_int,
    check_real_device,
)
from vqkit._registry import register

__all__ = ["AttentionBlock", "TamingDecoder", "TamingEncoder", "TamingResBlock"]


def _int_list(owner: str, name: str, value: object, *, allow_empty: bool) -> list[int]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise TypeError(f"{owner}: {name} must be a list of positive integers, got {value!r}")
    items = [check_positive_int(owner, name, v) for v in value]
    if not items and not allow_empty:
        raise ValueError(f"{owner}: {name} must not be empty")
    return items


def _groupnorm(channels: int, groups: int, dd: dict) -> nn.GroupNorm:
    return nn.GroupNorm(groups, channels, eps=1e-6, affine=True, **dd)


class TamingResBlock(nn.Module):
    """``x + conv(drop(swish(norm(conv(swish(norm(x)))))))``, a 1×1 shortcut when widths differ.

    Args:
        in_channels: input width.
        out_channels: output width.
        dropout: dropout probability before the second conv.
        norm_groups: GroupNorm groups (taming: 32); must divide both widths.

    Shape:
        - Input: (B, in_channels, H, W)
        - Output: (B, out_channels, H, W)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        dropout: float = 0.0,
        norm_groups: int = 32,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        dd: dict[str, Any] = {"device": device, "dtype": dtype}
        self.in_channels, self.out_channels = in_channels, out_channels
        self.norm1 = _groupnorm(in_channels, norm_groups, dd)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, **dd)
        self.norm2 = _groupnorm(out_channels, norm_groups, dd)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, **dd)
        self.shortcut = (
            nn.Identity()
            if in_channels == out_channels
            else nn.Conv2d(in_channels, out_channels, 1, **dd)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, out, H, W)
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.shortcut(x) + h


class AttentionBlock(nn.Module):
    """Single-head self-attention over all positions of a feature map, with a residual.

    Args:
        channels: width (query, key and value are 1×1 convs of this width).
        norm_groups: GroupNorm groups.

    Shape:
        - Input: (B, channels, H, W)
        - Output: (B, channels, H, W)
    """

    def __init__(
        self,
        channels: int,
        norm_groups: int = 32,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        dd: dict[str, Any] = {"device": device, "dtype": dtype}
        self.norm = _groupnorm(channels, norm_groups, dd)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1, **dd)
        self.proj_out = nn.Conv2d(channels, channels, 1, **dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, _, height, width = x.shape
        q, k, v = self.qkv(self.norm(x)).chunk(3, dim=1)  # 3 × (B, C, H, W)
        q, k, v = (rearrange(t, "b c h w -> b 1 (h w) c") for t in (q, k, v))
        h = F.scaled_dot_product_attention(q, k, v)  # (B, 1, H*W, C)
        h = rearrange(h, "b 1 (h w) c -> b c h w", h=height, w=width)
        return x + self.proj_out(h)


def _check_config(
    owner: str,
    ch: int,
    ch_mult: object,
    num_res_blocks: int,
    attention_factors: object,
    dropout: float,
    norm_groups: int,
    mid_attention: bool,
) -> tuple[list[int], list[int]]:
    check_positive_int(owner, "ch", ch)
    mult = _int_list(owner, "ch_mult", ch_mult, allow_empty=False)
    check_int(owner, "num_res_blocks", num_res_blocks, low=0)
    factors = _int_list(owner, "attention_factors", attention_factors, allow_empty=True)
    check_number(owner, "dropout", dropout, low=0.0, high=1.0, high_open=True)
    check_positive_int(owner, "norm_groups", norm_groups)
    if not isinstance(mid_attention, bool):
        raise TypeError(f"{owner}: mid_attention must be True or False, got {mid_attention!r}")
    levels = {2**i for i in range(len(mult))}
    unknown = sorted(set(factors) - levels)
    if unknown:
        raise ValueError(
            f"{owner}: attention_factors {unknown} are not downsampling factors of this network; "
            f"with {len(mult)} levels they are {sorted(levels)}"
        )
    bad = sorted({ch * m for m in mult if (ch * m) % norm_groups})
    if bad:
        raise ValueError(
            f"{owner}: norm_groups={norm_groups} must divide every width ch · ch_mult, "
            f"but not {bad}"
        )
    return mult, factors


def _check_input(owner: str, x: object, channels: int, factor: int, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{owner}: expected a tensor, got {type(x).__name__}")
    check_real_device(owner, x, name)
    if x.dim() != 4 or x.shape[1] != channels:
        raise ValueError(
            f"{owner}: expected {name} of shape (B, {channels}, H, W), got {tuple(x.shape)}"
        )
    if not x.dtype.is_floating_point:
        raise TypeError(f"{owner}: expected a floating-point {name}, got {x.dtype}")
    if x.shape[-2] % factor or x.shape[-1] % factor:
        raise ValueError(
            f"{owner}: downsamples by {factor}: H and W must be divisible by {factor}, "
            f"got {x.shape[-2]}×{x.shape[-1]}"
        )
    return x


class _Downsample(nn.Module):
    """A 3×3 conv of stride 2 after zero-padding one row and column at the bottom right."""

    def __init__(self, channels: int, dd: dict) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, **dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))  # (B, C, H/2, W/2) for even H, W


class _Upsample(nn.Module):
    """Nearest-neighbour ×2 then a 3×3 conv."""

    def __init__(self, channels: int, dd: dict) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, **dd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))  # (B, C, 2H, 2W)


def _middle(channels: int, dropout: float, groups: int, attention: bool, dd: dict) -> nn.Sequential:
    return nn.Sequential(
        TamingResBlock(channels, channels, dropout, groups, **dd),
        AttentionBlock(channels, groups, **dd) if attention else nn.Identity(),
        TamingResBlock(channels, channels, dropout, groups, **dd),
    )


@register("encoder", "taming")
class TamingEncoder(nn.Module):
    """VQ-GAN encoder (taming ``Encoder``): images → (B, out_channels, H / f, W / f).

    Args:
        in_channels: image channels ``C``.
        out_channels: latent channels ``D`` (the quantizer's ``dim``; taming's ``embed_dim``).
        ch: base width (taming: 128).
        ch_mult: width multiplier per level; ``len(ch_mult) - 1`` levels downsample by 2.
        num_res_blocks: residual blocks per level (taming: 2).
        attention_factors: downsampling factors of the levels that get self-attention after
            each residual block (taming's ImageNet f16: ``[16]``); ``[]`` for none.
        dropout: dropout inside the residual blocks (taming: 0.0).
        norm_groups: GroupNorm groups (taming: 32); must divide every width.
        mid_attention: self-attention in the middle block (taming: always).
        z_channels: if set, the network ends in ``z_channels`` and a 1×1 ``quant_conv`` maps to
            ``out_channels`` (taming's layout); None maps straight to ``out_channels``.

    Shape:
        - Input: (B, C, H, W), H and W divisible by ``f = 2**(len(ch_mult) - 1)``
        - Output: (B, D, H / f, W / f)
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 256,
        ch: int = 128,
        ch_mult: Sequence[int] = (1, 1, 2, 2, 4),
        num_res_blocks: int = 2,
        attention_factors: Sequence[int] = (16,),
        dropout: float = 0.0,
        norm_groups: int = 32,
        mid_attention: bool = True,
        z_channels: int | None = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        dd: dict[str, Any] = {"device": device, "dtype": dtype}
        mult, factors = _check_config(
            owner, ch, ch_mult, num_res_blocks, attention_factors, dropout, norm_groups,
            mid_attention,
        )  # fmt: skip
        self.in_channels = check_positive_int(owner, "in_channels", in_channels)
        self.out_channels = check_positive_int(owner, "out_channels", out_channels)
        if z_channels is not None:
            check_positive_int(owner, "z_channels", z_channels)
        self.ch, self.ch_mult, self.attention_factors = ch, mult, factors
        self.num_res_blocks, self.z_channels = num_res_blocks, z_channels
        self.num_downsamples = len(mult) - 1
        self.downsample_factor = 2**self.num_downsamples

        self.conv_in = nn.Conv2d(in_channels, ch, 3, padding=1, **dd)
        self.levels = nn.ModuleList()
        width = ch
        for i, m in enumerate(mult):
            blocks: list[nn.Module] = []
            for _ in range(num_res_blocks):
                blocks.append(TamingResBlock(width, ch * m, dropout, norm_groups, **dd))
                width = ch * m
                if 2**i in factors:
                    blocks.append(AttentionBlock(width, norm_groups, **dd))
            if i < len(mult) - 1:
                blocks.append(_Downsample(width, dd))
            self.levels.append(nn.Sequential(*blocks))
        self.mid = _middle(width, dropout, norm_groups, mid_attention, dd)
        self.norm_out = _groupnorm(width, norm_groups, dd)
        head = z_channels if z_channels is not None else out_channels
        self.conv_out = nn.Conv2d(width, head, 3, padding=1, **dd)
        self.quant_conv = (
            nn.Conv2d(z_channels, out_channels, 1, **dd) if z_channels is not None else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(type(self).__name__, x, self.in_channels, self.downsample_factor, "images")
        check_input_dtype(type(self).__name__, x, self)
        h = self.conv_in(x)  # (B, ch, H, W)
        for level in self.levels:
            h = level(h)  # (B, ch·mult, H/2^i, W/2^i)
        h = self.conv_out(F.silu(self.norm_out(self.mid(h))))  # (B, z or D, H/f, W/f)
        return h if self.quant_conv is None else self.quant_conv(h)  # (B, D, H/f, W/f)

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, out_channels={self.out_channels}, ch={self.ch}, "
            f"ch_mult={self.ch_mult}, num_res_blocks={self.num_res_blocks}, "
            f"attention_factors={self.attention_factors}, "
            f"downsample_factor={self.downsample_factor}"
        )


@register("decoder", "taming")
class TamingDecoder(nn.Module):
    """VQ-GAN decoder (taming ``Decoder``): (B, in_channels, h, w) → (B, C, h · f, w · f).

    Args:
        in_channels: latent channels ``D`` (the quantizer's ``dim``).
        out_channels: image channels ``C``.
        ch: base width (as for ``TamingEncoder``; use the same values).
        ch_mult: width multiplier per level (as for ``TamingEncoder``).
        num_res_blocks: residual blocks per level; each level has ``num_res_blocks + 1`` here,
            as in taming.
        attention_factors: downsampling factors with self-attention (as for ``TamingEncoder``).
        dropout: dropout in the residual blocks.
        norm_groups: GroupNorm groups.
        mid_attention: self-attention in the middle block.
        z_channels: if set, a 1×1 ``post_quant_conv`` maps ``in_channels`` to ``z_channels``
            first (taming's layout).

    The weight of the last conv, ``last_layer``, is where VQ-GAN's adaptive weight
    compares the gradients of the reconstruction and adversarial losses.

    Shape:
        - Input: (B, D, h, w)
        - Output: (B, C, h · f, w · f) with ``f = 2**(len(ch_mult) - 1)``
    """

    def __init__(
        self,
        in_channels: int = 256,
        out_channels: int = 3,
        ch: int = 128,
        ch_mult: Sequence[int] = (1, 1, 2, 2, 4),
        num_res_blocks: int = 2,
        attention_factors: Sequence[int] = (16,),
        dropout: float = 0.0,
        norm_groups: int = 32,
        mid_attention: bool = True,
        z_channels: int | None = None,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        dd: dict[str, Any] = {"device": device, "dtype": dtype}
        mult, factors = _check_config(
            owner, ch, ch_mult, num_res_blocks, attention_factors, dropout, norm_groups,
            mid_attention,
        )  # fmt: skip
        self.in_channels = check_positive_int(owner, "in_channels", in_channels)
        self.out_channels = check_positive_int(owner, "out_channels", out_channels)
        if z_channels is not None:
            check_positive_int(owner, "z_channels", z_channels)
        self.ch, self.ch_mult, self.attention_factors = ch, mult, factors
        self.num_res_blocks, self.z_channels = num_res_blocks, z_channels
        self.num_upsamples = len(mult) - 1
        self.upsample_factor = 2**self.num_upsamples

        self.post_quant_conv = (
            nn.Conv2d(in_channels, z_channels, 1, **dd) if z_channels is not None else None
        )
        width = ch * mult[-1]
        self.conv_in = nn.Conv2d(z_channels or in_channels, width, 3, padding=1, **dd)
        self.mid = _middle(width, dropout, norm_groups, mid_attention, dd)
        self.levels = nn.ModuleList()
        for i in reversed(range(len(mult))):
            blocks: list[nn.Module] = []
            for _ in range(num_res_blocks + 1):
                blocks.append(TamingResBlock(width, ch * mult[i], dropout, norm_groups, **dd))
                width = ch * mult[i]
                if 2**i in factors:
                    blocks.append(AttentionBlock(width, norm_groups, **dd))
            if i > 0:
                blocks.append(_Upsample(width, dd))
            self.levels.append(nn.Sequential(*blocks))
        self.norm_out = _groupnorm(width, norm_groups, dd)
        self.conv_out = nn.Conv2d(width, out_channels, 3, padding=1, **dd)

    @property
    def last_layer(self) -> nn.Parameter:
        """The weight of the final 3×3 conv (VQ-GAN's adaptive weight is measured here)."""
        return cast(nn.Parameter, self.conv_out.weight)  # typed Tensor in torch's stubs

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        _check_input(type(self).__name__, z, self.in_channels, 1, "latents")
        check_input_dtype(type(self).__name__, z, self)
        h = z if self.post_quant_conv is None else self.post_quant_conv(z)  # (B, z, h, w)
        h = self.mid(self.conv_in(h))  # (B, ch·mult[-1], h, w)
        for level in self.levels:
            h = level(h)  # up to (B, ch·mult[0], h·f, w·f)
        return self.conv_out(F.silu(self.norm_out(h)))  # (B, C, h·f, w·f)

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, out_channels={self.out_channels}, ch={self.ch}, "
            f"ch_mult={self.ch_mult}, num_res_blocks={self.num_res_blocks}, "
            f"attention_factors={self.attention_factors}, upsample_factor={self.upsample_factor}"
        )
