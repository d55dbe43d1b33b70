"""Timing and memory helpers shared by the benchmark suites.

Import from a suite as ``from _timing import ...``: ``benchmarks/conftest.py`` puts this folder on
``sys.path`` (whatever pytest's ``--import-mode``), so the name resolves the same way everywhere.

What each helper writes into ``benchmark.extra_info`` is what ``benchmarks/report.py`` reads:

- ``impl``: the implementation (``"vqkit"``, a peer's name, or ``"naive"``/``"fast"``),
- ``throughput_items`` / ``throughput_unit``: work done by one timed call (``set_throughput``),
- ``peak_memory_bytes`` / ``memory_method``: peak memory of one call above what setup holds
  (``record_peak_memory``).

Timing on CUDA needs a clock that waits for queued kernels (kernels are asynchronous, so a host
clock alone measures launch time): ``sync_timer`` is that clock, and ``conftest.py`` makes it the
timer of every benchmark in this folder.
"""

from __future__ import annotations

import gc
import inspect
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

_CUDA = torch.cuda.is_available()

# Warm-up rounds before the timed ones: CUDA needs more (lazy context, cuBLAS/cuDNN handles and
# autotuning, allocator growth); CPU mostly oneDNN primitive caches and first-touch allocation.
WARMUP_ROUNDS = {"cuda": 10, "cpu": 2}

# Keys written into ``benchmark.extra_info`` and read by report.py.
PEAK_MEMORY_KEY = "peak_memory_bytes"
DEVICE_ENV = "VQKIT_BENCH_DEVICE"


def bench_device() -> torch.device:
    """The device the suites run on: ``$VQKIT_BENCH_DEVICE`` if set, else CUDA when available.

    ``VQKIT_BENCH_DEVICE=cpu`` gives CPU figures on a GPU machine. The ``device`` fixture returns
    this; call it directly where a fixture cannot be used (``pytest_generate_tests``).
    """
    wanted = os.environ.get(DEVICE_ENV, "").strip().lower()
    if wanted:
        if wanted not in ("cpu", "cuda") and not wanted.startswith("cuda:"):
            raise ValueError(f"{DEVICE_ENV} must be 'cpu', 'cuda' or 'cuda:N', got {wanted!r}")
        if wanted.startswith("cuda") and not _CUDA:
            raise ValueError(f"{DEVICE_ENV}={wanted} but torch sees no CUDA device")
        return torch.device(wanted)
    return torch.device("cuda" if _CUDA else "cpu")


def sync_timer() -> float:
    """``time.perf_counter`` after waiting for queued CUDA work (a plain clock without a GPU)."""
    if _CUDA:
        torch.cuda.synchronize()
    return time.perf_counter()


def warmup_rounds(device: torch.device | str) -> int:
    """Default number of untimed rounds before the timed ones on ``device``."""
    return WARMUP_ROUNDS.get(torch.device(device).type, 2)


def run_pedantic(
    benchmark: Any,
    fn: Callable[[], Any],
    *,
    device: torch.device | str,
    rounds: int,
    warmup: int | None = None,
) -> Any:
    """Time ``fn()`` for a fixed number of ``rounds`` after ``warmup`` untimed ones.

    Use this for calls long enough (tens of ms and up) that pytest-benchmark's automatic
    calibration would waste time; the timer is the one ``conftest.py`` set (``sync_timer``).

    Args:
        benchmark: the pytest-benchmark fixture.
        fn: the call to time, without arguments.
        device: where ``fn`` runs; picks the default warm-up.
        rounds: timed rounds (each is one call).
        warmup: untimed rounds first; ``warmup_rounds(device)`` if ``None``.
    """
    warm = warmup_rounds(device) if warmup is None else warmup
    return benchmark.pedantic(fn, rounds=rounds, warmup_rounds=warm, iterations=1)


def set_throughput(benchmark: Any, items: int, unit: str) -> None:
    """Record that one timed call processes ``items`` ``unit`` (e.g. 32 "images")."""
    benchmark.extra_info["throughput_items"] = int(items)
    benchmark.extra_info["throughput_unit"] = unit


# ----------------------------------------------------------------------------------------------
# Peak memory


def cuda_peak_memory(fn: Callable[[], Any], device: torch.device | str = "cuda") -> dict:
    """Peak CUDA memory of one call of ``fn()`` above what was allocated just before it.

    Call it after a warm-up (the benchmark's own rounds are one), so one-time allocations such as
    optimizer state or cuBLAS workspaces are in the baseline rather than the peak.
    """
    device = torch.device(device)
    torch.cuda.synchronize(device)
    gc.collect()
    torch.cuda.reset_peak_memory_stats(device)
    baseline = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device)
    return {
        PEAK_MEMORY_KEY: int(peak - baseline),
        "memory_baseline_bytes": int(baseline),
        "memory_method": "cuda max_memory_allocated - memory_allocated before the call",
    }


