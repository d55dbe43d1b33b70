"""The DALL-E discrete VAE: encoder → Gumbel-softmax codes → decoder, logit-Laplace likelihood.

Ramesh et al., "Zero-Shot Text-to-Image Generation" (arXiv:2102.12092), §2.1 and Appendix A:
a 256×256×3 image is encoded to 32×32 categorical posteriors over K = 8192 codes, trained as a
VAE with the Gumbel-softmax relaxation (temperature annealed from 1 to 1/16) and a KL to the
uniform prior weighted by β = 6.6, with the logit-Laplace reconstruction likelihood. A prior
over the argmax code grid is the second stage (the paper's transformer; any vqkit ``"codes"``
prior here).

Why a ``VQVAE`` subclass: the dVAE is a VQ-VAE whose quantizer is ``"gumbel"`` (the 1×1 logits
projection and the code embedding live in ``vqkit.quantize.GumbelQuantizer``) and whose
reconstruction term is a likelihood with two maps per image channel. Everything else (the
wiring of sizes, the prior stage, ``prior_loss``, ``generate``, the Hub machinery) is
``VQVAE``'s; ``DVAE`` changes the decoder's output channels, maps the encoder's input with
DALL-E's pixel map, and computes the reconstruction term and the reconstruction from the
likelihood.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vqkit._checks import check_choice, check_number, check_positive_int, check_real_device
from vqkit._registry import build, register
from vqkit._utils import eval_mode
from vqkit.losses.logit_laplace import DEFAULT_EPS, LogitLaplace
from vqkit.models._assembly import Spec, as_spec, check_attr, wire
from vqkit.models.vqvae import VQVAE, VQVAEOutput, _check_images, _image_size, _is_int

__all__ = ["DVAE"]

_RECON_LOSSES = ("logit_laplace", "mse")


@register("model", "dvae")
class DVAE(
    VQVAE,
    tags=["dvae", "dall-e", "gumbel-softmax", "image-generation"],
    paper_url="https://arxiv.org/abs/2102.12092",
):
    """DALL-E's dVAE: encoder → ``"gumbel"`` quantizer → decoder, plus an optional codes prior.

    ``loss = recon + quantizer.loss``; with the ``"gumbel"`` quantizer the second term is
    ``kl_weight · KL(q ‖ uniform)`` per latent position, and the quantizer's ``temperature`` and
    ``kl_weight`` are what training schedules anneal (``TrainConfig.schedules``, e.g.
    ``{"name": "quantizer.temperature", "type": "cosine", "start": 1, "end": 0.0625, "steps":
    5000}``). Any other quantizer fits too (a ``"vq"`` one gives a VQ-VAE with a logit-Laplace
    likelihood).

    With ``reconstruction_loss="logit_laplace"`` (DALL-E's) the decoder emits ``2C`` channels
    (μ and ln b per image channel; its ``out_channels`` is wired to that), the encoder sees the
    mapped pixels ``(1 − 2ε)x + ε``, ``recon`` is the NLL in nats per pixel value (mean), and
    the reconstruction is ``unmap(sigmoid(μ))``. With ``"mse"`` the decoder emits ``C`` channels
    and ``recon`` is the mean squared error (the encoder sees ``x`` as it is).

    Eval mode is deterministic (the argmax code), so ``decode_indices(encode_indices(x))``
    equals ``model.eval()(x).reconstruction`` exactly.

    Args:
        encoder: encoder spec, e.g. ``{"type": "resnet", "in_channels": 3}``.
        quantizer: quantizer spec, e.g. ``{"type": "gumbel", "dim": 64, "codebook_size": 512}``.
        decoder: decoder spec, e.g. ``{"type": "resnet"}``.
        prior: optional prior spec over the (h, w) grid of argmax codes.
        image_size: ``H`` or ``[H, W]`` of the training images (fixes ``generate``'s grid).
        reconstruction_loss: ``"logit_laplace"`` or ``"mse"``.
        logit_laplace_eps: ε of the pixel map (DALL-E: 0.1).

    Shape:
        - Input: (B, C, H, W) in [0, 1]
        - Codes: (B, h, w)
        - Output: ``VQVAEOutput`` with ``reconstruction`` (B, C, H, W) and ``losses``
          ``"recon"``, ``"quantizer"``, ``"kl"`` (when the quantizer reports one), ``"total"``
    """

    def __init__(
        self,
        encoder: str | dict,
        quantizer: str | dict = "gumbel",
        decoder: str | dict = "resnet",
        prior: str | dict | None = None,
        image_size: int | list[int] | None = None,
        reconstruction_loss: str = "logit_laplace",
        logit_laplace_eps: float = DEFAULT_EPS,
    ) -> None:
        nn.Module.__init__(self)
        owner = type(self).__name__
        self.reconstruction_loss = check_choice(
            owner, "reconstruction_loss", reconstruction_loss, _RECON_LOSSES
        )
        eps = check_number(
            owner, "logit_laplace_eps", logit_laplace_eps, low=0.0, high=0.5, low_open=True,
            high_open=True,
        )  # fmt: skip
        self.likelihood = LogitLaplace(eps) if reconstruction_loss == "logit_laplace" else None
        self.data_variance = 1.0
        self.image_size = _image_size(image_size)
        enc, quant, dec = (
            as_spec("encoder", encoder),
            as_spec("quantizer", quantizer),
            as_spec("decoder", decoder),
        )
        self.quantizer = self._build_quantizer(quant, quantizer, enc, dec)
        self.dim, self.codebook_size = self.quantizer.dim, self.quantizer.codebook_size
        self.encoder, self.decoder = self._build_autoencoder(enc, encoder, dec, decoder)
        self.latent_size = self._latent_size()
        self.prior = None if prior is None else self._build_prior(prior)

    @property
    def params_per_channel(self) -> int:
        """Decoder output maps per image channel: 2 (μ, ln b) for logit-Laplace, else 1."""
        return 1 if self.likelihood is None else self.likelihood.num_params

    def _build_autoencoder(
        self, enc: Spec, encoder: Any, dec: Spec, decoder: Any
    ) -> tuple[nn.Module, nn.Module]:
        """``VQVAE``'s wiring, with the decoder's out_channels = params_per_channel · C."""
        dim = self.dim
        wire("encoder", enc, "out_channels", dim, "the quantizer dim")
        built_encoder = build("encoder", enc if enc is not None else encoder)
        check_attr("encoder", built_encoder, "out_channels", dim, "quantizer dim")
        out_channels = self.params_per_channel * built_encoder.in_channels
        source = (
            "2 × the encoder's in_channels (μ and ln b of the logit-Laplace likelihood)"
            if self.likelihood is not None
            else "the encoder's in_channels"
        )
        factor = built_encoder.downsample_factor
        upsamples = factor.bit_length() - 1 if _is_int(factor) and factor > 0 else None
        if upsamples is not None and 2**upsamples != factor:
            upsamples = None
        wire("decoder", dec, "in_channels", dim, "the quantizer dim")
        wire("decoder", dec, "out_channels", out_channels, source)
        wire("decoder", dec, "num_upsamples", upsamples, "the encoder's num_downsamples")
        built_decoder = build("decoder", dec if dec is not None else decoder)
        check_attr("decoder", built_decoder, "in_channels", dim, "quantizer dim")
        check_attr("decoder", built_decoder, "out_channels", out_channels, source)
        check_attr("decoder", built_decoder, "upsample_factor", factor, "encoder downsample_factor")
        return built_encoder, built_decoder

    # ----------------------------------------------------------------- stage 1
    def _encoder_input(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.likelihood is None else self.likelihood.map(x)

    def _reconstruction(self, out: torch.Tensor) -> torch.Tensor:
        return out if self.likelihood is None else self.likelihood.mean(out)

    def forward(self, x: torch.Tensor) -> VQVAEOutput:
        """Encode, quantize (a Gumbel-softmax sample in training), decode; recon + quantizer loss.

        Args:
            x: images (B, C, H, W) in [0, 1], at least one.

        Raises:
            TypeError: ``x`` is not a floating-point tensor.
            ValueError: ``x`` is on the ``meta`` device, empty, of the wrong shape, or (with the
                logit-Laplace likelihood) outside [0, 1].
        """
        _check_images(x, "DVAE")
        z_e = self.encoder(self._encoder_input(x))  # (B, D, h, w)
        q = self.quantizer(z_e)
        out = self.decoder(q.quantized)  # (B, params_per_channel · C, H, W)
        expected = (x.shape[0], self.params_per_channel * x.shape[1], *x.shape[2:])
        if tuple(out.shape) != expected:
            raise ValueError(
                f"decoder output {tuple(out.shape)} does not match the input {tuple(x.shape)} "
                f"(expected {expected})"
            )
        if self.likelihood is None:
            recon = F.mse_loss(out, x)
        else:
            recon = self.likelihood(x, out).loss  # nats per pixel value
        loss = recon + q.loss
        losses = {"recon": recon, "quantizer": q.loss, "total": loss}
        if "kl" in q.metrics:
            losses["kl"] = q.metrics["kl"]
        reconstruction = self._reconstruction(out)  # (B, C, H, W)
        return VQVAEOutput(loss=loss, losses=losses, reconstruction=reconstruction, quantizer=q)

    @torch.no_grad()
    def encode_indices(self, x: torch.Tensor) -> torch.Tensor:
        """The argmax codes of ``x`` (B, C, H, W) → (B, h, w), without gradients."""
        _check_images(x, "DVAE")
        z_e = self.encoder(self._encoder_input(x))  # (B, D, h, w)
        with eval_mode(self.quantizer):
            return self.quantizer(z_e).indices  # (B, h, w)

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] from code indices (B, h, w) → (B, C, H, W)."""
        if not isinstance(indices, torch.Tensor) or indices.dtype.is_floating_point:
            raise TypeError(f"indices must be an integer tensor, got {indices!r:.60}")
        if indices.dtype == torch.bool:
            raise TypeError("indices must be an integer tensor, got a bool tensor")
        check_real_device(type(self).__name__, indices, "indices")
        quantizer: Any = self.quantizer  # the quantizer contract: decode(indices)
        z_q = quantizer.decode(indices)  # (B, D, h, w)
        return self._reconstruction(self.decoder(z_q))

    @torch.no_grad()
    def interpolate(self, x1: torch.Tensor, x2: torch.Tensor, steps: int = 10) -> torch.Tensor:
        """Decodes along the line between the encodings of ``x1`` and ``x2`` (B, C, H, W), each
        point snapped to its argmax codes → (B, steps, C, H, W)."""
        check_positive_int(type(self).__name__, "steps", steps)
        _check_images(x1, "DVAE")
        _check_images(x2, "DVAE")
        if x1.shape != x2.shape:
            raise ValueError(
                f"interpolate needs two batches of the same shape, got {tuple(x1.shape)} and "
                f"{tuple(x2.shape)}"
            )
        z1 = self.encoder(self._encoder_input(x1))  # (B, D, h, w)
        z2 = self.encoder(self._encoder_input(x2))
        t = torch.linspace(0, 1, steps, device=z1.device).view(1, steps, 1, 1, 1)
        z = (z1[:, None] * (1 - t) + z2[:, None] * t).flatten(0, 1)  # (B·steps, D, h, w)
        with eval_mode(self.quantizer):
            quantized = self.quantizer(z).quantized
        images = self._reconstruction(self.decoder(quantized))  # (B·steps, C, H, W)
        return images.view(x1.shape[0], steps, *x1.shape[1:])

    def extra_repr(self) -> str:
        eps = f", logit_laplace_eps={self.likelihood.eps}" if self.likelihood is not None else ""
        return (
            f"dim={self.dim}, codebook_size={self.codebook_size}, image_size={self.image_size}, "
            f"latent_size={self.latent_size}, reconstruction_loss={self.reconstruction_loss!r}"
            f"{eps}"
        )
