"""MaskedConv2d and MaskedLinear: hand-written masks and exact causality by Jacobian."""

from __future__ import annotations

import pytest
import torch
from torch.autograd.functional import jacobian

from vqkit import MaskedConv2d, MaskedLinear
from vqkit.autoregressive import conv_mask


def test_conv_mask_k3_by_hand():
    a = conv_mask(1, 1, 3, "A")[0, 0]
    b = conv_mask(1, 1, 3, "B")[0, 0]
    assert torch.equal(a, torch.tensor([[1.0, 1, 1], [1, 0, 0], [0, 0, 0]]))
    assert torch.equal(b, torch.tensor([[1.0, 1, 1], [1, 1, 0], [0, 0, 0]]))


@pytest.mark.parametrize("k", [3, 5, 7])
def test_conv_mask_counts(k):
    # Type A keeps the k//2 full rows above plus k//2 taps left of the centre; B adds the centre.
    before = (k // 2) * k + k // 2
    assert conv_mask(2, 3, k, "A").sum() == 6 * before
    assert conv_mask(2, 3, k, "B").sum() == 6 * (before + 1)


def _conv_jacobian(conv: MaskedConv2d, c: int, h: int, w: int) -> torch.Tensor:
    x = torch.randn(1, c, h, w, dtype=torch.float64)
    jac = jacobian(lambda t: conv(t), x)  # (1, C_out, H, W, 1, C_in, H, W)
    return jac[0, :, :, :, 0]  # (C_out, H, W, C_in, H, W)


@pytest.mark.parametrize("k", [3, 5, 7])
@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_masked_conv_is_causal(k, mask_type):
    torch.manual_seed(k)
    h, w = 6, 7
    conv = MaskedConv2d(2, 3, k, mask_type=mask_type).double()
    dep = _conv_jacobian(conv, 2, h, w).abs().sum(dim=(0, 3)) > 0  # (H, W, H, W)
    order = torch.arange(h * w).reshape(h, w)
    for i in range(h):
        for j in range(w):
            here = order[i, j]
            within = ((torch.arange(h)[:, None] - i).abs() <= k // 2) & (
                (torch.arange(w)[None, :] - j).abs() <= k // 2
            )
            allowed = (order < here) if mask_type == "A" else (order <= here)
            # exact: depends on every allowed position inside the kernel window, and on no other
            assert torch.equal(dep[i, j], allowed & within), (i, j)


@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_sub_pixel_channel_ordering(mask_type):
    """RGB blocked layout: output block g sees input blocks < g (A) or <= g (B) at the centre."""
    torch.manual_seed(0)
    conv = MaskedConv2d(3, 6, 3, mask_type=mask_type, data_channels=3).double()
    jac = _conv_jacobian(conv, 3, 4, 4)  # (6, H, W, 3, H, W)
    centre = jac[:, 2, 2, :, 2, 2].abs() > 0  # (6 out, 3 in)
    out_group = torch.arange(6) // 2
    in_group = torch.arange(3)
    expected = (
        out_group[:, None] > in_group[None, :]
        if mask_type == "A"
        else out_group[:, None] >= in_group[None, :]
    )
    assert torch.equal(centre, expected)
    # every sub-pixel of the previous pixel is visible to every output block
    assert (jac[:, 2, 2, :, 2, 1].abs() > 0).all()
    assert not (jac[:, 2, 2, :, 2, 3].abs() > 0).any()


def test_masked_conv_errors():
    with pytest.raises(ValueError, match="odd"):
        MaskedConv2d(1, 1, 4)
    with pytest.raises(ValueError, match="mask_type"):
        MaskedConv2d(1, 1, 3, mask_type="C")
    with pytest.raises(ValueError, match="multiple of data_channels"):
        MaskedConv2d(4, 6, 3, data_channels=3)
    with pytest.raises(ValueError, match=r"expected input \(B, 2, H, W\)"):
        MaskedConv2d(2, 2, 3)(torch.randn(1, 3, 4, 4))


def test_masked_conv_mask_not_in_state_dict_and_weight_grad_masked():
    conv = MaskedConv2d(2, 2, 5, mask_type="A")
    assert "mask" not in conv.state_dict()
    conv(torch.randn(2, 2, 6, 6)).sum().backward()
    assert (conv.weight.grad[conv.mask == 0] == 0).all()
    assert "mask_type='A'" in repr(conv)


def test_masked_linear_follows_mask():
    torch.manual_seed(0)
    layer = MaskedLinear(4, 3).double()
    mask = torch.tensor([[1.0, 0, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1]])
    layer.set_mask(mask)
    jac = jacobian(layer, torch.randn(4, dtype=torch.float64))  # (3, 4)
    assert torch.equal(jac != 0, mask.bool())
    with pytest.raises(ValueError, match=r"mask must have shape \(3, 4\)"):
        layer.set_mask(torch.ones(4, 3))
    with pytest.raises(ValueError, match=r"expected input \(\*, 4\)"):
        layer(torch.randn(2, 5, dtype=torch.float64))
