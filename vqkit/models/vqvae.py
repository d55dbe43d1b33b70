"""VQ-VAE assembled from registered parts, with an optional autoregressive prior.

*Neural Discrete Representation Learning*, van den Oord, Vinyals, Kavukcuoglu, 2017
(arXiv:1711.00937). Training has two stages, as in the paper (§3.2 and §4):

1. the autoencoder: ``out = model(x); out.loss.backward()`` (reconstruction + quantizer loss);
2. the prior, on the frozen autoencoder's codes: ``model.prior_loss(x).loss.backward()`` with an
   optimizer over ``model.prior.parameters()`` only (the codes are computed without gradients and
   without touching the quantizer's EMA statistics).

``model.generate(n)`` then samples a code grid from the prior and decodes it.

A prior whose ``domain`` is ``"continuous"`` (latent diffusion, Rombach et al. 2022,
arXiv:2112.10752, the LDM-VQ variant) is trained instead on the pre-quantisation latents ``z_e``
(``encode_latents``); ``generate`` samples latents, quantises them with the model's quantizer and
decodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from vqkit._checks import check_generator, check_number, check_positive_int, check_real_device
from vqkit._hub import HubMixin
from vqkit._registry import build, get, register
from vqkit._utils import eval_mode
from vqkit.models._assembly import Spec, accepts, as_spec, check_attr, wire

__all__ = ["VQVAE", "VQVAEOutput", "VQVAEPriorOutput"]

_RECON_LOSSES = ("mse", "l1")


@dataclass
class VQVAEOutput:
    """What ``VQVAE.forward`` returns.

    Attributes:
        loss: total objective ``recon + quantizer.loss`` (scalar).
        losses: named scalars ``"recon"``, ``"quantizer"``, ``"total"`` for logging.
        reconstruction: decoded images ``(B, C, H, W)``.
        quantizer: the quantizer's output (``quantized``, ``indices``, ``loss``, ``perplexity``,
            ``metrics``).
    """

    loss: torch.Tensor
    losses: dict[str, torch.Tensor]
    reconstruction: torch.Tensor
    quantizer: Any


@dataclass
class VQVAEPriorOutput:
    """What ``VQVAE.prior_loss`` returns (the second training stage).

    Attributes:
        loss: the prior's objective (scalar): for a likelihood prior, the NLL in nats per latent
            position.
        losses: the prior's named figures; for a likelihood prior ``"nll"`` (``loss``, detached),
            ``"nll_per_sample"`` (nats per code grid) and ``"bits_per_latent"``.
        indices: the frozen model's codes ``(B, h, w)`` the prior was scored on (None for a
            ``"continuous"`` prior).
        latents: the pre-quantisation latents ``(B, D, h, w)`` a ``"continuous"`` prior was
            scored on (None for a prior over codes).
    """

    loss: torch.Tensor
    losses: dict[str, torch.Tensor] = field(default_factory=dict)
    indices: torch.Tensor | None = None
    latents: torch.Tensor | None = None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_grid_codes(quantizer: str, indices: torch.Tensor) -> None:
    if indices.dim() != 3:
        depth = indices.shape[-1] if indices.dim() == 4 else "several"
        raise ValueError(
            f"a prior models one (h, w) grid of codes, but {quantizer} gives {depth} codes per "
            f"position (indices of shape {tuple(indices.shape)}); use a single-codebook "
            "quantizer ('vq', 'fsq') with a prior, or prior=None"
        )


def _check_images(x: Any, owner: str = "VQVAE") -> None:
    """Images for a discrete model: a floating-point (B, C, H, W) tensor on a real device with
    at least one image (``owner`` names the model in the messages)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{owner} expects images as a tensor (B, C, H, W), got {type(x).__name__}")
    check_real_device(owner, x, "images")
    if not x.is_floating_point():
        raise TypeError(
            f"{owner} expects floating-point images, got {x.dtype} (convert integer images with "
            "x.float() / 255)"
        )
    if x.dim() != 4:
        raise ValueError(f"{owner} expects images of shape (B, C, H, W), got {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(
            f"{owner} received an empty batch (B = 0); its loss is a mean over images and is "
            "undefined for none"
        )


