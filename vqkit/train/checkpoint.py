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

``trainer_state.json`` records the SHA-256 and size of every other file and a SHA-256 of its own
content, so a bit flip or a truncation anywhere is detected (``verify_checkpoint``);
``load_latest_checkpoint`` then falls back to the newest intact checkpoint with a warning
naming both. Checkpoints are ordered by their number, never by name. A run folder is locked while
a process trains in it (``run_folder_lock``), and resuming with a different batch size, seed
or model config is refused (``check_resume``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import re
import shutil
import socket
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

__all__ = [
    "RESUME_KEYS",
    "CorruptCheckpointError",
    "ResumeMismatchError",
    "RunFolderInUseError",
    "check_resume",
    "find_latest_checkpoint",
    "flatten_optimizer_state",
    "list_checkpoints",
    "load_checkpoint",
    "load_latest_checkpoint",
    "restore_optimizer_state",
    "run_folder_lock",
    "save_checkpoint",
    "verify_checkpoint",
    "write_json_atomic",
]

_CKPT = re.compile(r"^ckpt-(\d{6,})$")
STATE_NAME = "trainer_state.json"
LOCK_NAME = ".lock"
# Training settings that fix what a step and a position in an epoch mean: resuming with other
# values would silently mis-count (another batch size) or replay other data (another seed).
# The last three: GAN runs (the perceptual network's fingerprint, see vqkit.train.trainer).
RESUME_KEYS = ("batch_size", "seed", "schedules", "disc_lr", "gan_betas", "perceptual")


class CorruptCheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated or altered (its checksum does not match)."""


class ResumeMismatchError(ValueError):
    """The run folder's checkpoint was written with other settings or another model config."""


class RunFolderInUseError(RuntimeError):
    """Another live process is training in the run folder."""


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
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
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
    """Inverse of ``flatten_optimizer_state``: load the pieces back into ``optimizer``."""
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


def list_checkpoints(root: str | Path) -> list[Path]:
    """Checkpoint folders under ``root`` in increasing number (``ckpt-999999`` before
    ``ckpt-1000000``), complete or not."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _CKPT.match(p.name))]
    return [p for _, p in sorted(found)]


def find_latest_checkpoint(root: str | Path) -> Path | None:
    """The newest complete checkpoint folder under ``root`` (None when there is none).

    "Complete" means it has its ``trainer_state.json``; use ``verify_checkpoint`` (or
    ``load_latest_checkpoint``) to also check every file's checksum.
    """
    found = [p for p in list_checkpoints(root) if (p / STATE_NAME).is_file()]
    return found[-1] if found else None


# ---------------------------------------------------------------------------------- checksums
def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _state_digest(state: dict) -> str:
    body = {k: v for k, v in state.items() if k != "state_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def verify_checkpoint(path: str | Path) -> dict:
    """Check every file of a checkpoint against the checksums in its ``trainer_state.json``.

    Checkpoints written before checksums existed (no ``files`` entry) are accepted as they are.

    Returns:
        The parsed trainer state.

    Raises:
        CorruptCheckpointError: the state is missing, not JSON or altered, or a file is missing,
            has another size or another SHA-256; the message names the file.
    """
    path = Path(path)
    state_file = path / STATE_NAME
    try:
        state = json.loads(state_file.read_text())
    except FileNotFoundError as exc:
        raise CorruptCheckpointError(f"{state_file} is missing") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptCheckpointError(f"{state_file} is not readable JSON ({exc})") from exc
    if not isinstance(state, dict):
        raise CorruptCheckpointError(f"{state_file} does not hold a JSON object")
    if "state_sha256" in state and state["state_sha256"] != _state_digest(state):
        raise CorruptCheckpointError(f"{state_file} was altered (its SHA-256 does not match)")
    files = state.get("files")
    if files is None:
        return state
    if not isinstance(files, dict):
        raise CorruptCheckpointError(f"{state_file}: 'files' must map names to checksums")
    for name, expected in sorted(files.items()):
        file = path / name
        if Path(name).name != name:
            raise CorruptCheckpointError(f"{state_file} names a file outside its folder: {name!r}")
        if not file.is_file():
            raise CorruptCheckpointError(f"{file} is missing")
        size = file.stat().st_size
        if size != expected.get("bytes"):
            raise CorruptCheckpointError(
                f"{file} is {size} bytes, {expected.get('bytes')} were written (truncated?)"
            )
        if _sha256(file) != expected.get("sha256"):
            raise CorruptCheckpointError(f"{file} does not match its SHA-256 (corrupted on disk?)")
    return state


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
    files = {
        file.name: {"sha256": _sha256(file), "bytes": file.stat().st_size}
        for file in sorted(tmp.iterdir())
    }
    full_state = dict(
        state,
        index=index,
        optimizer=optim_meta,
        rng=rng_meta,
        model_config=_model_config(model),
        files=files,
    )
    full_state["state_sha256"] = _state_digest(full_state)
    (tmp / STATE_NAME).write_text(json.dumps(full_state, indent=1))
    for file in tmp.iterdir():
        _fsync_file(file)
    _fsync_dir(tmp)
    if final.exists():  # a leftover from an older run that reused the index
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(root)
    # Old checkpoints and torn temporary folders go only after the new one is in place and reads
    # back intact; they are ordered by number, so ckpt-1000000 never sorts before ckpt-999999.
    verify_checkpoint(final)
    complete = list_checkpoints(root)
    for old in complete[: max(0, len(complete) - max(1, keep))]:
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    for torn in root.glob(".tmp-ckpt-*"):
        shutil.rmtree(torn, ignore_errors=True)
    return final


def _model_config(model: torch.nn.Module) -> Any:
    """The model's constructor arguments as JSON (None for a model that does not record them)."""
    config = getattr(model, "_hub_mixin_config", None)
    if not isinstance(config, dict):
        return None
    config = {k: v for k, v in config.items() if k not in ("device", "dtype")}
    return json.loads(json.dumps(config, sort_keys=True, default=str))


def load_checkpoint(
    path: str | Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    restore_rng: bool = True,
    verify: bool = True,
) -> tuple[dict, dict[str, torch.Tensor] | None]:
    """Load a checkpoint folder into ``model`` (strictly) and ``optimizer``; restore RNG states.

    Args:
        path: the checkpoint folder.
        model: receives ``model.safetensors``.
        optimizer: receives the optimizer state (skipped when None).
        restore_rng: also restore the torch, CUDA, numpy and Python RNG states.
        verify: check every file's checksum first (``verify_checkpoint``), so nothing is
            loaded from a corrupt checkpoint.

    Returns:
        ``(state, best_model)``: the trainer state dict and the best weights (or None).

    Raises:
        CorruptCheckpointError: ``verify`` found a damaged file.
    """
    path = Path(path)
    if verify:
        state = verify_checkpoint(path)
    else:
        state = json.loads((path / STATE_NAME).read_text())
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
    for key in ("files", "state_sha256", "model_config"):
        state.pop(key, None)
    return state, best


def check_resume(
    state: dict, *, checkpoint: str | Path, config: dict | None, model: torch.nn.Module
) -> None:
    """Refuse to resume from ``state`` when the run's meaning of a step would change.

    Compares the training settings in ``RESUME_KEYS`` and the model's constructor
    arguments with those recorded in the checkpoint (either is skipped when not recorded).

    Raises:
        ResumeMismatchError: naming the setting (or config keys) and both values.
    """
    saved = state.get("config") or {}
    where = Path(checkpoint).parent.parent
    for key in RESUME_KEYS:
        if config is not None and key in saved and key in config and saved[key] != config[key]:
            raise ResumeMismatchError(
                f"cannot resume the run in {where}: its checkpoint {Path(checkpoint).name} was "
                f"written with {key}={saved[key]!r}, this run has {key}={config[key]!r}; "
                f"resume with {key}={saved[key]!r}, or start a new run folder"
            )
    saved_model, current = state.get("model_config"), _model_config(model)
    if saved_model is not None and current is not None and saved_model != current:
        keys = sorted(
            k
            for k in set(saved_model) | set(current)
            if saved_model.get(k, "<absent>") != current.get(k, "<absent>")
        )
        absent = "<absent>"
        diffs = "; ".join(
            f"{k}: checkpoint {saved_model.get(k, absent)!r}, now {current.get(k, absent)!r}"
            for k in keys
        )
        raise ResumeMismatchError(
            f"cannot resume the run in {where}: the model config differs from the one its "
            f"checkpoint {Path(checkpoint).name} was written with ({diffs}); use the same "
            "model config, or start a new run folder"
        )


def load_latest_checkpoint(
    root: str | Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    config: dict | None = None,
    restore_rng: bool = True,
) -> tuple[dict, dict[str, torch.Tensor] | None] | None:
    """Resume from the newest intact checkpoint under ``root``; None when there is none.

    Every candidate is verified before anything is loaded. A corrupt newest checkpoint is
    skipped with a ``RuntimeWarning`` naming it and the one used instead.

    Args:
        root: the checkpoints folder.
        model, optimizer, restore_rng: as ``load_checkpoint``.
        config: the current training settings (``TrainConfig.to_dict()``), checked with
            ``check_resume``; None skips the check of settings.

    Returns:
        ``(state, best_model)`` as ``load_checkpoint``, or None.

    Raises:
        CorruptCheckpointError: checkpoints exist but none is intact.
        ResumeMismatchError: see ``check_resume``.
    """
    candidates = [p for p in list_checkpoints(root) if (p / STATE_NAME).exists()]
    corrupt: list[tuple[Path, CorruptCheckpointError]] = []
    for path in reversed(candidates):
        try:
            state = verify_checkpoint(path)
        except CorruptCheckpointError as exc:
            corrupt.append((path, exc))
            continue
        if corrupt:
            skipped = "; ".join(f"{p.name} ({exc})" for p, exc in corrupt)
            warnings.warn(
                f"checkpoint {corrupt[0][0]} is corrupt, resuming from the previous intact one, "
                f"{path} (skipped: {skipped})",
                RuntimeWarning,
                stacklevel=2,
            )
        check_resume(state, checkpoint=path, config=config, model=model)
        return load_checkpoint(
            path, model=model, optimizer=optimizer, restore_rng=restore_rng, verify=False
        )
    if corrupt:
        details = "; ".join(str(exc) for _, exc in corrupt)
        raise CorruptCheckpointError(
            f"no intact checkpoint in {root}: {details}. Delete the damaged checkpoint folders to "
            "start over (keep_checkpoints >= 2 keeps a previous one to fall back to)"
        )
    return None


# ------------------------------------------------------------------------------ run folder lock
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    except OSError:
        return False
    return True


def _read_lock(path: Path) -> dict:
    try:
        owner = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return owner if isinstance(owner, dict) else {}


@contextlib.contextmanager
def run_folder_lock(out_dir: str | Path | None) -> Iterator[None]:
    """Hold ``out_dir/.lock`` while training; refuse when another live process holds it.

    The lock file records the PID and host. On POSIX the lock is an ``flock`` on that file, which
    the kernel releases when the process dies, so the lock of a killed run is taken over at once;
    elsewhere a lock file whose PID no longer runs is taken over. Under torchrun only rank 0
    locks. ``out_dir=None`` locks nothing.

    Raises:
        RunFolderInUseError: "run folder ... in use by PID ..." while another process trains.
    """
    if out_dir is None or os.environ.get("RANK", "0") != "0":
        yield
        return
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / LOCK_NAME
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        fcntl = None  # type: ignore[assignment]  # no fcntl module: the lock is skipped

    def refuse(owner: dict) -> RunFolderInUseError:
        host = f" on {owner['host']}" if owner.get("host") not in (None, me["host"]) else ""
        return RunFolderInUseError(
            f"run folder {out_dir} in use by PID {owner.get('pid', '?')}{host} (lock file "
            f"{path}); wait for that run to finish, or train into another folder"
        )

    if fcntl is not None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise refuse(_read_lock(path)) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(me).encode(), 0)
            try:
                yield
            finally:
                os.ftruncate(fd, 0)  # the file stays: unlinking a locked file races
        finally:
            os.close(fd)  # releases the flock
        return
    for _ in range(2):  # pragma: no cover - Windows
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            owner = _read_lock(path)
            pid = owner.get("pid")
            if isinstance(pid, int) and _pid_alive(pid):
                raise refuse(owner) from None
            path.unlink(missing_ok=True)  # a stale lock of a dead process
            continue
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps(me))
        try:
            yield
        finally:
            path.unlink(missing_ok=True)
        return
    raise refuse(_read_lock(path))  # pragma: no cover
