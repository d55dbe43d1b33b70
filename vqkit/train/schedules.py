"""Hyperparameter schedules: a named attribute of the model set to a closed-form value per step.

A schedule is a small JSON dict, the ``TrainConfig.schedules`` entries (so ``config.json``
replays it and a checkpoint records it)::

    {"name": "quantizer.temperature", "type": "cosine", "start": 1.0, "end": 0.0625,
     "steps": 5000}

``name`` is a dotted attribute path on the trained model (checked when the ``Trainer`` is built:
every part but the last must exist and the last must be a number already). The trainer sets the
value of step ``t`` (0-based: the number of optimizer steps taken before it) at the start of
that step and logs it as ``schedule/<name>``. The value is a pure function of ``t``, so a resumed
run sets exactly the values of the uninterrupted one at every step.

Types (``p = clamp((t − begin) / steps, 0, 1)``, ``begin`` defaults to 0; before ``begin`` the
value is ``start``):

- ``constant``: ``value``.
- ``linear``: ``start + (end − start)·p`` (a linear warm-up when ``start`` is 0).
- ``cosine``: ``end + (start − end)·(1 + cos πp)/2`` (DALL-E anneals the Gumbel temperature 1 →
  1/16 with a cosine schedule; Ramesh et al., arXiv:2102.12092, Appendix A.2).
- ``exponential``: ``start·(end / start)^p`` (``start`` and ``end`` positive; Jang et al.,
  arXiv:1611.01144 §C, anneal τ as ``max(0.5, exp(−rt))``; use ``end`` for the floor).
- ``piecewise``: ``values[i]`` for ``boundaries[i−1] ≤ t < boundaries[i]`` (``len(values) =
  len(boundaries) + 1``, boundaries strictly increasing).

What can be scheduled: the ``"gumbel"`` quantizer's ``temperature`` and ``kl_weight``; a
β-VAE's ``loss_fn.beta`` (H-type) or ``loss_fn.gamma`` / ``loss_fn.max_capacity`` (B-type; its
capacity ``C(t) = C_max·min(t / capacity_steps, 1)`` is itself a linear ramp, so schedule
``loss_fn.max_capacity`` with ``capacity_steps: 1`` to give C another shape); any float
attribute of the model. A
target that is a 0-d floating tensor (a buffer) is filled in place.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from vqkit._checks import check_int, check_number, check_positive_int

__all__ = ["SCHEDULE_TYPES", "Schedule", "Schedules", "parse_schedules"]

_OWNER = "schedule"
#: type → (required keys, optional keys)
SCHEDULE_TYPES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "constant": (("value",), ()),
    "linear": (("start", "end", "steps"), ("begin",)),
    "cosine": (("start", "end", "steps"), ("begin",)),
    "exponential": (("start", "end", "steps"), ("begin",)),
    "piecewise": (("boundaries", "values"), ()),
}


class Schedule:
    """One schedule: its spec (validated and normalised) and ``value(step)``.

    Args:
        spec: ``{"name": "a.b.c", "type": ..., **parameters}`` (see the module docstring).

    Raises:
        TypeError / ValueError: naming the schedule, the key and what was expected.
    """

    def __init__(self, spec: Mapping[str, Any]) -> None:
        if not isinstance(spec, Mapping):
            raise TypeError(
                f"{_OWNER}: each schedule must be a dict like {{'name': 'quantizer.temperature', "
                f"'type': 'cosine', 'start': 1.0, 'end': 0.0625, 'steps': 5000}}, got {spec!r}"
            )
        name = spec.get("name")
        if not isinstance(name, str) or not all(p.isidentifier() for p in name.split(".")):
            raise ValueError(
                f"{_OWNER}: 'name' must be a dotted attribute path such as "
                f"'quantizer.temperature', got {name!r}"
            )
        kind = spec.get("type")
        if kind not in SCHEDULE_TYPES:
            raise ValueError(
                f"{_OWNER} {name!r}: 'type' must be one of {list(SCHEDULE_TYPES)}, got {kind!r}"
            )
        required, optional = SCHEDULE_TYPES[kind]
        owner = f"{_OWNER} {name!r} ({kind})"
        given = set(spec) - {"name", "type"}
        missing = [k for k in required if k not in spec]
        unknown = sorted(given - set(required) - set(optional))
        if missing or unknown:
            raise ValueError(
                f"{owner}: needs {list(required)}"
                + (f" and accepts {list(optional)}" if optional else "")
                + (f"; missing {missing}" if missing else "")
                + (f"; unknown {unknown}" if unknown else "")
            )
        self.name, self.type = name, kind
        self.begin = check_int(owner, "begin", spec.get("begin", 0), low=0)
        if kind == "constant":
            self.value_ = check_number(owner, "value", spec["value"])
        elif kind == "piecewise":
            self.boundaries, self.values = _piecewise(owner, spec["boundaries"], spec["values"])
        else:
            self.start = check_number(owner, "start", spec["start"])
            self.end = check_number(owner, "end", spec["end"])
            self.steps = check_positive_int(owner, "steps", spec["steps"])
            if kind == "exponential" and not (self.start > 0 and self.end > 0):
                raise ValueError(
                    f"{owner}: start and end must be positive for an exponential schedule, got "
                    f"start={self.start}, end={self.end}"
                )

    def to_dict(self) -> dict[str, Any]:
        """The normalised JSON spec (every key, defaults filled in)."""
        spec: dict[str, Any] = {"name": self.name, "type": self.type}
        if self.type == "constant":
            spec["value"] = self.value_
        elif self.type == "piecewise":
            spec["boundaries"], spec["values"] = list(self.boundaries), list(self.values)
        else:
            spec.update(start=self.start, end=self.end, steps=self.steps, begin=self.begin)
        return spec

    def value(self, step: int) -> float:
        """The value at optimizer step ``step`` (0-based)."""
        step = check_int(f"{_OWNER} {self.name!r}", "step", step, low=0)
        if self.type == "constant":
            return self.value_
        if self.type == "piecewise":
            i = sum(1 for b in self.boundaries if step >= b)
            return self.values[i]
        p = min(max((step - self.begin) / self.steps, 0.0), 1.0)
        if self.type == "linear":
            return self.start + (self.end - self.start) * p
        if self.type == "cosine":
            return self.end + (self.start - self.end) * 0.5 * (1.0 + math.cos(math.pi * p))
        return self.start * (self.end / self.start) ** p  # exponential

    def __repr__(self) -> str:
        return f"Schedule({self.to_dict()!r})"


def _piecewise(owner: str, boundaries: Any, values: Any) -> tuple[list[int], list[float]]:
    if not isinstance(boundaries, Sequence) or isinstance(boundaries, str):
        raise TypeError(f"{owner}: boundaries must be a list of steps, got {boundaries!r}")
    if not isinstance(values, Sequence) or isinstance(values, str):
        raise TypeError(f"{owner}: values must be a list of numbers, got {values!r}")
    bounds = [check_positive_int(owner, "boundaries", b) for b in boundaries]
    if any(b >= c for b, c in itertools.pairwise(bounds)):
        raise ValueError(f"{owner}: boundaries must be strictly increasing, got {bounds}")
    vals = [check_number(owner, "values", v) for v in values]
    if len(vals) != len(bounds) + 1:
        raise ValueError(
            f"{owner}: needs len(values) = len(boundaries) + 1 = {len(bounds) + 1}, got "
            f"{len(vals)} values"
        )
    return bounds, vals


def parse_schedules(specs: Any) -> list[dict[str, Any]]:
    """Validate a list of schedule specs; return their normalised dicts (for ``TrainConfig``).

    Raises:
        TypeError / ValueError: a spec is malformed, or two schedules set the same name.
    """
    if specs is None:
        return []
    if not isinstance(specs, Sequence) or isinstance(specs, (str, Mapping)):
        raise TypeError(f"schedules must be a list of schedule dicts, got {specs!r:.80}")
    parsed = [Schedule(s) for s in specs]
    names = [s.name for s in parsed]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"schedules: {twice} are scheduled more than once")
    return [s.to_dict() for s in parsed]


class Schedules:
    """The schedules of a training run bound to the model whose attributes they set.

    Args:
        specs: a list of schedule specs (``TrainConfig.schedules``).
        model: the trained module; every ``name`` must resolve on it to a number (or a 0-d
            floating tensor).

    Raises:
        ValueError: a name does not resolve, naming the missing part and what exists there.
    """

    def __init__(self, specs: Any, model: nn.Module) -> None:
        self.schedules = [Schedule(s) for s in parse_schedules(specs)]
        self.model = model
        for schedule in self.schedules:
            self._target(schedule.name)  # fail now, not at the first step

    def __len__(self) -> int:
        return len(self.schedules)

    def values(self, step: int) -> dict[str, float]:
        """``{name: value}`` at ``step``."""
        return {s.name: s.value(step) for s in self.schedules}

    def apply(self, step: int, device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
        """Set every scheduled attribute to its value at ``step``; return the values to log
        (``{"schedule/<name>": 0-d tensor}`` on ``device``)."""
        logs = {}
        for name, value in self.values(step).items():
            owner, attr = self._target(name)
            current = getattr(owner, attr)
            if isinstance(current, torch.Tensor):
                with torch.no_grad():
                    current.fill_(value)
            else:
                setattr(owner, attr, value)
            logs[f"schedule/{name}"] = torch.tensor(value, dtype=torch.float32, device=device)
        return logs

    def _target(self, name: str) -> tuple[Any, str]:
        *path, attr = name.split(".")
        owner: Any = self.model
        walked = type(self.model).__name__
        for part in path:
            if not hasattr(owner, part):
                raise ValueError(
                    f"schedule {name!r}: {walked} has no attribute {part!r}{_children(owner)}"
                )
            owner = getattr(owner, part)
            walked = f"{walked}.{part}"
        if not hasattr(owner, attr):
            raise ValueError(
                f"schedule {name!r}: {walked} ({type(owner).__name__}) has no attribute {attr!r}"
            )
        current = getattr(owner, attr)
        is_scalar_tensor = (
            isinstance(current, torch.Tensor) and current.ndim == 0 and current.is_floating_point()
        )
        is_number = isinstance(current, (int, float)) and not isinstance(current, bool)
        if not (is_number or is_scalar_tensor):
            raise ValueError(
                f"schedule {name!r}: {walked}.{attr} must be a number (or a 0-d floating tensor) "
                f"to be scheduled, it is {type(current).__name__} {current!r:.60}"
            )
        return owner, attr


def _children(module: Any) -> str:
    if isinstance(module, nn.Module):
        names = [n for n, _ in module.named_children()]
        if names:
            return f" (its parts: {names})"
    return ""
