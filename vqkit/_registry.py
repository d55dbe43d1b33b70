"""Name → constructor registries for every swappable part of vqkit, with entry-point plugins.

A part is registered under a *kind* (``"quantizer"``, ``"encoder"``, ``"decoder"``, ``"prior"``,
``"loss"``, ``"model"``) and a *name*. Models are assembled from JSON specs that name their parts::

    @vqkit.register("quantizer", "my_vq")
    class MyVQ(nn.Module): ...

    vqkit.build("quantizer", {"type": "my_vq", "codebook_size": 512})

Third-party packages register parts through the entry-point group ``vqkit.plugins``. Each entry
point is a module (importing it registers its parts) or a callable (called once, with no
arguments). Plugins are loaded lazily: the first time a name is missed or the registry is listed.
A plugin that fails to load emits a :class:`RuntimeWarning` and is skipped.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import threading
import warnings
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any, TypeVar

__all__ = ["KINDS", "PLUGIN_GROUP", "build", "get", "list_registered", "load_plugins", "register"]

KINDS = ("quantizer", "encoder", "decoder", "prior", "loss", "model", "discriminator")
PLUGIN_GROUP = "vqkit.plugins"

T = TypeVar("T", bound=Callable[..., Any])

_REGISTRY: dict[str, dict[str, Callable[..., Any]]] = {kind: {} for kind in KINDS}
_plugins_loaded = False
_plugin_lock = threading.RLock()


def _check_kind(kind: str) -> None:
    if kind not in _REGISTRY:
        raise ValueError(f"unknown registry kind {kind!r}; expected one of {sorted(_REGISTRY)}")


def register(kind: str, name: str | None = None, *, override: bool = False) -> Callable[[T], T]:
    """Decorator registering a class or factory under ``kind`` and ``name``.

    Args:
        kind: one of :data:`KINDS`.
        name: the registered name; defaults to the object's ``__name__`` in lower case.
        override: replace an existing entry of the same name instead of raising.

    Raises:
        ValueError: the kind is unknown, or the name is taken and ``override`` is False.
    """
    _check_kind(kind)

    def decorator(obj: T) -> T:
        if not callable(obj):
            raise TypeError(f"register({kind!r}) expects a class or a callable, got {obj!r}")
        key = name if name is not None else obj.__name__.lower()
        if not isinstance(key, str) or not key:
            raise ValueError(f"registered names must be non-empty strings, got {key!r}")
        existing = _REGISTRY[kind].get(key)
        if existing is not None and existing is not obj and not override:
            raise ValueError(
                f"{kind} {key!r} is already registered to {_qualname(existing)}; "
                "pass override=True to replace it"
            )
        _REGISTRY[kind][key] = obj
        return obj

    return decorator


def load_plugins(*, reload: bool = False) -> None:
    """Import every ``vqkit.plugins`` entry point once (again with ``reload=True``)."""
    global _plugins_loaded
    with _plugin_lock:
        if _plugins_loaded and not reload:
            return
        _plugins_loaded = True
        for ep in entry_points(group=PLUGIN_GROUP):
            try:
                loaded = ep.load()
                if callable(loaded) and not inspect.ismodule(loaded):
                    loaded()
            except Exception as exc:  # a broken plugin must never break vqkit
                dist = getattr(getattr(ep, "dist", None), "name", None) or "unknown distribution"
                warnings.warn(
                    f"vqkit plugin {ep.name!r} ({ep.value}, from {dist}) failed to load and was "
                    f"skipped: {type(exc).__name__}: {exc}",
                    RuntimeWarning,
                    stacklevel=2,
                )


def get(kind: str, name: str) -> Callable[..., Any]:
    """Return the class or factory registered as ``name`` under ``kind``.

    Raises:
        KeyError: the name is unknown; the message lists close matches and every registered name.
    """
    _check_kind(kind)
    entries = _REGISTRY[kind]
    if name not in entries:
        load_plugins()
    if name not in entries:
        close = difflib.get_close_matches(name, list(entries), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        available = ", ".join(sorted(entries)) or "(none)"
        raise KeyError(
            f"unknown {kind} {name!r}.{hint} Registered {kind}s: {available}. "
            f"Parts from a third-party package appear here once that package is installed."
        )
    return entries[name]


def list_registered(kind: str | None = None, pattern: str = "*") -> list[str]:
    """Sorted registered names matching a shell wildcard ``pattern``.

    With ``kind=None`` the names are qualified as ``"kind/name"`` and the pattern is matched
    against the qualified name or the bare name.
    """
    load_plugins()
    if kind is not None:
        _check_kind(kind)
        return sorted(n for n in _REGISTRY[kind] if fnmatch.fnmatchcase(n, pattern))
    out = []
    for k, entries in _REGISTRY.items():
        for n in entries:
            qualified = f"{k}/{n}"
            if fnmatch.fnmatchcase(qualified, pattern) or fnmatch.fnmatchcase(n, pattern):
                out.append(qualified)
    return sorted(out)


def build(kind: str, spec: Any, **overrides: Any) -> Any:
    """Build a registered part from a name, a ``{"type": name, **kwargs}`` dict, or a module.

    An object that is neither a string nor a mapping (for example an ``nn.Module`` that is already
    built) is returned as is; ``overrides`` are then not allowed.

    Raises:
        KeyError: the name is unknown.
        TypeError: the spec has the wrong form, or the arguments do not fit the registered
            constructor; the message names the kind, the name and the offending argument.
    """
    _check_kind(kind)
    if isinstance(spec, str):
        name, kwargs = spec, {}
    elif isinstance(spec, Mapping):
        if "type" not in spec:
            raise TypeError(f"a {kind} spec dict needs a 'type' key naming the {kind}, got {spec}")
        kwargs = dict(spec)
        name = kwargs.pop("type")
        if not isinstance(name, str):
            raise TypeError(f"a {kind} spec's 'type' must be a string, got {name!r}")
    elif spec is None:
        raise TypeError(f"expected a {kind} name, a dict with 'type', or a built module, got None")
    else:
        if overrides:
            raise TypeError(
                f"cannot apply overrides {sorted(overrides)} to an already-built {kind} "
                f"({type(spec).__name__})"
            )
        return spec
    kwargs.update(overrides)
    factory = get(kind, name)
    _check_arguments(kind, name, factory, kwargs)
    try:
        return factory(**kwargs)
    except (TypeError, ValueError) as exc:
        # Re-raise the same type, prefixed with where the bad argument came from.
        raise type(exc)(f"{kind} {name!r}: {exc}") from exc


def _check_arguments(kind: str, name: str, factory: Callable[..., Any], kwargs: dict) -> None:
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # builtins without a signature: let the call speak
        return
    try:
        signature.bind(**kwargs)
    except TypeError as exc:
        params = signature.parameters
        takes_var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        accepted = [
            p.name
            for p in params.values()
            if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        ]
        unknown = [k for k in kwargs if k not in params and not takes_var_kw]
        if unknown:
            close = difflib.get_close_matches(unknown[0], accepted, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise TypeError(
                f"{kind} {name!r} got an unexpected argument {unknown[0]!r}{hint}; "
                f"it accepts {', '.join(accepted)}"
            ) from None
        missing = [
            p.name
            for p in params.values()
            if p.default is inspect.Parameter.empty
            and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
            and p.name not in kwargs
        ]
        detail = f"missing required argument {missing[0]!r}" if missing else str(exc)
        raise TypeError(f"{kind} {name!r}: {detail}; it accepts {', '.join(accepted)}") from None


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"
