"""Moved to ``vqkit.models.vae``; this module keeps the old import path working."""

from vqkit.models.vae import VAE, ImageVAE

__all__ = ["VAE", "ImageVAE"]
