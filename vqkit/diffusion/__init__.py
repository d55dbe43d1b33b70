"""Diffusion priors (the optional extra ``vqkit[diffusion]``; diffusers is imported lazily)."""

from vqkit.diffusion.latent_diffusion import LatentDiffusion, require_diffusers
from vqkit.diffusion.sampling import ddim_invert, gaussian_optimal_eps, sample_loop

__all__ = [
    "LatentDiffusion",
    "ddim_invert",
    "gaussian_optimal_eps",
    "require_diffusers",
    "sample_loop",
]
