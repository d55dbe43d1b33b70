"""Constructor-argument checks with messages that name the class, the argument and the value."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["check_choice", "check_number", "check_positive_int"]


def check_positive_int(owner: str, name: str, value: Any) -> int:
    """``value`` as an int ≥ 1 (bools are rejected)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive integer, got {value!r}")
    return value


def check_number(
    owner: str,
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    high_open: bool = False,
) -> float:
    """``value`` as a finite float in ``[low, high]`` (``[low, high)`` with ``high_open``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{owner}: {name} must be a finite number, got {value!r}")
    too_high = high is not None and (value >= high if high_open else value > high)
    if (low is not None and value < low) or too_high:
        upper = "∞" if high is None else f"{high}"
        bracket = ")" if high_open or high is None else "]"
        raise ValueError(f"{owner}: {name} must be in [{low}, {upper}{bracket}, got {value!r}")
    return float(value)


def check_choice(owner: str, name: str, value: Any, choices: Sequence[Any]) -> Any:
    """``value`` if it is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{owner}: {name} must be one of {list(choices)}, got {value!r}")
    return value
