"""Transformer priors: naive vs KV-cache sampling, MaskGIT vs the autoregressive samplers, and
training tokens/s.

- Transformer prior (taming-transformers' second stage, Esser et al. 2021, arXiv:2012.09841):
  ``naive`` runs the whole network once per position (H·W passes over the whole sequence);
  ``cached`` runs one position per step against cached keys and values. Both consume the generator
  identically, so the naive row records whether its codes equal the cached sampler's
  (``identical_codes``). The issue's goal: ≥ 10× at a 16×16 grid.
- MaskGIT (Chang et al. 2022, arXiv:2202.04200) with 8 decoding steps beside the KV-cache
  transformer and the Gated PixelCNN fast sampler (van den Oord et al. 2016, arXiv:1606.05328),
  same grid and batch.
- One training step (forward, backward, Adam) of each transformer prior, in tokens/s.

Weights are random: the cost of sampling does not depend on them. Sizes: K = 512 codes, width
128, 4 layers, 4 heads, batch 16 (full: 16×16 grids; ``--bench-size=small``: 8×8). The naive
sampler gets one round without warm-up at 16×16 on a CPU (it takes about a minute there).

muse-maskgit-pytorch is not compared: installing it would replace torch 2.13.0 (it pulls
torch 2.14 and torchvision), which this project does not allow.
"""

from __future__ import annotations

import pytest
import torch
from _timing import run_pedantic, set_throughput

from vqkit import GatedPixelCNN, MaskGIT, TransformerPrior

SIDE = {"small": 8, "full": 16}
BATCH = 16
WIDTH = {"embed_dim": 128, "num_layers": 4, "num_heads": 4, "max_size": 16}


def _transformer(device):
    torch.manual_seed(0)
    return TransformerPrior(num_embeddings=512, **WIDTH).to(device).eval()


def _maskgit(device):
    torch.manual_seed(0)
    return MaskGIT(num_embeddings=512, **WIDTH).to(device).eval()


@pytest.mark.parametrize("impl", ["naive", "cached"])
def test_transformer_sampling(benchmark, device, bench_size, impl):
    side = SIDE[bench_size]
    prior = _transformer(device)
    benchmark.group = f"transformer-prior-sampling ({side}x{side}, K=512, width 128, 4 layers)"
    benchmark.extra_info.update(impl=impl, grid=[side, side], batch=BATCH)
    set_throughput(benchmark, BATCH, "samples")

    def run() -> torch.Tensor:
        gen = torch.Generator(device=device).manual_seed(0)
        return prior.sample(BATCH, (side, side), generator=gen, method=impl)

    long_run = impl == "naive" and device.type == "cpu" and side >= 16
    codes = run_pedantic(
        benchmark, run, device=device, rounds=1 if long_run else 3, warmup=0 if long_run else 1
    )
    assert codes.shape == (BATCH, side, side)
    if impl == "naive":
        gen = torch.Generator(device=device).manual_seed(0)
        cached = prior.sample(BATCH, (side, side), generator=gen, method="cached")
        benchmark.extra_info["identical_codes"] = bool(torch.equal(codes, cached))


@pytest.mark.parametrize("impl", ["maskgit-8-steps", "transformer-cached", "gated-pixelcnn-fast"])
def test_parallel_vs_autoregressive_sampling(benchmark, device, bench_size, impl):
    side = SIDE[bench_size]
    if impl == "maskgit-8-steps":
        prior = _maskgit(device)
        options = {"steps": 8}
    elif impl == "transformer-cached":
        prior = _transformer(device)
        options = {}
    else:
        torch.manual_seed(0)
        prior = GatedPixelCNN(num_embeddings=512, hidden_channels=64, num_layers=15)
        prior = prior.to(device).eval()
        options = {}
    benchmark.group = f"prior-sampling ({side}x{side}, K=512, batch {BATCH})"
    benchmark.extra_info.update(impl=impl, grid=[side, side], batch=BATCH)
    set_throughput(benchmark, BATCH, "samples")

    def run() -> torch.Tensor:
        gen = torch.Generator(device=device).manual_seed(0)
        return prior.sample(BATCH, (side, side), generator=gen, **options)

    codes = run_pedantic(benchmark, run, device=device, rounds=3, warmup=1)
    assert codes.shape == (BATCH, side, side)


@pytest.mark.parametrize("impl", ["transformer", "maskgit"])
def test_training_step(benchmark, device, bench_size, impl):
    side = SIDE[bench_size]
    prior = (_transformer if impl == "transformer" else _maskgit)(device).train()
    optimizer = torch.optim.Adam(prior.parameters(), lr=1e-4)
    batch = 32
    codes = torch.randint(0, 512, (batch, side, side), generator=torch.Generator().manual_seed(0))
    codes = codes.to(device)
    benchmark.group = f"transformer-prior-training ({side}x{side}, batch {batch})"
    benchmark.extra_info.update(impl=impl, grid=[side, side], batch=batch)
    set_throughput(benchmark, batch * side * side, "tokens")

    def step() -> torch.Tensor:
        loss = prior.loss(codes).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    loss = run_pedantic(benchmark, step, device=device, rounds=5, warmup=1)
    assert torch.isfinite(loss)
