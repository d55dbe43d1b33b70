"""A tiny autoencoder that follows vqkit's output contract, and the environment of the
torchrun subprocesses (shared by the training tests)."""

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn


@dataclass
class TinyOutput:
    loss: torch.Tensor
    losses: dict
    reconstruction: torch.Tensor


class TinyAE(nn.Module):
    """8x8 images → 6 features (with dropout, so training draws random numbers) → 8x8."""

    def __init__(self, dropout: float = 0.2) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(64, 6), nn.Tanh(), nn.Dropout(dropout))
        self.decoder = nn.Linear(6, 64)

    def forward(self, x: torch.Tensor) -> TinyOutput:
        r = self.decoder(self.encoder(x)).view_as(x)
        recon = (r - x).square().mean()
        return TinyOutput(recon, {"recon": recon}, r)


def subprocess_env() -> dict:
    """The environment of a test's ``torchrun`` / ``python`` subprocess: this folder importable
    (the scripts import ``train_helpers``) and one intra-op thread per process."""
    env = dict(os.environ)
    here = str(Path(__file__).parent)
    env["PYTHONPATH"] = os.pathsep.join([here, env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    return env
