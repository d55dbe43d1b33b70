"""Checkpoints under damage and concurrency: checksums catch bit flips and truncation, a corrupt
newest checkpoint falls back to the previous one, numbers order checkpoints, a run folder has one
writer, and a resume with other settings is refused."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
from train_helpers import TinyAE

import vqkit
from vqkit.train import Trainer
from vqkit.train.checkpoint import (
    CorruptCheckpointError,
    ResumeMismatchError,
    RunFolderInUseError,
    check_resume,
    find_latest_checkpoint,
    list_checkpoints,
    load_latest_checkpoint,
    run_folder_lock,
    save_checkpoint,
    verify_checkpoint,
)

SETTINGS = {"batch_size": 16, "progress": False, "lr": 3e-3}


def _train(out, data, **overrides):
    train, val = data
    torch.manual_seed(123)
    model = TinyAE()
    result = Trainer(model, train, val, out_dir=out, **(SETTINGS | overrides)).fit()
    return model, result


def _save(root, index, model=None):
    model = model or TinyAE()
    optimizer = torch.optim.Adam(model.parameters())
    state = {"step": index, "config": {"batch_size": 16, "seed": 0}}
    return save_checkpoint(root, index, model=model, optimizer=optimizer, state=state, keep=2)


def _flip_a_bit(path, offset=-3):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x10
    path.write_bytes(bytes(data))


# ------------------------------------------------------------------------------- checksums
def test_every_file_has_a_checksum_and_verifies(tmp_path):
    path = _save(tmp_path, 0)
    state = json.loads((path / "trainer_state.json").read_text())
    assert sorted(state["files"]) == ["model.safetensors", "trainer.safetensors"]
    assert all(len(entry["sha256"]) == 64 for entry in state["files"].values())
    assert verify_checkpoint(path)["step"] == 0


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (lambda p: _flip_a_bit(p / "model.safetensors"), r"model\.safetensors does not match"),
        (lambda p: _flip_a_bit(p / "trainer.safetensors", 200), r"trainer\.safetensors does not"),
        (
            lambda p: (p / "model.safetensors").write_bytes(
                (p / "model.safetensors").read_bytes()[:50]
            ),
            r"model\.safetensors is 50 bytes, \d+ were written \(truncated\?\)",
        ),
        (lambda p: (p / "trainer.safetensors").unlink(), r"trainer\.safetensors is missing"),
        (
            lambda p: (p / "trainer_state.json").write_text(
                (p / "trainer_state.json").read_text().replace('"step": 0', '"step": 7')
            ),
            r"trainer_state\.json was altered",
        ),
        (lambda p: (p / "trainer_state.json").write_text('{"step": '), "is not readable JSON"),
    ],
)
def test_damage_is_detected_and_named(tmp_path, damage, match):
    path = _save(tmp_path, 0)
    damage(path)
    with pytest.raises(CorruptCheckpointError, match=match):
        verify_checkpoint(path)


def test_corrupt_newest_falls_back_to_the_previous_with_a_warning(tmp_path):
    torch.manual_seed(0)
    first = TinyAE()
    _save(tmp_path, 0, first)
    newest = _save(tmp_path, 1)
    _flip_a_bit(newest / "model.safetensors")
    model = TinyAE()
    with pytest.warns(
        RuntimeWarning, match=r"ckpt-000001 is corrupt, .* previous intact one, .*ckpt-000000"
    ):
        state, _ = load_latest_checkpoint(tmp_path, model=model)
    assert state["step"] == 0
    for key, value in first.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


def test_no_intact_checkpoint_is_an_error_not_a_fresh_start(tmp_path):
    path = _save(tmp_path, 0)
    _flip_a_bit(path / "model.safetensors")
    with pytest.raises(
        CorruptCheckpointError, match=r"no intact checkpoint in .*Delete the damaged"
    ):
        load_latest_checkpoint(tmp_path, model=TinyAE())


def test_trainer_resumes_from_the_intact_checkpoint(tmp_path, tiny_data):
    _train(tmp_path, tiny_data, epochs=2, keep_checkpoints=2)
    newest = find_latest_checkpoint(tmp_path / "checkpoints")
    _flip_a_bit(newest / "trainer.safetensors", 100)
    with pytest.warns(RuntimeWarning, match="is corrupt"):
        _, result = _train(tmp_path, tiny_data, epochs=3, keep_checkpoints=2)
    assert result.resumed_from == 6  # the end of epoch 1: the checkpoint before the final one
    assert result.steps == 18


# ----------------------------------------------------------------------------- ordering
def test_checkpoints_are_ordered_by_number_not_by_name(tmp_path):
    for index in (999_998, 999_999):
        _save(tmp_path, index)
    _save(tmp_path, 1_000_000)  # keep=2: the oldest goes, not the newest
    assert [p.name for p in list_checkpoints(tmp_path)] == ["ckpt-999999", "ckpt-1000000"]
    assert find_latest_checkpoint(tmp_path).name == "ckpt-1000000"
    model = TinyAE()
    optimizer = torch.optim.Adam(model.parameters())
    save_checkpoint(
        tmp_path, 1_000_001, model=model, optimizer=optimizer, state={"step": 1}, keep=1
    )
    assert [p.name for p in list_checkpoints(tmp_path)] == ["ckpt-1000001"]


# ------------------------------------------------------------------------------ one writer
HOLDER = textwrap.dedent(
    """
    import sys
    from vqkit.train.checkpoint import run_folder_lock
    with run_folder_lock(sys.argv[1]):
        print("locked", flush=True)
        sys.stdin.read()  # hold the lock until the parent closes stdin (or kills us)
    """
)


def test_a_second_process_is_refused_and_a_dead_ones_lock_is_taken_over(tmp_path, tiny_data):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunFolderInUseError, match=rf"run folder .* in use by PID {holder.pid}"):
            _train(tmp_path, tiny_data, epochs=1)
        assert not (tmp_path / "checkpoints").exists()  # refused before writing anything
        os.kill(holder.pid, signal.SIGKILL)  # no cleanup runs: the lock file stays behind
        holder.wait(timeout=30)
    finally:
        if holder.poll() is None:
            holder.kill()
    assert (tmp_path / ".lock").exists()
    _, result = _train(tmp_path, tiny_data, epochs=1)  # the stale lock is taken over
    assert result.steps == 6


def test_the_lock_is_released_after_a_run_and_refuses_a_second_holder(tmp_path):
    second = pytest.raises(RunFolderInUseError, match=f"in use by PID {os.getpid()}")
    with run_folder_lock(tmp_path), second, run_folder_lock(tmp_path):
        pass
    with run_folder_lock(tmp_path):  # released
        pass


# ----------------------------------------------------------------------- resume settings
@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"batch_size": 32}, r"written with batch_size=16, this run has batch_size=32"),
        ({"seed": 1}, r"written with seed=0, this run has seed=1"),
    ],
)
def test_resume_with_other_settings_is_refused(tmp_path, tiny_data, change, match):
    _train(tmp_path, tiny_data, epochs=1)
    with pytest.raises(ResumeMismatchError, match=match):
        _train(tmp_path, tiny_data, epochs=2, **change)
    _, result = _train(tmp_path, tiny_data, epochs=2)  # same settings: resumes
    assert result.resumed_from == 6


def test_resume_with_another_model_config_is_refused(tmp_path):
    model = vqkit.VAE(data_dim=2, latent_dim=2, hidden_dims=[8])
    path = save_checkpoint(
        tmp_path,
        0,
        model=model,
        optimizer=torch.optim.Adam(model.parameters()),
        state={"step": 0, "config": {"batch_size": 16, "seed": 0}},
    )
    state = verify_checkpoint(path)
    assert state["model_config"]["hidden_dims"] == [8]
    other = vqkit.VAE(data_dim=2, latent_dim=2, hidden_dims=[16])
    with pytest.raises(
        ResumeMismatchError, match=r"hidden_dims: checkpoint \[8\], now \[16\]\); use the same"
    ):
        check_resume(state, checkpoint=path, config=None, model=other)
    check_resume(state, checkpoint=path, config={"batch_size": 16, "seed": 0}, model=model)
