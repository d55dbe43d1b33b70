"""Run by test_torchrun.py under torchrun (2 processes, gloo) and once without it.

Trains a tiny autoencoder and a small EMA VQ-VAE with the unchanged Trainer and writes each
process's final weights and buffers to ``<out>/<tag>-rank<r>.safetensors``.
"""

import os
import sys

import torch
from safetensors.torch import save_file
from train_helpers import TinyAE

import vqkit
from vqkit.data import ArrayDataset
from vqkit.train import Trainer


def main(out: str, tag: str) -> None:
    rank = int(os.environ.get("RANK", 0))
    g = torch.Generator().manual_seed(0)
    data = ArrayDataset(torch.rand(64, 1, 8, 8, generator=g))
    settings = {"max_steps": 6, "epochs": None, "batch_size": 16, "progress": False, "seed": 0}

    torch.manual_seed(0)
    ae = TinyAE(dropout=0.0)
    Trainer(ae, data, out_dir=f"{out}/{tag}-ae", **settings).fit()

    torch.manual_seed(0)
    vq = vqkit.create_model(
        "vqvae-digits",
        prior=None,
        quantizer={"reseed": None},  # reseeding draws differ from one process's; EMA does not
        encoder={"hidden_channels": 8, "residual_hidden_channels": 4},
        decoder={"hidden_channels": 8, "residual_hidden_channels": 4},
    )
    Trainer(vq, data, out_dir=f"{out}/{tag}-vq", **settings).fit()

    tensors = {f"ae.{k}": v for k, v in ae.state_dict().items()}
    tensors |= {f"vq.{k}": v for k, v in vq.state_dict().items()}
    save_file(
        {k: v.contiguous() for k, v in tensors.items()}, f"{out}/{tag}-rank{rank}.safetensors"
    )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
