"""Quantizers: ``VectorQuantizer`` (``"vq"``), ``ResidualVQ`` (``"rvq"``),
[`FSQ`][vqkit.quantize.FSQ] (``"fsq"``) and ``GumbelQuantizer`` (``"gumbel"``), registered under
the kind ``"quantizer"``; all return [`QuantizerOutput`][vqkit.quantize.QuantizerOutput]."""

from vqkit.quantize.fsq import FSQ
from vqkit.quantize.gumbel import GumbelQuantizer
from vqkit.quantize.output import QuantizerOutput
from vqkit.quantize.residual import ResidualVQ
from vqkit.quantize.vq import VectorQuantizer

__all__ = ["FSQ", "GumbelQuantizer", "QuantizerOutput", "ResidualVQ", "VectorQuantizer"]
