"""Training objectives registered under the ``"loss"`` kind, and the decoder likelihoods.

- ``kl.py``: the closed-form Gaussian KL and the β / capacity-controlled VAE objectives
  (``"kl"``, ``"beta_kl"``, ``"capacity_kl"``).
- ``likelihood.py``: the decoder distributions p(x|z) of the continuous VAEs, each an NLL in nats.

Perceptual and adversarial losses (VQ-GAN) belong here too.
"""

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

__all__ = [
    "LIKELIHOODS",
    "CapacityKL",
    "KLLossOutput",
    "Likelihood",
    "at_least_float32",
    "beta_kl_loss",
    "gaussian_kl",
    "get_likelihood",
    "kl_loss",
    "kld_weight_to_beta",
]
