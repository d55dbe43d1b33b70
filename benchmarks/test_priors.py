"""Prior sampling: Gated PixelCNN naive vs fast exact sampler; MADE flow prior sampling.

Gated PixelCNN ("Conditional Image Generation with PixelCNN Decoders", van den Oord et al.,
arXiv:1606.05328) with the issue's sizes: K = 512 codes, 64 channels, 15 layers. ``naive`` runs
one full forward pass per position (H·W passes); ``fast`` caches the vertical stack per row and
the horizontal stack per pixel (``vqkit.autoregressive.gated_sampling``). Both consume the
generator identically, so the naive row also records whether its codes equal the fast sampler's
(``identical_codes``). The weights are random: the cost of sampling does not depend on them.
On a CPU both run on one thread (``torch.set_num_threads(1)``, restored afterwards): the machine
is shared, and one thread makes the naive/fast ratio a property of the algorithms.

MADE flow prior (VLAE, Chen et al., arXiv:1611.02731): ``sample(n)`` inverts one latent dimension
per network pass, so its cost grows with the dimension.

Full sizes: the cases issue 19 sets targets for (8×8 at batch 64, 16×16 at batches 1 and 16) plus
8×8 at batch 1, each naive and fast. A naive run costs (H·W)²·B (16×16 at batch 16 takes about
a minute and a half on one core), so naive runs past 8×8 at batch 1 get one round, no warm-up.
``--bench-size=small``: 8×8 at batch 1 only (about a second).
"""

from __future__ import annotations

import pytest
import torch
from _timing import bench_device, run_pedantic, set_throughput
from torch.utils._python_dispatch import TorchDispatchMode

from vqkit import GatedPixelCNN, MADEFlowPrior

# (side, batch) per size preset
SAMPLING_CASES = {"small": ((8, 1),), "full": ((8, 1), (8, 64), (16, 1), (16, 16))}
FLOW_DIMS = {"small": (16, 64), "full": (16, 64, 256)}


def _cases(size: str) -> list:
    return [
        pytest.param(side, batch, impl, id=f"{side}x{side}-b{batch}-{impl}")
        for side, batch in SAMPLING_CASES[size]
        for impl in ("naive", "fast")
    ]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    size = metafunc.config.getoption("--bench-size")
    if {"side", "batch", "impl"} <= set(metafunc.fixturenames):
        metafunc.parametrize(("side", "batch", "impl"), _cases(size))
    if "dim" in metafunc.fixturenames:
        metafunc.parametrize("dim", FLOW_DIMS[size])


@pytest.fixture
def one_cpu_thread():
    """One intra-op thread on a CPU for the duration of a test (no-op on CUDA)."""
    threads = torch.get_num_threads()
    if bench_device().type == "cpu":
        torch.set_num_threads(1)
    yield torch.get_num_threads()
    torch.set_num_threads(threads)


def make_prior(device: torch.device) -> GatedPixelCNN:
    torch.manual_seed(0)
    prior = GatedPixelCNN(num_embeddings=512, hidden_channels=64, num_layers=15)
    return prior.to(device).eval()


def test_gated_pixelcnn_sampling(benchmark, device, side, batch, impl, one_cpu_thread):
    prior = make_prior(device)
    benchmark.group = "gated-pixelcnn-sampling (K=512, C=64, 15 layers)"
    benchmark.extra_info.update(impl=impl, grid=[side, side], batch=batch, layers=15)
    benchmark.extra_info["threads"] = one_cpu_thread
    benchmark.extra_info["network_evaluations"] = side * side if impl == "naive" else "cached"
    set_throughput(benchmark, batch, "samples")

    def run() -> torch.Tensor:
        gen = torch.Generator(device=device).manual_seed(0)
        return prior.sample(batch, (side, side), generator=gen, method=impl)

    # A naive run costs (H·W)²·B: past 8×8 at batch 1 it takes seconds to a minute on a CPU, so
    # it gets one round and no warm-up.
    long_run = impl == "naive" and device.type == "cpu" and side**4 * batch > 8**4
    warmup = 0 if long_run else 1
    codes = run_pedantic(benchmark, run, device=device, rounds=1 if long_run else 3, warmup=warmup)
    assert codes.shape == (batch, side, side)
    if impl == "naive":
        gen = torch.Generator(device=device).manual_seed(0)
        fast = prior.sample(batch, (side, side), generator=gen, method="fast")
        benchmark.extra_info["identical_codes"] = bool(torch.equal(codes, fast))
    else:  # issue 19 tracks the dispatched ATen operations of one call (not timed)
        with _CountOps() as counter:
            run()
        benchmark.extra_info["aten_ops"] = counter.count
        benchmark.extra_info["aten_ops_per_position"] = round(counter.count / side**2, 1)


class _CountOps(TorchDispatchMode):
    """Counts the ATen operations dispatched while active."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def test_made_flow_prior_sampling(benchmark, device, dim):
    torch.manual_seed(0)
    flow = MADEFlowPrior(dim).to(device)
    batch = 64
    benchmark.group = "made-flow-prior-sampling (hidden 512x2, batch 64)"
    benchmark.extra_info.update(impl="vqkit", dim=dim, batch=batch, network_evaluations=dim)
    set_throughput(benchmark, batch, "samples")
    gen = torch.Generator(device=device).manual_seed(0)
    z = run_pedantic(benchmark, lambda: flow.sample(batch, generator=gen), device=device, rounds=5)
    assert z.shape == (batch, dim)
    assert torch.isfinite(z).all()
