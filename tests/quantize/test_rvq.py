"""ResidualVQ: residual semantics, decode of stacked indices, gradients, shared codebook."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import vqkit
from vqkit import ResidualVQ


def brute_force_argmin(rows, codebook):
    return (rows.double()[:, None] - codebook.double()[None]).square().sum(-1).argmin(1)


@pytest.mark.parametrize("shared", [False, True])
def test_each_stage_quantizes_the_previous_residual(shared):
    torch.manual_seed(0)
    rvq = ResidualVQ(4, 16, num_quantizers=3, shared_codebook=shared, channel_last=True).eval()
    x = torch.randn(2, 10, 4)
    out = rvq(x)
    assert out.indices.shape == (2, 10, 3)
    residual = x.reshape(-1, 4)
    total = torch.zeros_like(residual)
    for level in range(3):
        codebook = rvq.stage(level).codebook
        idx = brute_force_argmin(residual, codebook)
        assert torch.equal(out.indices[..., level].reshape(-1), idx), level
        residual = residual - codebook[idx]
        total = total + codebook[idx]
    torch.testing.assert_close(out.quantized.reshape(-1, 4), total)


@pytest.mark.parametrize(
    "kwargs", [{}, {"shared_codebook": True}, {"codebook_dim": 3}, {"channel_last": True}]
)
def test_decode_of_stacked_indices_equals_quantized(kwargs):
    torch.manual_seed(1)
    rvq = ResidualVQ(6, 8, num_quantizers=4, **kwargs)
    x = torch.randn(2, 5, 6) if kwargs.get("channel_last") else torch.randn(2, 6, 5)
    rvq(x)  # one training step first: EMA and reseeding move the codebooks
    rvq.eval()
    out = rvq(x)
    assert torch.equal(rvq.decode(out.indices), out.quantized)
    # fewer stages decode the coarser reconstruction
    partial = rvq.decode(out.indices[..., :2])
    assert partial.shape == out.quantized.shape
    assert not torch.equal(partial, out.quantized)


def test_gradient_is_upstream_once_plus_every_stage_commitment():
    torch.manual_seed(2)
    beta = 0.5
    rvq = ResidualVQ(3, 8, num_quantizers=3, channel_last=True, commitment_weight=beta).eval()
    x = torch.randn(1, 7, 3, requires_grad=True)
    out = rvq(x)
    upstream = torch.randn_like(x)
    ((out.quantized * upstream).sum() + out.loss).backward()
    residual = x.detach().reshape(-1, 3)
    expected = upstream.reshape(-1, 3).clone()
    losses = []
    for level in range(3):
        q = rvq.stage(level).codebook[out.indices[0, :, level]]
        expected += beta * 2 * (residual - q) / residual.numel()  # ∂r_l/∂x = I
        losses.append(beta * F.mse_loss(residual, q))
        residual = residual - q
    torch.testing.assert_close(x.grad.reshape(-1, 3), expected)
    torch.testing.assert_close(out.loss, torch.stack(losses).sum())


def test_shared_codebook_is_one_quantizer_updated_once_per_stage():
    torch.manual_seed(3)
    rvq = ResidualVQ(4, 8, num_quantizers=3, shared_codebook=True)
    assert len(rvq.layers) == 1
    assert rvq.stage(0) is rvq.stage(2)
    assert not any(k.startswith("layers.1") for k in rvq.state_dict())
    rvq(torch.randn(2, 4, 3))
    assert rvq.stage(0).steps.item() == 3


def test_metrics_aggregate_stages_and_state_dict_round_trip():
    torch.manual_seed(4)
    rvq = ResidualVQ(4, 8, num_quantizers=2, decay=0.9)
    out = rvq(torch.randn(2, 4, 6))
    for key in ("perplexity", "batch_usage", "dead_codes", "reseeded", "stage1/perplexity"):
        assert key in out.metrics, key
    expected = (out.metrics["stage0/perplexity"] + out.metrics["stage1/perplexity"]) / 2
    torch.testing.assert_close(out.perplexity, expected)
    fresh = ResidualVQ(4, 8, num_quantizers=2, decay=0.9)
    fresh.load_state_dict(rvq.state_dict())
    assert torch.equal(fresh.stage(1).embed_sum, rvq.stage(1).embed_sum)
    assert fresh.stage(0).decay == 0.9


def test_registry_and_errors():
    rvq = vqkit.build(
        "quantizer", {"type": "rvq", "dim": 8, "codebook_size": 16, "num_quantizers": 2}
    )
    assert isinstance(rvq, ResidualVQ)
    assert "num_quantizers=2" in repr(rvq)
    with pytest.raises(ValueError, match="cosine codes cannot quantize residuals"):
        ResidualVQ(8, 16, cosine=True)
    with pytest.raises(ValueError, match=r"shape \(B, \*spatial, n\) with 1 ≤ n ≤ 2"):
        rvq.decode(torch.zeros(2, 3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"expects 8 channels"):
        rvq(torch.randn(2, 3, 4))
    with pytest.raises(TypeError, match="unexpected keyword"):
        ResidualVQ(8, 16, not_an_option=1)
