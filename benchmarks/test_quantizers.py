"""Quantizers against vector-quantize-pytorch (VQP), same settings, same run.

Groups (``benchmark.group``):

- ``quantizer vq train step``: one forward + backward of ``VectorQuantizer`` with the EMA update
  and dead-code reseeding (VQP: ``VectorQuantize`` with ``threshold_ema_dead_code``), with peak
  memory, and the bare reference step (``impl="bare"``: addmm + argmin + index_add EMA, no
  checks, metrics or reseeding) in the same run. The issue-3 targets are N=65,536, K=8,192 and
  N=32,768, K=512 at D=64: vqkit at least 5× faster and at most 0.2× the peak memory; issue 19's
  is N=4,096, K=512: at least 8× VQP and within 1.2× of the bare step.
- ``quantizer vq inference``: eval-mode encoding to indices, no gradients (also with the bare
  ``addmm`` + ``argmin``).
- ``quantizer rvq train step``: ``ResidualVQ`` with 4 stages vs VQP's ``ResidualVQ``.
- ``quantizer fsq train step``: ``FSQ([8, 5, 5, 5])`` with projections vs VQP's ``FSQ``.
- ``torch.compile`` variants (``compile=True``, vqkit with ``fullgraph=True``) run on CUDA only.

The workloads are in ``_quant_cases.py``; ``quantizer_memory.py`` measures the headline sizes in
fresh processes from the command line. ``--bench-size=small`` uses tiny sizes (a smoke run of
seconds). VQP's training step at N=65,536, K=8,192 takes 20–60 s and 12 GB on the 2-core CI box,
so it is timed once, without warm-up, and its memory child skips the warm-up too.
"""

from __future__ import annotations

import importlib.util

import _quant_cases as cases
import pytest
from _timing import bench_device, record_peak_memory, run_pedantic, set_throughput

D = 64
VQ_SIZES = {
    "small": [(512, 32), (1024, 256)],
    "full": [
        (4096, 512),
        (4096, 8192),
        (16384, 512),
        (16384, 8192),
        (32768, 512),  # issue-3 target
        (65536, 512),
        (65536, 8192),  # issue-3 target
    ],
}
RVQ_SIZES = {"small": [(512, 32)], "full": [(16384, 1024), (65536, 1024)]}
FSQ_SIZES = {"small": [512], "full": [16384, 65536]}
HAS_PEER = importlib.util.find_spec("vector_quantize_pytorch") is not None


def plan(impl: str, n: int, k: int) -> dict:
    """Timed rounds and warm-up: fewer for the slow peer cases (seconds to tens of seconds)."""
    work = n * k
    if impl == "vqp" and work >= 2**29:
        return {"rounds": 1, "warmup": 0, "memory_warmup": 0}
    if work >= 2**27:
        return {"rounds": 3, "warmup": 1, "memory_warmup": 1}
    return {"rounds": 10, "warmup": None, "memory_warmup": 1}


def skip_unavailable(impl: str, compiled: bool) -> None:
    if impl == "bare" and compiled:
        pytest.skip("the bare reference step runs eager only")
    if impl == "vqp" and not HAS_PEER:
        pytest.skip("vector-quantize-pytorch is not installed (pip install -e '.[bench]')")
    if compiled and bench_device().type != "cuda":
        pytest.skip("torch.compile variants run on CUDA only")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    size = metafunc.config.getoption("--bench-size")
    if "vq_size" in metafunc.fixturenames:
        metafunc.parametrize("vq_size", VQ_SIZES[size], ids=lambda s: f"n{s[0]}-k{s[1]}")
    if "rvq_size" in metafunc.fixturenames:
        metafunc.parametrize("rvq_size", RVQ_SIZES[size], ids=lambda s: f"n{s[0]}-k{s[1]}")
    if "fsq_n" in metafunc.fixturenames:
        metafunc.parametrize("fsq_n", FSQ_SIZES[size], ids=lambda n: f"n{n}")


def describe(benchmark, impl: str, **facts) -> None:
    benchmark.extra_info["impl"] = impl
    benchmark.extra_info.update(facts)


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("impl", cases.VQ_IMPLS)
def test_vq_train_step(benchmark, device, vq_size, impl, compiled):
    skip_unavailable(impl, compiled)
    n, k = vq_size
    benchmark.group = "quantizer vq train step"
    describe(benchmark, impl, n=n, k=k, d=D, compiled=compiled, dead_code_count=2.0)
    set_throughput(benchmark, n, "vectors")
    how = plan(impl, n, k)
    step = cases.vq_train_step(impl, n, k, D, device=str(device), compile=compiled)
    run_pedantic(benchmark, step, device=device, rounds=how["rounds"], warmup=how["warmup"])
    del step
    if not compiled:
        record_peak_memory(
            benchmark,
            cases.vq_train_step,
            warmup=how["memory_warmup"],
            impl=impl,
            n=n,
            k=k,
            d=D,
            device=str(device),
        )


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("impl", cases.VQ_IMPLS)
def test_vq_inference(benchmark, device, vq_size, impl, compiled):
    skip_unavailable(impl, compiled)
    n, k = vq_size
    benchmark.group = "quantizer vq inference"
    describe(benchmark, impl, n=n, k=k, d=D, compiled=compiled)
    set_throughput(benchmark, n, "vectors")
    how = plan(impl, n, k)
    encode = cases.vq_inference(impl, n, k, D, device=str(device), compile=compiled)
    run_pedantic(benchmark, encode, device=device, rounds=how["rounds"], warmup=how["warmup"])


@pytest.mark.parametrize("impl", cases.IMPLS)
def test_rvq_train_step(benchmark, device, rvq_size, impl):
    skip_unavailable(impl, False)
    n, k = rvq_size
    stages = 4
    benchmark.group = "quantizer rvq train step"
    describe(benchmark, impl, n=n, k=k, d=D, num_quantizers=stages)
    set_throughput(benchmark, n, "vectors")
    how = plan(impl, n, k * stages)
    step = cases.rvq_train_step(impl, n, k, stages, D, device=str(device))
    run_pedantic(benchmark, step, device=device, rounds=how["rounds"], warmup=how["warmup"])
    del step
    record_peak_memory(
        benchmark,
        cases.rvq_train_step,
        warmup=how["memory_warmup"],
        impl=impl,
        n=n,
        k=k,
        num_quantizers=stages,
        d=D,
        device=str(device),
    )


@pytest.mark.parametrize("impl", cases.IMPLS)
def test_fsq_train_step(benchmark, device, fsq_n, impl):
    skip_unavailable(impl, False)
    levels = (8, 5, 5, 5)
    benchmark.group = "quantizer fsq train step"
    describe(benchmark, impl, n=fsq_n, d=D, levels=list(levels))
    set_throughput(benchmark, fsq_n, "vectors")
    step = cases.fsq_train_step(impl, fsq_n, levels, D, device=str(device))
    run_pedantic(benchmark, step, device=device, rounds=10)
    del step
    record_peak_memory(
        benchmark,
        cases.fsq_train_step,
        impl=impl,
        n=fsq_n,
        levels=list(levels),
        d=D,
        device=str(device),
    )
