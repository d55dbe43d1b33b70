"""Residual vector quantization (RVQ): a stack of vector quantizers, each on what is left.

Zeghidour et al., "SoundStream: An End-to-End Neural Audio Codec" (arXiv:2107.03312, §3.3,
Algorithm 1): ``r₀ = z``, ``q_l = Q_l(r_l)``, ``r_{l+1} = r_l − q_l``, output ``Σ q_l``. Also the
residual quantizer of RQ-VAE (Lee et al., arXiv:2203.01941), which shares one codebook across
depths (``shared_codebook=True``).

Gradients: the stack's output gets one straight-through (or rotation-trick) estimator from the
input as a whole, so the input's gradient is the upstream gradient once (a per-stage
straight-through sums it ``num_quantizers`` times), and each stage's commitment loss
``‖r_l − sg(q_l)‖²`` reaches the input through ``r_l``.
"""

from __future__ import annotations

from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vqkit._checks import check_bool, check_choice, check_positive_int
from vqkit._registry import register
from vqkit.functional import rotate_to, straight_through
from vqkit.quantize.output import (
    QuantizerOutput,
    check_indices,
    from_rows,
    input_rows,
)
from vqkit.quantize.vq import GRADIENTS, VectorQuantizer

__all__ = ["ResidualVQ"]


