"""Reusable blocks: encoders, decoders, residual stacks, discriminators (registered by name).

- ``blocks.py``: feature-map encoders / decoders of the discrete autoencoders (``"resnet"``,
  ``"conv"``), the residual stack, and the one strided-conv stack they share.
- ``taming.py``: the VQ-GAN encoder / decoder (``"taming"``).
- ``vector.py``: encoders / decoders to and from latent vectors, for the continuous VAEs
  (``"mlp"``, ``"vector_conv"``).
- ``discriminator.py``: the PatchGAN discriminator (``"patchgan"``).
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
from vqkit.nn.discriminator import PatchGANDiscriminator
from vqkit.nn.taming import TamingDecoder, TamingEncoder
from vqkit.nn.vector import ConvVectorDecoder, ConvVectorEncoder, MLPDecoder, MLPEncoder

__all__ = [
    "ConvDecoder",
    "ConvEncoder",
    "ConvVectorDecoder",
    "ConvVectorEncoder",
    "MLPDecoder",
    "MLPEncoder",
    "PatchGANDiscriminator",
    "ResNetDecoder",
    "ResNetEncoder",
    "ResidualStack",
    "TamingDecoder",
    "TamingEncoder",
    "strided_convs",
    "strided_transposed_convs",
]
