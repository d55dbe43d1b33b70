"""Workloads for the quantizer benchmarks: vqkit and vector-quantize-pytorch with matching settings.

Every factory is module-level and takes JSON arguments, so the CPU memory measurement (a fresh
process, ``_timing.rss_peak_memory``) and ``quantizer_memory.py`` can rebuild it.

Matching settings (vqkit vs vector-quantize-pytorch, "VQP"): EMA codebook with decay 0.99,
commitment weight 0.25, the straight-through estimator (VQP's ``rotation_trick=False``), fp32,
channel-last input ``(B, N/B, D)``, dead-code reseeding from batch vectors after every step.
VQP's ``threshold_ema_dead_code`` is an absolute EMA count; vqkit's ``dead_code_threshold`` is a
fraction of the uniform usage ``n/K``, so ``DEAD_CODE_COUNT · K / n`` gives the same threshold.

``impl="bare"`` (VQ only) is the floor a library step is measured against (issue 19): one
``addmm`` for the distances, ``argmin``, an ``index_add_`` EMA update of counts and sums, the
straight-through output and the commitment loss, written inline with no checks, no chunking,
no metrics and no reseeding.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

DEAD_CODE_COUNT = 2.0  # VQP's usual threshold_ema_dead_code (its README uses 2)
BATCH = 8  # the N vectors arrive as (BATCH, N / BATCH, D)
IMPLS = ("vqkit", "vqp")
VQ_IMPLS = ("vqkit", "vqp", "bare")  # the VQ step also has the bare reference


def _input(n: int, d: int, device: str, seed: int, requires_grad: bool) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(BATCH, n // BATCH, d, generator=g).to(device)
    return x.requires_grad_(requires_grad)


def _backward(quantized: torch.Tensor, loss: torch.Tensor, upstream: torch.Tensor) -> None:
    """Backward of ``loss`` plus a fixed upstream gradient into ``quantized``: what a decoder
    sends back, without the cost of a stand-in decoder loss."""
    torch.autograd.backward([quantized, loss], [upstream, torch.ones_like(loss)])


def vq_module(impl: str, n: int, k: int, d: int, device: str) -> torch.nn.Module:
    """A VQ layer of either implementation with the matching settings above."""
    if impl == "vqkit":
        from vqkit import VectorQuantizer

        return VectorQuantizer(
            d,
            k,
            decay=0.99,
            commitment_weight=0.25,
            reseed="dead_code",
            dead_code_threshold=DEAD_CODE_COUNT * k / n,
            channel_last=True,
            device=device,
        )
    if impl == "vqp":
        from vector_quantize_pytorch import VectorQuantize

        return VectorQuantize(
            dim=d,
            codebook_size=k,
            decay=0.99,
            commitment_weight=0.25,
            threshold_ema_dead_code=DEAD_CODE_COUNT,
            rotation_trick=False,
        ).to(device)
    raise ValueError(f"unknown impl {impl!r}; expected one of {IMPLS}")


def _outputs(impl: str, out) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(quantized, indices, loss) from either implementation's output."""
    if impl == "vqkit":
        return out.quantized, out.indices, out.loss
    if impl == "bare":
        return out
    quantized, indices, loss = out[:3]
    return quantized, indices, loss.sum()


class BareVQ(torch.nn.Module):
    """The bare reference step: addmm + argmin + index_add EMA, straight-through, commitment."""

    def __init__(self, k: int, d: int, device: str) -> None:
        super().__init__()
        self.register_buffer("embed", torch.randn(k, d, device=device))
        self.register_buffer("cluster_size", torch.ones(k, device=device))
        self.register_buffer("embed_sum", self.embed.clone())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rows = x.reshape(-1, x.shape[-1])  # (N, D)
        embed = self.embed
        with torch.no_grad():
            dist = torch.addmm(embed.square().sum(1), rows, embed.t(), alpha=-2)  # (N, K)
            indices = dist.argmin(1)  # (N,)
            if self.training:
                ones = rows.new_ones(rows.shape[0])
                counts = torch.zeros_like(self.cluster_size).index_add_(0, indices, ones)
                sums = torch.zeros_like(self.embed_sum).index_add_(0, indices, rows)
                self.cluster_size.lerp_(counts, 0.01)
                self.embed_sum.lerp_(sums, 0.01)
        q = embed[indices]  # (N, D)
        if self.training:
            with torch.no_grad():
                embed.copy_(self.embed_sum / self.cluster_size.clamp_min(1e-5)[:, None])
        quantized = rows + (q - rows).detach()
        loss = 0.25 * (rows - q).square().mean()
        return quantized.view_as(x), indices.view(x.shape[:-1]), loss


