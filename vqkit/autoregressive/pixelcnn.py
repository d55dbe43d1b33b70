"""PixelCNN prior over grids of code indices.

"Pixel Recurrent Neural Networks", van den Oord, Kalchbrenner and Kavukcuoglu, 2016,
arXiv:1601.06759 (§3.4 PixelCNN, Fig. 5 residual block), used as the prior over VQ-VAE codes in
"Neural Discrete Representation Learning", van den Oord, Vinyals and Kavukcuoglu, 2017,
arXiv:1711.00937.

Architecture: a learned embedding of the codes, one type-A masked convolution, residual blocks of
type-B masked convolutions (ReLU → 1×1 → ReLU → k×k masked B → ReLU → 1×1, plus the input), then
ReLU → 1×1 → ReLU → 1×1 to K logits. The plain PixelCNN has a blind spot (positions up and to the
right that no stack of masked kernels reaches); ``GatedPixelCNN``
removes it.

Conditioning: a class adds a learned per-block bias; a spatial map s (``cond_channels``) adds a
bias-free 1×1 convolution of s at the same place, the location-dependent conditioning of
"Conditional Image Generation with PixelCNN Decoders", van den Oord et al. 2016,
arXiv:1606.05328, §2.3. The masks apply to the codes only: the map is fully known.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vqkit._checks import check_int, check_positive_int
from vqkit._hub import HubMixin
from vqkit._registry import register
from vqkit.autoregressive.base import GridPrior, LogitsHead
from vqkit.autoregressive.checks import check_cond_channels
from vqkit.autoregressive.masked import MaskedConv2d
from vqkit.autoregressive.sampling import (
    check_factory,
    check_kernel_size,
    check_num_embeddings,
    check_optional_classes,
)

__all__ = ["PixelCNN"]


class _ResidualBlock(nn.Module):
    """x + 1×1(ReLU(masked_B k×k(ReLU(1×1(ReLU(x)) + class bias + V * s)))): PixelRNN Fig. 5,
    with the class bias and the map's 1×1 convolution ``V * s`` where present."""

    def __init__(
        self,
        channels: int,
        kernel_size: int,
        num_classes: int | None,
        device: torch.device | str | None,
        dtype: torch.dtype | None,
        cond_channels: int | None = None,
    ) -> None:
        super().__init__()
        inner = max(channels // 2, 1)
        kw: dict[str, Any] = {"device": device, "dtype": dtype}
        self.reduce = nn.Conv2d(channels, inner, 1, **kw)
        self.conv = MaskedConv2d(inner, inner, kernel_size, mask_type="B", **kw)
        self.expand = nn.Conv2d(inner, channels, 1, **kw)
        self.cond = nn.Embedding(num_classes, inner, **kw) if num_classes else None
        self.map_proj: nn.Conv2d | None = None
        if cond_channels is not None:
            self.map_proj = nn.Conv2d(cond_channels, inner, 1, bias=False, **kw)

    def forward(
        self,
        x: torch.Tensor,
        cond: torch.Tensor | None,
        cond_map: torch.Tensor | None = None,
    ) -> torch.Tensor:
        y = self.reduce(F.relu(x))  # (B, C/2, H, W)
        if self.cond is not None:
            y = y + self.cond(cond)[:, :, None, None]
        if self.map_proj is not None:
            y = y + self.map_proj(cond_map)  # (B, C/2, H, W)
        y = self.expand(F.relu(self.conv(F.relu(y))))  # (B, C, H, W)
        return x + y


@register("prior", "pixelcnn")
class PixelCNN(GridPrior, HubMixin):
    """PixelCNN prior over (H, W) grids of K code indices, optionally class-conditional.

    Args:
        num_embeddings: number of categories K (the codebook size).
        hidden_channels: width of the residual stream (the embedding size too); each block's
            masked convolution works on ``hidden_channels // 2`` channels.
        num_layers: number of residual blocks of type-B masked convolutions.
        kernel_size: odd kernel size of the type-B convolutions.
        first_kernel_size: odd kernel size of the first, type-A convolution.
        head_channels: width of the hidden 1×1 convolution of the output head.
        num_classes: number of classes for class conditioning (a learned per-block bias), or None.
        cond_channels: channels S of a spatial conditioning map (a 1×1 convolution of it in
            every block), or None; with it, ``forward``, ``log_prob``, ``loss`` and ``sample``
            require ``cond_map`` (B, S, H, W).
        device: factory arguments for the parameters.
        dtype: factory arguments for the parameters.

    Shape:
        - indices: (B, H, W) int64 in [0, K); any H, W.
        - Output of ``forward``: logits (B, K, H, W); of ``log_prob``: (B,) nats.
    """

    def __init__(
        self,
        num_embeddings: int = 512,
        hidden_channels: int = 128,
        num_layers: int = 12,
        kernel_size: int = 3,
        first_kernel_size: int = 7,
        head_channels: int = 512,
        num_classes: int | None = None,
        cond_channels: int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        owner = "PixelCNN"
        self.num_embeddings = check_num_embeddings(owner, num_embeddings)
        self.hidden_channels = check_positive_int(owner, "hidden_channels", hidden_channels)
        self.num_layers = check_int(owner, "num_layers", num_layers, low=0)
        check_kernel_size(owner, "kernel_size", kernel_size)
        check_kernel_size(owner, "first_kernel_size", first_kernel_size, 3)
        check_positive_int(owner, "head_channels", head_channels)
        self.num_classes = check_optional_classes(owner, num_classes)
        self.cond_channels = check_cond_channels(owner, cond_channels)
        if self.cond_channels is not None and num_layers == 0:
            raise ValueError(
                f"{owner}: cond_channels={cond_channels} needs num_layers >= 1 (the map enters "
                "the residual blocks), got num_layers=0"
            )
        check_factory(owner, device, dtype)
        kw: dict[str, Any] = {"device": device, "dtype": dtype}
        self.embedding = nn.Embedding(num_embeddings, hidden_channels, **kw)
        self.input_conv = MaskedConv2d(
            hidden_channels, hidden_channels, first_kernel_size, mask_type="A", **kw
        )
        self.blocks = nn.ModuleList(
            _ResidualBlock(
                hidden_channels, kernel_size, self.num_classes, device, dtype, self.cond_channels
            )
            for _ in range(num_layers)
        )
        self.head = LogitsHead(hidden_channels, head_channels, num_embeddings, **kw)

    def logits_from_embeddings(
        self,
        x: torch.Tensor,
        cond: torch.Tensor | None = None,
        cond_map: torch.Tensor | None = None,
    ) -> torch.Tensor:
        h = self.input_conv(x)  # (B, C, H, W)
        for block in self.blocks:
            h = block(h, cond, cond_map)
        return self.head(h)  # (B, K, H, W)

    def extra_repr(self) -> str:
        return (
            f"num_embeddings={self.num_embeddings}, hidden_channels={self.hidden_channels}, "
            f"num_layers={self.num_layers}, num_classes={self.num_classes}, "
            f"cond_channels={self.cond_channels}"
        )
