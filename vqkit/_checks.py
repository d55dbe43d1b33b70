"""Argument checks shared by every vqkit package: one module, one message style.

Every check names the owner (a class or function), the argument, what was expected and what
came, e.g. ``VectorQuantizer: codebook_size must be a positive integer, got 0``. Bools are never
accepted where numbers are expected, and flags must be real bools (``ema="no"`` is refused, not
read as ``True``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

__all__ = [
    "check_bool",
    "check_choice",
    "check_generator",
    "check_input_dtype",
    "check_int",
    "check_non_negative_int",
    "check_number",
    "check_positive_int",
    "check_positive_ints",
    "check_real_device",
]


def check_positive_int(owner: str, name: str, value: Any) -> int:
    """``value`` as an int ≥ 1 (bools are rejected)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive integer, got {value!r}")
    return value


def check_non_negative_int(owner: str, name: str, value: Any) -> int:
    """``value`` as an int ≥ 0 (bools are rejected)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{owner}: {name} must be a non-negative integer, got {value!r}")
    return value


def check_int(
    owner: str, name: str, value: Any, *, low: int | None = None, high: int | None = None
) -> int:
    """``value`` as an int in ``[low, high]`` (either bound optional; bools are rejected)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{owner}: {name} must be an integer, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        upper = "∞" if high is None else f"{high}]"
        lower = "-∞" if low is None else f"[{low}"
        raise ValueError(f"{owner}: {name} must be in {lower}, {upper}, got {value!r}")
    return value


def check_number(
    owner: str,
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a finite float in ``[low, high]``; ``low_open`` / ``high_open`` open an end."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{owner}: {name} must be a finite number, got {value!r}")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        lower = "(-∞" if low is None else ("(" if low_open else "[") + f"{low}"
        upper = "∞)" if high is None else f"{high}" + (")" if high_open else "]")
        raise ValueError(f"{owner}: {name} must be in {lower}, {upper}, got {value!r}")
    return float(value)


def check_bool(owner: str, name: str, value: Any) -> bool:
    """``value`` if it is a real bool (``"no"``, ``0`` and ``None`` are refused)."""
    if not isinstance(value, bool):
        raise TypeError(f"{owner}: {name} must be True or False, got {value!r}")
    return value


def check_choice(owner: str, name: str, value: Any, choices: Sequence[Any]) -> Any:
    """``value`` if it is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{owner}: {name} must be one of {list(choices)}, got {value!r}")
    return value


def check_generator(
    owner: str, generator: Any, device: torch.device | str | None = None
) -> torch.Generator | None:
    """``generator`` if it is None or a ``torch.Generator`` (on ``device``'s type when given)."""
    if generator is None:
        return None
    if not isinstance(generator, torch.Generator):
        raise TypeError(
            f"{owner}: generator must be a torch.Generator or None, got {type(generator).__name__}"
        )
    if device is not None and torch.device(device).type != generator.device.type:
        raise ValueError(
            f"{owner}: generator is on {generator.device.type} but the model is on "
            f"{torch.device(device).type}; create it with torch.Generator(device=...)"
        )
    return generator


def check_real_device(owner: str, x: torch.Tensor, name: str = "input") -> None:
    """Refuse tensors on the ``meta`` device (they hold no values to compute with)."""
    if x.device.type == "meta":
        raise ValueError(
            f"{owner}: {name} is on the 'meta' device (shape only, no data); move it to a real "
            "device first"
        )


def check_positive_ints(
    owner: str, name: str, value: Any, *, allow_empty: bool = False
) -> list[int]:
    """``value`` as a list of ints ≥ 1 (a list or tuple; empty only with ``allow_empty``)."""
    ok = isinstance(value, (list, tuple)) and (allow_empty or len(value) > 0)
    if ok:
        ok = all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
    if not ok:
        which = "a list" if allow_empty else "a non-empty list"
        raise ValueError(f"{owner}: {name} must be {which} of positive ints, got {value!r}")
    return list(value)


def check_input_dtype(
    owner: str, x: torch.Tensor, module: torch.nn.Module, name: str = "input"
) -> None:
    """Refuse a floating input whose dtype is not that of ``module``'s parameters.

    Outside autocast, torch would fail later with "Input type (double) and bias type (float)
    should be the same"; under autocast the operators cast for themselves, so nothing is checked.
    """
    if torch.is_autocast_enabled(x.device.type):
        return
    param = next(module.parameters(), None)
    if param is not None and x.dtype != param.dtype:
        raise TypeError(
            f"{owner}: {name} has dtype {x.dtype} but the parameters are {param.dtype}; convert "
            f"the input (x.to({param.dtype})) or the module (module.to(...)) first"
        )
