"""Helpers of ``test_data.py``: a generated folder of small PNGs and a training run in a child.

The folder is generated once into a cache outside the repository (``$VQKIT_BENCH_CACHE``, default
``~/.cache/vqkit-bench``), written under a temporary name and renamed when complete, so an
interrupted generation never leaves a half folder that later runs would trust.

A run is measured in a fresh Python process (``python _data_bench.py train ...``) so its peak
resident memory (``VmHWM``; ``ru_maxrss`` would carry the pytest process's peak over ``exec``) is
the run's own; DataLoader workers are the child's children and their peak (``ru_maxrss`` of the
children, which counts the pages they share with the training process) is reported separately.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
IMAGE_SIZE = 32  # 32x32 RGB: the in-memory float32 path needs 12 KiB per image
PER_FOLDER = 2000  # images per sub-folder (a flat folder of 200,000 files is slow to list)


def cache_root() -> Path:
    return Path(os.environ.get("VQKIT_BENCH_CACHE", Path.home() / ".cache" / "vqkit-bench"))


def png_folder(n: int, size: int = IMAGE_SIZE) -> Path:
    """A folder of ``n`` RGB PNGs of ``size``×``size`` (smooth gradients plus noise), cached."""
    import numpy as np
    from PIL import Image

    root = cache_root() / f"png-{size}px-{n}"
    if (root / ".complete").is_file():
        return root
    tmp = root.with_name(root.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 1, size, dtype=np.float32)
    for i in range(n):
        folder = tmp / f"part{i // PER_FOLDER:03d}"
        if i % PER_FOLDER == 0:
            folder.mkdir(parents=True)
        a, b, c = rng.random(3, dtype=np.float32)
        base = a * ramp[:, None, None] + b * ramp[None, :, None] + c * 0.5  # (H, W, 1)
        noise = rng.integers(0, 24, (size, size, 3), dtype=np.uint8)
        pixels = (np.clip(base / 2, 0, 1) * 230).astype(np.uint8) + noise
        Image.fromarray(pixels, mode="RGB").save(folder / f"{i:06d}.png")
    (tmp / ".complete").write_text(str(n))
    shutil.rmtree(root, ignore_errors=True)
    os.replace(tmp, root)
    return root


def first_parts(root: Path, n: int) -> Path:
    """A folder of symlinks to the first ``n // PER_FOLDER`` sub-folders of ``root``."""
    parts = n // PER_FOLDER
    view = root.with_name(f"{root.name}-first{n}")
    if (view / ".complete").is_file():
        return view
    tmp = view.with_name(view.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for i in range(parts):
        (tmp / f"part{i:03d}").symlink_to(root / f"part{i:03d}", target_is_directory=True)
    (tmp / ".complete").write_text(str(n))
    shutil.rmtree(view, ignore_errors=True)
    os.replace(tmp, view)
    return view


def _model():
    import torch
    from torch import nn

    class ConvAE(nn.Module):
        """A small convolutional autoencoder: 3×32×32 → 32×8×8 → 3×32×32."""

        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(
                nn.Conv2d(3, 32, 4, 2, 1),
                nn.ReLU(),
                nn.Conv2d(32, 32, 4, 2, 1),
                nn.ReLU(),
                nn.ConvTranspose2d(32, 32, 4, 2, 1),
                nn.ReLU(),
                nn.ConvTranspose2d(32, 3, 4, 2, 1),
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (self.net(x) - x).square().mean()

    torch.manual_seed(0)
    return ConvAE()


def train(folder: str, path: str, workers: int, steps: int, batch: int) -> dict:
    """Load ``folder`` the ``path`` way and train ``steps`` steps; figures as a dict."""
    import torch

    from vqkit.data import load_image_folder
    from vqkit.data.loader import reuse_freed_memory
    from vqkit.train import Trainer

    torch.set_num_threads(1)
    start = time.perf_counter()
    if path == "memory":
        data = load_image_folder(folder)
    else:
        cache = {"cache": True, "fill": "fill"}.get(path, False)
        data = load_image_folder(folder, lazy=True, cache=cache)
    load_s = time.perf_counter() - start
    step_times: list[float] = []
    trainer = Trainer(
        _model(),
        data,
        epochs=None,
        max_steps=steps,
        batch_size=batch,
        progress=False,
        num_workers=workers,
        device="cpu",
        callbacks=[lambda trainer, step, logs: step_times.append(time.perf_counter())],
    )
    policy = reuse_freed_memory()  # what the trainer's first batch would set: one state for all
    own, workers_cpu = _cpu_seconds()
    me = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    trainer.fit()
    fit_s = time.perf_counter() - start
    del trainer
    own_after, workers_after = _cpu_seconds()
    me_after = resource.getrusage(resource.RUSAGE_SELF)
    images = steps * batch
    # images/s of the first epoch and of the steps after it (a filling cache changes between)
    per_epoch = len(data) // batch
    epoch_rates = {}
    if 1 < per_epoch < len(step_times):
        first = per_epoch * batch / (step_times[per_epoch - 1] - start)
        later = (len(step_times) - per_epoch) * batch / (step_times[-1] - step_times[per_epoch - 1])
        epoch_rates = {
            "epoch1_images_per_s": round(first, 1),
            "later_images_per_s": round(later, 1),
        }
    cached = getattr(data, "cache", None) is not None
    read_s = _read_only(data, workers, steps, batch)
    return {
        "path": path,
        "workers": workers,
        "images": len(data),
        "load_s": round(load_s, 2),
        "fit_s": round(fit_s, 2),
        "images_per_s": round(images / fit_s, 1),
        # CPU time per image of the training process and of its workers: unlike images/s it
        # barely depends on how busy the machine is.
        "train_cpu_ms_per_image": round(1000 * (own_after - own) / images, 3),
        "worker_cpu_ms_per_image": round(1000 * (workers_after - workers_cpu) / images, 3),
        # The training process's CPU split: kernel time is mostly page faults of fresh buffers.
        "train_user_ms_per_image": round(1000 * (me_after.ru_utime - me.ru_utime) / images, 3),
        "train_sys_ms_per_image": round(1000 * (me_after.ru_stime - me.ru_stime) / images, 3),
        "minor_faults_per_image": round((me_after.ru_minflt - me.ru_minflt) / images, 2),
        "malloc_policy": policy,
        # The same number of batches read (decoded) with the same workers and no training: the
        # bound the data path sets, next to images_per_s with training.
        "read_images_per_s": round(images / read_s, 1),
        **epoch_rates,
        "cached_after": cached,
        "peak_rss_mib": _peak_rss_mib(),
        "peak_rss_source": "VmHWM",
        "worker_peak_rss_mib": round(
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1
        ),
        "load_average": round(os.getloadavg()[0], 2),
    }


def _read_only(data, workers: int, steps: int, batch: int) -> float:
    """Seconds to read ``steps`` shuffled batches of ``data`` with ``workers`` and no training."""
    import torch

    from vqkit.data.loader import batch_indices, iterate_batches

    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(1))
    batches = batch_indices(order, batch)[:steps]
    start = time.perf_counter()
    for _ in iterate_batches(data, batches, num_workers=workers):
        pass
    return time.perf_counter() - start


def _peak_rss_mib() -> float:
    """This process's own peak RSS in MiB: ``VmHWM`` of ``/proc/self/status``.

    Not ``ru_maxrss``: Linux carries that over ``exec`` from the process that forked this one,
    so a child of a 500 MiB pytest process reported 504 MiB whatever it used itself.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _cpu_seconds() -> tuple[float, float]:
    """User + system CPU seconds of this process and of its finished children."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def run_child(
    folder: Path, path: str, workers: int, steps: int, batch: int, malloc: str = "vqkit"
) -> dict:
    """``train`` in a fresh interpreter; its JSON line.

    ``malloc="glibc"`` runs it with ``VQKIT_MALLOC=default`` (glibc's own thresholds), to show
    what ``vqkit.data.loader.reuse_freed_memory`` changes.
    """
    env = dict(os.environ)
    env.pop("VQKIT_MALLOC", None)
    if malloc == "glibc":
        env["VQKIT_MALLOC"] = "default"
    command = [
        sys.executable,
        str(HERE / "_data_bench.py"),
        "train",
        str(folder),
        path,
        str(workers),
        str(steps),
        str(batch),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="generate (or find) the cached PNG folder")
    gen.add_argument("n", type=int)
    run = sub.add_parser("train", help="one measured training run")
    run.add_argument("folder")
    run.add_argument("path", choices=("memory", "lazy", "cache", "fill"))
    run.add_argument("workers", type=int)
    run.add_argument("steps", type=int)
    run.add_argument("batch", type=int)
    args = parser.parse_args()
    if args.command == "generate":
        print(png_folder(args.n))
    else:
        print(json.dumps(train(args.folder, args.path, args.workers, args.steps, args.batch)))
