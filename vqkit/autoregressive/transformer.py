"""Autoregressive transformer prior over raster-ordered code grids, with a KV-cache sampler.

The second stage of "Taming Transformers for High-Resolution Image Synthesis" (Esser, Rombach
and Ommer 2021, arXiv:2012.09841, §3.2): a decoder-only (GPT) transformer models
``p(s) = Π_i p(s_i | s_<i)`` over the codes ``s`` of a VQ model read in raster order, optionally
conditioned on a class (taming's class-conditional ImageNet model puts the class as the first
token; here the class embedding *is* the start token).

Layout of one sequence of L = H·W codes (E: width)::

    input    [start(c), e(s_0), e(s_1), ..., e(s_{L-2})] + pos(0..L-1)     (B, L, E)
    blocks   pre-LN causal self-attention + MLP                              (B, L, E)
    output   LN -> Linear -> logits of s_0, ..., s_{L-1}                     (B, L, K)

so the logits at position t see only codes before t, exactly (tested by autograd in float64).

Spatial conditioning (``cond_channels``): a bias-free linear layer of the map's channels at each
position, ``m(t) = V s_t``, is added to the input token that *predicts* position t, the same slot
as ``pos(t)`` (so token t holds ``e(s_{t-1}) + pos(t) + m(t)``): the logits of position t see the
map at positions 0..t (t itself through its own token, the earlier ones through attention) and no
code at or after t. The KV-cache sampler adds ``m(t)`` to the token it feeds at step t.
Positions are a learned row embedding plus a learned column embedding (any grid up to
``max_size``).

Sampling (``method``): ``"naive"`` runs the whole network once per position (O(L²) attention per
position); ``"cached"`` (the default) runs one position at a time against cached keys and values
(``vqkit.autoregressive._attention.Block.step``). Both draw one uniform number per sample per
position with ``draw_uniform`` and map it through the same
filtered inverse CDF, so for the same generator they return the same codes.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from einops import rearrange
from torch import nn

from vqkit._checks import (
    check_choice,
    check_generator,
    check_int,
    check_number,
    check_positive_int,
)
from vqkit._hub import HubMixin
from vqkit._registry import register
from vqkit.autoregressive._attention import Block, GridPositions, check_widths
from vqkit.autoregressive.base import GridPrior
from vqkit.autoregressive.checks import check_cond_channels
from vqkit.autoregressive.sampling import (
    check_cond,
    check_temperature,
    draw_codes,
    draw_uniform,
    prepare_given,
)

__all__ = ["TransformerPrior", "filter_logits"]


def _max_size(owner: str, max_size: int | list[int] | tuple[int, int]) -> tuple[int, int]:
    if isinstance(max_size, int) and not isinstance(max_size, bool):
        return (check_positive_int(owner, "max_size", max_size),) * 2
    if isinstance(max_size, (list, tuple)) and len(max_size) == 2:
        return cast(  # a pair: len(max_size) == 2
            tuple[int, int], tuple(check_positive_int(owner, "max_size", s) for s in max_size)
        )
    raise ValueError(f"{owner}: max_size must be an int or a pair [H, W], got {max_size!r}")


def check_top_k_top_p(
    owner: str, top_k: int | None, top_p: float | None, num_embeddings: int
) -> tuple[int | None, float | None]:
    """Validate ``top_k`` (None or an int in [1, K]) and ``top_p`` (None or a number in (0, 1])."""
    if top_k is not None:
        check_int(owner, "top_k", top_k, low=1, high=num_embeddings)
    if top_p is not None:
        top_p = check_number(owner, "top_p", top_p, low=0.0, high=1.0, low_open=True)
    return top_k, top_p


def filter_logits(
    logits: torch.Tensor, temperature: float, top_k: int | None = None, top_p: float | None = None
) -> torch.Tensor:
    """Logits with everything outside the top-k / nucleus set at ``-inf`` (float64).

    Top-k keeps the k largest logits ("Hierarchical Neural Story Generation", Fan et al. 2018,
    arXiv:1805.04833); top-p keeps the smallest set of most likely codes whose probability under
    ``softmax(logits / temperature)`` reaches ``top_p`` ("The Curious Case of Neural Text
    Degeneration", Holtzman et al. 2019, arXiv:1904.09751). Both are applied when both are given;
    the most likely code is always kept.

    Shape:
        - logits: (B, K)
        - Output: (B, K) float64
    """
    if not isinstance(logits, torch.Tensor) or not logits.dtype.is_floating_point:
        raise TypeError(
            f"filter_logits: logits must be a floating-point tensor, got {logits!r:.60}"
        )
    if logits.dim() != 2 or logits.shape[1] < 1:
        raise ValueError(f"filter_logits: logits must have shape (B, K), got {tuple(logits.shape)}")
    temperature = check_temperature(temperature)
    top_k, top_p = check_top_k_top_p("filter_logits", top_k, top_p, logits.shape[1])
    logits = logits.double()
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        probs = torch.softmax(logits / temperature, dim=-1)  # (B, K)
        sorted_probs, order = probs.sort(dim=-1, descending=True)  # (B, K)
        before = sorted_probs.cumsum(dim=-1) - sorted_probs  # mass of the codes ranked above
        drop_sorted = before >= top_p  # the first code always has before = 0 < top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


@register("prior", "transformer")
class TransformerPrior(GridPrior, HubMixin):
    """Causal decoder-only transformer prior over (H, W) grids of K codes, raster order.

    Args:
        num_embeddings: number of codes K (the codebook size).
        embed_dim: width E of the token embeddings and the residual stream.
        num_layers: number of transformer blocks.
        num_heads: attention heads per block (E must be divisible by it).
        max_size: the largest grid the learned positions cover: an int (square) or [H, W].
        num_classes: number of classes for class conditioning (the class embedding is the start
            token), or None.
        dropout: dropout on embeddings, attention weights and residual branches while training.
        cond_channels: channels S of a spatial conditioning map, or None. A bias-free linear
            layer ``map_proj`` (S -> E) of the map at position t is added to the token that
            predicts t; ``forward``, ``log_prob``, ``loss`` and ``sample`` then require
            ``cond_map`` (B, S, H, W).
        device: factory arguments for the parameters.
        dtype: factory arguments for the parameters.

    Shape:
        - indices: (B, H, W) int64 in [0, K), H ≤ max_size[0], W ≤ max_size[1].
        - Output of ``forward``: logits (B, K, H, W), ``logits[:, :, i, j]`` depends only on codes
          before (i, j) in raster order (and on ``cond_map`` at positions up to (i, j)); of
          ``log_prob``: (B,) nats.

    Example:
        >>> prior = TransformerPrior(num_embeddings=16, embed_dim=32, num_layers=2, num_heads=2)
        >>> codes = prior.sample(2, (4, 4), generator=torch.Generator().manual_seed(0))
        >>> prior.log_prob(codes).shape
        torch.Size([2])
    """

    sample_methods = ("cached", "naive")

    start: nn.Parameter | None
    class_embedding: nn.Embedding | None

    def __init__(
        self,
        num_embeddings: int = 512,
        embed_dim: int = 256,
        num_layers: int = 8,
        num_heads: int = 8,
        max_size: int | list[int] = 32,
        num_classes: int | None = None,
        dropout: float = 0.0,
        cond_channels: int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.num_embeddings = check_int(owner, "num_embeddings", num_embeddings, low=2)
        check_widths(owner, embed_dim, num_heads, num_layers)
        self.embed_dim, self.num_layers, self.num_heads = embed_dim, num_layers, num_heads
        self.max_size = _max_size(owner, max_size)
        self.num_classes = (
            None if num_classes is None else check_positive_int(owner, "num_classes", num_classes)
        )
        self.cond_channels = check_cond_channels(owner, cond_channels)
        kw: dict[str, Any] = {"device": device, "dtype": dtype}
        self.embedding = nn.Embedding(num_embeddings, embed_dim, **kw)
        if self.num_classes is None:
            self.start = nn.Parameter(torch.zeros(1, 1, embed_dim, **kw))
            self.class_embedding = None
        else:
            self.start = None
            self.class_embedding = nn.Embedding(self.num_classes, embed_dim, **kw)
        self.positions = GridPositions(self.max_size, embed_dim, **kw)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, dropout, causal=True, **kw) for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(embed_dim, **kw)
        self.head = nn.Linear(embed_dim, num_embeddings, **kw)
        self.map_proj: nn.Linear | None = None
        if self.cond_channels is not None:
            self.map_proj = nn.Linear(self.cond_channels, embed_dim, bias=False, **kw)
        self.apply(_init_weights)

    # ------------------------------------------------------------------ scoring
    def _start(self, cond: torch.Tensor | None, batch: int) -> torch.Tensor:
        """The start token of each sequence: (B, 1, E)."""
        if self.class_embedding is None:  # unconditional: `start` is set instead
            return cast(nn.Parameter, self.start).expand(batch, 1, -1)
        return self.class_embedding(cond)[:, None, :]

    def _slots(self, size: tuple[int, int], cond_map: torch.Tensor | None) -> torch.Tensor:
        """What is added to the token that predicts each position: ``pos(t)`` (+ ``m(t)``).

        Shape:
            - cond_map: (B, S, H, W) or None
            - Output: (H·W, E) without a map, (B, H·W, E) with one.
        """
        positions = self.positions(size)  # (L, E)
        if self.map_proj is None or cond_map is None:
            return positions
        flat = rearrange(cond_map, "b s h w -> b (h w) s")  # (B, L, S)
        return positions + self.map_proj(flat)  # (B, L, E)

    def logits_from_embeddings(
        self,
        x: torch.Tensor,
        cond: torch.Tensor | None = None,
        cond_map: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits from embedded codes (B, E, H, W) → (B, K, H, W), the start token prepended.

        ``cond_map`` (B, S, H, W): the map at position t joins the token that predicts t."""
        b, _, h, w = x.shape
        tokens = rearrange(x, "b e h w -> b (h w) e")  # (B, L, E)
        tokens = torch.cat([self._start(cond, b), tokens[:, :-1]], dim=1)  # shifted by one
        hidden = self.drop(tokens + self._slots((h, w), cond_map))  # (B, L, E)
        for block in self.blocks:
            hidden = block(hidden)
        logits = self.head(self.norm(hidden))  # (B, L, K)
        return rearrange(logits, "b (h w) k -> b k h w", h=h)

    def _check_grid(self, size: tuple[int, int]) -> None:
        if size[0] < 1 or size[1] < 1:
            raise ValueError(f"{type(self).__name__}: the code grid must be non-empty, got {size}")
        self.positions.check_size(type(self).__name__, size)

    # ----------------------------------------------------------------- sampling
    @torch.no_grad()
    def sample(  # type: ignore[override]  # options by keyword; top_k / top_p
        self,
        n: int,
        size: tuple[int, int] | None = None,
        *,
        cond: torch.Tensor | int | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        given: torch.Tensor | None = None,
        given_mask: torch.Tensor | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
        method: str = "auto",
        cond_map: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Draw ``n`` grids of codes in raster order.

        Each position draws one uniform number per sample from ``generator`` (given positions
        too), so ``"cached"`` and ``"naive"`` return the same codes for the same generator state.

        Args:
            n: number of samples.
            size: grid size (H, W); may be omitted when ``given`` is passed.
            cond: class labels (n,) or an int (conditional priors only).
            temperature: logits are divided by it; < 1 sharpens, > 1 flattens.
            generator: a ``torch.Generator`` for reproducible draws.
            given: known codes (n, H, W) or (H, W) to complete; a sampled position is conditioned
                on every code before it in raster order, given or sampled.
            given_mask: bool, broadcastable to (n, H, W): True where ``given`` is known
                (default: ``given >= 0``).
            top_k: keep only the k most likely codes at each position (None: all).
            top_p: keep the smallest set of most likely codes with probability ≥ top_p
                (nucleus sampling; None or 1.0: all).
            method: ``"auto"`` (``"cached"``), ``"cached"`` or ``"naive"``.
            cond_map: the spatial map (n, cond_channels, H, W), or (1, cond_channels, H, W)
                shared by all n samples (broadcast); required iff ``cond_channels`` is set.

        Shape:
            - Output: (n, H, W) int64 on the prior's device.
        """
        owner = f"{type(self).__name__}.sample"
        method = check_choice(owner, "method", method, ("auto", *self.sample_methods))
        if method == "auto":
            method = self.sample_methods[0]
        temperature = check_temperature(temperature)
        top_k, top_p = check_top_k_top_p(owner, top_k, top_p, self.num_embeddings)
        device = self.embedding.weight.device
        check_generator(owner, generator, device)
        size, given, known = prepare_given(n, size, given, given_mask, self.num_embeddings, device)
        self._check_grid(size)
        cond = check_cond(cond, self.num_classes, n, device)
        cond_map = self._check_cond_map("sample", cond_map, n, size, broadcast=True)
        sampler = self._sample_cached if method == "cached" else self._sample_naive
        return sampler(given, known, cond, temperature, generator, cond_map, top_k, top_p)

    def _draw(self, logits, u, temperature, top_k, top_p) -> torch.Tensor:
        return draw_codes(filter_logits(logits, temperature, top_k, top_p), u, temperature)

    def _sample_naive(
        self,
        codes: torch.Tensor,
        known: torch.Tensor,
        cond: torch.Tensor | None,
        temperature: float,
        generator: torch.Generator | None,
        cond_map: torch.Tensor | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
    ) -> torch.Tensor:
        """The whole network once per unknown position: L passes over the whole sequence."""
        n, h, w = codes.shape
        codes = codes.clone()
        for i in range(h):
            for j in range(w):
                u = draw_uniform(n, generator, codes.device)
                if bool(known[:, i, j].all()):
                    continue
                logits = self.logits_from_embeddings(self.embed(codes), cond, cond_map)
                logits = logits[:, :, i, j]
                drawn = self._draw(logits, u, temperature, top_k, top_p)
                codes[:, i, j] = torch.where(known[:, i, j], codes[:, i, j], drawn)
        return codes

    def _sample_cached(
        self,
        codes: torch.Tensor,
        known: torch.Tensor,
        cond: torch.Tensor | None,
        temperature: float,
        generator: torch.Generator | None,
        cond_map: torch.Tensor | None = None,
        top_k: int | None = None,
        top_p: float | None = None,
    ) -> torch.Tensor:
        """One position at a time against cached keys and values: O(L) attention per position."""
        n, h, w = codes.shape
        length = h * w
        flat = codes.reshape(n, length).clone()  # (n, L)
        known = known.reshape(n, length)
        weight = self.embedding.weight
        head_dim = self.embed_dim // self.num_heads
        shape = (n, self.num_heads, length, head_dim)
        caches = [
            (weight.new_zeros(shape), weight.new_zeros(shape)) for _ in range(self.num_layers)
        ]
        # what joins the token fed at step t: pos(t) (+ the map's m(t)), (L, E) or (n, L, E)
        slots = self._slots((h, w), cond_map).expand(n, length, -1)  # (n, L, E)
        token = self._start(cond, n) + slots[:, None, 0]  # (n, 1, E)
        for t in range(length):
            u = draw_uniform(n, generator, flat.device)
            hidden = token
            for block, (cache_k, cache_v) in zip(self.blocks, caches, strict=True):
                hidden = cast(Block, block).step(hidden, cache_k, cache_v, t)  # (n, 1, E)
            if not bool(known[:, t].all()):
                logits = self.head(self.norm(hidden[:, 0]))  # (n, K)
                drawn = self._draw(logits, u, temperature, top_k, top_p)
                flat[:, t] = torch.where(known[:, t], flat[:, t], drawn)
            if t + 1 < length:
                token = self.embedding(flat[:, t])[:, None, :] + slots[:, None, t + 1]
        return flat.reshape(n, h, w)

    def extra_repr(self) -> str:
        return (
            f"num_embeddings={self.num_embeddings}, embed_dim={self.embed_dim}, "
            f"num_layers={self.num_layers}, num_heads={self.num_heads}, "
            f"max_size={list(self.max_size)}, num_classes={self.num_classes}, "
            f"cond_channels={self.cond_channels}"
        )


def _init_weights(module: nn.Module) -> None:
    """GPT-2's initialisation: N(0, 0.02) weights, zero biases."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
