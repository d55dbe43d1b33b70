"""Quantizers: ``VectorQuantizer`` (``"vq"``), ``ResidualVQ`` (``"rvq"``) and
[`FSQ`][vqkit.quantize.FSQ] (``"fsq"``), registered under the kind ``"quantizer"``; all return
[`QuantizerOutput`][vqkit.quantize.QuantizerOutput]."""

from vqkit.quantize.fsq import FSQ
from vqkit.quantize.output import QuantizerOutput
from vqkit.quantize.residual import ResidualVQ
from vqkit.quantize.vq import VectorQuantizer

__all__ = ["FSQ", "QuantizerOutput", "ResidualVQ", "VectorQuantizer"]
