"""Building blocks: convolutional encoders, decoders and residual stacks (registered by name)."""

from vqkit.nn.blocks import ConvDecoder, ConvEncoder, ResidualStack, ResNetDecoder, ResNetEncoder
from vqkit.nn.discriminator import PatchGANDiscriminator
from vqkit.nn.taming import TamingDecoder, TamingEncoder

__all__ = [
    "ConvDecoder",
    "ConvEncoder",
    "PatchGANDiscriminator",
    "ResNetDecoder",
    "ResNetEncoder",
    "ResidualStack",
    "TamingDecoder",
    "TamingEncoder",
]
