"""The Trainer's adversarial (VQ-GAN) path: exact resume, disc_start, two learning rates, logs."""

import json

import pytest
import torch
from safetensors.torch import load_file

from vqkit.data import ArrayDataset
from vqkit.models.presets import gan_preset_config
from vqkit.models.vqgan import VQGAN
from vqkit.train import Trainer, load_run_model, train_vqvae_run
from vqkit.train.checkpoint import find_latest_checkpoint
from vqkit.train.config import TrainConfig
from vqkit.train.trainer import default_objective

# 40 images, batch 8: 5 steps per epoch; disc_start=3 lands inside the first epoch.
SETTINGS = {"epochs": 3, "batch_size": 8, "checkpoint_every": 4, "progress": False, "lr": 2e-3}


class Killed(BaseException):
    """Stands for SIGKILL: nothing catches it and no cleanup runs."""


def _kill_at(step):
    def callback(trainer, s, logs):
        if s == step:
            raise Killed

    return callback


def _model(disc_start=3, **overrides):
    torch.manual_seed(7)
    return VQGAN(
        **gan_preset_config("vqgan-digits", prior=None, disc_start=disc_start, **overrides)
    )


@pytest.fixture(scope="module")
def images():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(48, 1, 8, 8, generator=g)
    return ArrayDataset(x[:40]), ArrayDataset(x[40:])


def _run(out, images, callbacks=(), model=None, **kwargs):
    train, val = images
    model = model or _model()
    trainer = Trainer(model, train, val, out_dir=out, callbacks=callbacks, **(SETTINGS | kwargs))
    return model, trainer, trainer.fit()


def _strip_time(history):
    return [{k: v for k, v in r.items() if k != "time"} for r in history]


def test_gan_resume_after_kills_reproduces_the_uninterrupted_run(tmp_path, images):
    ref_model, ref, ref_result = _run(tmp_path / "a", images, disc_lr=5e-3)
    for step in (2, 7, 11):  # before disc_start, mid-epoch after it, mid-epoch after a resume
        with pytest.raises(Killed):
            _run(tmp_path / "b", images, callbacks=[_kill_at(step)], disc_lr=5e-3)
    model, trainer, result = _run(tmp_path / "b", images, disc_lr=5e-3)
    assert result.resumed_from == 10  # checkpoints at 4, 5 (epoch end), 8, 10
    assert result.steps == ref_result.steps == 15
    for key, value in ref_model.state_dict().items():
        assert torch.equal(value, model.state_dict()[key]), key
    for key, value in ref.discriminator.state_dict().items():
        assert torch.equal(value, trainer.discriminator.state_dict()[key]), key
    a, b = ref.optimizer.state_dict(), trainer.optimizer.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for i, s in a["state"].items():
        for k, v in s.items():
            assert torch.equal(v, b["state"][i][k]), (i, k)
    assert _strip_time(result.history) == _strip_time(ref_result.history)


def test_checkpoint_holds_the_discriminator_and_the_model_folder_the_generator(tmp_path, images):
    _, trainer, _ = _run(tmp_path, images, epochs=1)
    latest = find_latest_checkpoint(tmp_path / "checkpoints")
    assert sorted(p.name for p in latest.iterdir()) == [
        "best_model.safetensors",
        "model.safetensors",
        "trainer.safetensors",
        "trainer_state.json",
    ]
    keys = set(load_file(latest / "model.safetensors"))
    disc_keys = {f"discriminator.{k}" for k in trainer.discriminator.state_dict()}
    gen_keys = {f"generator.{k}" for k in trainer.model.state_dict()}
    assert keys == disc_keys | gen_keys
    assert not any(k.startswith("discriminator") for k in trainer.model.state_dict())
    # both Adam groups, each with its own state
    state = load_file(latest / "trainer.safetensors")
    n_gen = len(list(trainer.model.parameters()))
    n_all = n_gen + len(list(trainer.discriminator.parameters()))
    assert {f"optimizer.{i}.exp_avg" for i in (0, n_gen, n_all - 1)} <= set(state)


def test_disc_start_and_the_two_learning_rates(tmp_path, images):
    disc_start = 3
    seen = []

    def record(trainer, step, logs):
        params = [p.detach().clone() for p in trainer.discriminator.parameters()]
        seen.append((step, params, {k: float(v) for k, v in logs.items()}))

    _, trainer, _ = _run(tmp_path, images, callbacks=[record], epochs=1, disc_lr=4e-3)
    generator_group, disc_group = trainer.optimizer.param_groups
    assert generator_group["lr"] == 2e-3
    assert disc_group["lr"] == 4e-3
    assert generator_group["betas"] == disc_group["betas"] == (0.5, 0.9)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(trainer.config.seed + 1)  # the discriminator's own seed
        initial = [p.detach() for p in trainer.model.build_discriminator().parameters()]
    before = [params for step, params, _ in seen if step <= disc_start]
    assert len(before) == disc_start
    for (step, params, logs), prev in zip(seen, [None, *[s[1] for s in seen]], strict=False):
        active = step - 1 >= disc_start  # the callback's step counts steps done (1-based)
        assert logs["disc_active"] == float(active)
        if not active:
            assert logs["d_loss"] == logs["g_loss"] == logs["lambda"] == 0.0
            if prev is not None:
                assert all(torch.equal(a, b) for a, b in zip(params, prev, strict=True))
        else:
            assert logs["lambda"] > 0
            assert logs["d_loss"] > 0
            assert not all(torch.equal(a, b) for a, b in zip(params, prev, strict=True))
    # untouched until disc_start: still its initialisation
    assert all(torch.equal(a, b) for a, b in zip(before[-1], initial, strict=True))


