"""Continuous VAEs: Gaussian KL, β / capacity-controlled losses, VAE, ImageVAE, BetaVAE, VLAE."""

from vqkit.vae.base import VAEBase, VAEOutput
from vqkit.vae.beta_vae import BetaVAE
from vqkit.vae.likelihood import LIKELIHOODS, Likelihood
from vqkit.vae.losses import (
    CapacityKL,
    KLLossOutput,
    beta_kl_loss,
    gaussian_kl,
    kl_loss,
    kld_weight_to_beta,
)
from vqkit.vae.vae import VAE, ImageVAE
from vqkit.vae.vlae import VLAE

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
