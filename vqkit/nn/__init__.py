"""Reusable building blocks: encoders, decoders and residual stacks (registered by name).

- ``blocks.py``: feature-map encoders / decoders of the discrete autoencoders (``"resnet"``,
  ``"conv"``), the residual stack, and the one strided-conv stack they share.
- ``vector.py``: encoders / decoders to and from latent vectors, for the continuous VAEs
  (``"mlp"``, ``"vector_conv"``).
"""

from vqkit.nn.blocks import (
    ConvDecoder,
    ConvEncoder,
    ResidualStack,
    ResNetDecoder,
    ResNetEncoder,
    strided_convs,
    strided_transposed_convs,
)
from vqkit.nn.vector import ConvVectorDecoder, ConvVectorEncoder, MLPDecoder, MLPEncoder

__all__ = [
    "ConvDecoder",
    "ConvEncoder",
    "ConvVectorDecoder",
    "ConvVectorEncoder",
    "MLPDecoder",
    "MLPEncoder",
    "ResNetDecoder",
    "ResNetEncoder",
    "ResidualStack",
    "strided_convs",
    "strided_transposed_convs",
]
