"""Every model family, assembled from registered parts, and named presets from the literature.

- ``vqvae.py``: the discrete family (encoder → quantizer → decoder, optional prior over codes).
- ``vae_base.py``, ``vae.py``, ``beta_vae.py``, ``vlae.py``: the continuous family (VAE,
  ImageVAE, BetaVAE, VLAE), assembled from encoder / decoder / prior specs the same way.
- ``vqgan.py``: VQ-GAN, a VQ-VAE trained with a discriminator and a perceptual loss.
- ``dvae.py``: the DALL-E dVAE, a VQ-VAE with Gumbel-softmax codes and a logit-Laplace likelihood.
- ``vqvae2.py``: VQ-VAE-2, a top and a bottom code grid.
- ``presets.py``: named VQ-VAE and VQ-GAN configurations.
- ``_assembly.py``: the spec-wiring rules shared by every family.
"""

from vqkit.models.beta_vae import BetaVAE
from vqkit.models.dvae import DVAE
from vqkit.models.presets import PRESETS, Preset, create_model, list_models, preset_config
from vqkit.models.vae import VAE, ImageVAE
from vqkit.models.vae_base import VAEBase, VAEOutput
from vqkit.models.vlae import VLAE
from vqkit.models.vqgan import VQGAN
from vqkit.models.vqvae import VQVAE, VQVAEOutput, VQVAEPriorOutput
from vqkit.models.vqvae2 import VQVAE2, VQVAE2Output  # vqvae2 branch

__all__ = [
    "DVAE",
    "PRESETS",
    "VAE",
    "VLAE",
    "VQGAN",
    "VQVAE",
    "VQVAE2",  # vqvae2 branch
    "BetaVAE",
    "ImageVAE",
    "Preset",
    "VAEBase",
    "VAEOutput",
    "VQVAE2Output",  # vqvae2 branch
    "VQVAEOutput",
    "VQVAEPriorOutput",
    "create_model",
    "list_models",
    "preset_config",
]
