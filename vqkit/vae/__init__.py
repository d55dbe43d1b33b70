"""Continuous VAEs: Gaussian KL, β / capacity-controlled losses, VAE, ImageVAE, BetaVAE, VLAE.

The models live in ``vqkit.models`` and the losses in ``vqkit.losses``; this package re-exports
them under the import paths of the 0.1 release.
"""

from vqkit.losses.kl import (
    CapacityKL,
    KLLossOutput,
    beta_kl_loss,
    gaussian_kl,
    kl_loss,
    kld_weight_to_beta,
)
from vqkit.losses.likelihood import LIKELIHOODS, Likelihood
from vqkit.models.beta_vae import BetaVAE
from vqkit.models.vae import VAE, ImageVAE
from vqkit.models.vae_base import VAEBase, VAEOutput
from vqkit.models.vlae import VLAE

__all__ = [
    "LIKELIHOODS",
    "VAE",
    "VLAE",
    "BetaVAE",
    "CapacityKL",
    "ImageVAE",
    "KLLossOutput",
    "Likelihood",
    "VAEBase",
    "VAEOutput",
    "beta_kl_loss",
    "gaussian_kl",
    "kl_loss",
    "kld_weight_to_beta",
]
