"""The `vqkit` command end to end on tiny settings: train, sample, eval, list, help, errors."""

import json
import subprocess
import sys

import pytest
from PIL import Image

from vqkit.cli import main

# A VQ-VAE small enough to train on a few hundred digits in seconds.
TINY = json.dumps(
    {
        "encoder": {"hidden_channels": 8, "residual_hidden_channels": 4},
        "decoder": {"hidden_channels": 8, "residual_hidden_channels": 4},
        "prior": {"hidden_channels": 8, "num_layers": 2, "head_channels": 16},
    }
)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    argv = [
        "train",
        "--out",
        str(out),
        "--subset",
        "0.25",
        "--epochs",
        "2",
        "--prior-epochs",
        "1",
        "--model-config",
        TINY,
        "--no-progress",
    ]
    assert main(argv) == 0
    return out


def test_train_writes_the_run_folder(run, capsys):
    for name in (
        "config.json",
        "metrics.json",
        "model/config.json",
        "model/model.safetensors",
        "vqvae/metrics.jsonl",
        "prior/metrics.jsonl",
    ):
        assert (run / name).is_file(), name
    for name in ("reconstructions", "samples", "interpolations", "latent_maps", "loss_curves"):
        with Image.open(run / f"{name}.png") as image:
            assert image.width > 64
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 < metrics["ssim"] <= 1
    assert metrics["prior_bits_per_dim"] == pytest.approx(
        metrics["prior_nll"] / (4 * 4 * 0.6931471805599453)
    )
    assert metrics["eval_split"] == "digits-val"
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["class"] == "vqvae"
    assert config["data"]["num_train"] + config["data"]["num_val"] == round(1797 * 0.25)
    assert config["prior_train"]["epochs"] == 1


def test_train_again_resumes_and_does_not_retrain(run, capsys):
    before = (run / "vqvae" / "metrics.jsonl").read_text()
    assert (
        main(
            [
                "train",
                "--out",
                str(run),
                "--subset",
                "0.25",
                "--epochs",
                "2",
                "--prior-epochs",
                "1",
                "--model-config",
                TINY,
                "--no-progress",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "resuming vqvae from" in out
    assert "pictures:" in out
    assert (run / "vqvae" / "metrics.jsonl").read_text() == before


def test_sample_and_eval(run, capsys, tmp_path):
    target = tmp_path / "s.png"
    assert main(["sample", str(run), "-n", "6", "--nrow", "3", "--out", str(target)]) == 0
    with Image.open(target) as image:
        # 3 x 2 tiles of 8x8 digits upscaled 8x with 2-pixel padding.
        assert image.size == ((3 * 10 + 2) * 8, (2 * 10 + 2) * 8)
    capsys.readouterr()
    assert main(["eval", str(run)]) == 0
    printed = json.loads(capsys.readouterr().out)
    saved = json.loads((run / "metrics.json").read_text())
    for key in ("mse", "psnr", "ssim", "codebook_usage", "codebook_perplexity", "prior_nll"):
        assert printed[key] == pytest.approx(saved[key], rel=1e-6), key


def test_list(capsys):
    assert main(["list", "vqvae-*"]) == 0
    out = capsys.readouterr().out
    assert "vqvae-digits" in out
    assert "datasets:" in out
    assert main(["list", "--kind", "quantizer"]) == 0
    assert "vq" in capsys.readouterr().out.split()


@pytest.mark.parametrize("command", ["train", "sample", "eval", "push", "list"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: vqkit " + command in capsys.readouterr().out


def test_errors_are_reported_clearly(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["train", "--data", str(tmp_path / "empty"), "--out", str(tmp_path / "r")]) == 2
    assert "no image files" in capsys.readouterr().err
    assert main(["sample", str(tmp_path / "missing")]) == 2
    assert "vqkit sample: error:" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--model-config", "{not json"])


def test_python_dash_m():
    done = subprocess.run(
        [sys.executable, "-m", "vqkit", "list", "vqvae-digits"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("vqvae-digits")


def test_push_hands_the_run_model_to_the_hub(run, monkeypatch, capsys):
    import vqkit

    calls = []

    def fake_push(self, repo_id, **kwargs):
        calls.append((type(self).__name__, repo_id, kwargs))
        return f"https://huggingface.co/{repo_id}/commit/abc"

    monkeypatch.setattr(vqkit.VQVAE, "push_to_hub", fake_push)
    assert main(["push", str(run), "user/digits", "--private", "--message", "first"]) == 0
    assert calls == [
        ("VQVAE", "user/digits", {"private": True, "token": None, "commit_message": "first"})
    ]
    assert "user/digits/commit/abc" in capsys.readouterr().out
