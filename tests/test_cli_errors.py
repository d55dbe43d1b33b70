"""Every failure of the `vqkit` command is one line on stderr, never a traceback: exit 2 for
usage (bad arguments, missing paths, data or a model spec that cannot be used), 1 for a failure
while running (corrupt files, an unreachable Hub, a missing extra), 130 for Ctrl-C."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import vqkit
from vqkit.cli import main

FIXTURE = Path(__file__).parent / "fixtures" / "release_0_1_0" / "vqvae_digits"


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    """The exit status and stderr of `vqkit ARGV`, asserting the one-line, no-traceback rule."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.count("\n") == 1, err
    assert err.endswith("\n")
    return code, err


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-errors")
    # A run folder around the model 0.1.0 saved (training one here would cost seconds).
    run = root / "run"
    shutil.copytree(FIXTURE, run / "model")
    record = {
        "model": {"class": "vqvae", "config": json.loads((FIXTURE / "config.json").read_text())},
        "train": {"epochs": 1},
        "prior_train": {"epochs": 1},
        "data": {"spec": "digits", "subset_fraction": 0.05},
    }
    (run / "config.json").write_text(json.dumps(record))
    (root / "a_file").write_text("not a folder")
    corrupt = root / "corrupt"
    shutil.copytree(run, corrupt)
    weights = corrupt / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated
    bad_config = root / "bad-config"
    shutil.copytree(run, bad_config)
    (bad_config / "config.json").write_text("{not json")
    bad_model_config = root / "bad-model-config"
    shutil.copytree(run, bad_model_config)
    (bad_model_config / "model" / "config.json").write_text('{"encoder": 5}')
    (root / "garbage.json").write_text('{"data": 1}')
    (root / "no-config").mkdir()
    return root


def _case_id(value):
    return " ".join(value)[:50] if isinstance(value, list) else "-"


USAGE = [
    (["train", "--threads", "0"], "--threads: expected a positive integer, got '0'"),
    (["train", "--threads", "two"], "--threads: expected a positive integer, got 'two'"),
    (["train", "--device", "gpu7"], "not a device: 'gpu7'"),
    (["train", "--out", "{root}/a_file/run"], "'{root}/a_file' is a file, not a folder"),
    (["train", "--data", "{root}/missing"], "is neither a known name"),
    (["train", "--data", "{root}/no-config"], "no image files"),
    (["train", "--val-fraction", "1.5"], "--val-fraction: expected a number in [0, 1)"),
    (["train", "--subset", "0"], "--subset: expected a number in (0, 1]"),
    (["train", "--lr", "nan"], "--lr: expected a positive finite number, got 'nan'"),
    (["train", "--batch-size", "0"], "--batch-size: expected a positive integer"),
    (["train", "--epochs", "-1"], "--epochs: expected a positive integer"),
    (["train", "--model", "vqvea"], "unknown model 'vqvea'"),
    (["train", "--model-config", "{oops"], "--model-config: not valid JSON"),
    (["train", "--model-config", "{root}/missing.json"], "no such JSON file"),
    (["train", "--model-config", "[1, 2]"], "expected a JSON object"),
    (
        ["train", "--model-config", '{"encoder": {"hidden_channels": -3}}', "--steps", "1"],
        "hidden_channels must be a positive integer, got -3",
    ),
    (
        ["train", "--model-config", '{"encoder": {"in_channels": 3}}', "--steps", "1"],
        "the encoder's in_channels is 3 but the data has 1 channel(s)",
    ),
    (["train", "--data", "toy:gaussian_ring", "--image-size", "4"], "image_size applies to images"),
    (["train", "--color", "gray"], "color='gray' applies to image folders only"),
    (["train", "--image-size", "0x8"], "image size must be N or HxW"),
    (["train", "--config", "{root}/nowhere.json"], "--config: no such file"),
    (["train", "--config", "{root}/garbage.json"], "--config:"),
    (["train", "--config", "{root}/run/config.json", "--seed", "3"], "--seed would change it"),
    (["sample", "{root}/missing"], "no such run or model folder"),
    (["sample", "{root}/a_file"], "is a file"),
    (["sample", "{root}/no-config"], "has no config.json"),
    (["sample", "{root}/run", "-n", "0"], "--num: expected a positive integer"),
    (["sample", "{root}/run", "--temperature", "0"], "--temperature: expected a positive"),
    (["sample", "{root}/run", "--nrow", "0"], "--nrow: expected a positive integer"),
    (["sample", "{root}/run", "--out", "{root}/a_file/s.png"], "is a file, not a folder"),
    (["sample", "{root}/run", "--out", "{root}/samples.txt"], "expected an image file name"),
    (["eval", "{root}/missing"], "no such run or model folder"),
    (["eval", "{root}/run", "--batch-size", "0"], "--batch-size: expected a positive integer"),
    (["eval", "{root}/run", "--data", "{root}/missing"], "--data '{root}/missing'"),
    (["eval", "{root}/run", "--image-size", "4"], "--image-size applies with --data"),
    (["list", "--kind", "quantizers"], "invalid choice: 'quantizers'"),
    (["push", "{root}/run", "no-owner"], "repo_id must be 'owner/name'"),
    ([], "the following arguments are required: COMMAND"),
    (["fly"], "invalid choice: 'fly'"),
]


