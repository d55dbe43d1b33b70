"""Moved to ``vqkit.models.vlae``; this module keeps the old import path working."""

from vqkit.models.vlae import VLAE

__all__ = ["VLAE"]
