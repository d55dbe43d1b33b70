"""Collectives used by the quantizers to keep every rank's codebook identical under DDP.

The functional collectives are used (they return new tensors and trace under ``torch.compile``).
Nothing here runs unless ``torch.distributed`` is initialised with more than one process.
"""

from __future__ import annotations

from typing import cast

import torch.distributed as dist
from torch import Tensor

__all__ = ["all_gather_rows", "all_reduce_sum", "world_size"]


def world_size() -> int:
    """Number of processes in the default group, 1 when not distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def _world_group() -> dist.ProcessGroup:
    # Typed ``ProcessGroup | None``: None only before init_process_group, and callers reach the
    # collectives only when world_size() > 1.
    return cast(dist.ProcessGroup, dist.group.WORLD)


def all_reduce_sum(t: Tensor) -> Tensor:
    """Sum of ``t`` over all ranks (a new tensor; every rank gets the same bytes)."""
    from torch.distributed import _functional_collectives as funcol

    return funcol.wait_tensor(funcol.all_reduce(t.contiguous(), "sum", _world_group()))


def all_gather_rows(t: Tensor) -> Tensor:
    """Concatenate every rank's ``t`` along dim 0, in rank order: (M, ...) → (world·M, ...)."""
    from torch.distributed import _functional_collectives as funcol

    gather = getattr(funcol, "all_gather_single", None) or funcol.all_gather_tensor
    return funcol.wait_tensor(gather(t.contiguous(), 0, _world_group()))
