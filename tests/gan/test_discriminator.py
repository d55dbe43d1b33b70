"""PatchGAN: receptive fields measured by autograd, any channels and sizes, and bad input."""

from __future__ import annotations

import pytest
import torch

import vqkit
from vqkit.contracts import contract_problems
from vqkit.nn.discriminator import PatchGANDiscriminator, patchgan_receptive_field


def _support(grad: torch.Tensor) -> tuple[int, int]:
    """Height and width of the box of input pixels with a nonzero gradient."""
    rows = grad.abs().sum(dim=(0, 1, 3)).nonzero().flatten()
    cols = grad.abs().sum(dim=(0, 1, 2)).nonzero().flatten()
    return int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)


@pytest.mark.parametrize(("n_layers", "field"), [(1, 16), (2, 34), (3, 70)])
@pytest.mark.parametrize("norm", ["none", "batch", "group"])
def test_receptive_field_by_autograd(n_layers, field, norm):
    torch.manual_seed(0)
    # GroupNorm mixes all positions of a sample, so the "group" field is the whole image; the
    # conv stack's own field is measured with "none" and with BatchNorm in eval mode.
    disc = PatchGANDiscriminator(2, ndf=4, n_layers=n_layers, norm=norm).double().eval()
    assert disc.receptive_field == field == patchgan_receptive_field(n_layers)
    size = 2 * field + 16
    x = torch.randn(1, 2, size, size + 8, dtype=torch.float64, requires_grad=True)
    logits = disc(x)  # (1, 1, h', w')
    i, j = logits.shape[-2] // 2, logits.shape[-1] // 2
    (grad,) = torch.autograd.grad(logits[0, 0, i, j], x)
    if norm == "group":
        assert _support(grad) == (size, size + 8)
    else:
        assert _support(grad) == (field, field)


@pytest.mark.parametrize(("channels", "height", "width"), [(1, 24, 40), (3, 32, 32), (5, 25, 31)])
@pytest.mark.parametrize("spectral_norm", [False, True])
def test_any_channels_and_sizes(channels, height, width, spectral_norm):
    disc = PatchGANDiscriminator(channels, ndf=8, n_layers=3, spectral_norm=spectral_norm)
    out = disc(torch.randn(2, channels, height, width))
    # n stride-2 convs give floor(H / 2**n), each stride-1 4×4 conv one fewer row
    assert out.shape == (2, 1, height // 8 - 2, width // 8 - 2)
    assert not contract_problems("discriminator", disc)


def test_widths_follow_ndf_and_cap_at_eight():
    disc = PatchGANDiscriminator(3, ndf=2, n_layers=5, norm="none")
    convs = [m for m in disc.net if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [2, 4, 8, 16, 16, 16, 1]
    assert [c.stride[0] for c in convs] == [2, 2, 2, 2, 2, 1, 1]
    assert all(c.kernel_size == (4, 4) for c in convs)
    batch = PatchGANDiscriminator(3, ndf=2, n_layers=2, norm="batch")
    biases = [m.bias is not None for m in batch.net if isinstance(m, torch.nn.Conv2d)]
    assert biases == [True, False, False, True]  # no bias before a BatchNorm


def test_spectral_norm_bounds_each_conv():
    torch.manual_seed(0)
    disc = PatchGANDiscriminator(1, ndf=4, n_layers=1, norm="none", spectral_norm=True)
    for _ in range(20):  # power iterations run in training-mode forwards
        disc(torch.randn(2, 1, 16, 16))
    for module in disc.net:
        if isinstance(module, torch.nn.Conv2d):
            sigma = float(torch.linalg.matrix_norm(module.weight.detach().flatten(1), ord=2))
            assert sigma == pytest.approx(1.0, rel=0.05)


def test_registered_and_built_by_name():
    disc = vqkit.build("discriminator", {"type": "patchgan", "in_channels": 2, "ndf": 4})
    assert isinstance(disc, PatchGANDiscriminator)
    assert "patchgan" in vqkit.list_registered("discriminator")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"in_channels": 0}, ValueError, "in_channels must be a positive integer"),
        ({"ndf": 2.5}, ValueError, "ndf must be a positive integer"),
        ({"n_layers": True}, ValueError, "n_layers must be a positive integer"),
        ({"norm": "instance"}, ValueError, "norm must be one of"),
        ({"spectral_norm": "yes"}, TypeError, "spectral_norm must be True or False"),
        ({"norm_groups": 0}, ValueError, "norm_groups must be a positive integer"),
        ({"norm": "group", "ndf": 24, "norm_groups": 32}, ValueError, "must divide"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        PatchGANDiscriminator(**kwargs)


@pytest.mark.parametrize(
    ("x", "error", "match"),
    [
        ([[1.0]], TypeError, "expected an image tensor"),
        (torch.randn(2, 3, 32), ValueError, r"shape \(B, 1, H, W\)"),
        (torch.randn(2, 3, 32, 32), ValueError, r"shape \(B, 1, H, W\)"),
        (torch.zeros(2, 1, 32, 32, dtype=torch.long), TypeError, "floating-point"),
        (torch.randn(0, 1, 32, 32), ValueError, "empty batch"),
        (torch.randn(2, 1, 23, 64), ValueError, "at least 24×24"),
        (torch.randn(2, 1, 32, 32, device="meta"), ValueError, "meta"),
    ],
)
def test_bad_input(x, error, match):
    disc = PatchGANDiscriminator(1, ndf=4, n_layers=3)
    with pytest.raises(error, match=match):
        disc(x)
