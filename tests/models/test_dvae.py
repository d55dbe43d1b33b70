"""DVAE: wiring, the loss, deterministic codes, the prior stage, presets (DALL-E shape included)."""

import pytest
import torch

import vqkit
from vqkit.losses.logit_laplace import LogitLaplace
from vqkit.models.dvae import DVAE
from vqkit.models.presets import DVAE_PRESETS

NET = {"hidden_channels": 8, "num_residual_layers": 1, "residual_hidden_channels": 4}


def _tiny(**kw):
    torch.manual_seed(0)
    config = {
        "encoder": {"type": "resnet", "in_channels": 2, "num_downsamples": 1, **NET},
        "quantizer": {"type": "gumbel", "dim": 4, "codebook_size": 16, "kl_weight": 0.5},
        "decoder": {"type": "resnet", **NET},
        "image_size": [8, 6],
    } | kw
    return DVAE(**config)


def test_decoder_emits_mu_and_log_b_per_channel():
    model = _tiny()
    assert model.decoder.out_channels == 4
    assert model.params_per_channel == 2
    assert _tiny(reconstruction_loss="mse").decoder.out_channels == 2
    with pytest.raises(ValueError, match="out_channels=2 but 2 × the encoder's in_channels"):
        _tiny(decoder={"type": "resnet", "out_channels": 2, **NET})


def test_loss_is_logit_laplace_plus_weighted_kl():
    model = _tiny().train()
    x = torch.rand(3, 2, 8, 6)
    torch.manual_seed(1)
    out = model(x)
    torch.manual_seed(1)  # the same Gumbel draws, step by step
    z = model.encoder(LogitLaplace().map(x))
    q = model.quantizer(z)
    stats = model.decoder(q.quantized)
    recon = LogitLaplace()(x, stats).loss
    torch.testing.assert_close(out.losses["recon"], recon)
    torch.testing.assert_close(out.loss, recon + 0.5 * q.metrics["kl"])
    torch.testing.assert_close(out.losses["kl"], q.metrics["kl"])
    assert out.reconstruction.shape == x.shape
    recon = out.reconstruction.detach()
    assert float(recon.min()) >= 0
    assert float(recon.max()) <= 1


def test_mse_variant():
    model = _tiny(reconstruction_loss="mse").eval()
    x = torch.rand(2, 2, 8, 6)
    out = model(x)
    torch.testing.assert_close(out.losses["recon"], ((out.reconstruction - x) ** 2).mean())


def test_decode_of_encode_equals_the_eval_reconstruction_exactly():
    model = _tiny().eval()
    x = torch.rand(3, 2, 8, 6)
    codes = model.encode_indices(x)
    assert codes.shape == (3, 4, 3)
    assert codes.dtype == torch.int64
    assert torch.equal(model.decode_indices(codes), model(x).reconstruction)
    assert torch.equal(model(x).reconstruction, model(x).reconstruction)


def test_encode_indices_is_the_argmax_even_in_training_mode():
    model = _tiny().train()
    x = torch.rand(2, 2, 8, 6)
    logits = model.quantizer.logits(model.encoder(LogitLaplace().map(x)))
    assert torch.equal(model.encode_indices(x), logits.argmax(-1))
    assert model.quantizer.training  # mode restored


def test_prior_stage_and_generate():
    prior = {"type": "gated_pixelcnn", "hidden_channels": 8, "num_layers": 2, "head_channels": 8}
    model = _tiny(prior=prior).eval()
    assert model.prior.num_embeddings == 16
    x = torch.rand(2, 2, 8, 6)
    out = model.prior_loss(x)
    assert torch.equal(out.indices, model.encode_indices(x))
    assert out.loss.dim() == 0
    assert torch.isfinite(out.loss)
    images = model.generate(2, generator=torch.Generator().manual_seed(0))
    assert images.shape == (2, 2, 8, 6)


def test_hub_round_trip(tmp_path):
    model = _tiny().eval()
    model.save_pretrained(tmp_path)
    loaded = DVAE.from_pretrained(tmp_path)
    x = torch.rand(2, 2, 8, 6)
    assert torch.equal(loaded(x).reconstruction, model(x).reconstruction)
    assert loaded.hub_config["reconstruction_loss"] == "logit_laplace"


