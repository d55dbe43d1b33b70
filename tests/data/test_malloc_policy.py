"""``reuse_freed_memory``: batch-sized buffers are reused instead of mapped and faulted in anew.

The policy is process-global, so each case runs in a fresh interpreter and counts the minor page
faults of 20 "steps" that each hold ten 4 MiB tensors at once (the size of one convolution's
activations for a 128-image batch) and then free them: with 128 KiB thresholds each buffer is
mapped and faulted in anew (10,240 pages a step); the policy keeps them for the next step. (glibc's
own defaults raise the thresholds after some frees, depending on the order of earlier
allocations: the training runs of ``benchmarks/test_data.py`` kept faulting.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="glibc malloc thresholds are Linux-only"
)

SCRIPT = r"""
import json, resource, torch
from vqkit.data import ArrayDataset
from vqkit.data.loader import iterate_batches, reuse_freed_memory


def step():  # a training step's shape: ten 4 MiB buffers alive at once, then all freed
    alive = [torch.empty(1 << 20).fill_(1.0) for _ in range(10)]
    del alive


def faults():
    step()  # warm up: the first step maps its memory in any case
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        step()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


before = faults()
data = ArrayDataset(torch.rand(8, 3, 4, 4))
batches = list(iterate_batches(data, [torch.arange(4), torch.arange(4, 8)]))
assert torch.equal(torch.cat(batches), data.data)
print(json.dumps({"on": reuse_freed_memory(), "before": before, "after": faults()}))
"""


def _run(**env: str) -> dict:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    environ.pop("GLIBC_TUNABLES", None)
    environ.pop("VQKIT_MALLOC", None)
    environ.update(env)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=environ
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_iterate_batches_keeps_freed_batches_for_reuse():
    figures = _run()
    assert figures["on"] is True
    assert figures["after"] < 10_240  # fewer than one step's pages over all 20 steps


def test_a_chosen_malloc_policy_is_left_alone():
    # Fixed 128 KiB thresholds (glibc's defaults, without their dynamic raise): every 4 MiB
    # buffer is mapped anew, 1,024 faults each, before and after the loader ran.
    figures = _run(MALLOC_MMAP_THRESHOLD_="131072", MALLOC_TRIM_THRESHOLD_="131072")
    assert figures["on"] is False
    assert figures["before"] >= 20 * 10 * 1000
    assert figures["after"] >= 20 * 10 * 1000


def test_the_policy_can_be_declined():
    assert _run(VQKIT_MALLOC="default")["on"] is False
