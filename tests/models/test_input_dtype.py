"""Blocks refuse an input whose dtype is not their parameters' (outside autocast), with a message
instead of torch's "Input type (double) and bias type (float) should be the same"."""

from __future__ import annotations

import pytest
import torch

import vqkit

BLOCKS = {
    "encoder/resnet": (
        lambda: vqkit.build("encoder", {"type": "resnet", "in_channels": 1, "out_channels": 4}),
        (2, 1, 8, 8),
    ),
    "encoder/conv": (
        lambda: vqkit.build("encoder", {"type": "conv", "in_channels": 1, "out_channels": 4}),
        (2, 1, 16, 16),
    ),
    "decoder/resnet": (
        lambda: vqkit.build("decoder", {"type": "resnet", "in_channels": 4, "out_channels": 1}),
        (2, 4, 2, 2),
    ),
    "encoder/taming": (
        lambda: vqkit.build(
            "encoder",
            {
                "type": "taming",
                "in_channels": 1,
                "out_channels": 4,
                "ch": 8,
                "ch_mult": [1, 2],
                "num_res_blocks": 1,
                "attention_factors": [],
                "norm_groups": 4,
            },
        ),
        (2, 1, 8, 8),
    ),
    "encoder/mlp": (
        lambda: vqkit.build("encoder", {"type": "mlp", "in_features": 3, "out_features": 2}),
        (4, 3),
    ),
    "discriminator/patchgan": (
        lambda: vqkit.build("discriminator", {"type": "patchgan", "in_channels": 1, "ndf": 4}),
        (2, 1, 32, 32),
    ),
}


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_float64_input_to_float32_block_is_refused_by_name(name):
    build, shape = BLOCKS[name]
    block = build()
    with pytest.raises(
        TypeError, match=r"dtype torch\.float64 but the parameters are torch\.float32"
    ):
        block(torch.randn(*shape, dtype=torch.float64))
    block(torch.randn(*shape))  # the matching dtype still works


def test_autocast_inputs_are_left_to_the_operators():
    block, shape = BLOCKS["encoder/conv"]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = block()(torch.randn(*shape))
    assert torch.isfinite(out.float()).all()
