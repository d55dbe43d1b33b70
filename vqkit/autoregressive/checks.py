"""Exact dependency checks for autoregressive grid priors, by autograd.

The logits at a position of a correct prior depend only on the codes before it in raster order
("Pixel Recurrent Neural Networks", van den Oord et al. 2016, arXiv:1601.06759). Gradients are
taken with respect to the continuous embedding of the codes (the input of
``logits_from_embeddings``), in float64 on a copy of the model, so "depends" means "has a
nonzero gradient" exactly, not up to a tolerance.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from vqkit.autoregressive.sampling import check_grid_position

__all__ = ["grid_dependencies", "raster_before"]


def raster_before(size: tuple[int, int], position: tuple[int, int]) -> torch.Tensor:
    """(H, W) bool: True at the positions strictly before ``position`` in raster order."""
    h, w = size
    i, j = position
    flat = torch.arange(h * w).reshape(h, w)
    return flat < i * w + j


def grid_dependencies(
    prior: nn.Module,
    size: tuple[int, int],
    position: tuple[int, int] | None = None,
    cond: torch.Tensor | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """Which input positions the logits at ``position`` (or at every position) depend on.

    One forward pass in float64 on a copy of ``prior``, then one backward pass per output
    position, of a random projection of its K logits (so that no cancellation in a plain sum
    hides a dependency).

    Args:
        prior: a grid prior over codes: a ``GridPrior``
            (PixelCNN, GatedPixelCNN), TransformerPrior or MaskGIT — anything with an
            ``embedding`` and ``logits_from_embeddings``.
        size: grid size (H, W).
        position: the output position (i, j); None for all of them.
        cond: class labels (1,) for a conditional prior.
        seed: seed of the random continuous input and projection.

    Shape:
        - Output: (H, W) bool for one position, (H, W, H, W) for all (output position first);
          True where the gradient with respect to the embedding at that input position is
          nonzero.
    """
    embedding = getattr(prior, "embedding", None)
    if not (
        isinstance(prior, nn.Module)
        and isinstance(embedding, nn.Embedding)
        and callable(getattr(prior, "logits_from_embeddings", None))
    ):
        raise TypeError(
            "grid_dependencies: prior must be a GridPrior or another grid prior with an "
            "nn.Embedding `embedding` and a `logits_from_embeddings(x, cond)` method "
            f"(TransformerPrior, MaskGIT), got {type(prior).__name__}"
        )
    if position is None:
        check_grid_position("grid_dependencies", size, (0, 0))
    else:
        check_grid_position("grid_dependencies", size, position)
    model: Any = copy.deepcopy(prior).double().eval()  # duck-typed grid prior, checked above
    h, w = size
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(1, embedding.embedding_dim, h, w, generator=gen, dtype=torch.float64)
    x.requires_grad_(True)
    logits = model.logits_from_embeddings(x, cond)  # (1, K, H, W)
    weights = torch.randn(logits.shape[1], generator=gen, dtype=torch.float64)
    projected = torch.einsum("bkhw,k->hw", logits, weights)  # (H, W)
    positions = [position] if position is not None else [(i, j) for i in range(h) for j in range(w)]
    out = torch.zeros(len(positions), h, w, dtype=torch.bool)
    for index, (i, j) in enumerate(positions):
        (grad,) = torch.autograd.grad(projected[i, j], x, retain_graph=True)
        out[index] = grad[0].abs().sum(dim=0) > 0
    return out[0] if position is not None else out.view(h, w, h, w)
