"""Named presets: the real configs construct with the documented sizes; each runs a forward."""

from __future__ import annotations

import pytest
import torch

import vqkit
from vqkit.models.presets import PRESETS, preset_config

EXPECTED = {
    # name: (image channels, (H, W), latent grid, hidden, residual layers, residual hidden, K, D)
    "vqvae-celeba64": (3, (64, 64), (16, 16), 128, 2, 32, 512, 64),
    "vqvae-hipmri": (1, (256, 128), (64, 32), 128, 2, 32, 128, 128),
    "vqvae-cifar10": (3, (32, 32), (8, 8), 128, 2, 32, 128, 256),
    "vqvae-svhn": (3, (32, 32), (8, 8), 128, 2, 32, 128, 256),
    "vqvae-paper-cifar10": (3, (32, 32), (8, 8), 256, 2, 256, 512, 64),
    "vqvae-digits": (1, (8, 8), (4, 4), 32, 1, 16, 32, 16),
}

# Shrinks every width; the image size, the downsampling and the part types stay the preset's.
SHRINK = {
    "encoder": {"hidden_channels": 8, "residual_hidden_channels": 4},
    "decoder": {"hidden_channels": 8, "residual_hidden_channels": 4},
    "quantizer": {"dim": 4, "codebook_size": 16},
    "prior": {"hidden_channels": 8, "num_layers": 2, "head_channels": 8},
}


def test_list_models_lists_every_preset():
    assert vqkit.list_models("vqvae-*") == sorted(EXPECTED)
    assert set(PRESETS) == set(EXPECTED)
    assert "vqvae" in vqkit.list_models()
    assert vqkit.list_models("*celeba*") == ["vqvae-celeba64"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_preset_config_constructs_with_documented_sizes(name):
    channels, image, latent, hidden, layers, res_hidden, k, d = EXPECTED[name]
    model = vqkit.create_model(name)
    assert isinstance(model, vqkit.VQVAE)
    assert model.image_size == image
    assert model.latent_size == latent
    assert model.encoder.in_channels == model.decoder.out_channels == channels
    assert model.encoder.hidden_channels == model.decoder.hidden_channels == hidden
    assert len(model.encoder.residual.blocks) == layers
    assert model.encoder.residual.hidden_channels == res_hidden
    assert (model.quantizer.codebook_size, model.quantizer.dim) == (k, d)
    assert model.quantizer.commitment_weight == 0.25  # β, van den Oord et al. 2017 §4.1
    assert model.prior.num_embeddings == k
    assert PRESETS[name].source
    assert PRESETS[name].description


def test_cifar_codebook_is_uniform_in_one_over_k():
    codebook = vqkit.create_model("vqvae-cifar10").quantizer.embed
    assert codebook.shape == (128, 256)
    assert codebook.abs().max() <= 1 / 128
    assert codebook.abs().max() > 0.9 / 128  # 32k draws fill the interval
    celeba = vqkit.create_model("vqvae-celeba64").quantizer.embed
    assert celeba.abs().max() > 1  # the default N(0, 1) init, for contrast


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shrunk_preset_forward(name):
    torch.manual_seed(0)
    model = vqkit.create_model(name, **SHRINK)
    channels, (height, width), latent, *_ = EXPECTED[name]
    x = torch.randn(2, channels, height, width)
    out = model(x)
    assert out.reconstruction.shape == x.shape
    assert out.quantizer.indices.shape == (2, *latent)
    assert torch.isfinite(out.loss)
    assert model.encoder.hidden_channels == 8  # the override took effect


def test_digits_preset_learns_quickly():
    torch.manual_seed(0)
    model = vqkit.create_model("vqvae-digits")
    x = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = model(x).losses["recon"].item()
    for _ in range(15):
        opt.zero_grad()
        model(x).loss.backward()
        opt.step()
    assert model(x).losses["recon"].item() < 0.5 * first


def test_overrides_deep_merge_and_replace():
    config = preset_config("vqvae-celeba64", encoder={"hidden_channels": 16}, image_size=[32, 32])
    assert config["encoder"]["hidden_channels"] == 16
    assert config["encoder"]["num_residual_layers"] == 2  # kept from the preset
    assert config["image_size"] == [32, 32]
    replaced = preset_config("vqvae-celeba64", encoder={"type": "conv", "in_channels": 3})
    assert replaced["encoder"] == {"type": "conv", "in_channels": 3}
    assert PRESETS["vqvae-celeba64"].config["encoder"]["hidden_channels"] == 128  # not mutated


def test_unknown_preset_fails_clearly():
    with pytest.raises(
        KeyError, match=r"unknown model 'vqvae-celeba'.*Did you mean 'vqvae-celeba64'"
    ):
        vqkit.create_model("vqvae-celeba")
    with pytest.raises(KeyError, match="presets: vqvae-celeba64"):
        preset_config("nope")


def test_preset_with_disagreeing_override_fails():
    with pytest.raises(ValueError, match="out_channels=7 but the quantizer dim is 64"):
        vqkit.create_model("vqvae-celeba64", encoder={"out_channels": 7})
