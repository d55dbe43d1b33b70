"""VQVAE: output contract, size wiring, codes round trip, the two-stage prior, generation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import vqkit
from vqkit.nn import ResNetDecoder
from vqkit.quantize import QuantizerOutput


def test_forward_output_contract(tiny_model, images):
    out = tiny_model(images)
    assert isinstance(out, vqkit.VQVAEOutput)
    assert isinstance(out.quantizer, QuantizerOutput)
    assert out.reconstruction.shape == images.shape
    assert out.quantizer.indices.shape == (6, 4, 2)
    assert out.loss.dim() == 0
    assert out.loss.requires_grad
    assert set(out.losses) == {"recon", "quantizer", "total"}
    torch.testing.assert_close(out.losses["recon"], F.mse_loss(out.reconstruction, images))
    torch.testing.assert_close(out.loss, out.losses["recon"] + out.quantizer.loss)
    assert out.losses["total"] is out.loss


def test_l1_loss_and_data_variance(tiny_config, images):
    torch.manual_seed(0)
    model = vqkit.VQVAE(**tiny_config, reconstruction_loss="l1", data_variance=0.5)
    out = model(images)
    torch.testing.assert_close(out.losses["recon"], F.l1_loss(out.reconstruction, images) / 0.5)


def test_backward_trains_autoencoder_not_prior(tiny_model, images):
    tiny_model(images).loss.backward()
    assert tiny_model.encoder.project.weight.grad.abs().sum() > 0
    assert tiny_model.decoder.stem.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in tiny_model.prior.parameters())


def test_sizes_are_wired_from_the_quantizer():
    model = vqkit.VQVAE(
        encoder={"type": "resnet", "in_channels": 2, "hidden_channels": 8, "num_downsamples": 1},
        quantizer={"type": "vq", "dim": 6, "codebook_size": 10},
        decoder={"type": "resnet", "hidden_channels": 8},
        prior={"type": "pixelcnn", "hidden_channels": 8, "num_layers": 1, "head_channels": 8},
    )
    assert model.encoder.out_channels == 6
    assert model.decoder.in_channels == 6
    assert model.decoder.out_channels == 2  # follows the encoder's in_channels
    assert model.decoder.num_upsamples == 1  # follows the encoder's num_downsamples
    assert model.prior.num_embeddings == 10
    x = torch.randn(2, 2, 6, 4)
    assert model(x).reconstruction.shape == x.shape
    # config.json is what was passed, not the wired result: reloading re-wires identically.
    assert model.hub_config["encoder"] == {
        "type": "resnet",
        "in_channels": 2,
        "hidden_channels": 8,
        "num_downsamples": 1,
    }


def test_quantizer_dim_taken_from_the_encoder():
    model = vqkit.VQVAE(
        encoder={"type": "conv", "in_channels": 1, "out_channels": 5, "num_downsamples": 1},
        quantizer={"type": "vq", "codebook_size": 8},
        decoder={"type": "conv"},
    )
    assert model.quantizer.dim == 5 == model.decoder.in_channels
    assert model.decoder.num_upsamples == 1


@pytest.mark.parametrize(
    ("part", "change", "message"),
    [
        (
            "encoder",
            {"out_channels": 5},
            r"encoder 'resnet' has out_channels=5 but the quantizer dim is 4",
        ),
        (
            "decoder",
            {"in_channels": 3},
            r"decoder 'resnet' has in_channels=3 but the quantizer dim is 4",
        ),
        ("decoder", {"out_channels": 3}, r"out_channels=3 but the encoder's in_channels is 1"),
        (
            "decoder",
            {"num_upsamples": 2},
            r"num_upsamples=2 but the encoder's num_downsamples is 1",
        ),
        ("prior", {"num_embeddings": 9}, r"num_embeddings=9 but the codebook size is 8"),
    ],
)
def test_disagreeing_sizes_are_rejected_at_construction(tiny_config, part, change, message):
    tiny_config[part].update(change)
    with pytest.raises(ValueError, match=message):
        vqkit.VQVAE(**tiny_config)


def test_disagreeing_built_module_is_rejected(tiny_config):
    tiny_config["decoder"] = ResNetDecoder(4, 1, hidden_channels=8, num_upsamples=2)
    with pytest.raises(ValueError, match=r"upsample_factor=4 but encoder downsample_factor=2"):
        vqkit.VQVAE(**tiny_config)


def test_unknown_part_fails_clearly(tiny_config):
    tiny_config["encoder"]["type"] = "resnett"
    with pytest.raises(KeyError, match=r"unknown encoder 'resnett'.*Did you mean 'resnet'"):
        vqkit.VQVAE(**tiny_config)


def test_misspelled_part_argument_fails_clearly(tiny_config):
    tiny_config["decoder"]["hiden_channels"] = 8
    with pytest.raises(TypeError, match=r"'hiden_channels' \(did you mean 'hidden_channels'\?\)"):
        vqkit.VQVAE(**tiny_config)


def test_prior_over_continuous_latents_is_rejected(tiny_config):
    tiny_config["prior"] = {"type": "made_flow", "dim": 8, "hidden_features": [8]}
    with pytest.raises(TypeError, match="not a prior over code indices"):
        vqkit.VQVAE(**tiny_config)


@pytest.mark.parametrize(
    ("image_size", "message"),
    [([7, 4], r"not divisible by the encoder's downsampling factor 2"), ([8], "image_size must")],
)
def test_bad_image_size(tiny_config, image_size, message):
    tiny_config["image_size"] = image_size
    with pytest.raises(ValueError, match=message):
        vqkit.VQVAE(**tiny_config)


def test_latent_size_follows_image_size(tiny_config):
    assert vqkit.VQVAE(**tiny_config).latent_size == (4, 2)
    tiny_config["image_size"] = 16
    assert vqkit.VQVAE(**tiny_config).latent_size == (8, 8)


def test_codes_round_trip_to_the_reconstruction(tiny_model, images):
    tiny_model.eval()
    indices = tiny_model.encode_indices(images)
    assert indices.shape == (6, 4, 2)
    assert indices.dtype == torch.int64
    out = tiny_model(images)
    assert torch.equal(indices, out.quantizer.indices)
    torch.testing.assert_close(tiny_model.decode_indices(indices), out.reconstruction)


def test_encode_indices_changes_no_state(tiny_model, images):
    tiny_model.train()
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    tiny_model.encode_indices(images)
    assert tiny_model.quantizer.training  # mode restored
    for key, value in tiny_model.state_dict().items():
        assert torch.equal(value, before[key]), key
    tiny_model(images)  # a training forward does move the EMA codebook
    assert not torch.equal(tiny_model.quantizer.embed, before["quantizer.embed"])


def test_decode_indices_rejects_floats(tiny_model):
    with pytest.raises(TypeError, match="integer"):
        tiny_model.decode_indices(torch.zeros(1, 4, 2))


def test_bad_image_input(tiny_model):
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\), got \(2, 3, 8, 4\)"):
        tiny_model(torch.randn(2, 3, 8, 4))


def test_prior_loss_is_the_prior_nll_of_frozen_codes(tiny_model, images):
    tiny_model.train()
    state = {k: v.clone() for k, v in tiny_model.quantizer.state_dict().items()}
    out = tiny_model.prior_loss(images)
    indices = tiny_model.encode_indices(images)
    assert torch.equal(out.indices, indices)
    expected = -tiny_model.prior.log_prob(indices).mean() / indices[0].numel()
    torch.testing.assert_close(out.loss, expected)
    torch.testing.assert_close(out.losses["bits_per_latent"], expected.detach() / math.log(2))
    torch.testing.assert_close(tiny_model.prior_nll(indices), -tiny_model.prior.log_prob(indices))
    out.loss.backward()
    assert all(p.grad is None for p in tiny_model.encoder.parameters())
    assert all(p.grad is None for p in tiny_model.decoder.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in tiny_model.prior.parameters())
    for key, value in tiny_model.quantizer.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_generate_decodes_prior_samples(tiny_model):
    tiny_model.eval()
    images = tiny_model.generate(3, generator=torch.Generator().manual_seed(5))
    assert images.shape == (3, 1, 8, 4)
    codes = tiny_model.prior.sample(3, (4, 2), generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(images, tiny_model.decode_indices(codes))
    again = tiny_model.generate(3, generator=torch.Generator().manual_seed(5))
    assert torch.equal(images, again)
    other = tiny_model.generate(3, generator=torch.Generator().manual_seed(6))
    assert not torch.equal(images, other)


def test_generate_with_explicit_latent_size_and_condition(tiny_config):
    tiny_config["prior"]["num_classes"] = 3
    tiny_config["image_size"] = None
    model = vqkit.VQVAE(**tiny_config).eval()
    with pytest.raises(ValueError, match="needs the latent grid size"):
        model.generate(2, cond=torch.tensor([0, 2]))
    out = model.generate(2, cond=torch.tensor([0, 2]), latent_size=(2, 3))
    assert out.shape == (2, 1, 4, 6)


def test_made_prior_gets_its_grid_size(tiny_config):
    tiny_config["prior"] = {"type": "made", "hidden_features": [16]}
    model = vqkit.VQVAE(**tiny_config)
    assert (model.prior.num_features, model.prior.num_embeddings) == (8, 8)
    assert model.generate(2, generator=torch.Generator().manual_seed(0)).shape == (2, 1, 8, 4)


def test_methods_needing_a_prior(tiny_config, images):
    tiny_config["prior"] = None
    model = vqkit.VQVAE(**tiny_config)
    with pytest.raises(RuntimeError, match="generate needs a prior"):
        model.generate(2)
    with pytest.raises(RuntimeError, match="prior_loss needs a prior"):
        model.prior_loss(images)


def test_generate_bad_n(tiny_model):
    with pytest.raises(ValueError, match="positive integer"):
        tiny_model.generate(0)


def test_registered_as_model():
    assert vqkit.get("model", "vqvae") is vqkit.VQVAE
    built = vqkit.create_model("vqvae", **TINY_ARGS)
    assert isinstance(built, vqkit.VQVAE)


TINY_ARGS = {
    "encoder": {"type": "conv", "in_channels": 1, "hidden_channels": 4, "num_downsamples": 1},
    "quantizer": {"type": "vq", "dim": 2, "codebook_size": 4},
    "decoder": "conv",
}


def test_fsq_quantizer_sets_the_latent_width():
    model = vqkit.VQVAE(
        encoder={"type": "conv", "in_channels": 1, "hidden_channels": 4, "num_downsamples": 1},
        quantizer={"type": "fsq", "levels": [5, 5, 3]},
        decoder="conv",
        prior={"type": "pixelcnn", "hidden_channels": 8, "num_layers": 1, "head_channels": 8},
        image_size=8,
    ).eval()
    assert (model.dim, model.codebook_size) == (3, 75)
    assert model.encoder.out_channels == 3
    x = torch.randn(2, 1, 8, 8)
    torch.testing.assert_close(
        model.decode_indices(model.encode_indices(x)), model(x).reconstruction
    )


def test_residual_vq_codes_round_trip_but_refuse_a_grid_prior():
    spec = {
        "encoder": {"type": "conv", "in_channels": 1, "hidden_channels": 4, "num_downsamples": 1},
        "quantizer": {"type": "rvq", "dim": 4, "codebook_size": 8, "num_quantizers": 2},
        "decoder": "conv",
    }
    model = vqkit.VQVAE(**spec).eval()
    x = torch.randn(2, 1, 8, 8)
    indices = model.encode_indices(x)
    assert indices.shape == (2, 4, 4, 2)
    torch.testing.assert_close(model.decode_indices(indices), model(x).reconstruction)
    with pytest.raises(ValueError, match=r"gives 2 codes per position"):
        vqkit.VQVAE(**spec, prior={"type": "gated_pixelcnn", "num_layers": 1})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_forward_generate_and_map_location(tiny_model, images, tmp_path):
    tiny_model.save_pretrained(tmp_path)
    model = vqkit.VQVAE.from_pretrained(tmp_path, map_location="cuda")
    assert all(p.is_cuda for p in model.parameters())
    out = model(images.cuda())
    assert out.reconstruction.is_cuda
    samples = model.generate(2, generator=torch.Generator("cuda").manual_seed(0))
    assert samples.is_cuda
    assert samples.shape == (2, 1, 8, 4)
