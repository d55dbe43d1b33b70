"""Pre-LayerNorm transformer blocks shared by the transformer and MaskGIT priors.

"Attention Is All You Need", Vaswani et al. 2017, arXiv:1706.03762 (multi-head attention), with
the pre-LayerNorm arrangement of GPT-2 ("Language Models are Unsupervised Multitask Learners",
Radford et al. 2019) used by taming-transformers' second stage ("Taming Transformers for
High-Resolution Image Synthesis", Esser et al. 2021, arXiv:2012.09841) and by MaskGIT ("MaskGIT:
Masked Generative Image Transformer", Chang et al. 2022, arXiv:2202.04200).

Attention goes through ``torch.nn.functional.scaled_dot_product_attention``. A block can also run
one new position against cached keys and values (``Block.step``), which is what makes the
transformer prior's KV-cache sampler O(L) per position instead of O(L²).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from vqkit._checks import check_int, check_number, check_positive_int

__all__ = ["Block", "GridPositions", "check_widths"]


def check_widths(owner: str, embed_dim: int, num_heads: int, num_layers: int) -> None:
    """Validate the width, head count and depth of a transformer prior."""
    check_positive_int(owner, "embed_dim", embed_dim)
    check_positive_int(owner, "num_heads", num_heads)
    check_int(owner, "num_layers", num_layers, low=1)
    if embed_dim % num_heads:
        raise ValueError(
            f"{owner}: embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})"
        )


class GridPositions(nn.Module):
    """Learned 2-D positions: a row embedding plus a column embedding, for grids up to a size.

    Separate row and column tables let one model score any (H, W) up to ``max_size``, square or
    not, with (H_max + W_max)·E parameters instead of H_max·W_max·E.

    Args:
        max_size: the largest grid (H_max, W_max).
        embed_dim: E.

    Shape:
        - Output of ``forward((H, W))``: (H·W, E), raster order.
    """

    def __init__(self, max_size: tuple[int, int], embed_dim: int, device=None, dtype=None) -> None:
        super().__init__()
        kw: dict[str, Any] = {"device": device, "dtype": dtype}
        self.max_size = (int(max_size[0]), int(max_size[1]))
        self.rows = nn.Embedding(self.max_size[0], embed_dim, **kw)
        self.cols = nn.Embedding(self.max_size[1], embed_dim, **kw)
        nn.init.normal_(self.rows.weight, std=0.02)
        nn.init.normal_(self.cols.weight, std=0.02)

    def check_size(self, owner: str, size: tuple[int, int]) -> None:
        """Raise if ``size`` exceeds ``max_size``."""
        if size[0] > self.max_size[0] or size[1] > self.max_size[1]:
            raise ValueError(
                f"{owner}: the grid {tuple(size)} exceeds max_size {list(self.max_size)}; build "
                f"the prior with max_size=[H, W] at least as large"
            )

    def forward(self, size: tuple[int, int]) -> torch.Tensor:
        h, w = size
        rows = self.rows.weight[:h, None, :]  # (H, 1, E)
        cols = self.cols.weight[None, :w, :]  # (1, W, E)
        return (rows + cols).reshape(h * w, -1)  # (H·W, E)


class Block(nn.Module):
    """x + Attn(LN(x)); x + MLP(LN(x)), the MLP 4× wide with GELU.

    Args:
        embed_dim: E.
        num_heads: attention heads (E must be divisible by it).
        dropout: dropout on the attention weights and the residual branches.
        causal: whether position t attends only to positions ≤ t.

    Shape:
        - Input: (B, L, E)
        - Output: (B, L, E)
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        causal: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        kw: dict[str, Any] = {"device": device, "dtype": dtype}
        self.num_heads, self.causal = num_heads, causal
        self.dropout = check_number("Block", "dropout", dropout, low=0.0, high=1.0, high_open=True)
        self.norm_1 = nn.LayerNorm(embed_dim, **kw)
        self.qkv = nn.Linear(embed_dim, 3 * embed_dim, **kw)
        self.proj = nn.Linear(embed_dim, embed_dim, **kw)
        self.norm_2 = nn.LayerNorm(embed_dim, **kw)
        self.mlp = nn.Sequential(
            nn.Linear(embed_dim, 4 * embed_dim, **kw),
            nn.GELU(),
            nn.Linear(4 * embed_dim, embed_dim, **kw),
        )
        self.drop = nn.Dropout(dropout)

    def _heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q, k, v = self.qkv(self.norm_1(x)).chunk(3, dim=-1)  # (B, L, E) each
        split = "b l (n d) -> b n l d"
        return tuple(rearrange(t, split, n=self.num_heads) for t in (q, k, v))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self._heads(x)  # (B, heads, L, E / heads) each
        p = self.dropout if self.training else 0.0
        a = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=self.causal)
        x = x + self.drop(self.proj(rearrange(a, "b n l d -> b l (n d)")))  # (B, L, E)
        return x + self.drop(self.mlp(self.norm_2(x)))

    def step(
        self, x: torch.Tensor, cache_k: torch.Tensor, cache_v: torch.Tensor, t: int
    ) -> torch.Tensor:
        """One new position ``t`` attending to the cached positions 0..t-1 and itself.

        Writes the position's keys and values into ``cache_k`` / ``cache_v`` (in place).

        Shape:
            - x: (B, 1, E); cache_k, cache_v: (B, heads, L, E / heads)
            - Output: (B, 1, E)
        """
        q, k, v = self._heads(x)  # (B, heads, 1, E / heads) each
        cache_k[:, :, t : t + 1] = k
        cache_v[:, :, t : t + 1] = v
        a = F.scaled_dot_product_attention(q, cache_k[:, :, : t + 1], cache_v[:, :, : t + 1])
        x = x + self.proj(rearrange(a, "b n l d -> b l (n d)"))  # (B, 1, E)
        return x + self.mlp(self.norm_2(x))
