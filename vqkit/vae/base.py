"""Moved to ``vqkit.models.vae_base``; this module keeps the old import path working."""

from vqkit.models.vae_base import VAEBase, VAEOutput

__all__ = ["VAEBase", "VAEOutput"]
