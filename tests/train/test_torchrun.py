"""Two gloo processes under torchrun finish with identical weights, equal to one process's."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from train_helpers import subprocess_env

HERE = Path(__file__).parent


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is missing")
def test_torchrun_two_processes_agree(tmp_path):
    script = str(HERE / "ddp_script.py")
    launcher = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
    ]
    done = subprocess.run(
        [*launcher, script, str(tmp_path), "ddp"],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    single = subprocess.run(
        [sys.executable, script, str(tmp_path), "single"],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert single.returncode == 0, single.stderr[-3000:]
    rank0 = load_file(tmp_path / "ddp-rank0.safetensors")
    rank1 = load_file(tmp_path / "ddp-rank1.safetensors")
    alone = load_file(tmp_path / "single-rank0.safetensors")
    assert rank0.keys() == rank1.keys() == alone.keys()
    assert any("embed" in k for k in rank0)  # the EMA codebook is among the compared tensors
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), f"{key} differs between the ranks"
    # Each rank sees half of every global batch; averaged gradients and all-reduced EMA
    # statistics make the run equal to one process on the whole batch (up to float sums).
    for key in rank0:
        if rank0[key].is_floating_point():
            torch.testing.assert_close(rank0[key], alone[key], rtol=1e-4, atol=1e-5, msg=key)
    # Only rank 0 writes the metrics: one line per epoch (4 steps each, then 2 of a second epoch).
    lines = (tmp_path / "ddp-ae" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [4, 6]
