"""Run a function in two (or more) gloo processes on CPU for the distributed tests.

``run_workers(worker, tmp, world)`` starts ``worker(rank, init_file, out_dir)`` in ``world``
processes (fork on Linux: the children skip re-importing torch, seconds on 2 cores), waits for
them with a deadline, and skips where gloo or the file rendezvous is unavailable. Each worker
calls ``dist.init_process_group("gloo", init_method=f"file://{init_file}", ...)`` itself and
writes its results under ``out_dir``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch.distributed as dist
import torch.multiprocessing as mp

TIMEOUT_S = 120


def run_workers(
    worker: Callable[[int, str, str], None], tmp: Path, world: int, timeout_s: float = TIMEOUT_S
) -> None:
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    if sys.platform == "win32":
        pytest.skip("file:// rendezvous for gloo is not supported on Windows here")
    method = "fork" if sys.platform == "linux" else "spawn"
    context = mp.start_processes(
        worker, args=(str(tmp / "init"), str(tmp)), nprocs=world, join=False, start_method=method
    )
    deadline = time.monotonic() + timeout_s
    while not context.join(timeout=1.0):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"the {world} gloo workers did not finish in {timeout_s} s")
