"""Training losses beyond reconstruction: adversarial losses (VQ-GAN) and LPIPS.

LPIPS is registered as ``loss/lpips``; its pretrained weights are files the user supplies
(:mod:`vqkit.losses.lpips`).
"""

from vqkit.losses.gan import (
    GAN_LOSSES,
    adaptive_weight,
    discriminator_loss,
    generator_loss,
    r1_penalty,
)
from vqkit.losses.lpips import LPIPS, convert_lpips_weights

__all__ = [
    "GAN_LOSSES",
    "LPIPS",
    "adaptive_weight",
    "convert_lpips_weights",
    "discriminator_loss",
    "generator_loss",
    "r1_penalty",
]
