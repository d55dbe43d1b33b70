"""The VQ-GAN encoder/decoder: shapes for any channels and aspect, layout, attention, bad input."""

from __future__ import annotations

import pytest
import torch

import vqkit
from vqkit.contracts import contract_problems
from vqkit.nn.taming import AttentionBlock, TamingDecoder, TamingEncoder

SMALL = {"ch": 8, "ch_mult": [1, 2, 2], "num_res_blocks": 1, "norm_groups": 4}


@pytest.mark.parametrize(("channels", "height", "width"), [(1, 8, 20), (3, 12, 4), (2, 4, 4)])
def test_round_trip_shapes_any_channels_non_square(channels, height, width):
    enc = TamingEncoder(channels, 6, attention_factors=[4], **SMALL)
    dec = TamingDecoder(6, channels, attention_factors=[4], **SMALL)
    x = torch.randn(2, channels, height, width)
    z = enc(x)
    assert z.shape == (2, 6, height // 4, width // 4)
    assert dec(z).shape == x.shape
    assert enc.downsample_factor == dec.upsample_factor == 4
    assert not contract_problems("encoder", enc)
    assert not contract_problems("decoder", dec)


def test_layout_follows_taming():
    enc = TamingEncoder(3, 4, ch=8, ch_mult=[1, 2, 4], num_res_blocks=2, attention_factors=[2],
                        norm_groups=4)  # fmt: skip
    blocks = [type(m).__name__ for m in enc.levels[1]]
    assert blocks == ["TamingResBlock", "AttentionBlock"] * 2 + ["_Downsample"]
    assert [type(m).__name__ for m in enc.levels[2]] == ["TamingResBlock"] * 2  # last: no down
    dec = TamingDecoder(4, 3, ch=8, ch_mult=[1, 2, 4], num_res_blocks=2, attention_factors=[2],
                        norm_groups=4)  # fmt: skip
    # decoder levels run from the deepest up, with num_res_blocks + 1 blocks each
    assert [type(m).__name__ for m in dec.levels[0]] == ["TamingResBlock"] * 3 + ["_Upsample"]
    assert [type(m).__name__ for m in dec.levels[1]] == (
        ["TamingResBlock", "AttentionBlock"] * 3 + ["_Upsample"]
    )
    widths = [m.out_channels for level in enc.levels for m in level if hasattr(m, "out_channels")]
    assert widths == [8, 8, 16, 16, 32, 32]
    assert dec.last_layer is dec.conv_out.weight
    assert isinstance(enc.mid[1], AttentionBlock)


def test_z_channels_adds_taming_quant_convs():
    enc = TamingEncoder(1, 5, z_channels=12, **SMALL, attention_factors=[])
    dec = TamingDecoder(5, 1, z_channels=12, **SMALL, attention_factors=[])
    assert enc.conv_out.out_channels == 12
    assert (enc.quant_conv.in_channels, enc.quant_conv.out_channels) == (12, 5)
    assert (dec.post_quant_conv.in_channels, dec.post_quant_conv.out_channels) == (5, 12)
    assert dec(enc(torch.randn(1, 1, 8, 8))).shape == (1, 1, 8, 8)


def test_attention_matches_float64_softmax_attention():
    torch.manual_seed(0)
    block = AttentionBlock(8, norm_groups=2).double()
    x = torch.randn(2, 8, 3, 5, dtype=torch.float64)
    h = block.norm(x)
    q, k, v = block.qkv(h).chunk(3, dim=1)  # (B, C, H, W) each
    q, k, v = (t.flatten(2) for t in (q, k, v))  # (B, C, HW)
    weights = torch.softmax(torch.einsum("bci,bcj->bij", q, k) / 8**0.5, dim=-1)  # (B, HW, HW)
    attended = torch.einsum("bij,bcj->bci", weights, v).reshape(2, 8, 3, 5)
    expected = x + block.proj_out(attended)
    torch.testing.assert_close(block(x), expected, rtol=1e-10, atol=1e-10)


def test_dropout_is_active_only_in_training():
    torch.manual_seed(0)
    enc = TamingEncoder(1, 4, dropout=0.5, attention_factors=[], **SMALL)
    x = torch.randn(2, 1, 8, 8)
    enc.eval()
    assert torch.equal(enc(x), enc(x))
    enc.train()
    assert not torch.equal(enc(x), enc(x))


def test_built_by_name_and_in_a_vqvae():
    model = vqkit.VQVAE(
        encoder={"type": "taming", "in_channels": 1, **SMALL, "attention_factors": []},
        quantizer={"type": "vq", "dim": 4, "codebook_size": 8},
        decoder={"type": "taming", **SMALL, "attention_factors": []},
        image_size=[8, 12],
    )
    assert model.decoder.out_channels == 1  # wired from the encoder
    assert model.latent_size == (2, 3)
    assert model(torch.randn(2, 1, 8, 12)).reconstruction.shape == (2, 1, 8, 12)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"ch": 0}, ValueError, "ch must be a positive integer"),
        ({"ch_mult": []}, ValueError, "ch_mult must not be empty"),
        ({"ch_mult": "124"}, TypeError, "ch_mult must be a list"),
        ({"ch_mult": [1, 0]}, ValueError, "ch_mult must be a positive integer"),
        ({"num_res_blocks": -1}, ValueError, "num_res_blocks must be in"),
        ({"attention_factors": [3]}, ValueError, "not downsampling factors"),
        ({"dropout": 1.0}, ValueError, "dropout must be in"),
        ({"norm_groups": 3}, ValueError, "must divide every width"),
        ({"mid_attention": 1}, TypeError, "mid_attention must be True or False"),
        ({"z_channels": 0}, ValueError, "z_channels must be a positive integer"),
        ({"in_channels": 2.0}, ValueError, "in_channels must be a positive integer"),
    ],
)
@pytest.mark.parametrize("cls", [TamingEncoder, TamingDecoder])
def test_bad_arguments(cls, kwargs, error, match):
    config = {**SMALL, "attention_factors": [], **kwargs}
    with pytest.raises(error, match=match):
        cls(**config)