@register("quantizer", "rvq")
class ResidualVQ(nn.Module):
    """``num_quantizers`` ``VectorQuantizer`` stages on successive residuals.

    Args:
        dim: input channels ``D``.
        codebook_size: codes per stage.
        num_quantizers: number of stages.
        shared_codebook: one codebook (one quantizer, with its EMA statistics) for every stage;
            it is then updated once per stage and step, in stage order.
        codebook_dim: quantize in a space of this dimension, with one linear projection in and
            out around the whole stack. ``None`` means ``dim``.
        gradient: ``"ste"`` or ``"rotation"`` (rotates the input onto the summed codes).
        channel_last: input is (B, *, D) instead of (B, D, *spatial).
        check_finite: raise on NaN/Inf input (outside ``torch.compile``).
        device: of the projections.
        dtype: of the projections.
        **quantizer_kwargs: passed to every ``VectorQuantizer`` stage (``decay``,
            ``commitment_weight``, ``ema``, ``reseed``, ``kmeans_init``...).

    Shape:
        - Input: (B, D, *spatial), or (B, *, D) with ``channel_last=True``.
        - Output: ``QuantizerOutput`` with ``indices`` (B, *spatial, num_quantizers);
          ``loss`` is the sum of the stages' losses, ``perplexity`` their mean; per-stage
          metrics are under ``"stage{l}/<name>"``.

    Example:
        >>> rvq = ResidualVQ(dim=32, codebook_size=64, num_quantizers=4)
        >>> out = rvq(torch.randn(2, 32, 8, 8))
        >>> out.indices.shape
        torch.Size([2, 8, 8, 4])
    """

    project_in: nn.Linear | None
    project_out: nn.Linear | None

    def __init__(
        self,
        dim: int,
        codebook_size: int,
        num_quantizers: int = 4,
        *,
        shared_codebook: bool = False,
        codebook_dim: int | None = None,
        gradient: str = "ste",
        channel_last: bool = False,
        check_finite: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        **quantizer_kwargs: Any,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self.dim = check_positive_int(name, "dim", dim)
        self.codebook_size = check_positive_int(name, "codebook_size", codebook_size)
        self.num_quantizers = check_positive_int(name, "num_quantizers", num_quantizers)
        cb_dim = (
            dim if codebook_dim is None else check_positive_int(name, "codebook_dim", codebook_dim)
        )
        self.codebook_dim = cb_dim
        self.shared_codebook = check_bool(name, "shared_codebook", shared_codebook)
        self.gradient = check_choice(name, "gradient", gradient, GRADIENTS)
        self.channel_last = check_bool(name, "channel_last", channel_last)
        self.check_finite = check_bool(name, "check_finite", check_finite)
        if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise TypeError(f"{name}: dtype must be a floating torch.dtype or None, got {dtype!r}")
        if quantizer_kwargs.get("cosine"):
            raise ValueError(f"{name}: cosine codes cannot quantize residuals (they lose the norm)")
        if cb_dim != dim:
            self.project_in = nn.Linear(dim, cb_dim, device=device, dtype=dtype)
            self.project_out = nn.Linear(cb_dim, dim, device=device, dtype=dtype)
        else:
            self.project_in = self.project_out = None
        stages = 1 if self.shared_codebook else self.num_quantizers
        self.layers = nn.ModuleList(
            VectorQuantizer(
                cb_dim,
                codebook_size,
                channel_last=True,
                check_finite=False,
                device=device,
                **quantizer_kwargs,
            )
            for _ in range(stages)
        )

    def stage(self, level: int) -> VectorQuantizer:
        """The quantizer of stage ``level`` (the same module for every stage if shared)."""
        # nn.ModuleList indexes as Module; every entry is a VectorQuantizer (built above)
        return cast(VectorQuantizer, self.layers[0 if self.shared_codebook else level])

    def forward(self, x: Tensor) -> QuantizerOutput:
        z, batch_shape = input_rows(self, x)  # (N, Dc)
        in_dtype = z.dtype
        with torch.autocast(device_type=z.device.type, enabled=False):
            z = z.float()
            residual = z
            total = None
            all_indices, losses, ppls = [], [], []
            metrics: dict[str, Tensor] = {}
            for level in range(self.num_quantizers):
                q, idx, loss, ppl, stage_metrics = self.stage(level).quantize_rows(residual)
                q = q.detach()  # the stack's own estimator below carries the gradient
                residual = residual - q  # (N, Dc); still a function of z for the commitments
                total = q if total is None else total + q
                all_indices.append(idx)
                losses.append(loss)
                ppls.append(ppl)
                metrics.update({f"stage{level}/{k}": v for k, v in stage_metrics.items()})
            assert total is not None  # num_quantizers >= 1 (checked in __init__)
            if torch.is_grad_enabled() and z.requires_grad:
                estimator = rotate_to if self.gradient == "rotation" else straight_through
                quantized = estimator(z, total)
            else:
                quantized = total
            loss = torch.stack(losses).sum()
            ppl = torch.stack(ppls).mean()
        metrics.update(_aggregate(metrics, self.num_quantizers))
        quantized = quantized.to(in_dtype)
        if self.project_out is not None:
            quantized = self.project_out(quantized)  # (N, D)
        indices = torch.stack(all_indices, -1)  # (N, Q)
        return QuantizerOutput(
            quantized=from_rows(quantized, batch_shape, self.channel_last),
            indices=indices.reshape(*batch_shape, self.num_quantizers),
            loss=loss,
            perplexity=ppl,
            metrics=metrics,
        )

    def decode(self, indices: Tensor) -> Tensor:
        """Sum of the stages' codes for ``indices`` (B, *spatial, n) with ``n ≤ num_quantizers``
        (fewer stages give the coarser reconstruction) → (B, D, *spatial) or channel-last."""
        name = type(self).__name__
        check_indices(indices, self.codebook_size, name)
        if indices.ndim < 2 or not 1 <= indices.shape[-1] <= self.num_quantizers:
            raise ValueError(
                f"{name}.decode expects indices of shape (B, *spatial, n) with 1 ≤ n ≤ "
                f"{self.num_quantizers}, got shape {tuple(indices.shape)}"
            )
        flat = indices.reshape(-1, indices.shape[-1])  # (N, n)
        total = None
        for level in range(flat.shape[1]):
            q = F.embedding(flat[:, level], self.stage(level).codebook)  # (N, Dc)
            total = q if total is None else total + q
        assert total is not None  # n >= 1 (checked above)
        if self.project_out is not None:
            total = self.project_out(total)  # (N, D)
        return from_rows(total, tuple(indices.shape[:-1]), self.channel_last)

    def extra_repr(self) -> str:
        parts = [
            f"dim={self.dim}",
            f"codebook_size={self.codebook_size}",
            f"num_quantizers={self.num_quantizers}",
        ]
        if self.codebook_dim != self.dim:
            parts.append(f"codebook_dim={self.codebook_dim}")
        if self.shared_codebook:
            parts.append("shared_codebook=True")
        parts.append(f"gradient={self.gradient!r}")
        return ", ".join(parts)


def _aggregate(metrics: dict[str, Tensor], stages: int) -> dict[str, Tensor]:
    """Stack-level metrics: means of the stages' rates, sums of their counts and losses."""
    out = {}
    for key, reduce in (
        ("perplexity", torch.mean),
        ("batch_usage", torch.mean),
        ("window_usage", torch.mean),
        ("dead_codes", torch.sum),
        ("reseeded", torch.sum),
        ("commitment", torch.sum),
        ("codebook", torch.sum),
    ):
        if f"stage0/{key}" in metrics:
            values = [metrics[f"stage{level}/{key}"] for level in range(stages)]
            out[key] = reduce(torch.stack(values))
    return out
