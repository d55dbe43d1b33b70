"""The output type shared by every vqkit quantizer, and the layout helpers they use.

Every quantizer (``VectorQuantizer``, ``ResidualVQ``, ``FSQ``) returns a ``QuantizerOutput``,
so models and the trainer never special-case the quantizer they were given.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from vqkit._checks import check_real_device

__all__ = ["QuantizerOutput"]


@dataclass
class QuantizerOutput:
    """What a quantizer returns.

    Attributes:
        quantized: the quantized tensor, same shape as the input, with the estimator's gradient
            (straight-through by default) flowing to the input.
        indices: code indices, int64, the input's shape without the channel dimension (ResidualVQ
            adds a trailing quantizer dimension).
        loss: scalar training loss of the quantizer (commitment term, plus the codebook term for
            a learnable codebook; 0 for FSQ). Add it to the model's objective.
        perplexity: scalar exp(entropy) of this batch's code usage (detached).
        metrics: detached scalars for logging, e.g. ``"perplexity"``, ``"batch_usage"``,
            ``"window_usage"``, ``"dead_codes"``, ``"reseeded"``, ``"commitment"``.
    """

    quantized: Tensor
    indices: Tensor
    loss: Tensor
    perplexity: Tensor
    metrics: dict[str, Tensor] = field(default_factory=dict)


def check_input(x: object, dim: int, channel_last: bool, name: str) -> None:
    """Validate a quantizer input: a floating tensor with ``dim`` channels where expected."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} expects a torch.Tensor, got {type(x).__name__}")
    check_real_device(name, x)
    if not x.is_floating_point():
        raise TypeError(f"{name} expects a floating-point tensor, got dtype {x.dtype}")
    layout = "(B, *, D) (channel_last=True)" if channel_last else "(B, D, *spatial)"
    if x.ndim < 2:
        raise ValueError(f"{name} expects input of shape {layout}, got shape {tuple(x.shape)}")
    axis = -1 if channel_last else 1
    if x.shape[axis] != dim:
        other = "channel_last=False" if channel_last else "channel_last=True"
        raise ValueError(
            f"{name} expects {dim} channels at dim {axis} of an input {layout}, got shape "
            f"{tuple(x.shape)} (for the other layout pass {other})"
        )
    if x.numel() == 0:
        raise ValueError(f"{name} got an empty input of shape {tuple(x.shape)}")


def check_finite(x: Tensor, name: str, summary: Tensor | None = None) -> None:
    """Raise on NaN/Inf input, outside ``torch.compile`` (it reads a value: a host sync).

    ``summary`` is a reduction of ``x`` the caller computes anyway (a sum or mean): it is NaN/Inf
    whenever an element is, so only then is ``x`` itself examined (a sum of huge finite values
    can overflow too). Without it, ``x.sum()`` is used.
    """
    if torch.compiler.is_compiling():
        return
    if summary is None:
        summary = x.sum()
    if bool(torch.isfinite(summary).all()):
        return
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(
            f"{name} got {bad} non-finite values (NaN or Inf) in an input of shape "
            f"{tuple(x.shape)}; they would corrupt the codebook statistics"
        )


def to_rows(x: Tensor, channel_last: bool) -> tuple[Tensor, tuple[int, ...]]:
    """(B, D, *S) or (B, *S, D) → rows (N, D) and the batch shape (B, *S)."""
    if channel_last:
        batch_shape = tuple(x.shape[:-1])
        return x.reshape(-1, x.shape[-1]), batch_shape  # (N, D), a view when contiguous
    batch_shape = (x.shape[0], *x.shape[2:])
    return x.movedim(1, -1).reshape(-1, x.shape[1]), batch_shape  # (B*prod(S), D)


def input_rows(quantizer, x: Tensor) -> tuple[Tensor, tuple[int, ...]]:
    """Validate a quantizer's input; return it as rows in codebook space and the batch shape.

    Shared by every quantizer's ``forward``: the channel/dtype check, the optional finiteness
    check, the (B, D, *S) → (N, D) reshape, and ``project_in`` when the quantizer has one.
    """
    name = type(quantizer).__name__
    check_input(x, quantizer.dim, quantizer.channel_last, name)
    if quantizer.check_finite:
        check_finite(x, name)
    rows, batch_shape = to_rows(x, quantizer.channel_last)  # (N, D)
    if quantizer.project_in is not None:
        rows = quantizer.project_in(rows)  # (N, codebook dim)
    return rows, batch_shape


def from_rows(rows: Tensor, batch_shape: tuple[int, ...], channel_last: bool) -> Tensor:
    """Inverse of ``to_rows``: rows (N, D) → (B, *S, D) or contiguous (B, D, *S)."""
    out = rows.reshape(*batch_shape, rows.shape[-1])  # (B, *S, D)
    if channel_last:
        return out
    return out.movedim(-1, 1).contiguous()  # (B, D, *S)


def check_indices(indices: object, codebook_size: int, name: str) -> None:
    """Validate indices given to ``decode``: an integer tensor with values in [0, K)."""
    if not isinstance(indices, Tensor):
        raise TypeError(f"{name}.decode expects a torch.Tensor of indices, got {type(indices)}")
    if indices.is_floating_point() or indices.is_complex() or indices.dtype == torch.bool:
        raise TypeError(f"{name}.decode expects integer indices, got dtype {indices.dtype}")
    check_real_device(f"{name}.decode", indices, "indices")
    if indices.ndim < 1:
        raise ValueError(f"{name}.decode expects indices of shape (B, *spatial), got a 0-d tensor")
    if torch.compiler.is_compiling() or indices.numel() == 0:
        return
    low, high = int(indices.min()), int(indices.max())
    if low < 0 or high >= codebook_size:
        raise ValueError(
            f"{name}.decode expects indices in [0, {codebook_size}), got values in [{low}, {high}]"
        )