def test_before_disc_start_the_generator_follows_the_plain_vqvae_objective(tmp_path, images):
    """Same init, data order and betas: the adversarial path equals the VQ-VAE path bit for bit
    while no adversarial term exists (perceptual_weight=0: nll is the reconstruction term)."""
    common = SETTINGS | {"epochs": 1, "checkpoint_every": None}
    train, _ = images
    plain = _model(disc_start=100)
    Trainer(plain, train, objective=default_objective, **common).fit()
    gan = _model(disc_start=100)
    trainer = Trainer(gan, train, gan_betas=TrainConfig().betas, **common)
    trainer.fit()
    assert trainer.gan
    for key, value in plain.state_dict().items():
        assert torch.equal(value, gan.state_dict()[key]), key


def test_metrics_jsonl_logs_the_gan_terms(tmp_path, images):
    _run(tmp_path, images, epochs=2)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 2
    for key in ("g_loss", "d_loss", "lambda", "logits_real", "logits_fake", "rec", "perplexity"):
        assert all(f"train/{key}" in r and r[f"train/{key}"] == r[f"train/{key}"] for r in records)
    assert records[0]["train/disc_active"] == pytest.approx(2 / 5)  # steps 3, 4 of 0..4
    assert records[1]["train/disc_active"] == 1.0
    assert "val/recon" in records[0]


def test_bf16_gan_step_is_finite(images):
    train, _ = images
    model = _model(disc_start=0)
    logs = []
    Trainer(
        model,
        train,
        epochs=1,
        batch_size=8,
        progress=False,
        precision="bf16",
        callbacks=[lambda t, s, log: logs.append(log)],
    ).fit()
    assert all(torch.isfinite(torch.stack(list(log.values()))).all() for log in logs)
    assert all(float(log["d_loss"]) > 0 for log in logs)


def test_gan_options_are_refused_where_they_do_not_apply(images):
    train, _ = images
    plain = _model()
    with pytest.raises(ValueError, match=r"\['disc_lr'\] apply to adversarial"):
        Trainer(plain, train, objective=default_objective, disc_lr=1e-3)
    with pytest.raises(ValueError, match=r"config\.betas"):
        Trainer(_model(), train, betas=(0.9, 0.99))
    with pytest.raises(ValueError, match="gan_betas"):
        Trainer(_model(), train, gan_betas=(0.5,))
    with pytest.raises(ValueError, match="disc_lr"):
        Trainer(_model(), train, disc_lr=0.0)
    with pytest.raises(TypeError, match=r"discriminator must be an nn\.Module"):
        Trainer(_model(), train, discriminator="patchgan")
    with pytest.raises(ValueError, match="perceptual network"):
        Trainer(_model(perceptual_weight=1.0), train)


def test_recipe_trains_the_gan_and_saves_the_generator(tmp_path, images):
    train, val = images
    model = _model(disc_start=2)
    config = TrainConfig(epochs=1, batch_size=8, progress=False, lr=2e-3)
    train_vqvae_run(model, train, val, tmp_path, config=config)
    records = (tmp_path / "vqvae" / "metrics.jsonl").read_text().splitlines()
    assert "train/d_loss" in json.loads(records[0])
    loaded = load_run_model(tmp_path)
    assert isinstance(loaded, VQGAN)
    assert set(loaded.state_dict()) == set(model.state_dict())
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key


def test_cli_trains_a_vqgan_preset_then_its_prior(tmp_path):
    from vqkit.cli import main

    out = tmp_path / "run"
    argv = [
        "train",
        "--model",
        "vqgan-digits",
        "--subset",
        "0.05",
        "--epochs",
        "1",
        "--batch-size",
        "8",
    ]
    argv += ["--prior-epochs", "1", "--model-config", '{"disc_start": 2}', "--no-progress"]
    assert main([*argv, "--out", str(out)]) == 0
    record = json.loads((out / "vqvae" / "metrics.jsonl").read_text().splitlines()[0])
    assert record["train/disc_active"] > 0
    assert record["train/d_loss"] > 0
    assert (out / "prior" / "metrics.jsonl").read_text()
    assert isinstance(load_run_model(out), VQGAN)
