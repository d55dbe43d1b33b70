"""Building a model from an untrusted config without allocating what it asks for.

The model is built on the ``meta`` device (shapes, no memory) while global ``nn.Module``
registration hooks count the parameters, buffers and submodules this thread creates; the first
one over a budget set by the weights file aborts the build. Value fills of meta tensors are
skipped (there are no values), which also avoids ``Tensor.normal_`` on meta importing
``torch._dynamo`` the first time it runs.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from vqkit._safetensors import SafetensorsHeader
from vqkit.errors import HubError, InvalidModelError

__all__ = ["build_bounded", "needs_real_tensors"]

# Building a model may register at most 4x the weights file's bytes plus 16 MiB of parameters and
# buffers (non-persistent buffers such as masks are not in the file; vqkit's models hold at most
# 2x), and at most 4 modules per stored tensor plus 64 (vqkit's models have 0.5 to 1.2).
_BYTES_FACTOR, _SLACK_BYTES = 4, 16 << 20
_MODULES_FACTOR, _SLACK_MODULES = 4, 64


class _TooLargeError(InvalidModelError):
    pass


# In-place fills (``torch.nn.init`` and ``Tensor`` methods) that only write values; on a meta
# tensor there are none to write. Skipping them also avoids ``Tensor.normal_`` on meta, whose
# Python reference implementation imports torch._dynamo (seconds) the first time it runs.
_VALUE_FILLS = frozenset(
    {
        "normal_",
        "uniform_",
        "trunc_normal_",
        "kaiming_normal_",
        "kaiming_uniform_",
        "xavier_normal_",
        "xavier_uniform_",
        "orthogonal_",
        "sparse_",
        "constant_",
        "zeros_",
        "ones_",
        "fill_",
        "zero_",
        "eye_",
        "dirac_",
        "bernoulli_",
        "exponential_",
        "random_",
    }
)


class _SkipMetaFills(TorchFunctionMode):
    """Inside ``torch.device("meta")``: value fills of meta tensors return the tensor untouched."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if getattr(func, "__name__", None) in _VALUE_FILLS:
            target = args[0] if args else kwargs.get("tensor")  # torch.nn.init passes keywords
            if isinstance(target, torch.Tensor) and target.is_meta:
                return target
        return func(*args, **kwargs)


@contextlib.contextmanager
def _construction_budget(where: str, max_bytes: int, max_modules: int) -> Iterator[None]:
    """Abort a model's construction once it registers more bytes or modules than allowed.

    Global ``nn.Module`` registration hooks count the parameters, buffers and submodules created
    by this thread; the first one over budget raises, so a hostile config fails at once.
    """
    from torch.nn.modules import module as module_hooks

    thread = threading.get_ident()
    seen: dict[int, torch.Tensor] = {}  # keeps counted tensors alive so their ids stay unique
    totals = {"bytes": 0, "modules": 0}

    def on_tensor(module: torch.nn.Module, name: str, tensor: Any) -> None:
        if threading.get_ident() != thread or tensor is None or id(tensor) in seen:
            return
        seen[id(tensor)] = tensor
        totals["bytes"] += tensor.numel() * tensor.element_size()
        if totals["bytes"] > max_bytes:
            raise _TooLargeError(
                f"{where} asks for a model of more than {max_bytes:,} bytes of parameters and "
                f"buffers (at {type(module).__name__}.{name} of shape {tuple(tensor.shape)}), "
                f"far more than its weights file holds: refusing to build it"
            )

    def on_module(module: torch.nn.Module, name: str, submodule: Any) -> None:
        if threading.get_ident() != thread:
            return
        totals["modules"] += 1
        if totals["modules"] > max_modules:
            raise _TooLargeError(
                f"{where} asks for a model of more than {max_modules:,} modules (at "
                f"{type(module).__name__}.{name}), far more than the tensors its weights file "
                "holds: refusing to build it"
            )

    handles = [
        module_hooks.register_module_parameter_registration_hook(on_tensor),
        module_hooks.register_module_buffer_registration_hook(on_tensor),
        module_hooks.register_module_module_registration_hook(on_module),
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextlib.contextmanager
def _no_mode() -> Iterator[None]:
    yield


def _too_large_cause(exc: BaseException | None) -> _TooLargeError | None:
    """The budget error behind ``exc`` (the registry re-raises constructor errors with a prefix)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, _TooLargeError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def build_bounded(
    cls: type, kwargs: dict, where: str, config_name: str, header: SafetensorsHeader, device: str
) -> Any:
    """``cls(**kwargs)`` on ``device`` under a parameter and module budget set by ``header``.

    Args:
        cls: the model class.
        kwargs: its constructor arguments (from the config, with overrides).
        where: the folder or repo, for messages.
        config_name: the config file's name, for messages.
        header: the weights file's header; the budget is ``4 × data bytes + 16 MiB`` of
            parameters and buffers and ``4 × tensors + 64`` modules.
        device: ``"meta"`` (shapes only; value fills skipped) or ``"cpu"``.

    Raises:
        InvalidModelError: the budget was exceeded (the message names the module and shape), or
            the constructor refused a config value.
        KeyError: the config names an unregistered part.
    """
    max_bytes = _BYTES_FACTOR * header.data_bytes + _SLACK_BYTES
    max_modules = _MODULES_FACTOR * len(header.tensors) + _SLACK_MODULES
    budget = _construction_budget(f"{config_name} of {where}", max_bytes, max_modules)
    try:
        with budget, torch.device(device), _SkipMetaFills() if device == "meta" else _no_mode():
            return cls(**kwargs)
    except KeyError as exc:
        reason = exc.args[0] if exc.args else exc
        raise KeyError(f"cannot build {cls.__name__} from {where}/{config_name}: {reason}") from exc
    except Exception as exc:
        too_large = _too_large_cause(exc)
        if too_large is not None:
            raise _TooLargeError(str(too_large)) from None
        if isinstance(exc, (TypeError, ValueError)) and not isinstance(exc, HubError):
            raise InvalidModelError(
                f"cannot build {cls.__name__} from {where}/{config_name}: {exc}"
            ) from exc
        raise


def needs_real_tensors(exc: Exception) -> bool:
    """A constructor that reads tensor values (``.item()``) cannot run on the meta device."""
    return isinstance(exc, (RuntimeError, NotImplementedError)) and "meta" in str(exc)
