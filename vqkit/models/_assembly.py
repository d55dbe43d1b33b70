"""How a model assembles its parts from registry specs: one set of wiring rules for every family.

A part is given as a registered name (``"resnet"``), a ``{"type": name, **kwargs}`` dict, or a
built module. A model copies the spec (``as_spec``), fills in the sizes that must agree with
its other parts when the spec leaves them out and the constructor accepts them (``wire``),
builds it through the registry, then checks the built part's declared attributes against what it
needs (``check_attr``). An explicit value that disagrees raises ``ValueError``.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from torch import nn

from vqkit._registry import get

__all__ = ["Spec", "accepts", "as_spec", "check_attr", "wire"]

Spec = dict[str, Any] | None  # a mutable copy of a part's spec; None for a built module


def as_spec(kind: str, spec: Any) -> dict[str, Any] | None:
    """A mutable copy of a name or ``{"type": ...}`` spec; None for an already-built module."""
    if isinstance(spec, str):
        return {"type": spec}
    if isinstance(spec, Mapping):
        if not isinstance(spec.get("type"), str):
            raise TypeError(f"a {kind} spec dict needs a string 'type' key, got {dict(spec)}")
        return dict(spec)
    if isinstance(spec, nn.Module):
        return None
    raise TypeError(
        f"{kind} must be a registered name, a {{'type': name, ...}} dict or a module, "
        f"got {type(spec).__name__}"
    )


def accepts(kind: str, spec: dict[str, Any], param: str) -> bool:
    """Whether the constructor registered for ``spec["type"]`` takes an argument ``param``."""
    try:
        params = inspect.signature(get(kind, spec["type"])).parameters
    except (TypeError, ValueError):
        return False
    return param in params


def wire(kind: str, spec: Spec, param: str, value: Any, source: str) -> None:
    """Set ``spec[param] = value`` when unset and accepted; reject a different explicit value."""
    if spec is None or value is None:
        return
    if param in spec:
        if spec[param] != value:
            raise ValueError(
                f"{kind} {spec['type']!r} has {param}={spec[param]!r} but {source} is {value!r}; "
                f"they must agree (leave {kind} {param} out to have it wired automatically)"
            )
    elif accepts(kind, spec, param):
        spec[param] = value


def check_attr(kind: str, module: nn.Module, attr: str, value: Any, source: str) -> None:
    """Refuse a built part whose contract attribute ``attr`` disagrees with ``value``.

    ``attr`` is one the kind's contract requires (the registry checked that it exists).
    """
    got = getattr(module, attr)
    if value is not None and got != value:
        raise ValueError(
            f"{kind} {type(module).__name__} has {attr}={got!r} but {source}={value!r}"
        )
