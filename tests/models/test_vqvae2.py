"""VQ-VAE-2 (Razavi et al. 2019, arXiv:1906.00446): wiring, codes round trip, top-only decode,
odd sizes, Hub round trip, input validation and the presets."""

from __future__ import annotations

import copy
import math

import pytest
import torch

import vqkit
from vqkit.models.presets import VQVAE2_PRESETS, vqvae2_preset_config
from vqkit.models.vqvae2 import VQVAE2

_NET = {"hidden_channels": 8, "num_residual_layers": 1, "residual_hidden_channels": 4}
TINY = {
    "encoder": {
        "type": "resnet",
        "in_channels": 1,
        "out_channels": 8,
        "num_downsamples": 1,
        **_NET,
    },
    "top_encoder": {"type": "resnet", "num_downsamples": 1, **_NET},
    "top_quantizer": {"type": "vq", "dim": 4, "codebook_size": 8},
    "bottom_quantizer": {"type": "vq", "dim": 3, "codebook_size": 6},
    "top_to_bottom": {"type": "resnet", **_NET},
    "decoder": {"type": "resnet", **_NET},
    "top_decoder": {"type": "resnet", **_NET},
    "top_reconstruction_weight": 0.5,
    "image_size": [8, 12],
}


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _model(**overrides) -> VQVAE2:
    torch.manual_seed(0)
    config = copy.deepcopy(TINY)
    config.update(overrides)
    return VQVAE2(**config)


def _images(*shape: int) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(0))


def test_wiring_sizes_and_attributes():
    model = _model()
    assert model.codebook_size == (8, 6)
    assert model.factors == (4, 2)
    assert model.latent_size == ((2, 3), (4, 6))
    assert model.top_encoder.in_channels == 8
    assert model.top_encoder.out_channels == 4
    assert model.decoder.in_channels == 4 + 3
    assert model.decoder.out_channels == 1
    assert model.top_to_bottom.out_channels == 3  # wired to the bottom dim
    assert model.top_decoder.upsample_factor == 4
    assert model.bits() == pytest.approx(2 * 3 * math.log2(8) + 4 * 6 * math.log2(6))
    assert vqkit.contracts.contract_problems("model", model) == []


def test_paper_wiring_bottom_sees_the_decoded_top():
    """The bottom latents depend on the top codes (through top_to_bottom), the decoder on both."""
    model = _model().eval()
    x = _images(2, 1, 8, 12)
    top, bottom = model.encode_indices(x)
    h_b = model.encoder(x)
    q_t = model.top_quantizer.decode(top)
    z_b = model.bottom_project(torch.cat([h_b, model.top_to_bottom(q_t)], 1))
    assert torch.equal(model.bottom_quantizer(z_b).indices, bottom)
    # a different top code changes the bottom latents: the bottom is encoded given the top
    other = (top + 1) % 8
    z_other = model.bottom_project(
        torch.cat([h_b, model.top_to_bottom(model.top_quantizer.decode(other))], 1)
    )
    assert not torch.allclose(z_b, z_other)


def test_decode_indices_of_encode_indices_is_the_eval_reconstruction_exactly():
    model = _model().eval()
    x = _images(3, 1, 8, 12)
    with torch.no_grad():
        out = model(x)
    codes = model.encode_indices(x)
    assert codes[0].shape == (3, 2, 3)
    assert codes[1].shape == (3, 4, 6)
    assert codes[0].dtype == codes[1].dtype == torch.int64
    assert torch.equal(codes[0], out.quantizers[0].indices)
    assert torch.equal(codes[1], out.quantizers[1].indices)
    with torch.no_grad():
        assert torch.equal(model.decode_indices(codes), out.reconstruction)
        assert torch.equal(model.decode_top(codes[0]), out.top_reconstruction)


def test_loss_terms_add_up_and_train_both_levels():
    model = _model().train()
    x = _images(4, 1, 8, 12)
    out = model(x)
    terms = out.losses
    expected = terms["recon"] + 0.5 * terms["top_recon"] + terms["quantizer_top"]
    expected = expected + terms["quantizer_bottom"]
    torch.testing.assert_close(out.loss, expected)
    torch.testing.assert_close(
        terms["quantizer"], terms["quantizer_top"] + terms["quantizer_bottom"]
    )
    for level, k in (("top", 8), ("bottom", 6)):
        assert 1.0 <= float(terms[f"perplexity_{level}"]) <= k
        assert 0.0 < float(terms[f"usage_{level}"]) <= 1.0
    out.loss.backward()
    # the top-only term reaches the top encoder through the top decoder alone
    model.zero_grad()
    model(x).losses["top_recon"].backward()
    assert model.top_encoder.project.weight.grad.abs().sum() > 0
    assert model.decoder.stem.weight.grad is None or model.decoder.stem.weight.grad.abs().sum() == 0


def test_batch_usage_is_the_closed_form():
    model = _model().eval()
    x = _images(2, 1, 8, 12)
    with torch.no_grad():
        out = model(x)
    indices = out.quantizers[1].indices.flatten()
    p = torch.bincount(indices, minlength=6).double() / indices.numel()
    nonzero = p[p > 0]
    expected = math.exp(float(-(nonzero * nonzero.log()).sum()))
    assert float(out.losses["perplexity_bottom"]) == pytest.approx(expected, rel=1e-5)
    assert float(out.losses["usage_bottom"]) == pytest.approx(float((p > 0).double().mean()))


