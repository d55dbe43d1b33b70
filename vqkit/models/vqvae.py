"""VQ-VAE assembled from registered parts, with an optional autoregressive prior.

*Neural Discrete Representation Learning*, van den Oord, Vinyals, Kavukcuoglu, 2017
(arXiv:1711.00937). Training has two stages, as in the paper (§3.2 and §4):

1. the autoencoder: ``out = model(x); out.loss.backward()`` (reconstruction + quantizer loss);
2. the prior, on the frozen autoencoder's codes: ``model.prior_loss(x).loss.backward()`` with an
   optimizer over ``model.prior.parameters()`` only (the codes are computed without gradients and
   without touching the quantizer's EMA statistics).

``model.generate(n)`` then samples a code grid from the prior and decodes it.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from vqkit._hub import HubMixin
from vqkit._registry import build, get, register

__all__ = ["VQVAE", "VQVAEOutput", "VQVAEPriorOutput"]

_RECON_LOSSES = ("mse", "l1")
_Spec = dict[str, Any] | None  # a mutable copy of a part's spec; None for a built module


@dataclass
class VQVAEOutput:
    """What :meth:`VQVAE.forward` returns.

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
    """What :meth:`VQVAE.prior_loss` returns (the second training stage).

    Attributes:
        loss: prior negative log-likelihood in nats per latent position (scalar).
        losses: ``"nll"`` (same as ``loss``), ``"nll_per_image"`` (nats) and ``"bits_per_latent"``.
        indices: the frozen model's codes ``(B, h, w)`` the prior was scored on.
    """

    loss: torch.Tensor
    losses: dict[str, torch.Tensor] = field(default_factory=dict)
    indices: torch.Tensor | None = None


def _as_spec(kind: str, spec: Any) -> dict[str, Any] | None:
    """A mutable copy of a name or ``{"type": ...}`` spec; None for an already-built module."""
    if isinstance(spec, str):
        return {"type": spec}
    if isinstance(spec, Mapping):
        if not isinstance(spec.get("type"), str):
            raise TypeError(f"a {kind} spec dict needs a string 'type' key, got {dict(spec)}")
        return dict(spec)
    if isinstance(spec, nn.Module):
        return None
    raise TypeError(
        f"{kind} must be a registered name, a {{'type': name, ...}} dict or a module, "
        f"got {type(spec).__name__}"
    )


def _accepts(kind: str, spec: dict[str, Any], param: str) -> bool:
    try:
        params = inspect.signature(get(kind, spec["type"])).parameters
    except (TypeError, ValueError):
        return False
    return param in params


def _wire(kind: str, spec: dict[str, Any] | None, param: str, value: Any, source: str) -> None:
    """Set ``spec[param] = value`` when unset and accepted; reject a different explicit value."""
    if spec is None or value is None:
        return
    if param in spec:
        if spec[param] != value:
            raise ValueError(
                f"{kind} {spec['type']!r} has {param}={spec[param]!r} but {source} is {value!r}; "
                f"they must agree (leave {kind} {param} out to have it wired automatically)"
            )
    elif _accepts(kind, spec, param):
        spec[param] = value


