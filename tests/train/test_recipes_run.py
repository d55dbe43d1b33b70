"""Runs as data: RunSpec round trips, exact replay from config.json, 0.1.0 run folders, --no-prior,
pictures for any split size, the prior stage on prior.loss, resizing array data."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from vqkit import VQVAE
from vqkit.cli import main
from vqkit.contracts import LossOutput
from vqkit.data import ArrayDataset
from vqkit.train import (
    DataSpec,
    RunSpec,
    RunSpecError,
    TrainConfig,
    Trainer,
    read_run_spec,
    train_run,
    train_vqvae_run,
    write_pictures,
)
from vqkit.train.recipes import prior_objective
from vqkit.train.run import load_run_data

FIXTURE = Path(__file__).parents[1] / "fixtures" / "release_0_1_0" / "vqvae_digits"
TINY = {
    "encoder": {"type": "resnet", "hidden_channels": 8, "residual_hidden_channels": 4},
    "decoder": {"type": "resnet", "hidden_channels": 8, "residual_hidden_channels": 4},
    "quantizer": {"type": "vq", "dim": 8, "codebook_size": 16},
    "prior": {"type": "gated_pixelcnn", "hidden_channels": 8, "num_layers": 2, "head_channels": 16},
}
GRAY = {**TINY, "encoder": {**TINY["encoder"], "in_channels": 1}}


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """`vqkit train --model vqvae --model-config cfg.json` on a .npy file resized to 8x8 with a
    validation split of 9 images (not a multiple of 8)."""
    root = tmp_path_factory.mktemp("run")
    images = torch.rand(45, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    np.save(root / "images.npy", images.numpy())
    (root / "cfg.json").write_text(json.dumps(TINY))
    argv = [
        "train",
        "--model",
        "vqvae",
        "--model-config",
        str(root / "cfg.json"),
        "--data",
        str(root / "images.npy"),
        "--image-size",
        "8",
        "--val-fraction",
        "0.2",
        "--steps",
        "3",
        "--prior-steps",
        "3",
        "--batch-size",
        "8",
        "--no-progress",
        "--out",
        str(root / "a"),
    ]
    assert main(argv) == 0
    return root


def test_model_config_run_resizes_arrays_and_draws_every_picture(cli_run):
    run = cli_run / "a"
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["num_val"] == 9
    assert config["model"]["config"]["image_size"] == [8, 8]
    for name in ("reconstructions", "samples", "interpolations", "latent_maps", "loss_curves"):
        assert (run / f"{name}.png").is_file(), name
    # 9 images: two rows of originals, each above its reconstructions (tiles of 8·8 + 2 px, x8),
    # a 110-pixel column of row labels and a 22-pixel title bar.
    with Image.open(run / "reconstructions.png") as image:
        assert image.size == ((8 * 10 + 2) * 8 + 110, (4 * 10 + 2) * 8 + 22)


def test_replay_from_config_json_reproduces_the_metrics_exactly(cli_run, capsys):
    first = cli_run / "a"
    replay = cli_run / "b"
    argv = ["train", "--config", str(first / "config.json"), "--out", str(replay), "--no-progress"]
    assert main(argv) == 0
    a = json.loads((first / "metrics.json").read_text())
    b = json.loads((replay / "metrics.json").read_text())
    assert a == b
    assert {"prior_nll", "mse", "codebook_perplexity"} <= set(a)
    conf_a, conf_b = (json.loads((d / "config.json").read_text()) for d in (first, replay))
    conf_a.pop("command"), conf_b.pop("command")
    assert conf_a == conf_b


def test_config_and_training_options_do_not_mix(cli_run, capsys):
    argv = ["train", "--config", str(cli_run / "a" / "config.json"), "--lr", "0.1"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--lr would change it" in err


def test_spec_round_trips_through_its_dict():
    spec = RunSpec(
        data=DataSpec("digits", image_size=[6, 6], val_fraction=0.2, subset_fraction=0.5, seed=3),
        model="vqvae-digits",
        model_config={"quantizer": {"codebook_size": 8}},
        train=TrainConfig(epochs=2, lr=1e-2, progress=False),
        prior_train=TrainConfig(max_steps=5, epochs=None),
        seed=7,
    )
    assert RunSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.pop("data"), "needs a 'data' entry"),
        (lambda r: r["train"].update(epoch=3), "unknown setting(s) ['epoch']"),
        (lambda r: r["data"].update(val_fraction=1.0), "val_fraction must be in"),
        (lambda r: r.update(model="vqvae"), "'model' must be"),
        (lambda r: r["train"].update(batch_size=0), "batch_size must be a positive int"),
    ],
)
def test_bad_spec_records_are_refused(change, message):
    record = RunSpec(train=TrainConfig(epochs=1)).to_dict()
    change(record)
    with pytest.raises((ValueError, TypeError)) as info:
        RunSpec.from_dict(record)
    assert message in str(info.value)


def _old_run_folder(root: Path) -> Path:
    """A run folder as vqkit 0.1.0's `vqkit train` wrote it (its config.json layout verbatim)."""
    run = root / "old"
    shutil.copytree(FIXTURE, run / "model")
    train = {
        "epochs": 1,
        "max_steps": None,
        "batch_size": 64,
        "optimizer": "adam",
        "lr": 0.002,
        "weight_decay": 0.0,
        "betas": [0.9, 0.999],
        "lr_schedule": "cosine",
        "warmup_steps": 0,
        "grad_clip": 1.0,
        "precision": "fp32",
        "patience": None,
        "monitor": "loss",
        "restore_best": True,
        "seed": 0,
        "checkpoint_every": None,
        "keep_checkpoints": 1,
        "progress": False,
        "log_every": 10,
        "device": None,
    }
    record = {
        "recipe": "vqvae",
        "model": {
            "class": "vqvae",
            "config": json.loads((FIXTURE / "config.json").read_text()),
        },
        "train": train,
        "prior_train": {**train, "patience": 5},
        "data": {
            "spec": "digits",
            "image_size": None,
            "color": "auto",
            "fit": "crop",
            "val_fraction": 0.1,
            "subset_fraction": 0.25,
            "seed": 0,
            "num_train": 404,
            "num_val": 45,
            "num_test": 0,
        },
        "command": "vqkit train --subset 0.25 --epochs 1",
    }
    (run / "config.json").write_text(json.dumps(record, indent=2))
    return run


