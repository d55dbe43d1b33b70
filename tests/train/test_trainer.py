"""Trainer: exact resume after a kill, atomic checkpoints, early stopping, clipping, bf16, logs."""

import json

import pytest
import torch
from safetensors.torch import load_file
from train_helpers import TinyAE

from vqkit.train import TrainConfig, Trainer
from vqkit.train import checkpoint as ckpt_module
from vqkit.train.checkpoint import (
    find_latest_checkpoint,
    flatten_optimizer_state,
    restore_optimizer_state,
)

SETTINGS = {"epochs": 3, "batch_size": 16, "checkpoint_every": 5, "progress": False, "lr": 3e-3}


class Killed(BaseException):
    """Stands for SIGKILL: nothing catches it and no cleanup runs."""


def _kill_at(step):
    def callback(trainer, s, logs):
        if s == step:
            raise Killed

    return callback


def _run(out, data, callbacks=(), **overrides):
    train, val = data
    torch.manual_seed(123)  # a different init from the checkpoint's: resume must overwrite it
    model = TinyAE()
    result = Trainer(
        model, train, val, out_dir=out, callbacks=callbacks, **(SETTINGS | overrides)
    ).fit()
    return model, result


def _strip_time(history):
    return [{k: v for k, v in r.items() if k != "time"} for r in history]


def test_resume_after_kills_reproduces_the_uninterrupted_run(tmp_path, tiny_data):
    reference, ref_result = _run(tmp_path / "a", tiny_data)
    # 6 steps per epoch, checkpoints every 5 steps and at each epoch end; kills land mid-epoch,
    # right on a checkpoint, right after an epoch end, and one step before the end.
    for step in (3, 10, 12, 13, 17):
        with pytest.raises(Killed):
            _run(tmp_path / "b", tiny_data, callbacks=[_kill_at(step)])
    resumed, result = _run(tmp_path / "b", tiny_data)
    assert result.resumed_from == 15
    assert result.steps == ref_result.steps == 18
    for key, value in reference.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    assert _strip_time(result.history) == _strip_time(ref_result.history)
    lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert _strip_time([json.loads(x) for x in lines]) == _strip_time(ref_result.history)


def test_kill_while_writing_a_checkpoint(tmp_path, tiny_data, monkeypatch):
    reference, _ = _run(tmp_path / "a", tiny_data)
    real_replace = ckpt_module.os.replace
    calls = {"n": 0}

    def dying_replace(src, dst):
        calls["n"] += 1
        if calls["n"] == 3:  # the third checkpoint is torn: its folder never gets its name
            raise Killed
        return real_replace(src, dst)

    monkeypatch.setattr(ckpt_module.os, "replace", dying_replace)
    with pytest.raises(Killed):
        _run(tmp_path / "b", tiny_data)
    monkeypatch.setattr(ckpt_module.os, "replace", real_replace)
    root = tmp_path / "b" / "checkpoints"
    assert any(p.name.startswith(".tmp-ckpt-") for p in root.iterdir())
    assert find_latest_checkpoint(root).name == "ckpt-000001"
    resumed, result = _run(tmp_path / "b", tiny_data)
    assert result.resumed_from == 6
    for key, value in reference.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    assert not any(p.name.startswith(".tmp-") for p in root.iterdir())


def test_finished_run_is_not_trained_again(tmp_path, tiny_data):
    first, _ = _run(tmp_path, tiny_data)
    again, result = _run(tmp_path, tiny_data, callbacks=[_kill_at(1)])  # would raise if it trained
    assert result.steps == 18
    assert all(
        torch.equal(a, b)
        for a, b in zip(first.state_dict().values(), again.state_dict().values(), strict=True)
    )


def test_checkpoint_is_safetensors_and_json_only(tmp_path, tiny_data):
    _run(tmp_path, tiny_data, epochs=1)
    latest = find_latest_checkpoint(tmp_path / "checkpoints")
    names = sorted(p.name for p in latest.iterdir())
    assert names == [
        "best_model.safetensors",
        "model.safetensors",
        "trainer.safetensors",
        "trainer_state.json",
    ]
    tensors = load_file(latest / "trainer.safetensors")
    assert {"rng.torch", "rng.numpy"} <= set(tensors)
    assert any(k.endswith(".exp_avg_sq") for k in tensors)
    state = json.loads((latest / "trainer_state.json").read_text())
    assert state["finished"] is True
    assert state["step"] == 6


def test_optimizer_state_round_trip():
    torch.manual_seed(0)
    model = TinyAE()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.8, 0.95), weight_decay=0.1)
    for _ in range(3):
        opt.zero_grad()
        model(torch.rand(4, 1, 8, 8)).loss.backward()
        opt.step()
    tensors, meta = flatten_optimizer_state(opt)
    json.dumps(meta)  # the non-tensor part must be JSON
    fresh = torch.optim.AdamW(model.parameters(), lr=5.0)
    restore_optimizer_state(fresh, tensors, json.loads(json.dumps(meta)))
    a, b = opt.state_dict(), fresh.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for index, per_param in a["state"].items():
        for key, value in per_param.items():
            assert torch.equal(value, b["state"][index][key])


