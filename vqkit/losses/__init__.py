"""Training objectives registered under the ``"loss"`` kind, and the decoder likelihoods.

- ``kl.py``: the closed-form Gaussian KL and the β / capacity-controlled VAE objectives
  (``"kl"``, ``"beta_kl"``, ``"capacity_kl"``).
- ``likelihood.py``: the decoder distributions p(x|z) of the continuous VAEs, each an NLL in nats.
- ``logit_laplace.py``: DALL-E's logit-Laplace likelihood with its pixel map (``"logit_laplace"``).
- ``gan.py``: adversarial losses (hinge, non-saturating, vanilla), R1 and VQ-GAN's adaptive weight.
- ``lpips.py``: the LPIPS perceptual distance (``"lpips"``); its pretrained weights are files the
  user supplies.
"""

from vqkit.losses.gan import (
    GAN_LOSSES,
    adaptive_weight,
    discriminator_loss,
    generator_loss,
    r1_penalty,
)
from vqkit.losses.kl import (
    CapacityKL,
    KLLossOutput,
    at_least_float32,
    beta_kl_loss,
    gaussian_kl,
    kl_loss,
    kld_weight_to_beta,
)
from vqkit.losses.likelihood import LIKELIHOODS, Likelihood, get_likelihood
from vqkit.losses.logit_laplace import LogitLaplace, map_pixels, unmap_pixels
from vqkit.losses.lpips import LPIPS, convert_lpips_weights

__all__ = [
    "GAN_LOSSES",
    "LIKELIHOODS",
    "LPIPS",
    "CapacityKL",
    "KLLossOutput",
    "Likelihood",
    "LogitLaplace",
    "adaptive_weight",
    "at_least_float32",
    "beta_kl_loss",
    "convert_lpips_weights",
    "discriminator_loss",
    "gaussian_kl",
    "generator_loss",
    "get_likelihood",
    "kl_loss",
    "kld_weight_to_beta",
    "map_pixels",
    "r1_penalty",
    "unmap_pixels",
]
