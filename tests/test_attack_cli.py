"""Independent re-attack of issue 12, CLI area: every bad option of every subcommand is one line
on stderr, no traceback, exit 2 for usage. Complements tests/test_cli_errors.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from vqkit.cli import main

FIXTURE = Path(__file__).parent / "fixtures" / "release_0_1_0" / "vqvae_digits"

TRAIN_BAD = [
    ["--threads", "0"],
    ["--threads", "abc"],
    ["--device", "banana"],
    ["--model", "nonexistent_model"],
    ["--model-config", "{bad"],
    ["--model-config", "[]"],
    ["--config", "/nonexistent.json"],
    ["--steps", "-1"],
    ["--epochs", "0"],
    ["--batch-size", "0"],
    ["--lr", "nan"],
    ["--lr", "inf"],
    ["--val-fraction", "1.5"],
    ["--val-fraction", "nan"],
    ["--subset", "2"],
    ["--image-size", "8.5"],
    ["--grad-clip", "nan"],
    ["--weight-decay", "-1"],
    ["--warmup-steps", "-1"],
    ["--checkpoint-every", "0"],
    ["--prior-lr", "nan"],
    ["--seed", "1.5"],
    ["--data", "nonexistent_zz"],
]


def _run(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.count("\n") == 1, err
    return code, err


@pytest.mark.parametrize("bad", TRAIN_BAD, ids=lambda b: " ".join(b))
def test_train_bad_option_is_one_usage_line(bad, capsys, tmp_path):
    code, err = _run(["train", "--out", str(tmp_path / "run"), *bad], capsys)
    assert code == 2
    assert bad[0].lstrip("-") in err or "data" in err
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("attack-cli")
    shutil.copytree(FIXTURE, root / "run" / "model")
    (root / "afile").write_text("x")
    return root


@pytest.mark.parametrize(
    "bad",
    [
        ["-n", "0"],
        ["-n", "-1"],
        ["--nrow", "0"],
        ["--temperature", "0"],
        ["--temperature", "nan"],
        ["--temperature", "-1"],
        ["--seed", "abc"],
        ["--threads", "0"],
        ["--device", "banana"],
    ],
    ids=lambda b: " ".join(b),
)
def test_sample_bad_option_is_one_usage_line(bad, run_dir, capsys):
    code, err = _run(["sample", str(run_dir / "run"), *bad], capsys)
    assert code == 2
    assert bad[0].lstrip("-") in err


def test_sample_and_eval_paths(run_dir, capsys):
    afile = run_dir / "afile"
    for argv, needle in [
        (["sample", "/nonexistent/run"], "no such run"),
        (["sample", str(afile)], "is a file"),
        (["sample", str(run_dir / "run"), "--out", str(afile / "x.png")], "is a file"),
        (["eval", "/nonexistent/run"], "no such run"),
        (["eval", str(run_dir / "run"), "--batch-size", "0"], "batch-size"),
        (["eval", str(run_dir / "run"), "--image-size", "-1"], "image-size"),
        (["eval", str(run_dir / "run"), "--out", str(afile / "m.json")], "is a file"),
        (["push", str(run_dir / "run"), "badrepo"], "owner/name"),
        (["list", "--kind", "nonsense"], "invalid choice"),
        (["nonsense_command"], "invalid choice"),
    ]:
        code, err = _run(argv, capsys)
        assert code == 2, (argv, err)
        assert needle in err, (argv, err)


def test_sample_too_many_is_out_of_memory_not_allocator_text(run_dir, capsys):
    code, err = _run(["sample", str(run_dir / "run" / "model"), "-n", "100000000000"], capsys)
    assert code == 1
    assert "out of memory" in err
    assert "--num" in err
    assert "alloc_cpu" not in err


def test_push_unreachable_hub_says_what_to_check(run_dir, capsys, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    code, err = _run(["push", str(run_dir / "run" / "model"), "user/repo", "--token", "x"], capsys)
    assert code == 1
    assert "cannot push to 'user/repo'" in err
    assert "network" in err