@pytest.mark.parametrize(
    ("x", "error", "match"),
    [
        ("image", TypeError, "expected a tensor"),
        (torch.randn(2, 1, 8), ValueError, r"\(B, 1, H, W\)"),
        (torch.randn(2, 3, 8, 8), ValueError, r"\(B, 1, H, W\)"),
        (torch.zeros(2, 1, 8, 8, dtype=torch.int64), TypeError, "floating-point"),
        (torch.randn(2, 1, 10, 8), ValueError, "divisible by 4"),
        (torch.randn(2, 1, 8, 8, device="meta"), ValueError, "meta"),
    ],
)
def test_encoder_bad_input(x, error, match):
    enc = TamingEncoder(1, 4, attention_factors=[], **SMALL)
    with pytest.raises(error, match=match):
        enc(x)


@pytest.mark.parametrize(
    ("z", "error", "match"),
    [
        (None, TypeError, "expected a tensor"),
        (torch.randn(1, 3, 2, 2), ValueError, r"\(B, 4, H, W\)"),
        (torch.randn(4, 2, 2), ValueError, r"\(B, 4, H, W\)"),
        (torch.randn(1, 4, 2, 2, 1), ValueError, r"\(B, 4, H, W\)"),
        (torch.zeros(1, 4, 2, 2, dtype=torch.int32), TypeError, "floating-point"),
        (torch.zeros(1, 4, 2, 2, dtype=torch.bool), TypeError, "floating-point"),
        (torch.randn(1, 4, 2, 2, device="meta"), ValueError, "meta"),
    ],
)
def test_decoder_bad_input(z, error, match):
    dec = TamingDecoder(4, 1, attention_factors=[], **SMALL)
    with pytest.raises(error, match=match):
        dec(z)
