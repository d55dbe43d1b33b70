"""Encoders, decoders and the residual stack of vqkit.nn.blocks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import vqkit
from vqkit.nn import ConvDecoder, ConvEncoder, ResidualStack, ResNetDecoder, ResNetEncoder


def test_registered_names():
    assert vqkit.get("encoder", "resnet") is ResNetEncoder
    assert vqkit.get("decoder", "resnet") is ResNetDecoder
    assert vqkit.get("encoder", "conv") is ConvEncoder
    assert vqkit.get("decoder", "conv") is ConvDecoder


@pytest.mark.parametrize("num_layers", [0, 1, 3])
def test_residual_stack_matches_hand_computation(num_layers):
    torch.manual_seed(0)
    stack = ResidualStack(6, num_layers, 3).double()
    x = torch.randn(2, 6, 5, 4, dtype=torch.float64)
    expected = x
    for block in stack.blocks:
        conv3, conv1 = block[1], block[3]
        h = torch.nn.functional.conv2d(torch.relu(expected), conv3.weight, padding=1)
        expected = expected + torch.nn.functional.conv2d(torch.relu(h), conv1.weight)
    torch.testing.assert_close(stack(x), torch.relu(expected), rtol=0, atol=1e-12)


@pytest.mark.parametrize("kind", ["resnet", "conv"])
@pytest.mark.parametrize(
    ("channels", "height", "width", "downsamples"),
    [(1, 32, 16, 2), (3, 8, 8, 0), (5, 16, 24, 3), (2, 12, 4, 1)],
)
def test_shapes_any_channels_and_non_square(kind, channels, height, width, downsamples):
    enc_cls = {"resnet": ResNetEncoder, "conv": ConvEncoder}[kind]
    dec_cls = {"resnet": ResNetDecoder, "conv": ConvDecoder}[kind]
    extra = {"num_residual_layers": 1, "residual_hidden_channels": 4} if kind == "resnet" else {}
    enc = enc_cls(channels, 7, hidden_channels=8, num_downsamples=downsamples, **extra)
    dec = dec_cls(7, channels, hidden_channels=8, num_upsamples=downsamples, **extra)
    x = torch.randn(2, channels, height, width)
    z = enc(x)
    f = 2**downsamples
    assert z.shape == (2, 7, height // f, width // f)
    assert enc.downsample_factor == dec.upsample_factor == f
    assert dec(z).shape == x.shape


def test_resnet_encoder_layout_follows_the_paper():
    """Strided 4×4 convs of stride 2, then residual blocks narrower than the trunk."""
    enc = ResNetEncoder(3, 64, hidden_channels=128, residual_hidden_channels=32)
    strided = [m for m in enc.modules() if isinstance(m, nn.Conv2d) and m.stride == (2, 2)]
    assert [(m.kernel_size, m.out_channels) for m in strided] == [((4, 4), 64), ((4, 4), 128)]
    inner = enc.residual.blocks[0][1]
    assert (inner.kernel_size, inner.in_channels, inner.out_channels) == ((3, 3), 128, 32)
    dec = ResNetDecoder(64, 3, hidden_channels=128)
    up = [m for m in dec.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [(m.kernel_size, m.stride, m.out_channels) for m in up] == [
        ((4, 4), (2, 2), 64),
        ((4, 4), (2, 2), 3),
    ]


def test_conv_widths_list():
    enc = ConvEncoder(1, 4, hidden_channels=[8, 16], num_downsamples=2)
    dec = ConvDecoder(4, 1, hidden_channels=[16, 8], num_upsamples=2)
    assert enc.widths == [8, 16]
    x = torch.randn(1, 1, 8, 8)
    assert dec(enc(x)).shape == x.shape
    with pytest.raises(ValueError, match="one width per stride-2 layer"):
        ConvEncoder(1, 4, hidden_channels=[8], num_downsamples=2)


def test_device_dtype_factory_arguments():
    enc = ResNetEncoder(1, 4, hidden_channels=8, dtype=torch.float64, device="cpu")
    assert all(p.dtype == torch.float64 for p in enc.parameters())
    assert enc(torch.randn(1, 1, 8, 8, dtype=torch.float64)).dtype == torch.float64


@pytest.mark.parametrize("cls", [ResNetEncoder, ConvEncoder])
def test_encoder_bad_input(cls):
    enc = cls(3, 4, hidden_channels=8, num_downsamples=2)
    with pytest.raises(
        ValueError, match=r"expects input of shape \(B, 3, H, W\), got \(2, 1, 8, 8\)"
    ):
        enc(torch.randn(2, 1, 8, 8))
    with pytest.raises(ValueError, match=r"divisible by 4, got H=10, W=8"):
        enc(torch.randn(2, 3, 10, 8))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        enc(torch.randn(3, 8, 8))
    with pytest.raises(TypeError, match="expects a tensor"):
        enc([1.0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"in_channels": 0}, "in_channels must be a positive integer"),
        ({"num_downsamples": -1}, "num_downsamples must be a non-negative integer"),
        ({"hidden_channels": 2.5}, "hidden_channels must be a positive integer"),
    ],
)
def test_bad_constructor_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ResNetEncoder(**kwargs)


def test_extra_repr_shows_hyper_parameters():
    text = repr(ResNetDecoder(16, 1, hidden_channels=8, num_upsamples=1))
    assert "in_channels=16, out_channels=1, hidden_channels=8, num_upsamples=1" in text
