"""Codebook re-initialisation policies, chosen by a JSON spec: dead-code reseeding and CVQ-VAE.

A ``VectorQuantizer`` takes ``reseed=`` as ``None``, a policy name (``"dead_code"``,
``"cvq"``) or a spec ``{"type": name, **options}``; ``build_reseed_policy`` turns it into a
``ReseedPolicy``. A new policy is one class registered with ``register_reseed_policy``,
not a new quantizer flag.

- ``DeadCodeReseed`` (``"dead_code"``): a code whose EMA usage falls below a threshold is
  replaced by an encoder output drawn from the current batch, and its EMA statistics are reset to
  match (the step encodec forgets, so its next EMA update overwrites the new code; ESPnet PR
  #6284).
- ``ClusteredReinit`` (``"cvq"``): the online clustered codebook of Zheng & Vedaldi, "Online
  Clustered Codebook" (CVQ-VAE, arXiv:2307.15139, §3.3): every step each code moves toward an
  anchor by ``α_k = exp(−10·K·p̄_k/(1−γ) − ε)``, so rarely used codes are re-initialised and busy
  ones are untouched. Anchors are random batch features or each code's closest feature.

A policy sees one training batch as a ``ReseedBatch`` and edits the codebook only through
two methods of the quantizer, which keep its EMA statistics consistent with the new codes:
``replace_codes(mask, vectors, usage)`` (hard replacement) and ``move_codes(anchors, weight)``
(``lerp`` toward anchors). Both policies are fixed-shape tensor programs (``torch.where`` and
``lerp`` masks over all K codes, a fixed number of sampled rows), so a training step traces under
``torch.compile(fullgraph=True)``. Under ``torch.distributed`` the candidate rows are
all-gathered, so every rank applies the same change and the codebooks stay identical without a
broadcast.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, NamedTuple, Protocol

import torch
from torch import Tensor, nn

from vqkit._checks import check_choice, check_number, check_positive_int
from vqkit.quantize._distributed import all_gather_rows, world_size

__all__ = [
    "RESEED_POLICIES",
    "ClusteredReinit",
    "DeadCodeReseed",
    "ReseedBatch",
    "ReseedPolicy",
    "build_reseed_policy",
    "closest_anchors",
    "register_reseed_policy",
    "sample_rows",
]


class CodebookEditor(Protocol):
    """What a policy edits the codebook through (``VectorQuantizer`` provides it)."""

    def replace_codes(self, mask: Tensor, vectors: Tensor, usage: Tensor) -> None: ...

    def move_codes(self, anchors: Tensor, weight: Tensor) -> None: ...


ANCHORS = ("random", "closest")


def sample_rows(x: Tensor, k: int, sync: bool) -> Tensor:
    """``k`` random rows of ``x``, the same on every rank when ``sync`` and distributed.

    Each rank draws ``ceil(k / world)`` of its own rows (without replacement when it has enough),
    the draws are all-gathered in rank order and the first ``k`` kept: every rank ends with the
    same candidates, drawn from all ranks' data, with no shared random state.

    Shape:
        - x: (N, D) with N ≥ 1; Output: (k, D)
    """
    world = world_size() if sync else 1
    per_rank = -(-k // world)
    n = x.shape[0]
    if n >= per_rank:
        idx = torch.randperm(n, device=x.device)[:per_rank]  # (per_rank,)
    else:
        idx = torch.randint(0, n, (per_rank,), device=x.device)
    rows = x.index_select(0, idx)  # (per_rank, D); x[idx] was 2 ms with 2 busy threads
    if world > 1:
        rows = all_gather_rows(rows)[:k]  # (k, D)
    return rows


def closest_anchors(x: Tensor, rows: Tensor, dists: Tensor, sync: bool) -> Tensor:
    """Each code's nearest row of ``x``; across ranks, the nearest among every rank's best.

    Shape:
        - x: (N, D); rows, dists: (K,) from ``vqkit.functional.nearest_code``
        - Output: (K, D)
    """
    anchors = x.index_select(0, rows)  # (K, D)
    if sync and world_size() > 1:
        k = rows.shape[0]
        all_dists = all_gather_rows(dists[None])  # (W, K)
        all_anchors = all_gather_rows(anchors[None])  # (W, K, D)
        best = all_dists.argmin(0)  # (K,)
        anchors = all_anchors[best, torch.arange(k, device=x.device)]  # (K, D)
    return anchors


class ReseedBatch(NamedTuple):
    """What a ``ReseedPolicy`` sees of one training batch (all detached, fp32).

    Attributes:
        z: (N, Dc) the batch's vectors in codebook space (this rank's share under DDP).
        counts: (K,) assignments per code in the global batch.
        n: scalar, vectors in the global batch.
        dead: (K,) bool, codes the quantizer's dead-code detector marks dead this step.
        level: scalar, the usage (vectors per step) at the detector's threshold.
        closest: ``(rows, dists)`` of each code's nearest batch row when the policy asked for
            them (``needs_closest_rows``), else ``None``.
        sync: statistics are synchronised across processes (``torch.distributed``).
        dead_count: scalar fp32, ``dead.sum()`` when the quantizer has counted it already (a
            policy then reuses it), else ``None``.
    """

    z: Tensor
    counts: Tensor
    n: Tensor
    dead: Tensor
    level: Tensor
    closest: tuple[Tensor, Tensor] | None
    sync: bool
    dead_count: Tensor | None = None


class ReseedPolicy(nn.Module):
    """Base class of the codebook re-initialisation policies.

    A subclass sets ``name`` (its spec ``"type"``), optionally ``needs_closest_rows`` (the
    nearest-code search then also returns each code's nearest batch row), and implements
    ``update``. Its constructor arguments are the spec's other keys (JSON values); a policy
    that needs the codebook size or the device declares ``codebook_size`` / ``device`` keyword
    arguments and ``build_reseed_policy`` passes them. Buffers it registers are saved in the
    quantizer's state dict under ``reinit.``.
    """

    name: ClassVar[str] = ""
    needs_closest_rows: ClassVar[bool] = False

    def update(self, quantizer: CodebookEditor, batch: ReseedBatch) -> Tensor:
        """Re-initialise codes of ``quantizer`` after its EMA update; return the number of codes
        reseeded (a scalar tensor, fractional for soft moves), logged as ``"reseeded"``."""
        raise NotImplementedError

    def spec(self) -> dict[str, Any]:
        """The JSON spec that rebuilds this policy (``{"type": name, **options}``)."""
        return {"type": self.name}


RESEED_POLICIES: dict[str, type[ReseedPolicy]] = {}


def register_reseed_policy(name: str) -> Callable[[type[ReseedPolicy]], type[ReseedPolicy]]:
    """Class decorator adding a ``ReseedPolicy`` subclass to ``RESEED_POLICIES``.

    Raises:
        ValueError: the name is taken.
        TypeError: the class is not a ``ReseedPolicy``.
    """

    def decorator(cls: type[ReseedPolicy]) -> type[ReseedPolicy]:
        if not (isinstance(cls, type) and issubclass(cls, ReseedPolicy)):
            raise TypeError(f"register_reseed_policy expects a ReseedPolicy subclass, got {cls!r}")
        if name in RESEED_POLICIES:
            raise ValueError(f"reseed policy {name!r} is already registered")
        cls.name = name
        RESEED_POLICIES[name] = cls
        return cls

    return decorator


def build_reseed_policy(
    owner: str,
    spec: Any,
    *,
    codebook_size: int,
    device: torch.device | str | None = None,
    defaults: Mapping[str, Mapping[str, Any]] | None = None,
) -> ReseedPolicy | None:
    """Build the policy a quantizer's ``reseed=`` asks for.

    Args:
        owner: the quantizer's name, for error messages.
        spec: ``None`` (no re-initialisation), a registered name, or ``{"type": name, ...}``
            whose other keys are the policy's constructor arguments.
        codebook_size: K, passed to policies that take ``codebook_size``.
        device: passed to policies that take ``device``.
        defaults: per policy name, options used where the spec gives none (the quantizer's
            legacy ``dead_code_threshold`` / ``anchor`` arguments).

    Raises:
        ValueError / TypeError: unknown name, a spec that is not a string or a dict with a
            string ``"type"``, or options the policy does not take.
    """
    if spec is None:
        return None
    names = sorted(RESEED_POLICIES)
    if isinstance(spec, str):
        kind, options = spec, {}
    elif isinstance(spec, Mapping):
        if "type" not in spec or not isinstance(spec["type"], str):
            raise ValueError(
                f"{owner}: a reseed spec must be a dict with a string 'type' (one of {names}), "
                f"got {dict(spec)!r}"
            )
        kind = spec["type"]
        options = {key: value for key, value in spec.items() if key != "type"}
    else:
        raise TypeError(
            f"{owner}: reseed must be None, a policy name or a {{'type': ...}} dict, got "
            f"{type(spec).__name__}"
        )
    if kind not in RESEED_POLICIES:
        raise ValueError(
            f"{owner}: reseed must be one of {[*names, None]} (or a {{'type': name}} spec), "
            f"got {kind!r}"
        )
    cls = RESEED_POLICIES[kind]
    params = inspect.signature(cls).parameters
    merged = {**dict((defaults or {}).get(kind, {})), **options}
    given = ("codebook_size", "device")
    unknown = sorted(key for key in options if key not in params or key in given)
    if unknown:
        allowed = sorted(p for p in params if p not in given)
        raise ValueError(
            f"{owner}: reseed policy {kind!r} takes options {allowed}, got unknown {unknown}"
        )
    if "codebook_size" in params:
        merged["codebook_size"] = codebook_size
    if "device" in params:
        merged["device"] = device
    return cls(**{key: value for key, value in merged.items() if key in params})


@register_reseed_policy("dead_code")
class DeadCodeReseed(ReseedPolicy):
    """Replace codes whose usage is below ``threshold`` × the uniform usage (``"dead_code"``).

    A code's usage is the EMA (debiased, so unbiased from the first step) of the number of
    vectors assigned to it per step. Under uniform assignment of the current (global) batch of
    ``n`` vectors every code would get ``n / K``; a code is dead when its usage is below
    ``threshold · n / K``. Both sides scale with the batch, so the threshold means the same thing
    at any batch or codebook size (an absolute count, as in vector-quantize-pytorch's
    ``threshold_ema_dead_code``, marks every code dead once ``n / K`` is small). A reseeded code
    becomes a random vector of the batch and restarts from the usage ``threshold · n / K``: it
    stays alive if it is used at least at that rate from the next step on, and is drawn again
    otherwise.

    A step without dead codes draws no random numbers and writes nothing (eager mode; a
    compiled step runs the same fixed-shape update, which changes nothing for an empty mask).

    The quantizer also uses this class, without reseeding, as the detector of its
    ``"dead_codes"`` metric; when the policy is ``"dead_code"`` the detector is the policy.

    Args:
        threshold: fraction of the uniform usage ``n / K`` below which a code is dead, ≥ 0 (0
            marks no code dead; a quantizer refuses it as its policy).
    """

    def __init__(self, threshold: float = 0.03) -> None:
        super().__init__()
        self.threshold = check_number(type(self).__name__, "threshold", threshold, low=0.0)

    def detect(self, usage: Tensor, n: Tensor) -> tuple[Tensor, Tensor]:
        """Dead-code mask (K,) bool and the usage a reseeded code starts from (scalar), for
        debiased usages (K,) and a global batch of ``n`` vectors."""
        k = usage.shape[0]
        level = self.threshold * n / k  # scalar tensor
        return usage < level, level

    def update(self, quantizer: CodebookEditor, batch: ReseedBatch) -> Tensor:
        dead_count = batch.dead_count
        if dead_count is None:
            dead_count = batch.dead.sum(dtype=torch.float32)
        on_cpu = batch.dead.device.type == "cpu"  # reading the count syncs a GPU: not there
        if on_cpu and not torch.compiler.is_compiling() and not bool(dead_count):
            # Nothing to replace: no candidates drawn, no masked writes. (Every rank sees the
            # same global dead mask, so all skip together; compiled graphs and GPUs keep the
            # fixed-shape path below, which is a no-op for an all-false mask.)
            return dead_count
        k = batch.counts.shape[0]
        candidates = sample_rows(batch.z, k, batch.sync)  # (K, Dc)
        quantizer.replace_codes(batch.dead, candidates, batch.level)
        return dead_count

    def spec(self) -> dict[str, Any]:
        return {"type": self.name, "threshold": self.threshold}

    def extra_repr(self) -> str:
        return f"threshold={self.threshold}"


@register_reseed_policy("cvq")
class ClusteredReinit(ReseedPolicy):
    """CVQ-VAE's online clustered re-initialisation (arXiv:2307.15139, eq. 7–8; ``"cvq"``).

    Keeps ``p̄``, the EMA (decay ``γ``) of each code's share of the batch, and moves each code
    toward an anchor by ``α_k = exp(−p̄_k · K · 10 / (1 − γ) − 1e−3)``: about 1 for unused
    codes, about 0 for codes used at the uniform rate ``1/K``.

    Args:
        codebook_size: K (given by the quantizer).
        anchor: ``"random"`` (random batch features) or ``"closest"`` (each code's nearest
            feature in the batch).
        decay: γ, 0.99 in the paper's code.
        device: of the ``usage_prob`` buffer.
    """

    usage_prob: Tensor  # buffer registered in __init__

    def __init__(
        self,
        codebook_size: int,
        anchor: str = "random",
        decay: float = 0.99,
        *,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self.codebook_size = check_positive_int(name, "codebook_size", codebook_size)
        self.anchor = check_choice(name, "anchor", anchor, ANCHORS)
        self.decay = check_number(name, "decay", decay, low=0.0, high=1.0, high_open=True)
        self.register_buffer("usage_prob", torch.zeros(codebook_size, device=device))

    @property
    def needs_closest_rows(self) -> bool:  # type: ignore[override]
        return self.anchor == "closest"

    def forward(self, counts: Tensor, n: Tensor) -> Tensor:
        """Update ``p̄`` from this step's counts (K,) of ``n`` vectors; return α (K,)."""
        self.usage_prob.lerp_(counts / n.clamp_min(1.0), 1.0 - self.decay)
        scale = self.codebook_size * 10.0 / (1.0 - self.decay)
        return torch.exp(-self.usage_prob * scale - 1e-3)

    def update(self, quantizer: CodebookEditor, batch: ReseedBatch) -> Tensor:
        alpha = self(batch.counts, batch.n)[:, None]  # (K, 1)
        if batch.closest is not None:
            rows, dists = batch.closest
            anchors = closest_anchors(batch.z, rows, dists, batch.sync)  # (K, Dc)
        else:
            anchors = sample_rows(batch.z, self.codebook_size, batch.sync)  # (K, Dc)
        quantizer.move_codes(anchors, alpha)
        return alpha.sum()

    def spec(self) -> dict[str, Any]:
        return {"type": self.name, "anchor": self.anchor, "decay": self.decay}

    def extra_repr(self) -> str:
        return f"anchor={self.anchor!r}, decay={self.decay}"
