"""Small helpers shared by every vqkit package.

- ``eval_mode``: a module (or several) in eval mode for the duration of a ``with`` block,
  every submodule's previous mode restored afterwards, optionally without gradients.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

__all__ = ["eval_mode"]


@contextlib.contextmanager
def eval_mode(*modules: nn.Module, no_grad: bool = False) -> Iterator[None]:
    """Put ``modules`` in eval mode inside the block and restore each submodule's mode after.

    Replaces ``was_training = m.training; m.eval(); ...; m.train(was_training)``, which restores
    a single flag for the whole tree (a submodule frozen in eval mode inside a training model
    comes back in training mode). Here every submodule gets back exactly its own flag, also when
    the block raises.

    Args:
        *modules: the modules to switch.
        no_grad: also disable gradients inside the block.

    Example:
        >>> net = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
        >>> with eval_mode(net):
        ...     assert not net.training
        >>> net.training
        True
    """
    for module in modules:
        if not isinstance(module, nn.Module):
            raise TypeError(f"eval_mode expects nn.Module arguments, got {type(module).__name__}")
    saved = [(m, m.training) for module in modules for m in module.modules()]
    for module in modules:
        module.eval()
    try:
        with torch.no_grad() if no_grad else contextlib.nullcontext():
            yield
    finally:
        for m, training in saved:
            m.training = training