def test_early_stopping_restores_the_best_weights(tiny_data):
    train, val = tiny_data
    torch.manual_seed(0)
    model = TinyAE()
    after_epoch = {}

    def objective(m, x):
        out = m(x)
        if not m.training:  # validation gets worse every epoch: the first epoch is the best
            out.loss = out.loss * 0 + len(after_epoch)
        return out

    def remember(trainer, step, logs):
        if step % 6 == 0:
            after_epoch[step // 6] = {k: v.clone() for k, v in trainer.model.state_dict().items()}

    result = Trainer(
        model,
        train,
        val,
        objective=objective,
        callbacks=[remember],
        epochs=20,
        batch_size=16,
        patience=2,
        progress=False,
    ).fit()
    assert result.stopped_early
    assert [r["epoch"] for r in result.history] == [1, 2, 3]
    assert result.best["epoch"] == 1
    for key, value in after_epoch[1].items():
        assert torch.equal(model.state_dict()[key], value)


def test_gradient_clipping(tiny_data):
    train, _ = tiny_data
    norms = {}

    def record(trainer, step, logs):
        grads = [p.grad.norm() for p in trainer.model.parameters()]
        norms.setdefault(trainer.config.grad_clip, []).append(float(torch.stack(grads).norm()))

    for clip in (None, 1e-3):
        torch.manual_seed(0)
        Trainer(
            TinyAE(),
            train,
            callbacks=[record],
            max_steps=4,
            epochs=None,
            batch_size=16,
            grad_clip=clip,
            progress=False,
        ).fit()
    assert min(norms[None]) > 1e-2
    assert max(norms[1e-3]) <= 1e-3 * (1 + 1e-4)


def test_bf16_autocast_and_cosine_schedule(tiny_data):
    train, _ = tiny_data
    seen, lrs = [], []

    def objective(m, x):
        out = m(x)
        seen.append(out.reconstruction.dtype)
        return out

    def record(trainer, step, logs):
        lrs.append(trainer.optimizer.param_groups[0]["lr"])

    Trainer(
        TinyAE(),
        train,
        objective=objective,
        callbacks=[record],
        max_steps=6,
        epochs=None,
        batch_size=16,
        precision="bf16",
        lr_schedule="cosine",
        warmup_steps=2,
        lr=1.0,
        progress=False,
    ).fit()
    assert set(seen) == {torch.bfloat16}
    assert lrs[:2] == [0.5, 1.0]  # linear warm-up
    assert lrs[2] == pytest.approx(1.0)
    assert lrs[-1] == pytest.approx(0.5 * (1 + torch.cos(torch.tensor(3 / 4 * torch.pi)).item()))


def test_configuration_errors(tiny_data):
    train, _val = tiny_data
    with pytest.raises(ValueError, match="optimizer must be 'adam' or 'adamw'"):
        TrainConfig(optimizer="sgd")
    with pytest.raises(ValueError, match="set epochs, max_steps, or both"):
        TrainConfig(epochs=None)
    with pytest.raises(ValueError, match="precision must be"):
        TrainConfig(precision="fp16")
    with pytest.raises(TypeError, match="unknown training option"):
        Trainer(TinyAE(), train, epoch=3)
    with pytest.raises(ValueError, match=r"patience .* needs val_data"):
        Trainer(TinyAE(), train, patience=2)
    with pytest.raises(TypeError, match="scalar tensor or an object with a scalar `loss`"):
        Trainer(
            TinyAE(), train, objective=lambda m, x: {"loss": 1}, max_steps=1, progress=False
        ).fit()


def test_same_seed_same_weights_other_seed_other_weights(tiny_data):
    def weights(seed):
        torch.manual_seed(0)  # same initial weights; the trainer's seed drives order and dropout
        model = TinyAE()
        Trainer(
            model, tiny_data[0], max_steps=8, epochs=None, batch_size=16, seed=seed, progress=False
        ).fit()
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    assert torch.equal(weights(1), weights(1))
    assert not torch.equal(weights(1), weights(2))


def _png_split(root, n, seed):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(root / f"{i:03d}.png")
    return root


def test_resume_with_workers_reproduces_the_in_process_run(tmp_path):
    from vqkit.data import load_image_folder

    train_dir = _png_split(tmp_path / "data" / "train", 96, seed=0)
    val_dir = _png_split(tmp_path / "data" / "val", 32, seed=1)
    in_memory = (load_image_folder(train_dir), load_image_folder(val_dir))
    lazy = (load_image_folder(train_dir, lazy=True), load_image_folder(val_dir, lazy=True))
    reference, ref_result = _run(tmp_path / "a", in_memory)  # decoded up front, no workers
    # Killed before a checkpoint (resumes at an epoch start) and one step before the end
    # (resumes in the middle of the last epoch), with 2 workers each time.
    for step in (10, 17):
        with pytest.raises(Killed):
            _run(tmp_path / "b", lazy, callbacks=[_kill_at(step)], num_workers=2)
    resumed, result = _run(tmp_path / "b", lazy, num_workers=2)
    assert result.resumed_from == 15
    assert result.steps == ref_result.steps == 18
    for key, value in reference.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key
    # The in-memory run without workers and the lazy one with 2 agree: the data order does not
    # depend on the number of workers.
    assert _strip_time(result.history) == _strip_time(ref_result.history)


def test_worker_options_are_checked(tiny_data):
    for bad, error in ((-1, ValueError), (1.5, TypeError), (True, TypeError)):
        with pytest.raises(error, match="num_workers must be"):
            TrainConfig(num_workers=bad)
    with pytest.raises(TypeError, match="pin_memory must be True or False"):
        TrainConfig(pin_memory="yes")
    assert TrainConfig(num_workers=2, pin_memory=False).to_dict()["num_workers"] == 2
