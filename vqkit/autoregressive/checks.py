"""Spatial-conditioning input checks, and exact dependency checks for grid priors by autograd.

``check_cond_map`` validates the ``cond_map`` of a spatially conditioned prior (a
``cond_channels`` map at the code grid's size, "Conditional Image Generation with PixelCNN
Decoders", van den Oord et al. 2016, arXiv:1606.05328, §2.3).

The logits at a position of a correct prior depend only on the codes before it in raster order
("Pixel Recurrent Neural Networks", van den Oord et al. 2016, arXiv:1601.06759). Gradients are
taken with respect to the continuous embedding of the codes (the input of
``logits_from_embeddings``), in float64 on a copy of the model, so "depends" means "has a
nonzero gradient" exactly, not up to a tolerance.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, cast

import torch
from torch import nn

from vqkit._checks import check_positive_int, check_real_device
from vqkit.autoregressive.sampling import check_grid_position

__all__ = [
    "check_cond_channels",
    "check_cond_map",
    "cond_map_dependencies",
    "grid_dependencies",
    "raster_before",
]


def check_cond_channels(owner: str, value: Any) -> int | None:
    """``cond_channels``: None (no spatial conditioning) or a positive int."""
    return None if value is None else check_positive_int(owner, "cond_channels", value)


def check_cond_map(
    owner: str,
    cond_map: Any,
    cond_channels: int | None,
    batch: int,
    size: tuple[int, int],
    like: torch.Tensor,
    broadcast: bool = False,
) -> torch.Tensor | None:
    """Validate the spatial conditioning map of a prior; None for a prior without one.

    ``cond_map`` is required iff ``cond_channels`` is set. It must be a finite floating-point
    tensor of shape (batch, cond_channels, H, W) at the prior's own code-grid size; with
    ``broadcast`` a batch of 1 is expanded to ``batch`` (``sample``'s convention).

    Args:
        owner: the caller, named in the errors (``"GatedPixelCNN.forward"``).
        cond_map: the map passed by the user.
        cond_channels: the prior's ``cond_channels`` (None: unconditioned).
        batch: the expected batch size B.
        size: the code grid (H, W).
        like: a parameter of the prior: the map is moved to its device and dtype.
        broadcast: whether a batch of 1 broadcasts to ``batch``.

    Shape:
        - cond_map: (B, cond_channels, H, W) (or (1, cond_channels, H, W) with ``broadcast``)
        - Output: (B, cond_channels, H, W) on ``like``'s device and dtype.
    """
    h, w = size
    expected = f"({batch}{' or 1' if broadcast else ''}, {cond_channels}, {h}, {w})"
    if cond_channels is None:
        if cond_map is not None:
            raise ValueError(
                f"{owner}: cond_map was given but this prior has no spatial conditioning "
                "(cond_channels=None); build it with cond_channels=... to condition on a map"
            )
        return None
    if cond_map is None:
        raise ValueError(
            f"{owner}: this prior is spatially conditioned (cond_channels={cond_channels}); pass "
            f"cond_map=... of shape {expected} (B, cond_channels, H, W) at the code grid's size"
        )
    if not isinstance(cond_map, torch.Tensor):
        raise TypeError(
            f"{owner}: cond_map must be a floating-point torch.Tensor of shape {expected}, got "
            f"{type(cond_map).__name__}"
        )
    if not cond_map.dtype.is_floating_point:
        raise TypeError(
            f"{owner}: cond_map must be a floating-point tensor, got dtype {cond_map.dtype}"
        )
    check_real_device(owner, cond_map, "cond_map")
    shape = tuple(cond_map.shape)
    batch_ok = len(shape) == 4 and (shape[0] == batch or (broadcast and shape[0] == 1))
    if not batch_ok or shape[1:] != (cond_channels, h, w):
        raise ValueError(
            f"{owner}: cond_map must have shape {expected} (B, cond_channels, H, W), got {shape}"
        )
    if not torch.compiler.is_compiling() and not bool(torch.isfinite(cond_map).all()):
        bad = int((~torch.isfinite(cond_map)).sum())
        raise ValueError(f"{owner}: cond_map must be finite, got {bad} NaN or infinite values")
    return cond_map.to(device=like.device, dtype=like.dtype).expand(batch, -1, -1, -1)


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
    hides a dependency). A spatially conditioned prior (``cond_channels`` set) gets a random
    map; ``cond_map_dependencies`` answers the same question for the map.

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
    return _dependencies(prior, size, position, cond, seed, wrt_map=False)


def cond_map_dependencies(
    prior: nn.Module,
    size: tuple[int, int],
    position: tuple[int, int] | None = None,
    cond: torch.Tensor | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """Which positions of the conditioning map the logits at ``position`` depend on.

    As ``grid_dependencies``, with the gradient taken with respect to a random float64
    ``cond_map`` instead of the embedded codes. The prior must have ``cond_channels`` set.

    Shape:
        - Output: (H, W) bool for one position, (H, W, H, W) for all (output position first).
    """
    if getattr(prior, "cond_channels", None) is None:
        raise ValueError(
            "cond_map_dependencies: the prior has no spatial conditioning (cond_channels=None)"
        )
    return _dependencies(prior, size, position, cond, seed, wrt_map=True)


def _dependencies(
    prior: nn.Module,
    size: tuple[int, int],
    position: tuple[int, int] | None,
    cond: torch.Tensor | None,
    seed: int,
    wrt_map: bool,
) -> torch.Tensor:
    owner = "cond_map_dependencies" if wrt_map else "grid_dependencies"
    embedding = getattr(prior, "embedding", None)
    if not (
        isinstance(prior, nn.Module)
        and isinstance(embedding, nn.Embedding)
        and callable(getattr(prior, "logits_from_embeddings", None))
    ):
        raise TypeError(
            f"{owner}: prior must be a GridPrior or another grid prior with an "
            "nn.Embedding `embedding` and a `logits_from_embeddings(x, cond)` method "
            f"(TransformerPrior, MaskGIT), got {type(prior).__name__}"
        )
    if position is None:
        check_grid_position(owner, size, (0, 0))
    else:
        check_grid_position(owner, size, position)
    model = copy.deepcopy(prior).double().eval()
    h, w = size
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(1, embedding.embedding_dim, h, w, generator=gen, dtype=torch.float64)
    channels = getattr(prior, "cond_channels", None)
    kwargs: dict[str, Any] = {}
    if channels is not None:
        kwargs["cond_map"] = torch.randn(1, channels, h, w, generator=gen, dtype=torch.float64)
    wrt = kwargs["cond_map"] if wrt_map else x
    wrt.requires_grad_(True)
    logits_fn = cast(Callable[..., torch.Tensor], model.logits_from_embeddings)
    logits = logits_fn(x, cond, **kwargs)  # (1, K, H, W)
    weights = torch.randn(logits.shape[1], generator=gen, dtype=torch.float64)
    projected = torch.einsum("bkhw,k->hw", logits, weights)  # (H, W)
    positions = [position] if position is not None else [(i, j) for i in range(h) for j in range(w)]
    out = torch.zeros(len(positions), h, w, dtype=torch.bool)
    for index, (i, j) in enumerate(positions):
        (grad,) = torch.autograd.grad(projected[i, j], wrt, retain_graph=True, allow_unused=True)
        if grad is not None:
            out[index] = grad[0].abs().sum(dim=0) > 0
    return out[0] if position is not None else out.view(h, w, h, w)
