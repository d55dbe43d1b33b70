"""Issue 19: the VQ train step at N = 4,096, K = 512, interleaved in one process.

Times, round-robin in one process with the order rotated every repetition (whoever runs right
after VQP's step pays for its freed memory, so a fixed order biases the first case):

- ``vqkit``: ``VectorQuantizer`` as the benchmark builds it (the default chunked search),
- ``vqkit_single``: the same with the opt-in ``SINGLE_PRODUCT_ELEMENTS = 2**21`` (one product),
- ``bare``: the bare reference step of ``_quant_cases.py``,
- ``vqp``: vector-quantize-pytorch, when installed,
- ``product``: the one distance ``addmm`` alone, the floor of any exact fp32 search.

Usage: ``python benchmarks/vq_step_interleaved.py [--threads 2] [--reps 60] [--cpu-time]``.
``--cpu-time`` reads the calling thread's CPU time (meaningful with ``--threads 1`` only), which
is far less sensitive to other processes on the machine than wall time. Prints medians and
minima and the load average before and after.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from collections.abc import Callable

import _quant_cases as cases
import torch

import vqkit.functional as VF


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=60)
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--k", type=int, default=512)
    parser.add_argument("--cpu-time", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clock = time.thread_time if args.cpu_time else time.perf_counter
    n, k, d = args.n, args.k, 64

    def single(step: Callable[[], torch.Tensor]) -> Callable[[], None]:
        def run() -> None:
            saved = VF.SINGLE_PRODUCT_ELEMENTS
            VF.SINGLE_PRODUCT_ELEMENTS = 2**21
            try:
                step()
            finally:
                VF.SINGLE_PRODUCT_ELEMENTS = saved

        return run

    g = torch.Generator().manual_seed(0)
    x, codes = torch.randn(n, d, generator=g), torch.randn(k, d, generator=g)
    norms = codes.square().sum(1)
    steps: dict[str, Callable[[], object]] = {
        "vqkit": cases.vq_train_step("vqkit", n, k, d),
        "vqkit_single": single(cases.vq_train_step("vqkit", n, k, d)),
        "bare": cases.vq_train_step("bare", n, k, d),
        "product": lambda: torch.addmm(norms, x, codes.t(), alpha=-2.0),
    }
    if importlib.util.find_spec("vector_quantize_pytorch") is not None:
        steps["vqp"] = cases.vq_train_step("vqp", n, k, d)
    names = list(steps)
    for step in steps.values():
        for _ in range(3):
            step()
    with open("/proc/loadavg") as f:
        load_before = f.read().strip()
    times: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(args.reps):
        for name in names[rep % len(names) :] + names[: rep % len(names)]:
            start = clock()
            steps[name]()
            times[name].append(clock() - start)
    with open("/proc/loadavg") as f:
        load_after = f.read().strip()
    median = {name: sorted(t)[len(t) // 2] * 1e3 for name, t in times.items()}
    best = {name: min(t) * 1e3 for name, t in times.items()}
    print(
        f"N={n} K={k} D={d} threads={args.threads} reps={args.reps} clock={clock.__name__}; "
        f"load {load_before} -> {load_after}"
    )
    for name in names:
        line = f"  {name:14s} median {median[name]:8.3f} ms  min {best[name]:8.3f} ms"
        if "vqp" in steps:
            line += f"  VQP/this median {median['vqp'] / median[name]:5.2f}×"
            line += f" min {best['vqp'] / best[name]:5.2f}×"
        print(line)
    print(f"  vqkit/bare median {median['vqkit'] / median['bare']:.2f}")


if __name__ == "__main__":
    main()
