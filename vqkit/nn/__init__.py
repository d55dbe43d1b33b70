"""Building blocks: convolutional encoders, decoders and residual stacks (registered by name)."""

from vqkit.nn.blocks import ConvDecoder, ConvEncoder, ResidualStack, ResNetDecoder, ResNetEncoder

__all__ = ["ConvDecoder", "ConvEncoder", "ResNetDecoder", "ResNetEncoder", "ResidualStack"]