# The child process for CPU memory: build the workload, warm it up, give freed memory back to the
# OS, reset the resident-set high-water mark, then make exactly one measured call.
_CHILD = r"""
import ctypes, ctypes.util, gc, importlib.util, json, resource, sys
spec = json.loads(sys.argv[1])
sys.path.insert(0, spec["sys_path"])
import torch
torch.set_num_threads(spec["threads"])
mod_spec = importlib.util.spec_from_file_location("_vqkit_bench_memory_target", spec["file"])
module = importlib.util.module_from_spec(mod_spec)
mod_spec.loader.exec_module(module)
factory = module
for part in spec["qualname"].split("."):
    factory = getattr(factory, part)
call = factory(**spec["kwargs"])
for _ in range(spec["warmup"]):
    call()

libc_name = ctypes.util.find_library("c")
libc = ctypes.CDLL(libc_name) if libc_name else None

def settle():
    gc.collect()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)  # glibc: return freed heap pages so reuse shows up as growth

def status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)

def maxrss_kib():
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss // 1024 if sys.platform == "darwin" else rss  # bytes on macOS, KiB on Linux

settle()
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # Linux: reset the peak-RSS mark (VmHWM) to the current RSS
    baseline = status_kib("VmRSS")
    call()
    peak = status_kib("VmHWM")
    method = "peak RSS (VmHWM reset after setup) - RSS after setup, fresh process"
except OSError:
    baseline = maxrss_kib()
    call()
    peak = maxrss_kib()
    method = "ru_maxrss after the call - ru_maxrss after setup, fresh process"
print("VQKIT_MEMORY " + json.dumps({"peak_kib": peak, "baseline_kib": baseline, "method": method}))
"""


def rss_peak_memory(
    factory: Callable[..., Callable[[], Any]],
    kwargs: dict | None = None,
    *,
    warmup: int = 1,
    timeout: float = 600.0,
) -> dict:
    """Peak resident memory of one call, measured in a fresh Python process.

    The child imports the file that defines ``factory`` (a module-level function), calls
    ``factory(**kwargs)`` to get the call, runs it ``warmup`` times, frees what it can
    (``gc.collect`` and glibc's ``malloc_trim``), then measures one call: on Linux the peak RSS
    after resetting the kernel's high-water mark, else ``ru_maxrss`` growth (which undercounts
    when setup's own peak was higher). The result is the call's memory above the post-setup
    resident set, so inputs, parameters and optimizer state are not counted.

    Args:
        factory: module-level function returning a zero-argument callable.
        kwargs: JSON-serializable keyword arguments for ``factory`` (pass ``device="cpu"``).
        warmup: untimed calls before the measured one.
        timeout: seconds before the child is killed.
    """
    if not callable(factory) or "<locals>" in getattr(factory, "__qualname__", "<locals>"):
        raise TypeError(f"factory must be a module-level function, got {factory!r}")
    file = Path(inspect.getfile(factory)).resolve()
    spec = {
        "file": str(file),
        "qualname": factory.__qualname__,
        "kwargs": kwargs or {},
        "warmup": int(warmup),
        "threads": torch.get_num_threads(),
        "sys_path": str(Path(__file__).resolve().parent),
    }
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(file.parent), env.get("PYTHONPATH", "")) if p
    )
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("VQKIT_MEMORY ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(
            f"memory child for {factory.__qualname__}({kwargs}) failed with exit code "
            f"{done.returncode}:\n{done.stderr[-4000:]}"
        )
    result = json.loads(lines[-1].removeprefix("VQKIT_MEMORY "))
    return {
        PEAK_MEMORY_KEY: max(0, result["peak_kib"] - result["baseline_kib"]) * 1024,
        "memory_baseline_bytes": result["baseline_kib"] * 1024,
        "memory_method": result["method"],
    }


def record_peak_memory(
    benchmark: Any,
    factory: Callable[..., Callable[[], Any]],
    /,
    *,
    warmup: int = 1,
    **kwargs: Any,
) -> dict | None:
    """Measure one call's peak memory and write it into ``benchmark.extra_info``.

    ``factory(**kwargs)`` must return the call to measure; ``kwargs`` must contain ``device``
    (``"cpu"`` or ``"cuda"``). CUDA: ``max_memory_allocated`` in this process; CPU: peak RSS of
    a fresh subprocess (see ``rss_peak_memory``), so a module-level ``factory`` and
    JSON-serializable ``kwargs`` are required. Skipped (returns ``None``) under
    ``--benchmark-disable``, which is a smoke run: no figures are reported there.

    Example:
        >>> def make_step(n, device):  # module level, in the suite's file
        ...     x = torch.randn(n, 64, device=device)
        ...     return lambda: layer(x)
        >>> record_peak_memory(benchmark, make_step, n=4096, device=str(device))
    """
    if "device" not in kwargs:
        raise TypeError("record_peak_memory needs device=... among the factory's kwargs")
    if benchmark.disabled:
        return None
    device = torch.device(kwargs["device"])
    kwargs["device"] = str(device)  # JSON for the child; factories take a string or a device
    if device.type == "cuda":
        call = factory(**kwargs)
        for _ in range(warmup):
            call()
        result = cuda_peak_memory(call, device)
        del call
    else:
        result = rss_peak_memory(factory, kwargs, warmup=warmup)
    benchmark.extra_info.update(result)
    return result


__all__ = [
    "DEVICE_ENV",
    "PEAK_MEMORY_KEY",
    "WARMUP_ROUNDS",
    "bench_device",
    "cuda_peak_memory",
    "record_peak_memory",
    "rss_peak_memory",
    "run_pedantic",
    "set_throughput",
    "sync_timer",
    "warmup_rounds",
]
