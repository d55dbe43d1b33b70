"""FSQ: the grid, index bijection, decode round trip, gradients, large implicit codebooks."""

from __future__ import annotations

import pytest
import torch

import vqkit
from vqkit import FSQ


def inverse_bound(fsq: FSQ, rounded: torch.Tensor) -> torch.Tensor:
    """Inputs z whose bounded value is exactly the integer grid point ``rounded``."""
    return torch.atanh((rounded + fsq._offset) / fsq._half_l) - fsq._shift


@pytest.mark.parametrize("levels", [[8, 5, 5, 5], [2, 3], [7, 6]])
def test_index_bijection_over_the_whole_grid(levels):
    fsq = FSQ(levels, channel_last=True)
    k = fsq.codebook_size
    assert k == torch.tensor(levels).prod().item()
    codes = fsq.codebook  # (K, d), decode of every index
    assert codes.shape == (k, len(levels))
    assert torch.unique(codes, dim=0).shape[0] == k  # injective
    assert codes.abs().max() <= 1
    for c, lv in enumerate(levels):  # every channel takes exactly L values
        assert torch.unique(codes[:, c]).numel() == lv
    # forward maps an input landing on grid point i back to index i
    z = inverse_bound(fsq, codes * fsq._half_width)
    out = fsq(z[None])
    assert torch.equal(out.indices[0], torch.arange(k))
    assert torch.equal(out.quantized[0], codes)


@pytest.mark.parametrize("dim", [None, 16])
def test_decode_equals_quantized(dim):
    torch.manual_seed(0)
    fsq = FSQ([8, 5, 5, 5], dim=dim)
    channels = dim or 4
    x = 2 * torch.randn(2, channels, 6, 5)
    out = fsq(x)
    assert out.quantized.shape == x.shape
    assert out.indices.shape == (2, 6, 5)
    assert out.indices.dtype == torch.int64
    assert torch.equal(fsq.decode(out.indices), out.quantized)
    assert out.loss.item() == 0.0


def test_gradient_passes_rounding_straight_through():
    fsq = FSQ([5, 4])
    x = torch.randn(3, 2, 4, dtype=torch.float32, requires_grad=True)
    out = fsq(x)
    upstream = torch.randn_like(x)
    (out.quantized * upstream).sum().backward()
    # d/dz of tanh(z + shift)·h / ⌊L/2⌋ per channel
    shift = fsq._shift[None, :, None]
    scale = (fsq._half_l / fsq._half_width)[None, :, None]
    expected = upstream * scale * (1 - torch.tanh(x.detach() + shift) ** 2)
    torch.testing.assert_close(x.grad, expected)


def test_huge_implicit_codebook_uses_sorting_for_metrics():
    torch.manual_seed(1)
    fsq = FSQ([8] * 8, channel_last=True)  # 2^24 codes: nothing of that size is allocated
    x = torch.randn(1, 500, 8)
    out = fsq(x)
    idx = out.indices.reshape(-1)
    _, counts = idx.unique(return_counts=True)
    assert out.perplexity.item() == pytest.approx(vqkit.functional.perplexity(counts).item())
    assert out.metrics["batch_usage"].item() == pytest.approx(len(counts) / 8**8)
    assert torch.equal(fsq.decode(out.indices), out.quantized)
    with pytest.raises(ValueError, match="too large to materialise"):
        fsq.codebook  # noqa: B018


def test_perplexity_one_code_and_uniform():
    fsq = FSQ([3, 3], channel_last=True)
    z = inverse_bound(fsq, fsq.codebook * fsq._half_width)  # every grid point once
    assert fsq(z[None]).perplexity.item() == pytest.approx(9.0, rel=1e-5)
    assert fsq(z[None, :1].repeat(1, 5, 1)).perplexity.item() == pytest.approx(1.0)


def test_bf16_autocast_same_indices_as_fp32():
    torch.manual_seed(2)
    fsq = FSQ([8, 8, 8, 5, 5, 5], dim=32)
    x = torch.randn(4, 32, 4, 4)
    ref = fsq(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        proj = fsq.project_in(x.permute(0, 2, 3, 1))
        out = fsq(x)
    assert torch.isfinite(out.quantized).all()
    # quantization itself is fp32: same indices as fp32 on the same projected values
    fsq_inner = FSQ([8, 8, 8, 5, 5, 5], channel_last=True)
    assert torch.equal(out.indices, fsq_inner(proj.float()).indices)
    assert ref.indices.shape == out.indices.shape


def test_registry_and_errors():
    fsq = vqkit.build("quantizer", {"type": "fsq", "levels": [8, 6, 5]})
    assert isinstance(fsq, FSQ)
    assert fsq.codebook_size == 240
    assert fsq.dim == 3
    assert "levels=[8, 6, 5]" in repr(fsq)
    with pytest.raises(ValueError, match=r"levels must be a non-empty list of integers ≥ 2"):
        FSQ([8, 1])
    with pytest.raises(ValueError, match=r"levels must be a non-empty list"):
        FSQ([])
    with pytest.raises(TypeError, match="levels must be a list of integers"):
        FSQ(8)
    with pytest.raises(ValueError, match=r"expects 3 channels at dim 1"):
        fsq(torch.randn(2, 4, 5))
    with pytest.raises(ValueError, match=r"indices in \[0, 240\)"):
        fsq.decode(torch.tensor([[240]]))
    with pytest.raises(ValueError, match="non-finite"):
        fsq(torch.full((1, 3, 2), float("inf")))
