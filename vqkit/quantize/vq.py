"""Vector quantizer with an EMA or learnable codebook, dead-code reseeding and usage metrics.

van den Oord et al., "Neural Discrete Representation Learning" (VQ-VAE, arXiv:1711.00937): the
nearest-code bottleneck, the straight-through estimator (§3.1), the commitment loss with weight
β (eq. 3) and the EMA codebook update (appendix A.1), here with Sonnet ``VectorQuantizerEMA``'s
Laplace smoothing and optional bias correction. Options: the rotation trick (Fifty et al.,
arXiv:2410.06424), l2-normalised (cosine) codes and a low-dimensional codebook with projections
(Yu et al., "Vector-quantized Image Modeling with Improved VQGAN", arXiv:2110.04627, §3.2),
k-means initialisation, dead-code reseeding and CVQ-VAE's online clustered re-initialisation
(Zheng & Vedaldi, arXiv:2307.15139).

Engineering: the nearest-code search is fp32, one product for a small batch and chunked for a
large one (``vqkit.functional.nearest_code``),
the EMA statistics are ``index_add_`` sums (no N×K one-hot anywhere), statistics are all-reduced
under ``torch.distributed``, and a training step has no ``.item()`` and no Python branch on a
tensor value, so it compiles with ``torch.compile(fullgraph=True)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vqkit._checks import (
    check_bool,
    check_choice,
    check_number,
    check_positive_int,
    check_real_device,
)
from vqkit._registry import register
from vqkit.functional import (
    cluster_stats,
    kmeans,
    laplace_smooth,
    nearest_code,
    perplexity,
    rotate_to,
    straight_through_commitment,
)
from vqkit.quantize._distributed import all_reduce_sum, world_size
from vqkit.quantize.output import (
    QuantizerOutput,
    check_finite,
    check_indices,
    check_input,
    from_rows,
    to_rows,
)
from vqkit.quantize.reseed import (
    ANCHORS,
    DeadCodeReseed,
    ReseedBatch,
    ReseedPolicy,
    build_reseed_policy,
    sample_rows,
)

__all__ = ["VectorQuantizer"]

GRADIENTS = ("ste", "rotation")
CODEBOOK_INITS = ("normal", "uniform", "kaiming_uniform")
_NEVER = -(2**62)  # "last used" step of a code that has never been used
# (submodule or None, attribute): state kept in fp32 whatever dtype the module is cast to
_FP32_STATE = (
    (None, "embed"),
    (None, "cluster_size"),
    (None, "embed_sum"),
    (None, "usage"),
    ("reinit", "usage_prob"),
)
# log γ below this is γ = 0 in fp32 anyway; keeps 0 · log γ = 0 (not NaN) at step 0 for γ = 0
_MIN_LOG_DECAY = -1e4


@register("quantizer", "vq")
class VectorQuantizer(nn.Module):
    """Nearest-code vector quantizer (VQ-VAE) with an EMA or learnable codebook.

    Training mode updates the codebook statistics (EMA mode), the usage counters and reseeds
    dead codes, all inside ``forward``; eval mode changes nothing.

    Args:
        dim: channels ``D`` of the input.
        codebook_size: number of codes ``K``.
        codebook_dim: dimension of the code vectors; when it differs from ``dim`` the input is
            projected by a linear layer into it and the codes back out (the factorized codes of
            ViT-VQGAN). ``None`` means ``dim``.
        ema: update the codebook by exponential moving averages of the assigned vectors (van
            den Oord et al. 2017, appendix A.1). ``False`` makes it an ``nn.Parameter`` trained by
            the codebook loss ``‖sg(z) − e‖²``.
        decay: EMA decay γ of the cluster sizes and sums (and of the usage counts that detect
            dead codes). 0.99 as in the paper, Sonnet, taming and encodec.
        eps: Laplace smoothing ε of the cluster sizes (Sonnet: 1e-5).
        bias_correction: zero-initialised EMA statistics divided by ``1 − γ^t`` (Sonnet's
            debiased ``ExponentialMovingAverage``). Off: the statistics start at one vector per
            code equal to the initial codebook, so no code ever divides by ~0.
        commitment_weight: β, weight of the commitment loss ``‖z − sg(e)‖²`` (mean over
            elements); the codebook term (learnable mode) has weight 1.
        gradient: ``"ste"`` (straight-through) or ``"rotation"`` (the rotation trick).
        cosine: l2-normalise inputs and codes and search by cosine similarity; ``quantized`` is
            then a unit vector in codebook space.
        codebook_init: ``"normal"`` (N(0, 1)), ``"uniform"`` (U(−1/K, 1/K), as in the original
            VQ-VAE implementations) or ``"kaiming_uniform"``.
        kmeans_init: replace the codebook by k-means of the first training batch.
        kmeans_iters: Lloyd iterations of that k-means.
        reseed: the re-initialisation policy (``vqkit.quantize.reseed``): ``None``, a name,
            or a JSON spec ``{"type": name, **options}``. ``"dead_code"`` replaces dead codes by
            batch vectors (option ``threshold``, default ``dead_code_threshold``); ``"cvq"`` is
            CVQ-VAE's online clustered re-initialisation (options ``anchor``, default
            ``anchor``, and ``decay``, default 0.99). New policies register with
            ``register_reseed_policy``. The built policy is the
            submodule ``reinit``.
        dead_code_threshold: a code is dead when its EMA usage is below this fraction of the
            uniform usage ``n/K`` of a batch of ``n`` vectors (see ``DeadCodeReseed``).
            The default threshold of the ``"dead_code"`` policy, and of the
            ``"dead_codes"`` metric (which follows the policy's threshold when it has its own).
        anchor: ``"random"`` or ``"closest"``; the default anchors of ``reseed="cvq"``.
        usage_window: the ``"window_usage"`` metric is the fraction of codes used in the last
            this-many training steps.
        chunk_size: rows per distance chunk of the nearest-code search; memory is bounded by
            ``chunk_size × K`` floats. ``None`` chooses one (16 MiB per chunk on CPU).
        channel_last: input is (B, *, D) instead of (B, D, *spatial).
        sync_distributed: all-reduce statistics and coordinate reseeding across processes when
            ``torch.distributed`` is initialised.
        check_finite: raise on NaN/Inf input (outside ``torch.compile``; one host sync on CUDA).
        device: of the codebook, its statistics and the projections.
        dtype: a floating dtype, of the projections; the codebook and its statistics are
            always fp32.

    Every flag must be a real bool, every count a positive int and every rate a finite number;
    anything else is refused with a message naming the argument. The EMA debiasing ``1 − γ^t``
    is computed as ``−expm1(t·log γ)``, so a decay as close to 1 as a float allows (e.g.
    ``1 − 1e−9``, where ``γ^t`` rounds to 1 in fp32) stays exact instead of dividing by 0.

    Shape:
        - Input: (B, D, *spatial), or (B, *, D) with ``channel_last=True``; any float dtype.
        - Output: ``QuantizerOutput``; ``quantized`` has the input's shape and dtype,
          ``indices`` is (B, *spatial) int64.

    Example:
        >>> vq = VectorQuantizer(dim=64, codebook_size=512)
        >>> out = vq(torch.randn(8, 64, 16, 16))
        >>> out.indices.shape
        torch.Size([8, 16, 16])
    """

    # Buffers (and, with ema=False, the ``embed`` parameter) registered in __init__, typed for
    # the checker: nn.Module.__getattr__ would otherwise type them ``Tensor | Module``.
    embed: Tensor
    cluster_size: Tensor
    embed_sum: Tensor
    usage: Tensor
    steps: Tensor
    last_used: Tensor
    initialized: Tensor
    project_in: nn.Linear | None
    project_out: nn.Linear | None

    def __init__(
        self,
        dim: int,
        codebook_size: int,
        *,
        codebook_dim: int | None = None,
        ema: bool = True,
        decay: float = 0.99,
        eps: float = 1e-5,
        bias_correction: bool = False,
        commitment_weight: float = 0.25,
        gradient: str = "ste",
        cosine: bool = False,
        codebook_init: str = "normal",
        kmeans_init: bool = False,
        kmeans_iters: int = 10,
        reseed: str | Mapping[str, Any] | None = "dead_code",
        dead_code_threshold: float = 0.03,
        anchor: str = "random",
        usage_window: int = 100,
        chunk_size: int | None = None,
        channel_last: bool = False,
        sync_distributed: bool = True,
        check_finite: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self.dim = check_positive_int(name, "dim", dim)
        self.codebook_size = check_positive_int(name, "codebook_size", codebook_size)
        cb_dim = (
            dim if codebook_dim is None else check_positive_int(name, "codebook_dim", codebook_dim)
        )
        self.codebook_dim = cb_dim
        self.ema = check_bool(name, "ema", ema)
        self.decay = check_number(name, "decay", decay, low=0.0, high=1.0, high_open=True)
        # log γ in float64 from 1 − γ (exact for γ near 1): γ^t = exp(t · log γ) stays accurate
        self._log_decay = (
            max(math.log1p(-(1.0 - self.decay)), _MIN_LOG_DECAY)
            if self.decay > 0
            else _MIN_LOG_DECAY
        )
        self.eps = check_number(name, "eps", eps, low=0.0)
        self.bias_correction = check_bool(name, "bias_correction", bias_correction)
        if self.bias_correction and not self.ema:
            raise ValueError(f"{name}: bias_correction applies to the EMA codebook; got ema=False")
        self.commitment_weight = check_number(name, "commitment_weight", commitment_weight, low=0.0)
        self.gradient = check_choice(name, "gradient", gradient, GRADIENTS)
        self.cosine = check_bool(name, "cosine", cosine)
        self.codebook_init = check_choice(name, "codebook_init", codebook_init, CODEBOOK_INITS)
        self.kmeans_init = check_bool(name, "kmeans_init", kmeans_init)
        self.kmeans_iters = check_positive_int(name, "kmeans_iters", kmeans_iters)
        self.dead_code_threshold = check_number(
            name, "dead_code_threshold", dead_code_threshold, low=0.0
        )
        self.anchor = check_choice(name, "anchor", anchor, ANCHORS)
        kind = reseed.get("type") if isinstance(reseed, Mapping) else reseed
        if self.anchor != "random" and kind != "cvq":
            raise ValueError(
                f"{name}: anchor={anchor!r} applies to reseed='cvq' only, got reseed={reseed!r}"
            )
        spec_anchor = reseed.get("anchor", self.anchor) if isinstance(reseed, Mapping) else None
        if self.anchor != "random" and spec_anchor not in (None, self.anchor):
            raise ValueError(
                # spec_anchor is not None only when reseed is a Mapping
                f"{name}: anchor={anchor!r} contradicts the reseed spec "
                f"{dict(cast(Mapping[str, Any], reseed))!r}"
            )
        self.usage_window = check_positive_int(name, "usage_window", usage_window)
        self.chunk_size = (
            None if chunk_size is None else check_positive_int(name, "chunk_size", chunk_size)
        )
        self.channel_last = check_bool(name, "channel_last", channel_last)
        self.sync_distributed = check_bool(name, "sync_distributed", sync_distributed)
        self.check_finite = check_bool(name, "check_finite", check_finite)
        if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise TypeError(f"{name}: dtype must be a floating torch.dtype or None, got {dtype!r}")

        if cb_dim != dim:
            self.project_in = nn.Linear(dim, cb_dim, device=device, dtype=dtype)
            self.project_out = nn.Linear(cb_dim, dim, device=device, dtype=dtype)
        else:
            self.project_in = self.project_out = None

        k = self.codebook_size
        embed = self._initial_codebook(k, cb_dim, device)  # (K, Dc) fp32
        if self.ema:
            self.register_buffer("embed", embed)
            if self.bias_correction:  # Sonnet: zero hidden state, debiased by 1 − γ^t
                self.register_buffer("cluster_size", torch.zeros(k, device=device))
                self.register_buffer("embed_sum", torch.zeros_like(embed))
            else:  # one pseudo-vector per code, equal to the code: nothing divides by ~0
                self.register_buffer("cluster_size", torch.ones(k, device=device))
                self.register_buffer("embed_sum", embed.clone())
        else:
            self.embed = nn.Parameter(embed)
        # Usage per code: EMA of assignment counts per step, zero-initialised and debiased by
        # 1 − γ^t (an unbiased estimate from the first step). Detects dead codes in both modes.
        self.register_buffer("usage", torch.zeros(k, device=device))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long, device=device))
        self.register_buffer("last_used", torch.full((k,), _NEVER, device=device))
        if self.kmeans_init:
            self.register_buffer("initialized", torch.zeros((), dtype=torch.bool, device=device))
            self.register_load_state_dict_post_hook(_sync_initialized_flag)
        self._initialized = False  # Python mirror of `initialized`: no tensor read in forward
        self._step_debias: Tensor | None = None  # 1 − γ^t while a training step's policy runs

        self.dead_code = DeadCodeReseed(self.dead_code_threshold)  # the "dead_codes" detector
        self.reinit: ReseedPolicy | None = None
        self.reseed = reseed  # builds `reinit` (see the property)

    def _initial_codebook(self, k: int, d: int, device: torch.device | str | None) -> Tensor:
        embed = torch.empty(k, d, device=device)
        if self.codebook_init == "normal":
            nn.init.normal_(embed)
        elif self.codebook_init == "uniform":
            nn.init.uniform_(embed, -1.0 / k, 1.0 / k)
        else:
            nn.init.kaiming_uniform_(embed)
        return embed

    # ------------------------------------------------------------------------------------------
    # Public API

    @property
    def codebook(self) -> Tensor:
        """The code vectors (K, codebook_dim) as used for the search (unit norm if ``cosine``)."""
        return self._codes()

    @property
    def reseed(self) -> str | None:
        """Name of the re-initialisation policy (``reinit``), ``None`` without one.

        Assigning a spec (``None``, a name or ``{"type": ...}``) replaces the policy; a fresh
        policy starts without state (CVQ's usage EMA restarts from zero).
        """
        return None if self.reinit is None else self.reinit.name

    @reseed.setter
    def reseed(self, spec: str | Mapping[str, Any] | None) -> None:
        name = type(self).__name__
        policy = build_reseed_policy(
            name,
            spec,
            codebook_size=self.codebook_size,
            device=self.embed.device,
            defaults={
                "dead_code": {"threshold": self.dead_code_threshold},
                "cvq": {"anchor": self.anchor},
            },
        )
        if isinstance(policy, DeadCodeReseed):
            if policy.threshold <= 0:
                raise ValueError(
                    f"{name}: reseed='dead_code' needs dead_code_threshold > 0, "
                    f"got {policy.threshold}"
                )
            self.dead_code = policy  # the metric's detector is the policy
        self.reinit = policy

    @torch.no_grad()
    def replace_codes(self, mask: Tensor, vectors: Tensor, usage: Tensor) -> None:
        """Replace the codes selected by ``mask`` by ``vectors`` and restart their statistics.

        The replaced codes' usage becomes ``usage`` vectors per step, and in EMA mode their
        cluster size ``usage`` with sum ``vector × usage`` (each in its buffer's own units), so
        the next EMA step moves them like any code of that usage instead of overwriting them.
        The interface a ``ReseedPolicy`` edits the codebook with.

        Shape:
            - mask: (K,) bool; vectors: (K, codebook_dim); usage: scalar or (K,)
        """
        # 1 − γ^t of this step: the training update's own value while its policy runs
        usage_debias = self._step_debias if self._step_debias is not None else self._usage_debias()
        rows = mask[:, None]  # (K, 1)
        _where_(rows, vectors, self.embed)
        _where_(mask, usage * usage_debias, self.usage)
        if self.ema:
            size = usage * usage_debias if self.bias_correction else usage
            _where_(mask, size, self.cluster_size)
            _where_(rows, vectors * size, self.embed_sum)

    @torch.no_grad()
    def move_codes(self, anchors: Tensor, weight: Tensor) -> None:
        """Move every code toward its anchor, ``e ← e + w·(anchor − e)``, and its EMA sum with
        it (the cluster sizes are kept). The soft counterpart of ``replace_codes``.

        Shape:
            - anchors: (K, codebook_dim); weight: (K, 1) in [0, 1]
        """
        self.embed.lerp_(anchors, weight)
        if self.ema:
            self.embed_sum.lerp_(anchors * self.cluster_size[:, None], weight)

    @torch.no_grad()
    def set_codebook(self, codes: Tensor) -> None:
        """Replace the code vectors and make the EMA statistics agree with them.

        Writing ``embed`` alone is not enough in EMA mode: the next update recomputes the codes
        from ``embed_sum / cluster_size``. This keeps each code's cluster size and sets its sum
        to ``code × size``.

        Shape:
            - codes: (codebook_size, codebook_dim)
        """
        name = f"{type(self).__name__}.set_codebook"
        expected = (self.codebook_size, self.codebook_dim)
        if not isinstance(codes, Tensor):
            raise TypeError(f"{name} expects a torch.Tensor, got {type(codes).__name__}")
        if not codes.is_floating_point():
            raise TypeError(f"{name} expects a floating-point tensor, got dtype {codes.dtype}")
        if tuple(codes.shape) != expected:
            raise ValueError(
                f"{name} expects a tensor of shape {expected}, got {tuple(codes.shape)}"
            )
        check_real_device(name, codes, "codes")
        if not bool(torch.isfinite(codes).all()):
            bad = int((~torch.isfinite(codes)).sum())
            raise ValueError(f"{name} got {bad} non-finite values (NaN or Inf) in the codes")
        self.embed.copy_(codes)
        if self.ema:
            self.embed_sum.copy_(self.embed * self.cluster_size[:, None])

    def forward(self, x: Tensor) -> QuantizerOutput:
        """Quantize ``x``; in training mode also update the codebook (see class docstring)."""
        name = type(self).__name__
        check_input(x, self.dim, self.channel_last, name)
        if self.check_finite and self.project_in is not None:
            check_finite(x, name)
        rows, batch_shape = to_rows(x, self.channel_last)  # (N, D)
        z = self.project_in(rows) if self.project_in is not None else rows  # (N, Dc)
        validate = self.check_finite and self.project_in is None
        quantized, indices, loss, ppl, metrics = self.quantize_rows(z, validate=validate)
        if self.project_out is not None:
            quantized = self.project_out(quantized)  # (N, D)
        return QuantizerOutput(
            quantized=from_rows(quantized, batch_shape, self.channel_last),
            indices=indices.reshape(batch_shape),
            loss=loss,
            perplexity=ppl,
            metrics=metrics,
        )

    def decode(self, indices: Tensor) -> Tensor:
        """Code vectors for ``indices`` (B, *spatial): (B, D, *spatial), or (B, *spatial, D)
        with ``channel_last``; equal to ``forward``'s ``quantized`` for the same indices."""
        check_indices(indices, self.codebook_size, type(self).__name__)
        rows = F.embedding(indices.reshape(-1), self._codes())  # (N, Dc)
        if self.project_out is not None:
            rows = self.project_out(rows.to(self.project_out.weight.dtype))  # (N, D)
        return from_rows(rows, tuple(indices.shape), self.channel_last)

    def quantize_rows(
        self, z: Tensor, validate: bool = False
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, dict]:
        """Quantize rows already in codebook space (used by ``forward`` and ``ResidualVQ``).

        ``validate`` raises on NaN/Inf rows, reusing the batch mean the search needs anyway.

        Shape:
            - z: (N, codebook_dim)
            - Output: quantized (N, codebook_dim) in ``z``'s dtype, indices (N,), loss and
              perplexity (scalars), metrics.
        """
        in_dtype = z.dtype
        with torch.autocast(device_type=z.device.type, enabled=False):
            z = z.float()
            center = None
            if self.cosine:
                if validate:
                    check_finite(z, type(self).__name__)
                z = F.normalize(z, dim=-1)
            else:
                center = z.detach().mean(0)  # (Dc,), centres the search
                if validate:
                    check_finite(z, type(self).__name__, center)
            if self.training and self.kmeans_init and not self._initialized:
                self._init_by_kmeans(z.detach())
            codes = self._codes()  # (K, Dc) fp32
            closest = self.training and self.reinit is not None and self.reinit.needs_closest_rows
            search = nearest_code(
                z.detach(),
                codes.detach(),
                chunk_size=self.chunk_size,
                cosine=self.cosine,
                closest_rows=closest,
                center=center,
            )
            indices = search[0] if isinstance(search, tuple) else search  # (N,)
            q = F.embedding(indices, codes)  # (N, Dc); gradient to a learnable codebook

            fused = self.gradient == "ste" and torch.is_grad_enabled() and z.requires_grad
            if fused:  # value q, gradient identity, and the commitment loss, in one node
                quantized, commitment = straight_through_commitment(z, q)
            else:
                commitment = F.mse_loss(z, q.detach())
                if self.gradient == "rotation" and torch.is_grad_enabled() and z.requires_grad:
                    quantized = rotate_to(z, q)
                else:
                    quantized = q.detach()
            loss = self.commitment_weight * commitment
            metrics = {"commitment": commitment.detach()}
            if not self.ema:
                codebook_loss = F.mse_loss(q, z.detach())
                loss = loss + codebook_loss
                metrics["codebook"] = codebook_loss.detach()

            if self.training:
                anchors = search[1:] if isinstance(search, tuple) else None
                metrics.update(self._training_update(indices, z.detach(), anchors))
            else:
                metrics.update(self._eval_metrics(indices))
        return quantized.to(in_dtype), indices, loss, metrics["perplexity"], metrics

    def extra_repr(self) -> str:
        parts = [f"dim={self.dim}", f"codebook_size={self.codebook_size}"]
        if self.codebook_dim != self.dim:
            parts.append(f"codebook_dim={self.codebook_dim}")
        parts.append(f"ema={self.ema}")
        parts.append(f"decay={self.decay}")
        if self.bias_correction:
            parts.append("bias_correction=True")
        parts.append(f"commitment_weight={self.commitment_weight}")
        parts.append(f"gradient={self.gradient!r}")
        if self.cosine:
            parts.append("cosine=True")
        if self.kmeans_init:
            parts.append(f"kmeans_init=True, kmeans_iters={self.kmeans_iters}")
        parts.append(f"reseed={self.reseed!r}")
        parts.append(f"dead_code_threshold={self.dead_code_threshold}")
        if self.channel_last:
            parts.append("channel_last=True")
        return ", ".join(parts)

    # ------------------------------------------------------------------------------------------
    # Internals

    def _apply(self, fn, recurse: bool = True):
        """``.to(dtype)``, ``.half()``... convert the projections but keep the codebook and its
        statistics in fp32: EMA sums of many small updates need the mantissa."""
        super()._apply(fn, recurse)
        with torch.no_grad():
            for owner, name in _FP32_STATE:
                module = self if owner is None else getattr(self, owner, None)
                tensor = None if module is None else getattr(module, name, None)
                if module is None or tensor is None or tensor.dtype == torch.float32:
                    continue
                if isinstance(tensor, nn.Parameter):
                    tensor.data = tensor.data.float()
                else:
                    module._buffers[name] = tensor.float()
        return self

    def _codes(self) -> Tensor:
        """Codebook as used (fp32, unit rows if cosine); differentiable in learnable mode."""
        embed = self.embed.float()
        if self.cosine:
            # The clone keeps autograd's saved input apart from in-place reseeding of the
            # parameter later in the same step.
            return F.normalize(embed.clone() if not self.ema else embed, dim=-1)
        return embed

    def _sync(self) -> bool:
        return self.sync_distributed and world_size() > 1

    def _usage_debias(self) -> Tensor:
        """1 − γ^t at the current step, as −expm1(t·log γ): exact even where γ^t rounds to 1."""
        return -torch.expm1(self.steps * self._log_decay)  # long × float: fp32, no extra cast

    def _debias(self) -> Tensor | float:
        """1 − γ^t for the bias-corrected EMA codebook statistics (Sonnet), else 1."""
        if not self.bias_correction:
            return 1.0
        return self._usage_debias()

    @torch.no_grad()
    def _training_update(self, indices: Tensor, z: Tensor, closest: tuple | None) -> dict:
        """EMA update, usage bookkeeping and the re-initialisation policy for one batch."""
        k = self.codebook_size
        sync = self._sync()
        counts, sums = cluster_stats(indices, z, k)  # (K,), (K, Dc)
        if sync:
            stats = all_reduce_sum(torch.cat([counts[:, None], sums], 1))  # (K, 1 + Dc)
            counts, sums = stats[:, 0], stats[:, 1:]
        n = counts.sum()  # vectors in the global batch

        self.steps.add_(1)
        usage_debias = self._usage_debias()  # 1 − γ^t, once per step
        # One fused lerp for every EMA of this step (all share the decay): usage, sizes, sums.
        averages, values = [self.usage], [counts]
        if self.ema:
            averages += [self.cluster_size, self.embed_sum]
            values += [counts, sums]
        torch._foreach_lerp_(averages, values, 1.0 - self.decay)  # = ema_ on each
        usage = self.usage / usage_debias  # (K,), vectors per step
        dead, level = self.dead_code.detect(usage, n)  # (K,) bool, scalar
        if self.ema:
            # Without bias correction the debiasing factor is exactly 1 (division and product
            # by 1.0 are the identity in floating point, so they are skipped).
            sizes = self.cluster_size / usage_debias if self.bias_correction else self.cluster_size
            smoothed = laplace_smooth(sizes, self.eps)  # (K,)
            if self.bias_correction:
                smoothed = smoothed * usage_debias
            updated = self.embed_sum * smoothed.reciprocal_()[:, None]  # (K, Dc)
            # A code without any statistics yet (hidden count exactly 0) keeps its vector.
            _where_((self.cluster_size > 0)[:, None], updated, self.embed)
        used = counts > 0  # (K,)
        self.last_used.masked_fill_(used, self.steps)

        metrics = self._usage_metrics(counts, used, n)
        # counted once, for the policy too; a float sum of a bool mask is the count, exactly
        dead_count = metrics["dead_codes"] = dead.sum(dtype=torch.float32)
        if self.reinit is not None:
            batch = ReseedBatch(z, counts, n, dead, level, closest, sync, dead_count)
            self._step_debias = usage_debias
            try:
                metrics["reseeded"] = self.reinit.update(self, batch)
            finally:
                self._step_debias = None
        else:
            metrics["reseeded"] = z.new_zeros(())
        return metrics

    @torch.no_grad()
    def _eval_metrics(self, indices: Tensor) -> dict:
        k = self.codebook_size
        ones = torch.ones(indices.shape[0], device=indices.device)
        counts = ones.new_zeros(k).index_add_(0, indices, ones)  # (K,)
        metrics = self._usage_metrics(counts, counts > 0, counts.sum())
        usage = self.usage / self._usage_debias().clamp_min(1e-12)
        metrics["dead_codes"] = (usage < self.dead_code.threshold * usage.mean()).sum().float()
        metrics["reseeded"] = counts.new_zeros(())
        return metrics

    def _usage_metrics(self, counts: Tensor, used: Tensor, total: Tensor) -> dict:
        """Perplexity and usage fractions from this batch's counts (K,), ``used = counts > 0``
        and ``total = counts.sum()``, which the caller has computed already."""
        since = self.steps - self.last_used  # (K,) steps since last use
        return {
            "perplexity": perplexity(counts, total),
            "batch_usage": used.mean(dtype=torch.float32),
            "window_usage": (since < self.usage_window).mean(dtype=torch.float32),
        }

    @torch.no_grad()
    def _init_by_kmeans(self, z: Tensor) -> None:
        """Codebook ← k-means of the first training batch (the union of the ranks' batches)."""
        sync = self._sync()
        init = sample_rows(z, self.codebook_size, sync)  # (K, Dc), identical on every rank
        centres, counts = kmeans(
            z,
            init,
            self.kmeans_iters,
            chunk_size=self.chunk_size,
            cosine=self.cosine,
            all_reduce=all_reduce_sum if sync else None,
        )
        self.embed.copy_(centres)
        # The k-means batch counts as the first observation of the statistics.
        self.steps.fill_(1)
        self.usage.copy_(counts * (1.0 - self.decay))  # 1 − γ^1
        if self.ema:
            size = counts * (1.0 - self.decay) if self.bias_correction else counts
            self.cluster_size.copy_(size)
            self.embed_sum.copy_(centres * size[:, None])
        self.initialized.fill_(True)
        self._initialized = True


def _where_(mask: Tensor, value: Tensor | float, target: Tensor) -> None:
    """``target ← where(mask, value, target)`` in place: eager writes into ``target`` directly
    (no temporary and copy); under ``torch.compile`` the out-of-place form traces."""
    if not isinstance(value, Tensor):
        value = torch.tensor(value, dtype=target.dtype, device=target.device)
    elif value.dtype != target.dtype:
        value = value.to(target.dtype)  # what the copy into target did
    if torch.compiler.is_compiling():
        target.copy_(torch.where(mask, value, target))
    else:
        torch.where(mask, value, target, out=target)


def _sync_initialized_flag(module: VectorQuantizer, incompatible_keys) -> None:
    module._initialized = bool(module.initialized)
