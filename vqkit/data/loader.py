"""Batches for the trainer: a fixed index order, read in-process or by DataLoader workers.

The order of every batch is decided before any worker starts: the trainer draws a seeded
permutation per epoch, cuts it into global batches and gives each torchrun process its own slice
of each global batch (what ``torch.utils.data.DistributedSampler`` does, without padding: the
last incomplete batch is dropped). Workers only decode the indices they are handed, so the data
order, and with it every weight of a run, does not depend on the number of workers, and a run
resumed in the middle of an epoch reads exactly the batches the uninterrupted run would have.

The DataLoader gets its own generator: its base seed is never drawn from the global torch RNG,
which the model's dropout and initialisation use and every checkpoint saves.

Freed memory is kept for reuse. With glibc's defaults, a buffer above 128 KiB (a 128-image batch
of 32x32 RGB floats is 1.5 MiB; the convolutions' activations and im2col buffers are larger) is
mapped fresh from the kernel and unmapped when freed, so every training step pays tens of page
faults per image in kernel time. glibc raises that threshold only after it happens to free a
large mapped block, which the in-memory path's loading did by chance and the lazy and cached
paths did not: their training process spent 0.15-0.3 ms/img more in the kernel (44-74 minor
faults per image against 2). ``iterate_batches`` therefore sets glibc's mmap threshold to 32 MiB
and its trim threshold to 128 MiB once per process (``mallopt``; at most that much freed memory
stays mapped), on glibc only, and not when the user chose a malloc policy
(``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_`` or ``glibc.malloc`` in
``GLIBC_TUNABLES``) or set ``VQKIT_MALLOC=default``. DataLoader workers inherit it by fork.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Iterable, Iterator, Sized
from typing import Any, cast

import torch
from torch.utils.data import DataLoader, Dataset, default_collate

from vqkit.data.dataset import ArrayDataset
from vqkit.data.lazy import ImageFolderDataset

__all__ = [
    "batch_indices",
    "fetch",
    "iterate_batches",
    "reuse_freed_memory",
    "sequential_batches",
]


def batch_indices(
    order: torch.Tensor, global_batch: int, *, rank: int = 0, world_size: int = 1, start: int = 0
) -> list[torch.Tensor]:
    """This process's indices of every complete global batch of ``order``, from batch ``start``.

    Args:
        order: a permutation of the dataset's indices, ``(N,)``.
        global_batch: samples per optimizer step over all processes (divisible by
            ``world_size``).
        rank: this process's rank.
        world_size: the number of processes; process ``r`` gets the ``r``-th
            ``global_batch // world_size`` samples of each global batch.
        start: the first batch (the batch to resume from).

    Returns:
        One 1-D index tensor of ``global_batch // world_size`` entries per remaining step.
    """
    if global_batch % world_size:
        raise ValueError(f"global batch {global_batch} is not divisible by {world_size} processes")
    local = global_batch // world_size
    steps = len(order) // global_batch
    return [
        order[b * global_batch + rank * local : b * global_batch + (rank + 1) * local]
        for b in range(start, steps)
    ]


#: glibc ``mallopt`` parameters and the values ``reuse_freed_memory`` sets.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest dynamic threshold on 64-bit systems
TRIM_THRESHOLD = 128 << 20
_USER_MALLOC_VARIABLES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")
_malloc_policy: bool | None = None  # None: not tried yet in this process


def reuse_freed_memory() -> bool:
    """Keep freed batch-sized buffers mapped for reuse (glibc); whether the policy is in force.

    Sets glibc's ``M_MMAP_THRESHOLD`` to 32 MiB and ``M_TRIM_THRESHOLD`` to 128 MiB, once per
    process, so that the batches and activations of every training step reuse the memory of the
    step before instead of being mapped (and page-faulted in) anew; see the module docstring.
    Does nothing off glibc, when the environment already sets a malloc policy, or with
    ``VQKIT_MALLOC=default``. Called by ``iterate_batches``.

    Returns:
        True when the thresholds are set (now or by an earlier call), else False.
    """
    global _malloc_policy
    if _malloc_policy is not None:
        return _malloc_policy
    _malloc_policy = False
    if not sys.platform.startswith("linux") or os.environ.get("VQKIT_MALLOC") == "default":
        return False
    if any(v in os.environ for v in _USER_MALLOC_VARIABLES) or "glibc.malloc" in os.environ.get(
        "GLIBC_TUNABLES", ""
    ):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
        if not hasattr(libc, "gnu_get_libc_version"):  # musl's mallopt ignores these parameters
            return False
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _malloc_policy = (
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
        and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    )
    return _malloc_policy


def _in_memory(dataset: Dataset) -> bool:
    """Whether batches are one slice of a tensor already in memory (workers would only copy)."""
    return isinstance(dataset, ArrayDataset) or (
        isinstance(dataset, ImageFolderDataset) and dataset.cache is not None
    )


def fetch(dataset: Dataset, indices: torch.Tensor) -> Any:
    """One batch read in this process: a slice of an in-memory dataset, or collated items."""
    if isinstance(dataset, ArrayDataset):
        return dataset.data[indices]
    if isinstance(dataset, ImageFolderDataset) and dataset.cache is not None:
        return dataset.cache[indices].float().div_(255)  # the items' own conversion, batched
    if isinstance(dataset, ImageFolderDataset):
        return dataset.read_batch(indices.tolist())  # one uint8 array, one conversion
    return default_collate([dataset[int(i)] for i in indices])


class _Uint8Batches(Dataset):
    """A worker-side view of an 8-bit ``ImageFolderDataset`` whose batches are uint8.

    Workers decode each batch into one uint8 array and send that (a quarter of the float32
    bytes through shared memory); the training process converts it with one ``div_``.
    """

    def __init__(self, dataset: ImageFolderDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitems__(self, indices: list[int]) -> torch.Tensor:
        return self.dataset.read_batch(indices, as_uint8=True)


def _whole_batch(batch: Any) -> Any:
    """collate_fn for ``__getitems__`` batches that are already one tensor."""
    return batch


def _to_float(batches: Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
    for batch in batches:
        yield batch.float().div_(255)  # the items' own conversion (x / 255 in fp32), batched


def _filling(
    dataset: ImageFolderDataset, lists: list[list[int]], raw: Iterable[torch.Tensor]
) -> Iterator[torch.Tensor]:
    """The float batches of ``raw`` (uint8, read at ``lists``), kept in the cache being filled.

    When every batch was read, the rows no batch held (an epoch's dropped last batch) are
    decoded here if there are at most a batch of them, which completes the cache.
    """
    n = len(dataset)
    for positions, batch in zip(lists, raw, strict=True):
        dataset.keep_rows(torch.tensor([i % n for i in positions], dtype=torch.long), batch)
        yield batch.float().div_(255)
    dataset.fill_missing(max(len(b) for b in lists))


def iterate_batches(
    dataset: Dataset,
    batches: Iterable[torch.Tensor],
    *,
    num_workers: int = 0,
    pin_memory: bool = False,
) -> Iterator[Any]:
    """The batches of ``dataset`` at ``batches`` (lists of indices), in that order.

    In-memory datasets ([`ArrayDataset`][vqkit.data.ArrayDataset], an
    ``ImageFolderDataset`` with its uint8 cache) and ``num_workers=0`` are read
    in this process, one slice per batch; other datasets with ``num_workers > 0`` are decoded by
    that many DataLoader worker processes (``pin_memory`` puts each batch in page-locked memory
    for a fast copy to CUDA). The values are the same either way. The first call in a process
    sets glibc's malloc thresholds (``reuse_freed_memory``). A folder loaded with
    ``cache="fill"`` keeps every batch read in its cache; once the cache is complete, later calls
    slice it in this process (``num_workers`` is then not used for it).
    """
    lists: list[list[int]] = [
        b.tolist() if isinstance(b, torch.Tensor) else list(b) for b in batches
    ]
    if not lists:
        return iter(())
    reuse_freed_memory()
    filling = isinstance(dataset, ImageFolderDataset) and dataset.filled is not None
    if _in_memory(dataset) or num_workers == 0:
        if filling:
            folder = cast(ImageFolderDataset, dataset)
            raw = (folder.read_batch(b, as_uint8=True) for b in lists)
            return _filling(folder, lists, raw)
        return (fetch(dataset, torch.tensor(b, dtype=torch.long)) for b in lists)
    uint8 = isinstance(dataset, ImageFolderDataset) and not dataset.wide
    # uint8 batches are pinned after their conversion to float (where there is a GPU; without
    # one the DataLoader's own flag warns and pins nothing, as for every other dataset).
    pin_after = uint8 and pin_memory and torch.cuda.is_available()
    loader = DataLoader(
        _Uint8Batches(dataset) if uint8 else dataset,  # type: ignore[arg-type]
        batch_sampler=lists,
        num_workers=num_workers,
        collate_fn=_whole_batch if uint8 else None,
        pin_memory=pin_memory and not pin_after,
        prefetch_factor=4,  # batches in flight per worker: covers a slow decode now and then
        generator=torch.Generator().manual_seed(0),  # keeps the global RNG untouched
    )
    if not uint8:
        return iter(loader)
    floats = (
        _filling(cast(ImageFolderDataset, dataset), lists, loader) if filling else _to_float(loader)
    )
    return (b.pin_memory() for b in floats) if pin_after else floats


def sequential_batches(
    dataset: Dataset, batch_size: int, *, num_workers: int = 0, pin_memory: bool = False
) -> Iterator[Any]:
    """Every sample of ``dataset`` in order, in batches of ``batch_size`` (the last may be short).

    For evaluation and encoding passes over any dataset, in memory or lazy: the in-memory path
    slices ``dataset.data``; lazy datasets are read by ``num_workers`` DataLoader workers.
    """
    from vqkit._checks import check_int, check_positive_int

    check_positive_int("sequential_batches", "batch_size", batch_size)
    check_int("sequential_batches", "num_workers", num_workers, low=0)
    size = len(cast(Sized, dataset))  # map-style datasets define __len__
    chunks = list(torch.split(torch.arange(size), batch_size))
    return iterate_batches(dataset, chunks, num_workers=num_workers, pin_memory=pin_memory)
