"""Helpers of the viewer tests: a tiny random VQ-VAE with a Gated PixelCNN prior."""

from __future__ import annotations

import copy

import torch

import vqkit

#: A tiny VQ-VAE for 1×8×8 images: 4×4 latents, K = 8 codes of D = 4, a small Gated PixelCNN.
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
    "image_size": [8, 8],
}


def tiny_vqvae(seed: int = 0, **overrides) -> vqkit.VQVAE:
    torch.manual_seed(seed)
    config = copy.deepcopy(TINY)
    config.update(overrides)
    model = vqkit.VQVAE(**config).eval()
    with torch.no_grad():  # spread the codebook so that different codes decode differently
        model.quantizer.embed.copy_(torch.randn_like(model.quantizer.embed) * 2)
    return model


#: Overrides that make the vqvae-digits preset tiny (a run of a few seconds).
TINY_RUN = {
    "encoder": {"type": "resnet", "hidden_channels": 8, "residual_hidden_channels": 4},
    "decoder": {"type": "resnet", "hidden_channels": 8, "residual_hidden_channels": 4},
    "prior": {"type": "gated_pixelcnn", "hidden_channels": 8, "num_layers": 2, "head_channels": 16},
}


def make_run(folder):
    """A real (tiny, barely trained) run folder of ``vqkit train`` on 5% of the digits."""
    from vqkit.train import DataSpec, RunSpec, TrainConfig, train_run

    spec = RunSpec(
        data=DataSpec("digits", subset_fraction=0.05),
        model="vqvae-digits",
        model_config=TINY_RUN,
        train=TrainConfig(max_steps=3, epochs=None, batch_size=16, progress=False),
        prior_train=TrainConfig(max_steps=2, epochs=None, batch_size=16, progress=False),
    )
    return train_run(spec, folder)
