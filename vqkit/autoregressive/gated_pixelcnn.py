"""Gated PixelCNN prior over grids of code indices, with no blind spot.

"Conditional Image Generation with PixelCNN Decoders", van den Oord, Kalchbrenner, Vinyals,
Espeholt, Graves and Kavukcuoglu, 2016, arXiv:1606.05328 (§2.2 gated units, §2.3 class
conditioning, Fig. 2 one layer).

Each layer has two stacks (p = kernel_size // 2):

- the vertical stack sees a (p+1)×k window ending at the current row (the first layer: a p×k
  window of the rows strictly above), so it covers every column within reach of all rows above;
- the horizontal stack sees a 1×(p+1) window ending at the current column (the first layer: the
  p columns strictly to the left) and receives the vertical stack through a 1×1 convolution of its
  pre-gate features. The vertical stack never receives the horizontal one.

Both stacks use ``tanh(a + V_f c) ⊙ σ(b + V_g c)`` gates (c: the class embedding, if any); the
horizontal stack has a residual connection (except the first layer, whose input is the current
code) and a 1×1 skip connection. Causal windows are implemented by padding and cropping, not by
masks, so no weight is ever wasted.

Receptive field of the output at (i, j) with L layers, R = first_kernel_size // 2 +
(L - 1) * (kernel_size // 2): every (i', j') with ``i - R <= i' < i`` and ``|j' - j| <= R``, and
every (i, j') with ``j - R <= j' < j`` (clipped to the grid). :meth:`GatedPixelCNN.receptive_field`
returns it; the tests check that autograd finds exactly this set.

Sampling: ``method="naive"`` runs H·W full forward passes; ``method="fast"`` (the default) caches
the stacks: see :mod:`vqkit.autoregressive.gated_sampling`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vqkit._hub import HubMixin
from vqkit._registry import register
from vqkit.autoregressive.base import GridPrior, logits_head
from vqkit.autoregressive.pixelcnn import _check_positive_int

__all__ = ["GatedLayer", "GatedPixelCNN"]


def gate(x: torch.Tensor) -> torch.Tensor:
    """``tanh(a) * sigmoid(b)`` with ``a, b`` the two halves of the channel dimension (dim 1)."""
    a, b = x.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


class GatedLayer(nn.Module):
    """One Gated PixelCNN layer (paper Fig. 2): vertical and horizontal stacks.

    Args:
        channels: number of channels C of both stacks.
        kernel_size: odd k; the vertical window is (p+1)×k and the horizontal one 1×(p+1), with
            p = k // 2 (for the first layer, p×k and 1×p: strictly before the current position).
        first: whether this is the first layer (type "A": excludes the current position, and has
            no residual connection).
        num_classes: number of classes for conditioning, or None.
        device: factory arguments for the parameters.
        dtype: factory arguments for the parameters.

    Shape:
        - v, h: (B, C, H, W); cond: (B,) int64 or None
        - Output: (v_out, h_out, skip), each (B, C, H, W)
    """

    def __init__(
        self,
        channels: int,
        kernel_size: int,
        first: bool,
        num_classes: int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1 or kernel_size < (3 if first else 1):
            raise ValueError(
                f"kernel_size must be odd and >= {3 if first else 1}"
                f"{' for the first layer' if first else ''}, got {kernel_size}"
            )
        kw = {"device": device, "dtype": dtype}
        self.channels, self.kernel_size, self.first = channels, kernel_size, first
        self.pad = kernel_size // 2
        reach = self.pad if first else self.pad + 1  # rows (vertical) / columns (horizontal)
        self.v_conv = nn.Conv2d(channels, 2 * channels, (reach, kernel_size), **kw)
        self.h_conv = nn.Conv2d(channels, 2 * channels, (1, reach), **kw)
        self.v_to_h = nn.Conv2d(2 * channels, 2 * channels, 1, **kw)
        # one 1×1 conv for both outputs of the gated horizontal features: residual and skip
        self.h_out = nn.Conv2d(channels, 2 * channels, 1, **kw)
        if num_classes is not None:
            self.cond_v = nn.Embedding(num_classes, 2 * channels, **kw)
            self.cond_h = nn.Embedding(num_classes, 2 * channels, **kw)
        else:
            self.cond_v = self.cond_h = None

    def forward(
        self, v: torch.Tensor, h: torch.Tensor, cond: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        height, width = v.shape[-2:]
        p = self.pad
        # Pad p rows on top and p columns each side; the first layer's p-row kernel then yields
        # H + 1 rows, row r covering rows r-p..r-1: cropping to H keeps it strictly above.
        v_pre = self.v_conv(F.pad(v, (p, p, p, 0)))[:, :, :height]  # (B, 2C, H, W)
        h_pre = self.h_conv(F.pad(h, (p, 0, 0, 0)))[:, :, :, :width]  # (B, 2C, H, W)
        h_pre = h_pre + self.v_to_h(v_pre)
        if self.cond_v is not None:
            v_pre = v_pre + self.cond_v(cond)[:, :, None, None]
            h_pre = h_pre + self.cond_h(cond)[:, :, None, None]
        v_out = gate(v_pre)  # (B, C, H, W)
        h_gated = gate(h_pre)  # (B, C, H, W)
        h_out, skip = self.h_out(h_gated).chunk(2, dim=1)  # (B, C, H, W) each
        if not self.first:
            h_out = h_out + h
        return v_out, h_out, skip

    def extra_repr(self) -> str:
        return f"channels={self.channels}, kernel_size={self.kernel_size}, first={self.first}"


@register("prior", "gated_pixelcnn")
class GatedPixelCNN(GridPrior, HubMixin):
    """Gated PixelCNN prior over (H, W) grids of K code indices; no blind spot.

    Args:
        num_embeddings: number of categories K (the codebook size).
        hidden_channels: channels C of both stacks (and the embedding size).
        num_layers: number of gated layers L (the first one excludes the current position).
        num_classes: number of classes for class conditioning (paper §2.3), or None.
        kernel_size: odd kernel size k of layers 2..L.
        first_kernel_size: odd kernel size of the first layer (>= 3).
        head_channels: width of the hidden 1×1 convolution of the output head.
        device: factory arguments for the parameters.
        dtype: factory arguments for the parameters.

    Shape:
        - indices: (B, H, W) int64 in [0, K); any H, W (non-square too).
        - Output of ``forward``: logits (B, K, H, W); of ``log_prob``: (B,) nats.
    """

    sample_methods = ("fast", "naive")

    def __init__(
        self,
        num_embeddings: int = 512,
        hidden_channels: int = 64,
        num_layers: int = 15,
        num_classes: int | None = None,
        kernel_size: int = 3,
        first_kernel_size: int = 7,
        head_channels: int = 512,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.num_embeddings = _check_positive_int("num_embeddings", num_embeddings, 2)
        self.hidden_channels = _check_positive_int("hidden_channels", hidden_channels)
        self.num_layers = _check_positive_int("num_layers", num_layers)
        self.num_classes = (
            None if num_classes is None else _check_positive_int("num_classes", num_classes)
        )
        kw = {"device": device, "dtype": dtype}
        self.embedding = nn.Embedding(num_embeddings, hidden_channels, **kw)
        self.layers = nn.ModuleList(
            GatedLayer(
                hidden_channels,
                first_kernel_size if index == 0 else kernel_size,
                first=index == 0,
                num_classes=self.num_classes,
                **kw,
            )
            for index in range(num_layers)
        )
        self.head = logits_head(hidden_channels, head_channels, num_embeddings, **kw)

    def logits_from_embeddings(
        self, x: torch.Tensor, cond: torch.Tensor | None = None
    ) -> torch.Tensor:
        v = h = x  # (B, C, H, W)
        skips = 0
        for layer in self.layers:
            v, h, skip = layer(v, h, cond)
            skips = skips + skip
        return self.head(skips)  # (B, K, H, W)

    @property
    def reach(self) -> int:
        """R: how many rows up, and columns left or right, the output at a position sees."""
        return sum(layer.pad for layer in self.layers)

    def receptive_field(self, size: tuple[int, int], position: tuple[int, int]) -> torch.Tensor:
        """The positions the logits at ``position`` depend on, by construction.

        Shape:
            - Output: (H, W) bool; True at (i', j') iff i-R <= i' < i and |j'-j| <= R, or
              i' == i and j-R <= j' < j.
        """
        h, w = size
        i, j = position
        r = self.reach
        rows = torch.arange(h)[:, None]
        cols = torch.arange(w)[None, :]
        above = (rows >= i - r) & (rows < i) & ((cols - j).abs() <= r)
        left = (rows == i) & (cols >= j - r) & (cols < j)
        return above | left

    def _sample_fast(
        self,
        codes: torch.Tensor,
        known: torch.Tensor,
        cond: torch.Tensor | None,
        temperature: float,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        from vqkit.autoregressive.gated_sampling import sample_fast  # imports this module

        return sample_fast(self, codes, known, cond, temperature, generator)

    def extra_repr(self) -> str:
        return (
            f"num_embeddings={self.num_embeddings}, hidden_channels={self.hidden_channels}, "
            f"num_layers={self.num_layers}, num_classes={self.num_classes}, reach={self.reach}"
        )