def test_run_folders_of_0_1_0_are_read_by_eval_and_sample(tmp_path, capsys):
    run = _old_run_folder(tmp_path)
    spec = read_run_spec(run)
    assert spec.data == DataSpec("digits", subset_fraction=0.25)
    assert spec.model == "vqvae"
    assert spec.prior_train.patience == 5
    assert main(["eval", str(run)]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["eval_split"] == "digits-val"
    assert metrics["num_examples"] == 45
    assert main(["sample", str(run), "-n", "3", "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").is_file()


def _tiny_spec(**changes) -> RunSpec:
    spec = RunSpec(
        data=DataSpec("digits", subset_fraction=0.05),
        model="vqvae-digits",
        model_config={k: v for k, v in TINY.items() if k != "quantizer"},
        train=TrainConfig(max_steps=2, epochs=None, batch_size=16, progress=False),
        prior_train=TrainConfig(max_steps=2, epochs=None, batch_size=16, progress=False),
    )
    for key, value in changes.items():
        setattr(spec, key, value)
    return spec


def test_no_prior_run_saves_reports_and_draws_no_prior_and_keeps_its_folder(tmp_path, capsys):
    spec = _tiny_spec(prior_train=None)
    with pytest.raises(RunSpecError, match="untrained prior"):
        train_run(spec, tmp_path / "refused")
    spec.model_config = {**spec.model_config, "prior": None}
    result = train_run(spec, tmp_path / "run")
    assert result.model.prior is None
    saved = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert saved["prior"] is None
    assert not any(key.startswith("prior") for key in result.metrics)
    assert not (tmp_path / "run" / "samples.png").exists()
    assert not (tmp_path / "run" / "prior").exists()
    assert main(["sample", str(tmp_path / "run")]) == 1
    assert "has no prior" in capsys.readouterr().err
    # The folder now holds this run: a different one is refused, not mixed in.
    spec.train = TrainConfig(max_steps=2, epochs=None, batch_size=16, lr=0.5, progress=False)
    with pytest.raises(RunSpecError, match="differs in train"):
        train_run(spec, tmp_path / "run")


def test_train_vqvae_run_refuses_to_save_an_untrained_prior(tmp_path):
    model = VQVAE(**GRAY, image_size=8)
    data = ArrayDataset(torch.rand(16, 1, 8, 8))
    with pytest.raises(ValueError, match="untrained prior"):
        train_vqvae_run(model, data, None, tmp_path, config=TrainConfig(max_steps=1))


@pytest.mark.parametrize("n", [1, 5, 13])
def test_pictures_work_for_any_number_of_images(tmp_path, n):
    torch.manual_seed(0)
    model = VQVAE(**GRAY, image_size=8)
    data = ArrayDataset(torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(1)))
    pictures = write_pictures(model, data, tmp_path)
    rows = math.ceil(n / 8)
    with Image.open(pictures["reconstructions"]) as image:
        # Short rows are padded with blank tiles so each image sits above its reconstruction.
        assert image.size == ((8 * 10 + 2) * 8 + 110, (2 * rows * 10 + 2) * 8 + 22)
    assert ("interpolations" in pictures) == (n >= 2)
    assert "samples" in pictures
    assert "latent_maps" in pictures


class _MaskedTokenPrior(nn.Module):
    """A prior without an exact likelihood (as MaskGIT): log_prob raises, loss is its own."""

    domain = "codes"
    exact_likelihood = False
    num_classes = None

    def __init__(self, k: int = 4) -> None:
        super().__init__()
        self.num_embeddings = k
        self.logits = nn.Parameter(torch.zeros(k))

    def log_prob(self, x, cond=None):
        raise NotImplementedError("no exact likelihood")

    def loss(self, x, cond=None):
        nll = torch.nn.functional.cross_entropy(self.logits.expand(x.numel(), -1), x.reshape(-1))
        return LossOutput(nll, {"masked_ce": nll.detach()})

    def sample(self, n, size=None, **options):
        return torch.zeros(n, *size, dtype=torch.long)


def test_the_prior_stage_trains_on_prior_loss_not_log_prob():
    codes = ArrayDataset(torch.tensor([0, 0, 0, 1]).repeat(8, 2, 1))  # (8, 2, 4)
    prior = _MaskedTokenPrior()
    trainer = Trainer(
        prior, codes, objective=prior_objective, max_steps=10, batch_size=8, lr=0.3, progress=False
    )
    result = trainer.fit()
    assert "train/masked_ce" in result.history[-1]
    probs = prior.logits.softmax(0)
    assert probs[0] > probs[1] > probs[2]  # moves towards the empirical 3/4, 1/4, 0, 0


def test_image_size_resizes_array_data_with_a_centre_crop(tmp_path):
    x = torch.zeros(3, 1, 4, 8)
    x[..., 2:6] = 1.0  # the centre 4x4 is white, the sides black
    np.save(tmp_path / "wide.npy", x.numpy())
    train, val, test = load_run_data(
        DataSpec(str(tmp_path / "wide.npy"), image_size=[2, 2], val_fraction=0.0)
    )
    assert val is None
    assert test is None
    assert train.data.shape == (3, 1, 2, 2)
    torch.testing.assert_close(train.data, torch.ones(3, 1, 2, 2))
    stretched, _, _ = load_run_data(
        DataSpec(str(tmp_path / "wide.npy"), image_size=[4, 4], fit="stretch", val_fraction=0.0)
    )
    assert stretched.data.shape == (3, 1, 4, 4)
    assert stretched.data[..., 0].max() < 0.5 < stretched.data[..., 1:3].min()


def test_code_legend_swatches_have_the_map_colours():
    from vqkit.train.images import code_legend, palette_colours

    legend = code_legend([5, 0, 7], 8, width=300, columns=8)
    cell = (300 - 12) // 8
    for i, code in enumerate([5, 0, 7]):
        expected = palette_colours(torch.tensor([[[code]]]), 8)[0, :, 0, 0] * 255
        got = legend.getpixel((6 + i * cell + 6, 20 + 8))
        assert tuple(round(v) for v in expected.tolist()) == got
