"""Shared benchmark fixtures: the device, a synchronising timer, and the size preset.

Run with ``pytest benchmarks --benchmark`` (add ``--bench-size=small`` for a quick pass).
"""

from __future__ import annotations

import time

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("pytest_benchmark")


def sync_timer() -> float:
    """A clock that waits for queued CUDA work, so a round includes the GPU time."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter()


@pytest.fixture(scope="session")
def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@pytest.fixture(scope="session")
def bench_size(request: pytest.FixtureRequest) -> str:
    """``"small"`` for a quick pass, ``"full"`` (default) for the sizes in the issues."""
    return request.config.getoption("--bench-size")


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["torch"] = torch.__version__
    machine_info["cuda"] = torch.version.cuda
    machine_info["device_name"] = (
        torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    )
    machine_info["torch_threads"] = torch.get_num_threads()
