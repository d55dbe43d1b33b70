"""Finite scalar quantization (FSQ).

Mentzer et al., "Finite Scalar Quantization: VQ-VAE Made Simple" (arXiv:2309.15505): each of
``d`` channels is bounded and rounded to one of ``L_i`` levels, so the codebook is the implicit
grid of ``∏ L_i`` points; no codebook loss, no EMA, no dead codes. The bound is
``f(z) = tanh(z + shift)·h − offset`` with ``h = (L − 1)(1 + ε)/2``, offset ½ for even ``L`` (so
the grid has ``L`` integer points) and ``shift = atanh(offset/h)``; the rounded values are
divided by ``⌊L/2⌋`` into [−1, 1] (the paper's appendix A.1). Gradients pass the rounding
straight through. The paper's recommended levels (its Table 1 / §4.1):
``[8, 6, 5]`` (2^8), ``[8, 5, 5, 5]`` (2^10), ``[7, 5, 5, 5, 5]`` (2^12),
``[8, 8, 8, 6, 5]`` (2^14), ``[8, 8, 8, 5, 5, 5]`` (2^16).

Quantization runs in fp32 with autocast off: in bf16 the level arithmetic loses codes
(vector-quantize-pytorch issue #114).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from vqkit._checks import check_bool, check_number, check_positive_int
from vqkit._registry import register
from vqkit.functional import index_perplexity, perplexity, straight_through
from vqkit.quantize.output import (
    QuantizerOutput,
    check_indices,
    from_rows,
    input_rows,
)

__all__ = ["FSQ"]

# Up to this many implicit codes the usage metrics count into a (K,) vector; beyond it they
# sort the batch's indices instead, so FSQ never allocates anything of the codebook's size.
_COUNTABLE = 2**20


@register("quantizer", "fsq")
class FSQ(nn.Module):
    """Finite scalar quantizer with an implicit codebook of ``∏ levels`` codes.

    Args:
        levels: number of levels per quantized channel, each ≥ 2, e.g. ``[8, 5, 5, 5]``.
        dim: input channels; when it differs from ``len(levels)`` linear projections map the
            input to ``len(levels)`` channels and back. ``None`` means ``len(levels)``.
        eps: the bound's margin ε (the paper's code: 1e-3).
        channel_last: input is (B, *, D) instead of (B, D, *spatial).
        check_finite: raise on NaN/Inf input (outside ``torch.compile``).
        device: of the projections.
        dtype: of the projections.

    Shape:
        - Input: (B, D, *spatial), or (B, *, D) with ``channel_last=True``.
        - Output: ``QuantizerOutput``; ``quantized`` like the input (values on the grid
          in [−1, 1] per channel when there is no projection), ``indices`` (B, *spatial) int64 in
          ``[0, ∏ levels)``, ``loss`` 0.

    Example:
        >>> fsq = FSQ([8, 5, 5, 5])
        >>> out = fsq(torch.randn(2, 4, 16, 16))
        >>> bool((fsq.decode(out.indices) == out.quantized).all())
        True
    """

    # Constant buffers registered in __init__ (typed for the checker, see vq.py).
    _half_l: Tensor
    _offset: Tensor
    _shift: Tensor
    _half_width: Tensor
    _basis: Tensor
    _levels: Tensor
    project_in: nn.Linear | None
    project_out: nn.Linear | None

    def __init__(
        self,
        levels: list[int],
        dim: int | None = None,
        *,
        eps: float = 1e-3,
        channel_last: bool = False,
        check_finite: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if isinstance(levels, (str, bytes)) or not hasattr(levels, "__iter__"):
            raise TypeError(f"{name}: levels must be a list of integers, got {levels!r}")
        levels = list(levels)
        if not levels or any(
            isinstance(lv, bool) or not isinstance(lv, int) or lv < 2 for lv in levels
        ):
            raise ValueError(
                f"{name}: levels must be a non-empty list of integers ≥ 2, got {levels}"
            )
        self.levels = levels
        self.codebook_size = math.prod(levels)
        if self.codebook_size >= 2**62:
            raise ValueError(f"{name}: ∏ levels = {self.codebook_size} does not fit in int64")
        self.dim = len(levels) if dim is None else check_positive_int(name, "dim", dim)
        self.eps = check_number(name, "eps", eps, low=0.0, high=1.0, high_open=True)
        self.channel_last = check_bool(name, "channel_last", channel_last)
        self.check_finite = check_bool(name, "check_finite", check_finite)
        if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise TypeError(f"{name}: dtype must be a floating torch.dtype or None, got {dtype!r}")
        d = len(levels)
        if self.dim != d:
            self.project_in = nn.Linear(self.dim, d, device=device, dtype=dtype)
            self.project_out = nn.Linear(d, self.dim, device=device, dtype=dtype)
        else:
            self.project_in = self.project_out = None

        lv = torch.tensor(levels, dtype=torch.float64)
        half_l = (lv - 1) * (1 + self.eps) / 2
        offset = (lv.remainder(2) == 0).double() * 0.5
        basis = torch.cumprod(torch.tensor([1, *levels[:-1]], dtype=torch.long), 0)
        # Derived constants: not in the state dict (the config rebuilds them).
        self.register_buffer("_half_l", half_l.float().to(device), persistent=False)
        self.register_buffer("_offset", offset.float().to(device), persistent=False)
        self.register_buffer("_shift", torch.atanh(offset / half_l).float().to(device), False)
        self.register_buffer("_half_width", (lv // 2).float().to(device), persistent=False)
        self.register_buffer("_basis", basis.to(device), persistent=False)
        self.register_buffer("_levels", lv.long().to(device), persistent=False)

    @property
    def codebook(self) -> Tensor:
        """The implicit codebook (∏ levels, len(levels)) in [−1, 1], materialised on demand."""
        if self.codebook_size > _COUNTABLE:
            raise ValueError(
                f"FSQ codebook of {self.codebook_size} codes is too large to materialise "
                f"(limit {_COUNTABLE}); decode indices instead"
            )
        return self._codes_from_indices(torch.arange(self.codebook_size, device=self._basis.device))

    def forward(self, x: Tensor) -> QuantizerOutput:
        z, batch_shape = input_rows(self, x)  # (N, d)
        in_dtype = z.dtype
        with torch.autocast(device_type=z.device.type, enabled=False):
            bounded = torch.tanh(z.float() + self._shift) * self._half_l - self._offset  # (N, d)
            rounded = straight_through(bounded, bounded.round())  # integers, gradient identity
            codes = rounded / self._half_width  # (N, d) in [−1, 1]
            digits = (rounded.detach() + self._half_width).long()  # (N, d) in [0, L)
            indices = (digits * self._basis).sum(-1)  # (N,)
            if self.codebook_size <= _COUNTABLE:
                ones = torch.ones(indices.shape[0], device=indices.device)
                counts = ones.new_zeros(self.codebook_size).index_add_(0, indices, ones)
                ppl = perplexity(counts)
                usage = (counts > 0).float().sum() / self.codebook_size
            else:
                ppl = index_perplexity(indices)
                ordered = indices.sort().values
                distinct = (ordered[1:] != ordered[:-1]).sum() + 1
                usage = distinct.float() / self.codebook_size
        quantized = codes.to(in_dtype)
        if self.project_out is not None:
            quantized = self.project_out(quantized)  # (N, D)
        return QuantizerOutput(
            quantized=from_rows(quantized, batch_shape, self.channel_last),
            indices=indices.reshape(batch_shape),
            loss=z.new_zeros((), dtype=torch.float32),
            perplexity=ppl,
            metrics={"perplexity": ppl, "batch_usage": usage},
        )

    def decode(self, indices: Tensor) -> Tensor:
        """Grid points for ``indices`` (B, *spatial) → (B, D, *spatial) (or channel-last)."""
        check_indices(indices, self.codebook_size, type(self).__name__)
        rows = self._codes_from_indices(indices.reshape(-1))  # (N, d)
        if self.project_out is not None:
            rows = self.project_out(rows.to(self.project_out.weight.dtype))  # (N, D)
        return from_rows(rows, tuple(indices.shape), self.channel_last)

    def _codes_from_indices(self, indices: Tensor) -> Tensor:
        digits = (indices.long()[:, None] // self._basis) % self._levels  # (N, d)
        rounded = digits.float() - self._half_width  # the same integers forward rounds to
        return rounded / self._half_width  # (N, d)

    def extra_repr(self) -> str:
        extra = f", dim={self.dim}" if self.dim != len(self.levels) else ""
        last = ", channel_last=True" if self.channel_last else ""
        return f"levels={self.levels}{extra}, codebook_size={self.codebook_size}{last}"