def test_without_top_decoder():
    config = {
        k: v for k, v in TINY.items() if k not in ("top_decoder", "top_reconstruction_weight")
    }
    torch.manual_seed(0)
    model = VQVAE2(**config)
    out = model(_images(2, 1, 8, 12))
    assert out.top_reconstruction is None
    assert "top_recon" not in out.losses
    with pytest.raises(RuntimeError, match="top decoder"):
        model.decode_top(torch.zeros(1, 2, 3, dtype=torch.long))


def test_odd_sizes_fail_clearly_and_divisible_sizes_work():
    model = _model()
    with pytest.raises(ValueError, match=r"divisible by the top level's downsampling factor 4"):
        model(_images(2, 1, 25, 25))
    with pytest.raises(ValueError, match="divisible"):
        model.encode_indices(_images(1, 1, 26, 24))
    with pytest.raises(ValueError, match=r"image_size \[25, 25\] is not divisible"):
        _model(image_size=[25, 25])
    x = _images(2, 1, 24, 28)  # another size than image_size: fully convolutional
    top, bottom = model.encode_indices(x)
    assert top.shape == (2, 6, 7)
    assert bottom.shape == (2, 12, 14)
    assert model.decode_indices((top, bottom)).shape == x.shape


@pytest.mark.parametrize(
    ("bad", "error", "match"),
    [
        ([[0.0]], TypeError, "tensor"),
        (torch.zeros(2, 1, 8, 12, dtype=torch.uint8), TypeError, "floating-point"),
        (torch.zeros(1, 8, 12), ValueError, r"\(B, C, H, W\)"),
        (torch.zeros(0, 1, 8, 12), ValueError, "empty batch"),
        (torch.zeros(2, 1, 8, 12, device="meta"), ValueError, "meta"),
        (torch.zeros(2, 3, 8, 12), ValueError, r"\(B, 1, H, W\)"),
    ],
)
def test_bad_images(bad, error, match):
    with pytest.raises(error, match=match):
        _model()(bad)


def test_bad_codes():
    model = _model()
    top, bottom = torch.zeros(2, 2, 3, dtype=torch.long), torch.zeros(2, 4, 6, dtype=torch.long)
    with pytest.raises(TypeError, match=r"tuple \(top, bottom\)"):
        model.decode_indices(top)
    with pytest.raises(TypeError, match="integer"):
        model.decode_indices((top.float(), bottom))
    with pytest.raises(ValueError, match=r"\[0, 6\)"):
        model.decode_indices((top, bottom + 6))
    with pytest.raises(ValueError, match="2× the top grid"):
        model.decode_indices((top, bottom[:, :3]))
    with pytest.raises(ValueError, match=r"\(B, h, w\)"):
        model.decode_indices((top[0], bottom))
    with pytest.raises(RuntimeError, match="needs a prior"):
        model.generate(2)


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ({"top_reconstruction_weight": -1.0}, "top_reconstruction_weight"),
        ({"reconstruction_loss": "huber"}, "reconstruction_loss"),
        ({"data_variance": 0.0}, "data_variance"),
        ({"image_size": [8]}, "image_size"),
        ({"top_encoder": {"type": "resnet", "in_channels": 5, **_NET}}, "in_channels=5"),
        ({"decoder": {"type": "resnet", "in_channels": 2, **_NET}}, "in_channels=2"),
        ({"prior": {"type": "gated_pixelcnn"}}, "num_embeddings"),
    ],
)
def test_bad_constructor_arguments(override, match):
    with pytest.raises((ValueError, TypeError), match=match):
        _model(**override)


def test_hub_round_trip(tmp_path):
    model = _model().eval()
    x = _images(2, 1, 8, 12)
    model.save_pretrained(tmp_path)
    loaded = VQVAE2.from_pretrained(tmp_path)
    assert loaded.hub_config == model.hub_config
    with torch.no_grad():
        assert torch.equal(loaded(x).reconstruction, model(x).reconstruction)
    codes = model.encode_indices(x)
    assert all(torch.equal(a, b) for a, b in zip(loaded.encode_indices(x), codes, strict=True))


def test_paper_preset_builds_and_runs_one_forward():
    """vqvae2-imagenet256: 64×64 bottom and 32×32 top codes on 256×256 RGB, K=512 at both."""
    torch.manual_seed(0)
    model = vqkit.create_model("vqvae2-imagenet256")
    assert model.latent_size == ((32, 32), (64, 64))
    assert model.codebook_size == (512, 512)
    assert model.dims == (64, 64)
    with torch.no_grad():
        out = model(torch.rand(1, 3, 256, 256))
    assert out.reconstruction.shape == (1, 3, 256, 256)
    assert torch.isfinite(out.loss)


def test_fashion_preset_bits_and_grids():
    """28 → 14 → 7: the same bits as a one-level 14×14 VQ-VAE with K=64 (196 · 6 = 1176)."""
    config = vqvae2_preset_config("vqvae2-fashion-mnist", prior=None)
    torch.manual_seed(0)
    model = VQVAE2(**config)
    assert model.latent_size == ((7, 7), (14, 14))
    assert model.bits() == pytest.approx(14 * 14 * math.log2(64)) == 1176
    prior = VQVAE2_PRESETS["vqvae2-fashion-mnist"].config["prior"]
    assert prior["type"] == "hierarchical"
    assert prior["bottom"]["type"] == "gated_pixelcnn"
    with pytest.raises(KeyError, match="vqvae2-fashion-mnist"):
        vqvae2_preset_config("vqvae2-nope")
