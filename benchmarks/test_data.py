"""Training from a generated folder of small PNGs: peak memory and images/s, lazy vs in memory.

Issue 18 asks that a folder of 200,000 small PNGs trains with bounded memory (well under 2 GB)
and that the lazy path with 2 DataLoader workers is no slower than the in-memory path on data
that fits. The folder (32×32 RGB, see ``_data_bench.png_folder``) is generated once into
``$VQKIT_BENCH_CACHE`` (default ``~/.cache/vqkit-bench``); at ``--bench-size=full`` it holds
200,000 images (the in-memory float32 path would need 2.3 GiB for them), at ``small`` 400.

Each case is one training run of a small convolutional autoencoder in a fresh process (one torch
thread, CPU) so that its peak RSS is its own:

- ``lazy-2-workers`` on the whole folder: the scan of every header plus the training steps;
- on the part that fits in memory (20,000 images at ``full``): ``memory`` (decoded into one
  float32 tensor, no workers), ``lazy-0-workers``, ``lazy-2-workers`` and ``cache-2-workers``
  (the uint8 cache; a cached dataset is sliced in the training process, the workers are not
  started), and ``cache-2-workers-glibc-malloc``, the same with glibc's own malloc thresholds
  (``VQKIT_MALLOC=default``) instead of ``vqkit.data.loader.reuse_freed_memory``, and
  ``fill-2-workers`` (``cache="fill"``: the workers decode epoch 1 into the cache, later epochs
  are sliced from it; ``epoch1_images_per_s`` and ``later_images_per_s`` split the run there).

``extra_info`` of each benchmark holds ``images_per_s``, ``peak_rss_mib`` (the training
process), ``worker_peak_rss_mib`` (the largest worker; workers share the parent's pages, so the
sum overstates), ``train_cpu_ms_per_image`` and ``worker_cpu_ms_per_image`` (CPU time, which
a busy machine distorts far less than images/s), the training process's split of it
(``train_user_ms_per_image``, ``train_sys_ms_per_image``, ``minor_faults_per_image``: kernel time
is mostly page faults of fresh buffers), ``read_images_per_s`` (the same batches read with the
same workers and no training: the bound the data path sets), ``malloc_policy`` (whether
``vqkit.data.loader.reuse_freed_memory`` is in force; ``VQKIT_MALLOC=default`` measures glibc's
defaults), ``load_s`` and the load average.
"""

from __future__ import annotations

import pytest
from _data_bench import first_parts, png_folder, run_child

# bench_size -> (images in the folder, images that "fit", steps, batch)
PLANS = {"small": (400, 400, 10, 16), "full": (200_000, 20_000, 200, 128)}

CASES = [
    ("all", "lazy", 2, "vqkit"),
    ("fits", "memory", 0, "vqkit"),
    ("fits", "lazy", 0, "vqkit"),
    ("fits", "lazy", 2, "vqkit"),
    ("fits", "cache", 2, "vqkit"),
    ("fits", "fill", 2, "vqkit"),
    # glibc's own malloc thresholds (VQKIT_MALLOC=default): the page faults the policy removes
    ("fits", "cache", 2, "glibc"),
]


@pytest.fixture(scope="module")
def folders(bench_size):
    n, fits, _, _ = PLANS[bench_size]
    root = png_folder(n)
    return {"all": root, "fits": first_parts(root, fits) if fits < n else root}


@pytest.mark.parametrize(("data", "path", "workers", "malloc"), CASES)
def test_train_from_png_folder(benchmark, bench_size, folders, data, path, workers, malloc):
    _, _, steps, batch = PLANS[bench_size]
    benchmark.group = f"data: train from {bench_size} PNG folder"
    figures = {}

    def once():
        figures.update(run_child(folders[data], path, workers, steps, batch, malloc))

    benchmark.pedantic(once, rounds=1, warmup_rounds=0, iterations=1)
    benchmark.extra_info.update(figures)
    benchmark.extra_info["case"] = f"{data}-{path}-{workers}-workers" + (
        "-glibc-malloc" if malloc == "glibc" else ""
    )
    benchmark.extra_info["throughput_items"] = steps * batch
    benchmark.extra_info["throughput_unit"] = "images"
    assert figures["images"] > 0