def test_input_validation():
    model = _tiny()
    with pytest.raises(ValueError, match=r"images in \[0, 1\]"):
        model(torch.rand(2, 2, 8, 6) * 3)
    with pytest.raises(ValueError, match="empty batch"):
        model(torch.rand(0, 2, 8, 6))
    with pytest.raises(TypeError, match="floating-point"):
        model(torch.zeros(2, 2, 8, 6, dtype=torch.uint8))
    with pytest.raises(ValueError, match="reconstruction_loss must be one of"):
        _tiny(reconstruction_loss="l2")
    with pytest.raises(ValueError, match="logit_laplace_eps"):
        _tiny(logit_laplace_eps=0.6)
    with pytest.raises(TypeError, match="integer tensor"):
        model.decode_indices(torch.zeros(1, 4, 3))


def test_small_presets_train_a_step():
    for name in ("dvae-digits", "dvae-fashion-mnist"):
        size = DVAE_PRESETS[name].config["image_size"]
        torch.manual_seed(0)
        model = vqkit.create_model(name)
        assert isinstance(model, DVAE)
        assert model.family == "discrete"
        x = torch.rand(2, 1, *size)
        out = model.train()(x)
        out.loss.backward()
        assert torch.isfinite(out.loss)
        assert model.encode_indices(x).shape == (2, *model.latent_size)


def test_dalle_preset_builds_at_256_px_and_runs_a_step():
    """The DALL-E shape: 256×256×3 → 32×32 codes of K = 8192; one step at batch 1."""
    torch.manual_seed(0)
    model = vqkit.create_model("dvae-dalle")
    assert model.codebook_size == 8192
    assert model.latent_size == (32, 32)
    assert model.decoder.out_channels == 6
    x = torch.rand(1, 3, 256, 256)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    out = model.train()(x)
    out.loss.backward()
    optimizer.step()
    assert torch.isfinite(out.loss)
    assert out.quantizer.indices.shape == (1, 32, 32)


def test_a_dvae_run_trains_both_stages_evaluates_and_replays_its_schedules(tmp_path):
    import json

    from vqkit.train import TrainConfig
    from vqkit.train.run import DataSpec, RunSpec, read_run_spec, train_run

    shrink = {
        "encoder": {"hidden_channels": 8, "residual_hidden_channels": 4},
        "decoder": {"hidden_channels": 8, "residual_hidden_channels": 4},
        "quantizer": {"codebook_size": 16},
        "prior": {"hidden_channels": 8, "num_layers": 1, "head_channels": 8},
    }
    schedule = {"name": "quantizer.temperature", "type": "exponential", "start": 1.0,
                "end": 0.5, "steps": 2}  # fmt: skip
    settings = {"max_steps": 2, "epochs": None, "batch_size": 16, "progress": False}
    spec = RunSpec(
        data=DataSpec("digits", subset_fraction=0.05),
        model="dvae-digits",
        model_config=shrink,
        train=TrainConfig(schedules=[schedule], **settings),
        prior_train=TrainConfig(**settings),
    )
    result = train_run(spec, tmp_path / "run")
    assert isinstance(result.model, DVAE)
    assert result.model.decoder.out_channels == 2  # wired, not set to the data's 1 channel
    assert {"psnr", "ssim", "codebook_usage"} <= set(result.metrics)
    assert read_run_spec(tmp_path / "run").train.schedules == spec.train.schedules
    lines = (tmp_path / "run").rglob("metrics.jsonl")
    logged = [json.loads(x) for f in lines for x in f.read_text().splitlines()]
    assert any("train/schedule/quantizer.temperature" in r for r in logged)


def test_interpolate_ends_at_the_reconstructions():
    model = _tiny().eval()
    x1, x2 = torch.rand(2, 2, 8, 6), torch.rand(2, 2, 8, 6)
    path = model.interpolate(x1, x2, steps=5)
    assert path.shape == (2, 5, 2, 8, 6)
    assert torch.equal(path[:, 0], model(x1).reconstruction)
    assert torch.equal(path[:, -1], model(x2).reconstruction)
    with pytest.raises(ValueError, match="same shape"):
        model.interpolate(x1, x2[:1])
