"""torch.distributed glue: start from ``torchrun``'s environment, shard batches, reduce metrics.

A script that builds a [`Trainer`][vqkit.train.Trainer] runs unchanged under
``torchrun --nproc_per_node N script.py``: the trainer reads ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``,
starts a process group (NCCL with CUDA, gloo on CPU), wraps the model in
DistributedDataParallel and gives each process its slice of every global batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "all_reduce_sum", "barrier", "is_main_process", "setup_distributed"]


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``rank`` of ``world_size`` processes, on ``device``."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if value is None or value == "" else int(value)


def setup_distributed(device: str | torch.device | None = None) -> DistInfo:
    """Join the process group ``torchrun`` describes (once), and pick this process's device.

    Without ``WORLD_SIZE > 1`` in the environment (a plain ``python`` run) nothing is started.

    Args:
        device: force a device; by default ``cuda:LOCAL_RANK`` when CUDA is available, else CPU.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    local_rank = _env_int("LOCAL_RANK", 0)
    if device is None:
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)
    if world_size > 1 and dist.is_available() and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, device)
    return DistInfo(0, 1, 0, device)


def is_main_process() -> bool:
    """True outside torch.distributed and on rank 0 inside it."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def barrier() -> None:
    """Wait for every process (a no-op without a process group)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over processes in place (a no-op without a process group); returns it."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor
