"""Helpers shared by the model and Hub tests (a uniquely named module: tests have no packages)."""

from __future__ import annotations

import torch

TINY = {
    "encoder": {
        "type": "resnet",
        "in_channels": 1,
        "hidden_channels": 8,
        "num_residual_layers": 1,
        "residual_hidden_channels": 4,
        "num_downsamples": 1,
    },
    "quantizer": {"type": "vq", "dim": 4, "codebook_size": 8},
    "decoder": {
        "type": "resnet",
        "hidden_channels": 8,
        "num_residual_layers": 1,
        "residual_hidden_channels": 4,
    },
    "prior": {"type": "gated_pixelcnn", "hidden_channels": 8, "num_layers": 2, "head_channels": 16},
    "image_size": [8, 4],
}


def train_steps(model: torch.nn.Module, x: torch.Tensor, steps: int = 3) -> None:
    """A few optimiser steps in training mode, so EMA buffers and usage counters move."""
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        model(x).loss.backward()
        opt.step()
