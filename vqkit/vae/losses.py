"""Moved to ``vqkit.losses.kl``; this module keeps the old import path working."""

from vqkit.losses.kl import (
    CapacityKL,
    KLLossOutput,
    at_least_float32,
    beta_kl_loss,
    gaussian_kl,
    kl_loss,
    kld_weight_to_beta,
)

__all__ = [
    "CapacityKL",
    "KLLossOutput",
    "at_least_float32",
    "beta_kl_loss",
    "gaussian_kl",
    "kl_loss",
    "kld_weight_to_beta",
]