@pytest.mark.parametrize(("argv", "message"), USAGE, ids=_case_id)
def test_usage_errors_exit_2_with_one_line(files, capsys, argv, message):
    argv = [a.replace("{root}", str(files)) for a in argv]
    code, err = run_cli(argv, capsys)
    assert code == 2, err
    assert message.replace("{root}", str(files)) in err
    assert err.startswith("vqkit")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_a_usage_error(capsys):
    code, err = run_cli(["train", "--device", "cuda"], capsys)
    assert code == 2
    assert "CUDA is not available on this machine" in err


RUNTIME = [
    (["sample", "{root}/corrupt"], "cannot load the model of the run '{root}/corrupt'"),
    (["eval", "{root}/corrupt"], "cannot load the model of the run '{root}/corrupt'"),
    (["push", "{root}/corrupt", "user/x"], "cannot load the model of the run"),
    (["eval", "{root}/bad-config"], "config.json is not valid JSON"),
    (["sample", "{root}/bad-model-config"], "cannot load the model of the run"),
    (["sample", "{root}/bad-model-config/model"], "cannot load the model in"),
]


@pytest.mark.parametrize(("argv", "message"), RUNTIME, ids=_case_id)
def test_runtime_failures_exit_1_with_one_line(files, capsys, argv, message):
    code, err = run_cli([a.replace("{root}", str(files)) for a in argv], capsys)
    assert code == 1, err
    assert message.replace("{root}", str(files)) in err


def test_an_unreachable_hub_is_one_line_saying_what_to_do(capsys, monkeypatch, tmp_path):
    import socket

    def refuse(*args, **kwargs):
        raise OSError("Network is unreachable")

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(socket, "create_connection", refuse)
    code, err = run_cli(["sample", "someone/some-model"], capsys)
    assert code == 1
    assert "cannot reach the Hugging Face Hub" in err
    assert "not in the local cache" in err


def test_a_missing_extra_names_the_install(capsys, monkeypatch):
    def needs_pillow(args):
        raise ModuleNotFoundError("No module named 'PIL'", name="PIL")

    monkeypatch.setattr(vqkit.cli.listing, "run", needs_pillow)
    code, err = run_cli(["list"], capsys)
    assert code == 1
    assert "pip install 'vqkit[data]'" in err


def test_ctrl_c_says_how_to_resume_and_exits_130(capsys, monkeypatch, tmp_path):
    import vqkit.train.run

    def interrupted(spec, out, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(vqkit.train.run, "train_run", interrupted)
    code, err = run_cli(["train", "--out", str(tmp_path / "r"), "--no-progress"], capsys)
    assert code == 130
    assert "run the same command again to resume" in err
    assert str(tmp_path / "r") in err


def test_debug_shows_the_traceback(files):
    with pytest.raises(Exception, match="no such run or model folder"):
        main(["--debug", "sample", str(files / "missing")])
    with pytest.raises(Exception, match="no such run or model folder"):
        main(["sample", str(files / "missing"), "--debug"])


def test_no_traceback_from_the_installed_command(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "vqkit", "eval", str(tmp_path / "nothing")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"vqkit {vqkit.__version__}"
