"""VQ-GAN under torchrun (2 gloo processes): identical ranks, equal to one process on the whole
batch, and a killed-and-resumed run equal to the uninterrupted one; SyncBatchNorm2d's swap."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn
from train_helpers import subprocess_env

from vqkit.train.distributed import SyncBatchNorm2d, sync_batchnorm

HERE = Path(__file__).parent


def _launch(args: list[str]) -> None:
    done = subprocess.run(
        args,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is missing")
def test_gan_under_torchrun_matches_one_process_and_resumes_exactly(tmp_path):
    script = str(HERE / "gan_ddp_script.py")
    run = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    _launch([*run, script, str(tmp_path), "ddp"])
    _launch([sys.executable, script, str(tmp_path), "single"])
    rank0 = load_file(tmp_path / "ddp-full-rank0.safetensors")
    rank1 = load_file(tmp_path / "ddp-full-rank1.safetensors")
    alone = load_file(tmp_path / "single-full-rank0.safetensors")
    resumed = [load_file(tmp_path / f"ddp-resumed-rank{r}.safetensors") for r in (0, 1)]
    assert rank0.keys() == rank1.keys() == alone.keys() == resumed[0].keys()
    # The BatchNorm discriminator's running statistics are among the compared tensors.
    assert any(k.startswith("d.") and "running_var" in k for k in rank0)
    lambdas = rank0.pop("lambda")
    assert lambdas[:2].eq(0).all()
    assert lambdas[2:].gt(0).all()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), f"{key} differs between the ranks"
    # λ comes from the all-reduced gradients: the same on both ranks and the whole batch's.
    assert torch.equal(rank1["lambda"], lambdas)
    torch.testing.assert_close(lambdas, alone["lambda"], rtol=1e-5, atol=1e-7)
    # Averaged gradients for both updates, global-batch BatchNorm statistics and λ make the
    # run equal to one process on the whole batch (up to the order of float sums).
    for key in rank0:
        if rank0[key].is_floating_point():
            torch.testing.assert_close(rank0[key], alone[key], rtol=1e-4, atol=1e-5, msg=key)
        else:
            assert torch.equal(rank0[key], alone[key]), key
    # Killed at step 3 (after the checkpoint at step 2), resumed: bit for bit the same run,
    # λ of steps 3..6 included.
    for r in (0, 1):
        assert torch.equal(resumed[r].pop("lambda"), lambdas[2:])
        for key in rank0:
            assert torch.equal(resumed[r][key], rank0[key]), f"rank {r}: {key} after resume"


def test_sync_batchnorm_keeps_state_and_is_batchnorm_in_one_process():
    def net() -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.LeakyReLU(0.2))

    torch.manual_seed(0)
    plain, synced = net(), net()
    plain[1].weight.data.uniform_(0.5, 1.5)
    synced.load_state_dict(plain.state_dict())
    weight = synced[1].weight
    assert sync_batchnorm(synced) is synced
    assert isinstance(synced[1], SyncBatchNorm2d)
    assert synced[1].weight is weight
    assert synced.state_dict().keys() == plain.state_dict().keys()
    x = torch.randn(4, 2, 6, 5)
    for mode in (True, False):  # training (batch statistics, running ones move), then eval
        plain.train(mode), synced.train(mode)
        assert torch.equal(synced(x), plain(x))
        for key, value in plain.state_dict().items():
            assert torch.equal(synced.state_dict()[key], value), key
    with pytest.raises(TypeError, match="BatchNorm1d is not synchronised"):
        sync_batchnorm(nn.Sequential(nn.BatchNorm1d(3)))
