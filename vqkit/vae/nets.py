"""Moved to ``vqkit.nn.vector``; this module keeps the old import path working."""

from vqkit.nn.vector import conv_decoder, conv_encoder, mlp

__all__ = ["conv_decoder", "conv_encoder", "mlp"]
