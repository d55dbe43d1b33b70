"""Shared benchmark setup: the device, the size preset, a synchronising timer and machine facts.

Run with ``pytest benchmarks --benchmark`` (add ``--bench-size=small`` for a quick pass, and
``--benchmark-json=out.json`` to keep the figures for ``benchmarks/report.py``).

- ``device`` fixture: CUDA when available, else CPU. ``VQKIT_BENCH_DEVICE=cpu`` forces the CPU
  on a GPU machine (for CPU figures there).
- ``bench_size`` fixture: ``"small"`` or ``"full"`` from ``--bench-size``.
- Every benchmark in this folder times with ``_timing.sync_timer`` (waits for queued CUDA work) and
  warms up first; a suite's own ``@pytest.mark.benchmark(...)`` keywords win, and so do
  ``--benchmark-timer`` / ``--benchmark-warmup`` given on the command line.
- ``extra_info`` of every benchmark gets ``device``, ``bench_size`` and ``load_average`` (1 min);
  ``machine_info`` gets the torch/CUDA/cuDNN versions, the device name, the TF32 and
  ``cudnn.benchmark`` settings, the CPU model, thread counts and the load before and after.

Helpers for the suites live in ``benchmarks/_timing.py``; this file puts the folder on
``sys.path`` so ``from _timing import ...`` works under every ``--import-mode``.
"""

from __future__ import annotations

import os
import platform
import sys
import warnings
from importlib import metadata
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("pytest_benchmark")

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from _timing import WARMUP_ROUNDS, bench_device, sync_timer  # noqa: E402  (needs the path above)

# The 1-minute load average when the suites started: a busy machine distorts CPU timings badly
# (two torch processes with 2 threads each on 2 cores can run 10-50x slower), so it is recorded.
LOAD_AT_START = os.getloadavg()[0] if hasattr(os, "getloadavg") else None


@pytest.fixture(scope="session")
def device() -> torch.device:
    """The device to benchmark on (see ``bench_device``)."""
    return bench_device()


@pytest.fixture(scope="session")
def bench_size(request: pytest.FixtureRequest) -> str:
    """``"small"`` for a quick pass, ``"full"`` (default) for the sizes in the issues."""
    return request.config.getoption("--bench-size")


@pytest.fixture(autouse=True)
def _record_run_facts(request: pytest.FixtureRequest) -> None:
    """Write the device, size preset and current load into each benchmark's ``extra_info``."""
    if "benchmark" not in request.fixturenames or HERE not in Path(request.path).parents:
        return
    benchmark = request.getfixturevalue("benchmark")
    benchmark.extra_info["device"] = str(bench_device())
    benchmark.extra_info["bench_size"] = request.config.getoption("--bench-size")
    if hasattr(os, "getloadavg"):
        benchmark.extra_info["load_average"] = round(os.getloadavg()[0], 2)


def _given(config: pytest.Config, option: str) -> bool:
    """Whether ``option`` was given on the command line (so it beats our defaults)."""
    args = [*config.invocation_params.args, *os.environ.get("PYTEST_ADDOPTS", "").split()]
    return any(a == option or a.startswith(option + "=") for a in args)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    defaults: dict = {}
    if not _given(config, "--benchmark-timer"):
        defaults["timer"] = sync_timer
    if not _given(config, "--benchmark-warmup"):
        warmup = WARMUP_ROUNDS[bench_device().type]
        defaults.update(warmup=True, warmup_iterations=warmup)
    if not defaults:
        return
    for item in items:
        if HERE not in Path(item.path).parents or "benchmark" not in getattr(
            item, "fixturenames", ()
        ):
            continue
        own = item.get_closest_marker("benchmark")
        # pytest-benchmark reads only the closest `benchmark` mark: put a merged one first.
        merged = {**defaults, **(own.kwargs if own else {})}
        item.add_marker(pytest.mark.benchmark(**merged), append=False)


def pytest_report_header(config: pytest.Config) -> str:
    dev = bench_device()
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu"
    return (
        f"vqkit benchmarks: device={dev} ({name}), bench-size={config.getoption('--bench-size')}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_total_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _precision_settings() -> dict:
    """TF32 and cuDNN settings as torch reports them (read, never changed here)."""
    out: dict = {"float32_matmul_precision": torch.get_float32_matmul_precision()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the allow_tf32 flags are deprecated in newer torch
        out["cuda_matmul_allow_tf32"] = bool(torch.backends.cuda.matmul.allow_tf32)
        out["cudnn_allow_tf32"] = bool(torch.backends.cudnn.allow_tf32)
        for name, backend in (
            ("cuda_matmul_fp32_precision", torch.backends.cuda.matmul),
            ("cudnn_fp32_precision", torch.backends.cudnn),
        ):
            value = getattr(backend, "fp32_precision", None)
            if value is not None:
                out[name] = str(value)
    out["cudnn_benchmark"] = bool(torch.backends.cudnn.benchmark)
    out["cudnn_deterministic"] = bool(torch.backends.cudnn.deterministic)
    return out


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    dev = bench_device()
    cuda = torch.cuda.is_available()
    machine_info["torch"] = torch.__version__
    machine_info["cuda"] = torch.version.cuda
    machine_info["cudnn"] = torch.backends.cudnn.version() if cuda else None
    machine_info["bench_device"] = str(dev)
    machine_info["device_name"] = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    if cuda:
        props = torch.cuda.get_device_properties(dev if dev.type == "cuda" else 0)
        machine_info["gpu_name"] = props.name
        machine_info["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        machine_info["gpu_capability"] = f"{props.major}.{props.minor}"
        machine_info["gpu_count"] = torch.cuda.device_count()
    else:
        machine_info["gpu_name"] = None
    machine_info["cpu_model"] = _cpu_model()
    machine_info["cpu_count"] = os.cpu_count()
    if hasattr(os, "sched_getaffinity"):
        machine_info["cpu_affinity"] = len(os.sched_getaffinity(0))
    machine_info["memory_total_gib"] = _memory_total_gib()
    machine_info["load_average_start"] = LOAD_AT_START
    machine_info["load_average_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    machine_info["torch_threads"] = torch.get_num_threads()
    machine_info["torch_interop_threads"] = torch.get_num_interop_threads()
    machine_info.update(_precision_settings())
    machine_info["bench_size"] = config.getoption("--bench-size")
    machine_info["packages"] = {
        dist: _version(dist)
        for dist in ("vqkit", "vector-quantize-pytorch", "numpy", "pytest-benchmark")
    }
