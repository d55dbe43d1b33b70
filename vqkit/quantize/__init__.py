"""Quantizers: :class:`VectorQuantizer` (``"vq"``), :class:`ResidualVQ` (``"rvq"``),
:class:`FSQ` (``"fsq"``) and :class:`GumbelQuantizer` (``"gumbel"``), registered under the
kind ``"quantizer"``; all return :class:`QuantizerOutput`."""

from vqkit.quantize.fsq import FSQ
from vqkit.quantize.gumbel import GumbelQuantizer
from vqkit.quantize.output import QuantizerOutput
from vqkit.quantize.residual import ResidualVQ
from vqkit.quantize.vq import VectorQuantizer

__all__ = ["FSQ", "GumbelQuantizer", "QuantizerOutput", "ResidualVQ", "VectorQuantizer"]
