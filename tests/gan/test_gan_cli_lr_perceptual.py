"""``vqkit train --disc-lr / --perceptual``: into RunSpec.gan and config.json, replayed by
``--config``, checked on resume, refused for other models, on contradictions and without the
LPIPS weights, always in one line."""

import json

import pytest
import torch
from safetensors.torch import save_file

from vqkit.cli import main
from vqkit.losses.lpips import LPIPS
from vqkit.train.checkpoint import find_latest_checkpoint
from vqkit.train.run import GANSpec, RunSpec, read_run_spec

BASE = ["train", "--subset", "0.05", "--batch-size", "8", "--no-prior", "--no-progress"]
# 16x16 digits: LPIPS' VGG16 needs at least 16 pixels a side.
SMALL = ["--model", "vqgan-digits", "--image-size", "16", "--model-config"]
CONFIG = '{"image_size": [16, 16], "disc_start": 1}'


def _lpips_file(path, seed):
    torch.manual_seed(seed)
    state = LPIPS(random_init=True).state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, path)
    return path


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lpips")
    return _lpips_file(folder / "a.safetensors", 0), _lpips_file(folder / "b.safetensors", 1)


def _checkpoint_config(out):
    latest = find_latest_checkpoint(out / "vqvae" / "checkpoints")
    return json.loads((latest / "trainer_state.json").read_text())["config"]


def test_flags_reach_config_json_the_trainer_and_a_replay(tmp_path, weights, capsys):
    out = tmp_path / "run"
    argv = [*BASE, *SMALL, CONFIG, "--steps", "2", "--disc-lr", "3e-4"]
    assert main([*argv, "--perceptual", str(weights[0]), "--out", str(out)]) == 0
    record = json.loads((out / "config.json").read_text())
    assert record["gan"] == {"disc_lr": 3e-4, "perceptual": str(weights[0])}
    # The preset has no perceptual loss; --perceptual turns on taming's weight 1.0.
    assert record["model"]["overrides"]["perceptual_weight"] == 1.0
    assert record["model"]["config"]["perceptual_weight"] == 1.0
    saved = _checkpoint_config(out)
    assert saved["disc_lr"] == 3e-4
    assert saved["perceptual"].startswith("LPIPS:sha256:")
    lines = [json.loads(x) for x in (out / "vqvae" / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["train/perceptual"] > 0
    assert read_run_spec(out).gan == GANSpec(disc_lr=3e-4, perceptual=str(weights[0]))
    # --config replays the run, GAN settings included.
    again = tmp_path / "again"
    assert main(["train", "--config", str(out / "config.json"), "--out", str(again)]) == 0
    replay = json.loads((again / "config.json").read_text())
    assert replay["gan"] == record["gan"]
    assert _checkpoint_config(again) == saved
    first = json.loads((out / "metrics.json").read_text())
    second = json.loads((again / "metrics.json").read_text())
    assert {k: v for k, v in first.items() if k != "time"} == {
        k: v for k, v in second.items() if k != "time"
    }
    capsys.readouterr()
    # Resuming into the folder with another discriminator rate or other LPIPS weights: refused.
    code = main([*argv[:-1], "1e-3", "--perceptual", str(weights[0]), "--out", str(out)])
    assert code == 2
    err = capsys.readouterr().err
    assert "holds a different run" in err
    assert "gan" in err
    assert "Traceback" not in err
    assert main([*argv, "--perceptual", str(weights[1]), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "perceptual=" in err
    assert "LPIPS:sha256:" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--model", "vqvae-digits", "--disc-lr", "1e-4"], "--disc-lr applies to VQ-GAN"),
        (["--model", "vqvae", "--perceptual", "w.safetensors"], "--perceptual applies to VQ-GAN"),
        (
            [*SMALL, '{"perceptual_weight": 0}', "--perceptual", "w.safetensors"],
            "--perceptual 'w.safetensors' contradicts --model-config perceptual_weight=0",
        ),
        (
            ["--model", "vqgan-digits", "--model-config", '{"disc_lr": 1}', "--disc-lr", "0.1"],
            "--disc-lr 0.1 contradicts --model-config disc_lr=1",
        ),
        (["--model", "vqgan-digits", "--disc-lr", "0"], "--disc-lr"),
        (["--model", "vqgan-digits", "--disc-lr", "nan"], "--disc-lr"),
        # Without the weights file: what to get and the converter command.
        (
            [*SMALL, CONFIG, "--perceptual", "missing.safetensors"],
            "no file 'missing.safetensors'",
        ),
        (
            ["--model", "vqgan-digits", "--perceptual", "w.safetensors"],
            "LPIPS needs images of at least 16×16 (VGG16 pools four times); vqgan-digits is "
            "built for 8×8",
        ),
        (
            [*SMALL, '{"image_size": [16, 16], "perceptual_weight": 0.5}'],
            "vqgan-digits has perceptual_weight=0.5: name its LPIPS weights",
        ),
    ],
)
def test_refused_in_one_line(tmp_path, capsys, argv, match):
    try:
        code = main([*BASE, "--epochs", "1", *argv, "--out", str(tmp_path / "run")])
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert match in err
    if "LPIPS weights" in match or "missing" in match:
        assert "vgg16-397923af.pth" in err
        assert "python -m vqkit.losses.lpips" in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) <= 3  # one line (argparse: usage and the error)
    assert not (tmp_path / "run").exists()


def test_config_replay_refuses_the_flags(tmp_path, capsys):
    code = main(["train", "--config", str(tmp_path / "config.json"), "--disc-lr", "1e-4"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--config replays a run exactly; --disc-lr would change it" in err


def test_run_spec_round_trip_and_checks(weights):
    spec = RunSpec(model="vqgan-digits", gan=GANSpec(disc_lr=1e-4, perceptual=str(weights[0])))
    assert RunSpec.from_dict(spec.to_dict()) == spec
    assert "gan" not in RunSpec().to_dict()  # other runs' config.json are unchanged
    with pytest.raises(ValueError, match="disc_lr"):
        GANSpec(disc_lr=0.0)
    with pytest.raises(TypeError, match="perceptual must be the path"):
        GANSpec(perceptual="")
    with pytest.raises(TypeError, match="gan must be a GANSpec"):
        RunSpec(gan={"disc_lr": 1e-4})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown setting"):
        RunSpec.from_dict({**spec.to_dict(), "gan": {"disc_rate": 1}})
