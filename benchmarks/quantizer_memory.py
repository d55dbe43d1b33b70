"""Time and peak memory of one quantizer step, vqkit vs vector-quantize-pytorch, fresh processes.

    python benchmarks/quantizer_memory.py                       # the two sizes of issue 3
    python benchmarks/quantizer_memory.py --sizes 16384x1024 --impls vqkit --steps 5
    python benchmarks/quantizer_memory.py --kind inference --json out.json

Each (size, implementation) runs in its own fresh Python process, one after the other (never two
at once: VQP's training step at N=65,536, K=8,192 peaks near 13 GB). The child builds the workload
of ``_quant_cases.py`` (matching settings: EMA decay 0.99, commitment 0.25, straight-through,
dead-code reseeding with the same threshold), runs ``--warmup`` untimed steps, returns freed memory
to the OS (``gc.collect`` + glibc ``malloc_trim``), resets the kernel's peak-RSS mark
(``/proc/self/clear_refs``), times ``--steps`` steps and reads the peak. Memory is the peak
resident set during the timed steps minus the resident set after setup and warm-up (module,
input, imports), i.e. what the steps themselves add. Without ``/proc`` (not Linux) it falls back
to the growth of ``getrusage().ru_maxrss``. On CUDA the figure is ``max_memory_allocated`` minus
the allocation before the steps.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_SIZES = ("65536x8192", "32768x512")


def _child(spec: dict) -> dict:
    import ctypes
    import ctypes.util
    import gc
    import resource
    import statistics
    import time

    import torch

    sys.path.insert(0, str(HERE))
    import _quant_cases as cases

    device = spec["device"]
    factory = {"train": cases.vq_train_step, "inference": cases.vq_inference}[spec["kind"]]
    step = factory(spec["impl"], spec["n"], spec["k"], spec["d"], device=device)
    cuda = device.startswith("cuda")

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    for _ in range(spec["warmup"]):
        step()
    sync()
    gc.collect()
    libc_name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(libc_name) if libc_name else None
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)

    def status_kib(field: str) -> int:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise KeyError(field)

    if cuda:
        torch.cuda.reset_peak_memory_stats()
        baseline = torch.cuda.memory_allocated()
        method = "cuda max_memory_allocated - memory_allocated before the steps"
    else:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # reset VmHWM to the current RSS
            baseline = status_kib("VmRSS") * 1024
            method = "peak RSS during the steps (VmHWM) - RSS after setup and warm-up"
        except OSError:
            baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            method = "ru_maxrss growth over the steps"
    times = []
    for _ in range(spec["steps"]):
        sync()
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    if cuda:
        peak = torch.cuda.max_memory_allocated()
    elif method.startswith("peak RSS"):
        peak = status_kib("VmHWM") * 1024
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        **spec,
        "median_s": statistics.median(times),
        "times_s": times,
        "peak_bytes": max(0, peak - baseline),
        "baseline_bytes": baseline,
        "method": method,
        "threads": torch.get_num_threads(),
    }


def measure(spec: dict, timeout: float) -> dict:
    """Run one case in a fresh process and return its JSON result."""
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "PYTHONPATH": str(HERE)},
    )
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"case {spec} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(lines[-1].removeprefix("RESULT "))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=list(DEFAULT_SIZES), help="NxK pairs")
    parser.add_argument(
        "--impls", nargs="+", default=["vqkit", "vqp"], choices=["vqkit", "vqp", "bare"]
    )
    parser.add_argument("--kind", default="train", choices=["train", "inference"])
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per case")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per case")
    parser.add_argument("--json", help="write all results to this file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(_child(json.loads(args.child))), flush=True)
        return 0

    results = []
    for size in args.sizes:
        n, k = (int(v) for v in size.lower().split("x"))
        for impl in args.impls:
            spec = {
                "impl": impl,
                "n": n,
                "k": k,
                "d": args.dim,
                "kind": args.kind,
                "steps": args.steps,
                "warmup": args.warmup,
                "device": args.device,
            }
            result = measure(spec, args.timeout)
            results.append(result)
            print(
                f"{args.kind:9s} N={n:6d} K={k:5d} D={args.dim} {impl:5s}: "
                f"{result['median_s'] * 1e3:9.1f} ms/step  "
                f"peak +{result['peak_bytes'] / 2**20:8.1f} MiB",
                flush=True,
            )
    by_case = {(r["n"], r["k"], r["impl"]): r for r in results}
    for size in args.sizes:
        n, k = (int(v) for v in size.lower().split("x"))
        ours, peer = by_case.get((n, k, "vqkit")), by_case.get((n, k, "vqp"))
        if ours and peer:
            speedup = peer["median_s"] / ours["median_s"]
            memory = ours["peak_bytes"] / max(peer["peak_bytes"], 1)
            print(
                f"N={n} K={k}: vqkit is {speedup:.1f}x faster and uses {memory:.3f}x the peak "
                f"memory of vector-quantize-pytorch"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