def _image_size(image_size: Any) -> tuple[int, int] | None:
    if image_size is None:
        return None
    if isinstance(image_size, int) and not isinstance(image_size, bool):
        image_size = [image_size, image_size]
    if (
        not isinstance(image_size, (list, tuple))
        or len(image_size) != 2
        or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in image_size)
    ):
        raise ValueError(f"image_size must be an int or [height, width], got {image_size!r}")
    return int(image_size[0]), int(image_size[1])


@register("model", "vqvae")
class VQVAE(
    nn.Module,
    HubMixin,
    tags=["vq-vae", "image-generation"],
    paper_url="https://arxiv.org/abs/1711.00937",
):
    """VQ-VAE: encoder → quantizer → decoder, plus an optional prior over the code grid.

    Sizes that must agree are wired from the quantizer when a part leaves them out: the
    encoder's ``out_channels`` and the decoder's ``in_channels`` become the quantizer's ``dim``
    (or the quantizer's ``dim`` is taken from them), the prior's ``num_embeddings`` becomes the
    codebook size, and the decoder's ``out_channels`` / ``num_upsamples`` follow the encoder's
    ``in_channels`` / ``num_downsamples``. Explicit values that disagree raise ``ValueError``.

    Args:
        encoder: encoder spec, e.g. ``{"type": "resnet", "in_channels": 3}``.
        quantizer: quantizer spec, e.g. ``{"type": "vq", "dim": 64, "codebook_size": 512}``.
        decoder: decoder spec, e.g. ``{"type": "resnet", "out_channels": 3}``.
        prior: optional prior spec over the ``(h, w)`` code grid, e.g.
            ``{"type": "gated_pixelcnn", "num_layers": 15}``, or a ``"continuous"``-domain prior
            over the pre-quantisation latents ``(D, h, w)``, e.g. ``{"type":
            "latent_diffusion"}`` (its ``channels`` are wired from the quantizer ``dim``).
        image_size: ``H`` or ``[H, W]`` of the training images; fixes the latent grid that
            ``generate`` samples (optional otherwise).
        reconstruction_loss: ``"mse"`` (the paper's Gaussian log-likelihood up to constants) or
            ``"l1"``.
        data_variance: the reconstruction loss is divided by it (Sonnet's VQ-VAE example
            normalises the MSE by the training-set variance); 1.0 leaves it unscaled.

    Shape:
        - Input: (B, C, H, W)
        - Codes: (B, h, w) with ``h = H / f``, ``w = W / f`` for the encoder's downsampling ``f``
        - Output: ``VQVAEOutput`` with ``reconstruction`` (B, C, H, W)
    """

    family: ClassVar[str] = "discrete"
    adversarial: ClassVar[bool] = False

    # Parts built through the registry: nn.Modules checked against their kind's contract
    # (vqkit.contracts) when built; typed Any, as Python has no nn.Module-and-Protocol type.
    encoder: Any
    decoder: Any
    quantizer: Any
    prior: Any

    def __init__(
        self,
        encoder: str | dict,
        quantizer: str | dict,
        decoder: str | dict,
        prior: str | dict | None = None,
        image_size: int | list[int] | None = None,
        reconstruction_loss: str = "mse",
        data_variance: float = 1.0,
    ) -> None:
        super().__init__()
        if not isinstance(reconstruction_loss, str) or reconstruction_loss not in _RECON_LOSSES:
            raise ValueError(
                f"reconstruction_loss must be one of {_RECON_LOSSES}, got {reconstruction_loss!r}"
            )
        self.reconstruction_loss = reconstruction_loss
        self.data_variance = check_number(
            "VQVAE", "data_variance", data_variance, low=0, low_open=True
        )
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

    def _build_quantizer(self, quant: Spec, given: Any, enc: Spec, dec: Spec) -> nn.Module:
        """The quantizer is the source of truth for D and K; it may take D from the others."""
        if quant is not None and "dim" not in quant and accepts("quantizer", quant, "dim"):
            dim = (enc or {}).get("out_channels", (dec or {}).get("in_channels"))
            if dim is not None:
                quant["dim"] = dim
        quantizer = build("quantizer", quant if quant is not None else given)
        dim, codebook_size = quantizer.dim, quantizer.codebook_size  # the quantizer contract
        if not _is_int(dim) or not _is_int(codebook_size):
            raise TypeError(
                f"quantizer {type(quantizer).__name__} must expose integer attributes "
                f"'dim' and 'codebook_size', got dim={dim!r}, codebook_size={codebook_size!r}"
            )
        return quantizer

    def _build_autoencoder(
        self, enc: Spec, encoder: Any, dec: Spec, decoder: Any
    ) -> tuple[nn.Module, nn.Module]:
        """Encoder out ← D; decoder in ← D, out ← the encoder's in, upsampling ← downsampling."""
        dim = self.dim
        wire("encoder", enc, "out_channels", dim, "the quantizer dim")
        built_encoder = build("encoder", enc if enc is not None else encoder)
        check_attr("encoder", built_encoder, "out_channels", dim, "quantizer dim")

        # The encoder contract: in_channels and downsample_factor (a power of two for the
        # strided encoders, whose decoders take num_upsamples = log2 of it).
        image_channels = built_encoder.in_channels
        factor = built_encoder.downsample_factor
        upsamples = factor.bit_length() - 1 if _is_int(factor) and factor > 0 else None
        if upsamples is not None and 2**upsamples != factor:
            upsamples = None
        wire("decoder", dec, "in_channels", dim, "the quantizer dim")
        wire("decoder", dec, "out_channels", image_channels, "the encoder's in_channels")
        wire("decoder", dec, "num_upsamples", upsamples, "the encoder's num_downsamples")
        built_decoder = build("decoder", dec if dec is not None else decoder)
        check_attr("decoder", built_decoder, "in_channels", dim, "quantizer dim")
        check_attr("decoder", built_decoder, "out_channels", image_channels, "encoder in_channels")
        check_attr("decoder", built_decoder, "upsample_factor", factor, "encoder downsample_factor")
        return built_encoder, built_decoder

    def _build_prior(self, prior: Any) -> nn.Module:
        """Prior K ← codebook size (and a MADE's num_features ← h·w); one code per position.

        A ``"continuous"`` prior models the pre-quantisation latents instead: its
        ``channels`` ← D, and any quantizer decodes its samples.
        """
        spec = as_spec("prior", prior)
        cls = get("prior", spec["type"]) if spec is not None else type(prior)
        if getattr(cls, "domain", None) == "continuous":  # the contract's class attribute
            wire("prior", spec, "channels", self.dim, "the quantizer dim")
        else:
            wire("prior", spec, "num_embeddings", self.codebook_size, "the codebook size")
            if self.latent_size is not None:  # a prior over a flattened grid (MADE)
                positions = self.latent_size[0] * self.latent_size[1]
                wire("prior", spec, "num_features", positions, "the latent grid's h·w")
        built = build("prior", spec if spec is not None else prior)
        if built.domain == "continuous":
            channels = getattr(built, "channels", None)
            if channels != self.dim:
                raise TypeError(
                    f"prior {type(built).__name__} is not a prior over code indices (its domain "
                    f"is 'continuous') nor over latent grids (B, {self.dim}, h, w): a continuous "
                    f"prior of {type(self).__name__} must have channels={self.dim} (the quantizer "
                    f"dim), it has channels={channels!r}; use e.g. 'latent_diffusion', or "
                    "'gated_pixelcnn' over codes"
                )
            return built
        if built.domain != "codes":
            raise TypeError(
                f"prior {type(built).__name__} is not a prior over code indices (its domain is "
                f"{built.domain!r}, not 'codes'); use e.g. 'gated_pixelcnn', 'pixelcnn', 'made'"
            )
        check_attr("prior", built, "num_embeddings", self.codebook_size, "codebook size")
        self._check_one_code_per_position()
        return built

    def _check_one_code_per_position(self) -> None:
        """A prior models one (h, w) grid of codes: refuse quantizers with several per position.

        Measured on one 1×1 vector in eval mode (no statistics move); skipped on the ``meta``
        device, where ``prior_loss`` checks the codes instead.
        """
        param = next(self.quantizer.parameters(), None)
        buffer = next(self.quantizer.buffers(), None)
        ref = param if param is not None else buffer
        if ref is not None and ref.device.type == "meta":
            return
        device = ref.device if ref is not None else None
        dtype = ref.dtype if ref is not None and ref.is_floating_point() else None
        z = torch.zeros(1, self.dim, 1, 1, device=device, dtype=dtype)
        with torch.no_grad(), eval_mode(self.quantizer):
            indices = self.quantizer(z).indices
        _check_grid_codes(type(self.quantizer).__name__, indices)

    def _latent_size(self) -> tuple[int, int] | None:
        if self.image_size is None:
            return None
        height, width = self.image_size
        factor = self.encoder.downsample_factor  # the encoder contract
        if height % factor or width % factor:
            raise ValueError(
                f"image_size {list(self.image_size)} is not divisible by the encoder's "
                f"downsampling factor {factor}"
            )
        return height // factor, width // factor

    # ----------------------------------------------------------------- stage 1
    def forward(self, x: torch.Tensor) -> VQVAEOutput:
        """Encode, quantize, decode; the loss is reconstruction + quantizer loss.

        Args:
            x: images (B, C, H, W), floating point, at least one.

        Raises:
            TypeError: ``x`` is not a floating-point tensor.
            ValueError: ``x`` is on the ``meta`` device, empty, or of the wrong shape.
        """
        _check_images(x)
        z_e = self.encoder(x)  # (B, D, h, w)
        q = self.quantizer(z_e)
        x_hat = self.decoder(q.quantized)  # (B, C, H, W)
        if x_hat.shape != x.shape:
            raise ValueError(
                f"decoder output {tuple(x_hat.shape)} does not match the input {tuple(x.shape)}"
            )
        if self.reconstruction_loss == "mse":
            recon = F.mse_loss(x_hat, x) / self.data_variance
        else:
            recon = F.l1_loss(x_hat, x) / self.data_variance
        loss = recon + q.loss
        losses = {"recon": recon, "quantizer": q.loss, "total": loss}
        return VQVAEOutput(loss=loss, losses=losses, reconstruction=x_hat, quantizer=q)

    @torch.no_grad()
    def encode_indices(self, x: torch.Tensor) -> torch.Tensor:
        """Code indices of ``x`` (B, C, H, W) → (B, h, w), without gradients or EMA updates."""
        _check_images(x)
        z_e = self.encoder(x)  # (B, D, h, w)
        with eval_mode(self.quantizer):  # never move EMA statistics or reseed codes here
            return self.quantizer(z_e).indices  # (B, h, w)

    @torch.no_grad()
    def encode_latents(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-quantisation latents z_e of ``x`` (B, C, H, W) → (B, D, h, w), without gradients
        (what a ``"continuous"`` prior is trained on)."""
        _check_images(x)
        return self.encoder(x)  # (B, D, h, w)

    def quantize_latents(self, z: torch.Tensor) -> torch.Tensor:
        """The quantizer's vectors for latents (B, D, h, w), in eval mode (no EMA updates)."""
        with eval_mode(self.quantizer):
            return self.quantizer(z).quantized  # (B, D, h, w)

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Images from code indices (B, h, w) → (B, C, H, W)."""
        if not isinstance(indices, torch.Tensor) or indices.dtype.is_floating_point:
            raise TypeError(f"indices must be an integer tensor, got {indices!r:.60}")
        if indices.dtype == torch.bool:
            raise TypeError("indices must be an integer tensor, got a bool tensor")
        check_real_device("VQVAE", indices, "indices")
        z_q = self.quantizer.decode(indices)  # (B, D, h, w)
        return self.decoder(z_q)

    # ----------------------------------------------------------------- stage 2
    def _require_prior(self, what: str) -> Any:  # a registered prior (vqkit.contracts.Prior)
        if self.prior is None:
            raise RuntimeError(
                f"{what} needs a prior; build the model with prior={{'type': 'gated_pixelcnn', "
                "...}}"
            )
        return self.prior

    def prior_nll(self, indices: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Prior negative log-likelihood of code grids (B, h, w) → (B,) in nats.

        Raises:
            TypeError: the prior has no exact likelihood (``prior.exact_likelihood`` is False).
        """
        prior = self._require_prior("prior_nll")
        if not prior.exact_likelihood:
            raise TypeError(
                f"prior {type(prior).__name__} has no exact likelihood (exact_likelihood=False); "
                "use prior_loss for its training objective"
            )
        return -prior.log_prob(indices, cond)

    def prior_loss(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> VQVAEPriorOutput:
        """Second-stage objective: the prior's ``loss`` on the frozen model's codes of ``x``.

        For a likelihood prior (``prior.exact_likelihood``) this is the NLL in nats per latent
        position of ``vqkit.contracts.likelihood_loss``: ``losses`` holds ``"nll"``,
        ``"nll_per_sample"`` (nats per code grid) and ``"bits_per_latent"``. Other priors
        (MaskGIT) report their own objective's figures. Only the prior receives gradients; pass
        ``model.prior.parameters()`` to the optimizer.

        Args:
            x: images (B, C, H, W).
            cond: optional class labels (B,) for a conditional prior.
        """
        prior = self._require_prior("prior_loss")
        if prior.domain == "continuous":
            latents = self.encode_latents(x)  # (B, D, h, w), before the quantizer
            out = prior.loss(latents, cond)
            return VQVAEPriorOutput(loss=out.loss, losses=dict(out.losses), latents=latents)
        indices = self.encode_indices(x)  # (B, h, w)
        _check_grid_codes(type(self.quantizer).__name__, indices)
        out = prior.loss(indices, cond)
        return VQVAEPriorOutput(loss=out.loss, losses=dict(out.losses), indices=indices)

    @torch.no_grad()
    def generate(
        self,
        n: int,
        cond: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        latent_size: tuple[int, int] | list[int] | None = None,
        **options: Any,
    ) -> torch.Tensor:
        """Sample ``n`` code grids from the prior and decode them → (n, C, H, W).

        A ``"continuous"`` prior samples latents (n, D, h, w) instead, which the quantizer maps
        to its vectors before decoding (and which it may use on every step's predicted latents:
        the prior receives ``quantize=quantize_latents``).

        Args:
            n: number of images.
            cond: optional class labels (n,) for a conditional prior.
            generator: a ``torch.Generator`` for reproducible samples.
            temperature: softmax temperature of the prior's sampling.
            latent_size: ``(h, w)``; defaults to the grid implied by ``image_size``.
            options: further keyword options of ``prior.sample`` (e.g. a diffusion prior's
                ``steps``, ``eta``, ``sampler``).
        """
        prior = self._require_prior("generate")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        check_number("VQVAE.generate", "temperature", temperature, low=0, low_open=True)
        check_generator("VQVAE.generate", generator)
        if latent_size is not None:
            if not isinstance(latent_size, (tuple, list)) or len(latent_size) != 2:
                raise ValueError(f"latent_size must be (h, w), got {latent_size!r}")
            for side in latent_size:
                check_positive_int("VQVAE.generate", "latent_size", side)
        size = latent_size if latent_size is not None else self.latent_size
        if size is None:
            raise ValueError(
                "generate needs the latent grid size: build the model with image_size=[H, W] "
                "or pass latent_size=(h, w)"
            )
        if prior.domain == "continuous":
            z = prior.sample(
                n,
                tuple(size),
                cond=cond,
                temperature=temperature,
                generator=generator,
                quantize=self.quantize_latents,
                **options,
            )  # (n, D, h, w)
            return self.decoder(self.quantize_latents(z))
        indices = prior.sample(
            n, tuple(size), cond=cond, temperature=temperature, generator=generator, **options
        )  # (n, h, w)
        return self.decode_indices(indices)

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, codebook_size={self.codebook_size}, image_size={self.image_size}, "
            f"latent_size={self.latent_size}, reconstruction_loss={self.reconstruction_loss!r}"
        )
