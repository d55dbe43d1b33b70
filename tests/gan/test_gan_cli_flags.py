"""``vqkit train --disc-start / --disc-weight``: written into a VQ-GAN's model config, refused
for other models and when they contradict --model-config."""

import json

import pytest

from vqkit.cli import main

BASE = ["train", "--subset", "0.05", "--epochs", "1", "--batch-size", "8", "--no-prior"]


def test_flags_reach_the_model_config_and_the_trainer(tmp_path):
    out = tmp_path / "run"
    argv = [*BASE, "--model", "vqgan-digits", "--disc-start", "2", "--disc-weight", "0.3"]
    assert main([*argv, "--no-progress", "--out", str(out)]) == 0
    spec = json.loads((out / "config.json").read_text())
    assert spec["model"]["overrides"] == {"disc_start": 2, "disc_weight": 0.3, "prior": None}
    assert spec["model"]["config"]["disc_start"] == 2
    assert spec["model"]["config"]["disc_weight"] == 0.3
    first = json.loads((out / "vqvae" / "metrics.jsonl").read_text().splitlines()[0])
    assert 0 < first["train/disc_active"] < 1  # off for steps 0 and 1, on from step 2


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--model", "vqvae-digits", "--disc-start", "5"], "--disc-start applies to VQ-GAN"),
        (["--model", "vqvae", "--disc-weight", "0.5"], "--disc-weight applies to VQ-GAN"),
        (
            ["--model", "vqgan-digits", "--disc-start", "5", "--model-config", '{"disc_start": 3}'],
            "--disc-start 5 contradicts --model-config disc_start=3",
        ),
        (["--model", "vqgan-digits", "--disc-weight", "-1"], "--disc-weight"),
        (["--model", "vqgan-digits", "--disc-start", "1.5"], "--disc-start"),
    ],
)
def test_refused_in_one_line(tmp_path, capsys, argv, match):
    try:
        code = main([*BASE, *argv, "--out", str(tmp_path / "run")])
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert match in err
    assert "Traceback" not in err
    assert not (tmp_path / "run").exists()
