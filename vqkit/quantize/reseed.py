"""Codebook re-initialisation policies: dead-code reseeding and CVQ-VAE's online clustering.

- :class:`DeadCodeReseed`: a code whose EMA usage falls below a threshold is replaced by an
  encoder output drawn from the current batch, and its EMA statistics are reset to match (the
  step encodec forgets, so its next EMA update overwrites the new code; ESPnet PR #6284).
- :class:`ClusteredReinit`: the online clustered codebook of Zheng & Vedaldi, "Online Clustered
  Codebook" (CVQ-VAE, arXiv:2307.15139, §3.3): every step each code moves toward an anchor by
  ``α_k = exp(−10·K·p̄_k/(1−γ) − ε)``, so rarely used codes are re-initialised and busy ones
  are untouched. Anchors are random batch features or each code's closest feature.

Both are fixed-shape tensor programs (``torch.where`` and ``lerp`` masks over all K codes, a
fixed number of sampled rows), so a training step traces under ``torch.compile(fullgraph=True)``.
Under ``torch.distributed`` the candidate rows are all-gathered, so every rank applies the same
change and the codebooks stay identical without a broadcast.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vqkit.quantize._distributed import all_gather_rows, world_size

__all__ = ["ClusteredReinit", "DeadCodeReseed", "closest_anchors", "sample_rows"]


def sample_rows(x: Tensor, k: int, sync: bool) -> Tensor:
    """``k`` random rows of ``x``, the same on every rank when ``sync`` and distributed.

    Each rank draws ``ceil(k / world)`` of its own rows (without replacement when it has enough),
    the draws are all-gathered in rank order and the first ``k`` kept: every rank ends with the
    same candidates, drawn from all ranks' data, with no shared random state.

    Shape:
        - x: (N, D); Output: (k, D)
    """
    world = world_size() if sync else 1
    per_rank = -(-k // world)
    n = x.shape[0]
    if n >= per_rank:
        idx = torch.randperm(n, device=x.device)[:per_rank]  # (per_rank,)
    else:
        idx = torch.randint(0, n, (per_rank,), device=x.device)
    rows = x[idx]  # (per_rank, D)
    if world > 1:
        rows = all_gather_rows(rows)[:k]  # (k, D)
    return rows


def closest_anchors(x: Tensor, rows: Tensor, dists: Tensor, sync: bool) -> Tensor:
    """Each code's nearest row of ``x``; across ranks, the nearest among every rank's best.

    Shape:
        - x: (N, D); rows, dists: (K,) from :func:`vqkit.functional.nearest_code`
        - Output: (K, D)
    """
    anchors = x[rows]  # (K, D)
    if sync and world_size() > 1:
        k = rows.shape[0]
        all_dists = all_gather_rows(dists[None])  # (W, K)
        all_anchors = all_gather_rows(anchors[None])  # (W, K, D)
        best = all_dists.argmin(0)  # (K,)
        anchors = all_anchors[best, torch.arange(k, device=x.device)]  # (K, D)
    return anchors


class DeadCodeReseed:
    """Replace codes whose usage is below ``threshold`` × the uniform usage.

    A code's usage is the EMA (debiased, so unbiased from the first step) of the number of
    vectors assigned to it per step. Under uniform assignment of the current (global) batch of
    ``n`` vectors every code would get ``n / K``; a code is dead when its usage is below
    ``threshold · n / K``. Both sides scale with the batch, so the threshold means the same thing
    at any batch or codebook size (an absolute count, as in vector-quantize-pytorch's
    ``threshold_ema_dead_code``, marks every code dead once ``n / K`` is small). A reseeded code
    restarts from the usage ``threshold · n / K``: it stays alive if it is used at least at that
    rate from the next step on, and is drawn again otherwise.

    Args:
        threshold: fraction of the uniform usage ``n / K`` below which a code is dead.
    """

    def __init__(self, threshold: float) -> None:
        self.threshold = float(threshold)

    def __call__(self, usage: Tensor, n: Tensor) -> tuple[Tensor, Tensor]:
        """Dead-code mask (K,) bool and the usage a reseeded code starts from (scalar)."""
        k = usage.shape[0]
        level = self.threshold * n / k  # scalar tensor
        return usage < level, level

    def __repr__(self) -> str:
        return f"DeadCodeReseed(threshold={self.threshold})"


class ClusteredReinit(nn.Module):
    """CVQ-VAE's online clustered re-initialisation weights (arXiv:2307.15139, eq. 7–8).

    Keeps ``p̄``, the EMA (decay ``γ``) of each code's share of the batch, and returns
    ``α_k = exp(−p̄_k · K · 10 / (1 − γ) − 1e−3)``: about 1 for unused codes, about 0 for codes
    used at the uniform rate ``1/K``. The caller moves each code by ``α_k`` toward its anchor.

    Args:
        codebook_size: K.
        anchor: ``"random"`` (random batch features) or ``"closest"`` (each code's nearest
            feature in the batch).
        decay: γ, 0.99 in the paper's code.
    """

    def __init__(
        self,
        codebook_size: int,
        anchor: str = "random",
        decay: float = 0.99,
        *,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.codebook_size = codebook_size
        self.anchor = anchor
        self.decay = float(decay)
        self.register_buffer("usage_prob", torch.zeros(codebook_size, device=device))

    def forward(self, counts: Tensor, n: Tensor) -> Tensor:
        """Update ``p̄`` from this step's counts (K,) of ``n`` vectors; return α (K,)."""
        self.usage_prob.lerp_(counts / n.clamp_min(1.0), 1.0 - self.decay)
        scale = self.codebook_size * 10.0 / (1.0 - self.decay)
        return torch.exp(-self.usage_prob * scale - 1e-3)

    def extra_repr(self) -> str:
        return f"anchor={self.anchor!r}, decay={self.decay}"