def _check_attr(kind: str, module: nn.Module, attr: str, value: Any, source: str) -> None:
    got = getattr(module, attr, None)
    if got is not None and value is not None and got != value:
        raise ValueError(
            f"{kind} {type(module).__name__} has {attr}={got!r} but {source}={value!r}"
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
            ``{"type": "gated_pixelcnn", "num_layers": 15}``.
        image_size: ``H`` or ``[H, W]`` of the training images; fixes the latent grid that
            :meth:`generate` samples (optional otherwise).
        reconstruction_loss: ``"mse"`` (the paper's Gaussian log-likelihood up to constants) or
            ``"l1"``.
        data_variance: the reconstruction loss is divided by it (Sonnet's VQ-VAE example
            normalises the MSE by the training-set variance); 1.0 leaves it unscaled.

    Shape:
        - Input: (B, C, H, W)
        - Codes: (B, h, w) with ``h = H / f``, ``w = W / f`` for the encoder's downsampling ``f``
        - Output: :class:`VQVAEOutput` with ``reconstruction`` (B, C, H, W)
    """

    family: ClassVar[str] = "discrete"

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
        if reconstruction_loss not in _RECON_LOSSES:
            raise ValueError(
                f"reconstruction_loss must be one of {_RECON_LOSSES}, got {reconstruction_loss!r}"
            )
        if not isinstance(data_variance, (int, float)) or not data_variance > 0:
            raise ValueError(f"data_variance must be a positive number, got {data_variance!r}")
        self.reconstruction_loss = reconstruction_loss
        self.data_variance = float(data_variance)
        self.image_size = _image_size(image_size)

        enc, quant, dec = (
            _as_spec("encoder", encoder),
            _as_spec("quantizer", quantizer),
            _as_spec("decoder", decoder),
        )
        self.quantizer = self._build_quantizer(quant, quantizer, enc, dec)
        self.dim, self.codebook_size = self.quantizer.dim, self.quantizer.codebook_size
        self.encoder, self.decoder = self._build_autoencoder(enc, encoder, dec, decoder)
        self.latent_size = self._latent_size()
        self.prior = None if prior is None else self._build_prior(prior)

    def _build_quantizer(self, quant: _Spec, given: Any, enc: _Spec, dec: _Spec) -> nn.Module:
        """The quantizer is the source of truth for D and K; it may take D from the others."""
        if quant is not None and "dim" not in quant and _accepts("quantizer", quant, "dim"):
            dim = (enc or {}).get("out_channels", (dec or {}).get("in_channels"))
            if dim is not None:
                quant["dim"] = dim
        quantizer = build("quantizer", quant if quant is not None else given)
        dim = getattr(quantizer, "dim", None)
        codebook_size = getattr(quantizer, "codebook_size", None)
        if not isinstance(dim, int) or not isinstance(codebook_size, int):
            raise TypeError(
                f"quantizer {type(quantizer).__name__} must expose integer attributes "
                f"'dim' and 'codebook_size', got dim={dim!r}, codebook_size={codebook_size!r}"
            )
        return quantizer

    def _build_autoencoder(
        self, enc: _Spec, encoder: Any, dec: _Spec, decoder: Any
    ) -> tuple[nn.Module, nn.Module]:
        """Encoder out ← D; decoder in ← D, out ← the encoder's in, upsampling ← downsampling."""
        dim = self.dim
        _wire("encoder", enc, "out_channels", dim, "the quantizer dim")
        built_encoder = build("encoder", enc if enc is not None else encoder)
        _check_attr("encoder", built_encoder, "out_channels", dim, "quantizer dim")

        image_channels = getattr(built_encoder, "in_channels", None)
        downsamples = getattr(built_encoder, "num_downsamples", None)
        _wire("decoder", dec, "in_channels", dim, "the quantizer dim")
        _wire("decoder", dec, "out_channels", image_channels, "the encoder's in_channels")
        _wire("decoder", dec, "num_upsamples", downsamples, "the encoder's num_downsamples")
        built_decoder = build("decoder", dec if dec is not None else decoder)
        _check_attr("decoder", built_decoder, "in_channels", dim, "quantizer dim")
        _check_attr("decoder", built_decoder, "out_channels", image_channels, "encoder in_channels")
        factor = getattr(built_encoder, "downsample_factor", None)
        _check_attr(
            "decoder", built_decoder, "upsample_factor", factor, "encoder downsample_factor"
        )
        return built_encoder, built_decoder

    def _build_prior(self, prior: Any) -> nn.Module:
        """Prior K ← codebook size (and a MADE's num_features ← h·w); one code per position."""
        depth = getattr(self.quantizer, "num_quantizers", 1)
        if isinstance(depth, int) and depth > 1:
            raise ValueError(
                f"a prior models one (h, w) grid of codes, but {type(self.quantizer).__name__} "
                f"gives {depth} codes per position (indices (B, h, w, {depth})); use a "
                "single-codebook quantizer ('vq', 'fsq') with a prior, or prior=None"
            )
        spec = _as_spec("prior", prior)
        _wire("prior", spec, "num_embeddings", self.codebook_size, "the codebook size")
        if self.latent_size is not None:  # a prior over a flattened grid (MADE)
            positions = self.latent_size[0] * self.latent_size[1]
            _wire("prior", spec, "num_features", positions, "the latent grid's h·w")
        built = build("prior", spec if spec is not None else prior)
        if not isinstance(getattr(built, "num_embeddings", None), int):
            raise TypeError(
                f"prior {type(built).__name__} is not a prior over code indices (it has no "
                "integer 'num_embeddings'); use e.g. 'gated_pixelcnn', 'pixelcnn', 'made'"
            )
        _check_attr("prior", built, "num_embeddings", self.codebook_size, "codebook size")
        return built

    def _latent_size(self) -> tuple[int, int] | None:
        if self.image_size is None:
            return None
        height, width = self.image_size
        factor = getattr(self.encoder, "downsample_factor", None)
        if isinstance(factor, int):
            if height % factor or width % factor:
                raise ValueError(
                    f"image_size {list(self.image_size)} is not divisible by the encoder's "
                    f"downsampling factor {factor}"
                )
            return height // factor, width // factor
        # An encoder that does not state its factor: measure it once on a dummy image.
        channels = getattr(self.encoder, "in_channels", None)
        if not isinstance(channels, int):
            raise TypeError(
                f"encoder {type(self.encoder).__name__} exposes neither 'downsample_factor' nor "
                "'in_channels'; cannot derive the latent grid from image_size"
            )
        with torch.no_grad():
            z = self.encoder(torch.zeros(1, channels, height, width))
        return int(z.shape[-2]), int(z.shape[-1])

    # ----------------------------------------------------------------- stage 1
    def forward(self, x: torch.Tensor) -> VQVAEOutput:
        """Encode, quantize, decode; the loss is reconstruction + quantizer loss.

        Args:
            x: images (B, C, H, W).
        """
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
        z_e = self.encoder(x)  # (B, D, h, w)
        was_training = self.quantizer.training
        self.quantizer.eval()  # never move EMA statistics or reseed codes while just encoding
        try:
            return self.quantizer(z_e).indices  # (B, h, w)
        finally:
            self.quantizer.train(was_training)

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Images from code indices (B, h, w) → (B, C, H, W)."""
        if not isinstance(indices, torch.Tensor) or indices.dtype.is_floating_point:
            raise TypeError(f"indices must be an integer tensor, got {indices!r:.60}")
        z_q = self.quantizer.decode(indices)  # (B, D, h, w)
        return self.decoder(z_q)

    # ----------------------------------------------------------------- stage 2
    def _require_prior(self, what: str) -> nn.Module:
        if self.prior is None:
            raise RuntimeError(
                f"{what} needs a prior; build the model with prior={{'type': 'gated_pixelcnn', "
                "...}}"
            )
        return self.prior

    def prior_nll(self, indices: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Prior negative log-likelihood of code grids (B, h, w) → (B,) in nats."""
        return -self._require_prior("prior_nll").log_prob(indices, cond)

    def prior_loss(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> VQVAEPriorOutput:
        """Second-stage objective: the prior's NLL of the frozen model's codes of ``x``.

        Only the prior receives gradients; pass ``model.prior.parameters()`` to the optimizer.

        Args:
            x: images (B, C, H, W).
            cond: optional class labels (B,) for a conditional prior.
        """
        self._require_prior("prior_loss")
        indices = self.encode_indices(x)  # (B, h, w)
        nll_image = self.prior_nll(indices, cond)  # (B,)
        positions = indices[0].numel()
        nll = nll_image.mean() / positions
        losses = {
            "nll": nll,
            "nll_per_image": nll_image.mean().detach(),
            "bits_per_latent": nll.detach() / math.log(2.0),
        }
        return VQVAEPriorOutput(loss=nll, losses=losses, indices=indices)

    @torch.no_grad()
    def generate(
        self,
        n: int,
        cond: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        latent_size: tuple[int, int] | list[int] | None = None,
    ) -> torch.Tensor:
        """Sample ``n`` code grids from the prior and decode them → (n, C, H, W).

        Args:
            n: number of images.
            cond: optional class labels (n,) for a conditional prior.
            generator: a ``torch.Generator`` for reproducible samples.
            temperature: softmax temperature of the prior's sampling.
            latent_size: ``(h, w)``; defaults to the grid implied by ``image_size``.
        """
        prior = self._require_prior("generate")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        size = latent_size if latent_size is not None else self.latent_size
        if size is None:
            raise ValueError(
                "generate needs the latent grid size: build the model with image_size=[H, W] "
                "or pass latent_size=(h, w)"
            )
        indices = prior.sample(
            n, tuple(size), cond=cond, temperature=temperature, generator=generator
        )  # (n, h, w)
        return self.decode_indices(indices)

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, codebook_size={self.codebook_size}, image_size={self.image_size}, "
            f"latent_size={self.latent_size}, reconstruction_loss={self.reconstruction_loss!r}"
        )
