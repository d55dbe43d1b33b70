"""Autoregressive layers and priors: masked layers, PixelCNN, Gated PixelCNN, MADE, MADE flow."""

from vqkit.autoregressive.base import GridPrior, LogitsHead
from vqkit.autoregressive.checks import grid_dependencies, raster_before
from vqkit.autoregressive.flow import MADEFlowPrior
from vqkit.autoregressive.gated_pixelcnn import GatedLayer, GatedPixelCNN
from vqkit.autoregressive.hierarchical import HierarchicalPrior  # vqvae2 branch
from vqkit.autoregressive.made import MADE, MaskedMLP
from vqkit.autoregressive.masked import MaskedConv2d, MaskedLinear, conv_mask
from vqkit.autoregressive.maskgit import MaskGIT
from vqkit.autoregressive.pixelcnn import PixelCNN
from vqkit.autoregressive.transformer import TransformerPrior

__all__ = [
    "MADE",
    "GatedLayer",
    "GatedPixelCNN",
    "GridPrior",
    "HierarchicalPrior",  # vqvae2 branch
    "LogitsHead",
    "MADEFlowPrior",
    "MaskGIT",
    "MaskedConv2d",
    "MaskedLinear",
    "MaskedMLP",
    "PixelCNN",
    "TransformerPrior",
    "conv_mask",
    "grid_dependencies",
    "raster_before",
]