def vq_train_step(
    impl: str, n: int, k: int, d: int = 64, device: str = "cpu", compile: bool = False
) -> Callable[[], torch.Tensor]:
    """One training step: forward with EMA update and dead-code reseeding, then backward."""
    torch.manual_seed(0)
    vq = (BareVQ(k, d, device) if impl == "bare" else vq_module(impl, n, k, d, device)).train()
    x = _input(n, d, device, seed=1, requires_grad=True)
    upstream = _input(n, d, device, seed=2, requires_grad=False)

    def forward() -> tuple[torch.Tensor, torch.Tensor]:
        quantized, _, loss = _outputs(impl, vq(x))
        return quantized, loss

    if compile:  # the forward (with the EMA update and reseeding) is compiled; backward is AOT
        forward = torch.compile(forward, fullgraph=impl != "vqp")

    def step() -> torch.Tensor:
        x.grad = None
        quantized, loss = forward()
        _backward(quantized, loss, upstream)
        return loss

    return step


def vq_inference(
    impl: str, n: int, k: int, d: int = 64, device: str = "cpu", compile: bool = False
) -> Callable[[], torch.Tensor]:
    """Eval-mode encoding of N vectors to indices, without gradients."""
    torch.manual_seed(0)
    vq = (BareVQ(k, d, device) if impl == "bare" else vq_module(impl, n, k, d, device)).eval()
    x = _input(n, d, device, seed=1, requires_grad=False)

    def encode() -> torch.Tensor:
        with torch.no_grad():
            return _outputs(impl, vq(x))[1]

    return torch.compile(encode, fullgraph=impl == "vqkit") if compile else encode


def rvq_train_step(
    impl: str, n: int, k: int, num_quantizers: int = 4, d: int = 64, device: str = "cpu"
) -> Callable[[], torch.Tensor]:
    """One ResidualVQ training step (EMA + dead-code reseeding in every stage)."""
    torch.manual_seed(0)
    if impl == "vqkit":
        from vqkit import ResidualVQ

        rvq = ResidualVQ(
            d,
            k,
            num_quantizers,
            channel_last=True,
            decay=0.99,
            commitment_weight=0.25,
            dead_code_threshold=DEAD_CODE_COUNT * k / n,
            device=device,
        )
    elif impl == "vqp":
        from vector_quantize_pytorch import ResidualVQ as PeerResidualVQ

        rvq = PeerResidualVQ(
            dim=d,
            num_quantizers=num_quantizers,
            codebook_size=k,
            decay=0.99,
            commitment_weight=0.25,
            threshold_ema_dead_code=DEAD_CODE_COUNT,
            rotation_trick=False,
        ).to(device)
    else:
        raise ValueError(f"unknown impl {impl!r}; expected one of {IMPLS}")
    rvq.train()
    x = _input(n, d, device, seed=1, requires_grad=True)
    upstream = _input(n, d, device, seed=2, requires_grad=False)

    def step() -> torch.Tensor:
        x.grad = None
        out = rvq(x)
        if impl == "vqkit":
            quantized, loss = out.quantized, out.loss
        else:
            quantized, loss = out[0], out[2].sum()
        _backward(quantized, loss, upstream)
        return loss

    return step


def fsq_train_step(
    impl: str, n: int, levels: tuple[int, ...] = (8, 5, 5, 5), d: int = 64, device: str = "cpu"
) -> Callable[[], torch.Tensor]:
    """One FSQ training step with projections D → len(levels) → D."""
    torch.manual_seed(0)
    if impl == "vqkit":
        from vqkit import FSQ

        fsq = FSQ(list(levels), dim=d, channel_last=True, device=device)
    elif impl == "vqp":
        import vector_quantize_pytorch as vqp

        fsq = vqp.FSQ(levels=list(levels), dim=d).to(device)
    else:
        raise ValueError(f"unknown impl {impl!r}; expected one of {IMPLS}")
    x = _input(n, d, device, seed=1, requires_grad=True)
    upstream = _input(n, d, device, seed=2, requires_grad=False)

    def step() -> torch.Tensor:
        x.grad = None
        out = fsq(x)
        quantized = out.quantized if impl == "vqkit" else out[0]
        quantized.backward(upstream)
        return quantized

    return step
