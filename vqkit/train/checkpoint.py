"""Atomic, pickle-free training checkpoints: safetensors for tensors, JSON for everything else.

A checkpoint is a folder ``checkpoints/ckpt-000007/`` holding

- ``model.safetensors``: the model's ``state_dict``;
- ``trainer.safetensors``: the optimizer's per-parameter tensors (``optimizer.<param>.<key>``)
  and the random-number-generator states (``rng.torch``, ``rng.cuda.<i>``, ``rng.numpy``);
- ``best_model.safetensors``: the best weights so far (only with validation);
- ``trainer_state.json``: step, epoch, position in the epoch, running sums, history, early-stopping
  state, the optimizer's param groups and non-tensor state, the Python RNG state.

It is written into a hidden temporary folder, flushed to disk, then renamed into place, so a run
killed at any moment leaves either the previous checkpoints or a complete new one, never a torn
one. Loading reads only safetensors and JSON: nothing is unpickled.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

__all__ = [
    "find_latest_checkpoint",
    "flatten_optimizer_state",
    "load_checkpoint",
    "restore_optimizer_state",
    "save_checkpoint",
    "write_json_atomic",
]

_CKPT = re.compile(r"^ckpt-(\d{6,})$")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def write_json_atomic(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` through a temporary file and ``os.replace``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _cpu_tensors(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # Clones break storage sharing (tied weights), which safetensors refuses to write.
    return {k: v.detach().to("cpu").clone().contiguous() for k, v in state.items()}


def flatten_optimizer_state(optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    """Split ``optimizer.state_dict()`` into safetensors-ready tensors and JSON-ready rest.

    Returns:
        ``(tensors, meta)``: tensors under ``"<param index>.<key>"``; ``meta`` with
        ``param_groups`` and the non-tensor per-parameter values.
    """
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, per_param in state["state"].items():
        for key, value in per_param.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def restore_optimizer_state(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict
) -> None:
    """Inverse of :func:`flatten_optimizer_state`: load the pieces back into ``optimizer``."""
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    for index, values in meta["scalars"].items():
        state.setdefault(int(index), {}).update(values)
    groups = [dict(g) for g in meta["param_groups"]]
    for group in groups:
        for key, value in group.items():
            if key == "betas" and isinstance(value, list):
                group[key] = tuple(value)
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def _numpy():
    try:
        import numpy as np
    except ImportError:  # numpy is optional: its RNG state is then simply not saved
        return None
    return np


def _rng_state() -> tuple[dict[str, torch.Tensor], dict]:
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    py_version, py_state, py_gauss = random.getstate()
    meta: dict[str, Any] = {
        "python": {"version": py_version, "state": list(py_state), "gauss": py_gauss}
    }
    np = _numpy()
    if np is not None:
        kind, keys, pos, has_gauss, cached = np.random.get_state()
        tensors["rng.numpy"] = torch.from_numpy(keys.astype(np.int64))
        meta["numpy"] = {
            "kind": kind,
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": cached,
        }
    return tensors, meta


def _set_rng_state(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = sorted(k for k in tensors if k.startswith("rng.cuda."))
    if cuda and torch.cuda.is_available():
        states = [tensors[k] for k in sorted(cuda, key=lambda k: int(k.rsplit(".", 1)[1]))]
        torch.cuda.set_rng_state_all(states[: torch.cuda.device_count()])
    np = _numpy()
    if np is not None and "numpy" in meta and "rng.numpy" in tensors:
        n = meta["numpy"]
        keys = tensors["rng.numpy"].numpy().astype(np.uint32)
        np.random.set_state((n["kind"], keys, n["pos"], n["has_gauss"], n["cached"]))
    p = meta["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))


def find_latest_checkpoint(root: str | Path) -> Path | None:
    """The newest complete checkpoint folder under ``root`` (None when there is none)."""
    root = Path(root)
    if not root.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _CKPT.match(p.name))]
    found = [(i, p) for i, p in found if (p / "trainer_state.json").is_file()]
    return max(found)[1] if found else None


def save_checkpoint(
    root: str | Path,
    index: int,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    state: dict,
    best_model: dict[str, torch.Tensor] | None = None,
    keep: int = 1,
) -> Path:
    """Write checkpoint number ``index`` atomically; keep the newest ``keep`` of them.

    Args:
        root: the checkpoints folder.
        index: increasing number of this save.
        model: its ``state_dict`` goes to ``model.safetensors``.
        optimizer: flattened into ``trainer.safetensors`` + ``trainer_state.json``.
        state: JSON-serialisable trainer state.
        best_model: optional best weights, saved as ``best_model.safetensors``.
        keep: how many complete checkpoints to keep (at least 1).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"ckpt-{index:06d}"
    tmp = root / f".tmp-ckpt-{index:06d}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    optim_tensors, optim_meta = flatten_optimizer_state(optimizer)
    rng_tensors, rng_meta = _rng_state()
    trainer_tensors = {f"optimizer.{k}": v for k, v in optim_tensors.items()} | rng_tensors
    save_file(_cpu_tensors(model.state_dict()), tmp / "model.safetensors")
    save_file(_cpu_tensors(trainer_tensors), tmp / "trainer.safetensors")
    if best_model is not None:
        save_file(_cpu_tensors(best_model), tmp / "best_model.safetensors")
    full_state = dict(state, index=index, optimizer=optim_meta, rng=rng_meta)
    (tmp / "trainer_state.json").write_text(json.dumps(full_state, indent=1))
    for file in tmp.iterdir():
        _fsync_file(file)
    _fsync_dir(tmp)
    if final.exists():  # a leftover from an older run that reused the index
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(root)
    # Old checkpoints and torn temporary folders go only after the new one is in place.
    complete = sorted(p for p in root.iterdir() if _CKPT.match(p.name))
    for old in complete[: max(0, len(complete) - max(1, keep))]:
        shutil.rmtree(old, ignore_errors=True)
    for torn in root.glob(".tmp-ckpt-*"):
        shutil.rmtree(torn, ignore_errors=True)
    return final


def load_checkpoint(
    path: str | Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    restore_rng: bool = True,
) -> tuple[dict, dict[str, torch.Tensor] | None]:
    """Load a checkpoint folder into ``model`` (strictly) and ``optimizer``; restore RNG states.

    Returns:
        ``(state, best_model)``: the trainer state dict and the best weights (or None).
    """
    path = Path(path)
    state = json.loads((path / "trainer_state.json").read_text())
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    model.load_state_dict(load_file(path / "model.safetensors", device=str(device)), strict=True)
    trainer_tensors = load_file(path / "trainer.safetensors")
    if optimizer is not None:
        optim = {
            k.removeprefix("optimizer."): v
            for k, v in trainer_tensors.items()
            if k.startswith("optimizer.")
        }
        restore_optimizer_state(optimizer, optim, state["optimizer"])
    if restore_rng:
        _set_rng_state(trainer_tensors, state["rng"])
    best_file = path / "best_model.safetensors"
    best = load_file(best_file) if best_file.is_file() else None
    return state, best
