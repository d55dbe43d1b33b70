"""Moved to ``vqkit.models.beta_vae``; this module keeps the old import path working."""

from vqkit.models.beta_vae import BetaVAE

__all__ = ["BetaVAE"]
