"""Moved to ``vqkit.losses.likelihood``; this module keeps the old import path working."""

from vqkit.losses.likelihood import LIKELIHOODS, Likelihood, get_likelihood

__all__ = ["LIKELIHOODS", "Likelihood", "get_likelihood"]
