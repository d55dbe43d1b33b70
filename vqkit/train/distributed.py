"""torch.distributed glue: start from ``torchrun``'s environment, shard batches, reduce metrics.

A script that builds a [`Trainer`][vqkit.train.Trainer] runs unchanged under
``torchrun --nproc_per_node N script.py``: the trainer reads ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``,
starts a process group (NCCL with CUDA, gloo on CPU), wraps the model in
DistributedDataParallel and gives each process its slice of every global batch.

For adversarial training (a VQ-GAN: *Taming Transformers for High-Resolution Image Synthesis*,
Esser et al. 2021, arXiv:2012.09841) it also has ``all_reduce_mean``, with which the adaptive
weight λ is computed from the whole batch's gradients on every process, and ``SyncBatchNorm2d`` /
``sync_batchnorm``: BatchNorm whose training statistics are those of the whole global batch
(as ``torch.nn.SyncBatchNorm``, which runs on GPUs only, but on any device and backend).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, cast

import torch
import torch.distributed as dist
from torch import nn

from vqkit.quantize._distributed import world_size

__all__ = [
    "DistInfo",
    "SyncBatchNorm2d",
    "all_reduce_mean",
    "all_reduce_sum",
    "barrier",
    "is_main_process",
    "setup_distributed",
    "sync_batchnorm",
]


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


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """The mean of ``tensor`` over processes, as a new tensor (``tensor`` itself without a
    process group). Not differentiable: it is for detached values such as gradients."""
    world = world_size()
    if world == 1:
        return tensor
    out = tensor.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / world


class _AllReduceSum(torch.autograd.Function):
    """Sum over processes whose backward is the sum of the incoming gradients over processes
    (the gradient of ``sum_r f_r(total)`` with respect to each process's summand)."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:
        out = tensor.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        # The sum is linear and its own adjoint: the backward is the same function, applied
        # through autograd so that a double backward (R1's create_graph) is right too.
        return cast(torch.Tensor, _AllReduceSum.apply(grad.contiguous()))


def _all_reduce_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    return cast(torch.Tensor, _AllReduceSum.apply(tensor))


class SyncBatchNorm2d(nn.BatchNorm2d):
    """``nn.BatchNorm2d`` normalising with the statistics of the whole global batch under DDP.

    In training mode inside a process group of more than one process, the per-channel mean and
    (biased) variance are those of the batches of all processes together, computed in two passes
    with differentiable all-reduces (whose backward all-reduces the gradients), so the
    outputs, the running statistics and (after DDP's gradient averaging) the gradients are those
    of one process holding the whole batch, up to the order of float sums. Elsewhere (one process,
    eval mode) it is ``nn.BatchNorm2d``. It has the same parameters and buffers, so state dicts
    move freely between the two. ``torch.nn.SyncBatchNorm`` does the same on GPUs only; this one
    runs on any device and backend (gloo on CPU too). Every process must call it the same number
    of times in the same order (as every collective).

    The statistics are computed in fp32 (fp64 for fp64 inputs) whatever the input's dtype (bf16
    under autocast); the output has the input's dtype.

    Shape:
        - Input: (B, C, H, W), B may differ between processes (even 0)
        - Output: (B, C, H, W)
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not (self.training and world_size() > 1):
            return super().forward(input)
        self._check_input_dim(input)
        channels = input.shape[1]
        dims = (0, 2, 3)
        x = input if input.dtype == torch.float64 else input.float()  # statistics in fp32+
        local_count = torch.tensor(
            [float(input.numel() // max(channels, 1))], device=x.device, dtype=x.dtype
        )
        totals = _all_reduce_with_grad(torch.cat([x.sum(dims), local_count]))
        count = totals[-1].detach()
        if float(count) < 2:
            raise ValueError(
                f"SyncBatchNorm2d: expected more than 1 value per channel in the global batch, "
                f"got input {tuple(input.shape)} on this process and {int(count)} in all"
            )
        mean = totals[:channels] / count
        centred = x - mean.view(1, -1, 1, 1)
        var = _all_reduce_with_grad((centred * centred).sum(dims)) / count
        out = centred * torch.rsqrt(var + self.eps).view(1, -1, 1, 1)
        if self.affine:
            out = out * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                tracked = self.num_batches_tracked
                if tracked is not None:
                    tracked.add_(1)
                factor = (
                    1.0 / float(tracked)
                    if self.momentum is None and tracked is not None
                    else float(self.momentum or 0.0)
                )
                unbiased = var.detach() * (count / (count - 1))
                self.running_mean.mul_(1 - factor).add_(factor * mean.detach())
                running_var = self.running_var
                if running_var is not None:
                    running_var.mul_(1 - factor).add_(factor * unbiased)
        return out.to(input.dtype)


def sync_batchnorm(module: nn.Module) -> nn.Module:
    """``module`` with every ``nn.BatchNorm2d`` replaced by a ``SyncBatchNorm2d`` holding the
    same parameters and buffers (``module`` itself is changed and returned; a bare BatchNorm2d
    is returned as a new module).

    Args:
        module: e.g. a PatchGAN discriminator with ``norm="batch"``.

    Raises:
        TypeError: another batch-norm kind (1-d, 3-d, ``nn.SyncBatchNorm``), which this does not
            synchronise.
    """
    if type(module) is nn.BatchNorm2d:
        synced = SyncBatchNorm2d(
            module.num_features,
            eps=module.eps,
            momentum=module.momentum,
            affine=module.affine,
            track_running_stats=module.track_running_stats,
        )
        synced.load_state_dict(module.state_dict())
        if module.affine:  # the same Parameter objects (an optimizer may hold them already)
            synced.weight, synced.bias = module.weight, module.bias
        synced.train(module.training)
        synced.to(next(iter(module.state_dict().values()), torch.zeros(())).device)
        return synced
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(
        module, SyncBatchNorm2d
    ):
        raise TypeError(
            f"sync_batchnorm: {type(module).__name__} is not synchronised across processes; "
            "use BatchNorm2d, GroupNorm or no norm"
        )
    for name, child in module.named_children():
        replaced = sync_batchnorm(child)
        if replaced is not child:
            setattr(module, name, replaced)
    return module
