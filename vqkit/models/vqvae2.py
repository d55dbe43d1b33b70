"""VQ-VAE-2: a coarse top code grid over a fine bottom one, assembled from registered parts.

*Generating Diverse High-Fidelity Images with VQ-VAE-2*, Razavi, van den Oord, Vinyals, 2019
(arXiv:1906.00446), §3.1 and Fig. 2a. The wiring is the paper's (and that of
rosinality/vq-vae-2-pytorch, read for understanding):

1. the bottom encoder maps the image to features ``h_b`` (B, C_b, h_b, w_b);
2. the top encoder maps ``h_b`` to the top latents, quantized to ``q_t`` (B, D_t, h_t, w_t);
3. ``q_t`` is decoded to the bottom grid (``top_to_bottom``), concatenated to ``h_b`` and
   projected (1×1) to the bottom latents, quantized to ``q_b`` (B, D_b, h_b, w_b): the bottom
   codes hold what the top ones miss;
4. the decoder sees ``[upsample(q_t), q_b]`` and outputs the image.

Users of the reference implementation report that the bottom level ends up encoding everything
(a top-only decode is useless). The optional ``top_decoder`` adds a weighted reconstruction of
the image from ``q_t`` alone, so that the top codes must describe the image themselves;
``decode_top`` draws it.

Training has two stages as for ``VQVAE``: the autoencoder (``model(x).loss``), then a prior over
the pair of code grids (``model.prior_loss(x)``, e.g. the ``"hierarchical"`` prior of
``vqkit.autoregressive.hierarchical``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from vqkit._checks import check_generator, check_number, check_positive_int, check_real_device
from vqkit._hub import HubMixin
from vqkit._registry import build, register
from vqkit._utils import eval_mode
from vqkit.models._assembly import Spec, accepts, as_spec, check_attr, wire
from vqkit.models.vqvae import _check_images
from vqkit.nn.blocks import strided_transposed_convs

__all__ = ["VQVAE2", "VQVAE2Output"]

_RECON_LOSSES = ("mse", "l1")
_LEVELS = ("top", "bottom")


@dataclass
class VQVAE2Output:
    """What ``VQVAE2.forward`` returns.

    Attributes:
        loss: total objective (scalar): ``recon + top_reconstruction_weight · top_recon +
            quantizer_top + quantizer_bottom``.
        losses: named scalars for logging: ``"recon"``, ``"top_recon"`` (with a top decoder),
            ``"quantizer_top"``, ``"quantizer_bottom"``, ``"quantizer"`` (their sum),
            ``"perplexity_top"`` / ``"perplexity_bottom"`` (of the batch's codes) and
            ``"usage_top"`` / ``"usage_bottom"`` (fraction of each codebook used in the batch),
            ``"total"``.
        reconstruction: decoded images (B, C, H, W) from both levels.
        top_reconstruction: the top decoder's images (B, C, H, W), or None without one.
        quantizers: the two quantizers' outputs, ``(top, bottom)``.
        quantizer: None (a two-level model has no single quantizer output; the trainer then
            logs the per-level perplexities of ``losses``).
    """

    loss: torch.Tensor
    losses: dict[str, torch.Tensor]
    reconstruction: torch.Tensor
    top_reconstruction: torch.Tensor | None
    quantizers: tuple[Any, Any]
    quantizer: None = field(default=None)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _log2(owner: str, factor: Any, what: str) -> int:
    """``log2(factor)`` for a power-of-two resampling factor, else a clear error."""
    if not _is_int(factor) or factor < 1 or factor & (factor - 1):
        raise ValueError(f"{owner}: {what} must be a power of two, got {factor!r}")
    return int(factor).bit_length() - 1


def _check_codes(name: str, codes: Any, codebook_size: int) -> torch.Tensor:
    if not isinstance(codes, torch.Tensor):
        raise TypeError(f"VQVAE2: {name} codes must be an integer tensor, got {type(codes)}")
    if codes.dtype.is_floating_point or codes.dtype.is_complex or codes.dtype == torch.bool:
        raise TypeError(f"VQVAE2: {name} codes must be an integer tensor, got {codes.dtype}")
    check_real_device("VQVAE2", codes, f"{name} codes")
    if codes.dim() != 3:
        raise ValueError(f"VQVAE2: {name} codes must be (B, h, w), got {tuple(codes.shape)}")
    if codes.numel() and (codes.min() < 0 or codes.max() >= codebook_size):
        raise ValueError(
            f"VQVAE2: {name} codes must lie in [0, {codebook_size}), got values in "
            f"[{int(codes.min())}, {int(codes.max())}]"
        )
    return codes.long()


def _image_size(image_size: Any) -> tuple[int, int] | None:
    if image_size is None:
        return None
    if _is_int(image_size):
        image_size = [image_size, image_size]
    if (
        not isinstance(image_size, (list, tuple))
        or len(image_size) != 2
        or not all(_is_int(s) and s > 0 for s in image_size)
    ):
        raise ValueError(
            f"VQVAE2: image_size must be an int or [height, width], got {image_size!r}"
        )
    return int(image_size[0]), int(image_size[1])


def _batch_usage(indices: torch.Tensor, codebook_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Perplexity ``exp(H(p))`` of the batch's code frequencies and the fraction of codes used."""
    counts = torch.bincount(indices.detach().flatten(), minlength=codebook_size).float()
    p = counts / counts.sum().clamp(min=1)
    entropy = -(p * torch.log(p.clamp(min=1e-12))).sum()
    return entropy.exp(), (counts > 0).float().mean()


@register("model", "vqvae2")
class VQVAE2(
    nn.Module,
    HubMixin,
    tags=["vq-vae-2", "image-generation"],
    paper_url="https://arxiv.org/abs/1906.00446",
):
    """VQ-VAE-2 with a top and a bottom level, each with its own quantizer.

    Sizes that must agree are wired when a spec leaves them out (the rules of
    ``vqkit.models._assembly``): the top encoder's ``in_channels`` becomes the bottom encoder's
    ``out_channels`` and its ``out_channels`` the top quantizer's ``dim``; ``top_to_bottom``
    maps ``D_t`` to ``D_b`` channels and upsamples by the top encoder's factor; the decoder reads
    ``D_t + D_b`` channels, writes the image channels and upsamples by the bottom encoder's
    factor; the top decoder reads ``D_t`` and upsamples by both factors; the prior's
    ``num_embeddings`` becomes ``codebook_size``. Explicit values that disagree raise
    ``ValueError``. Resampling factors must be powers of two.

    Args:
        encoder: bottom encoder spec (image → features at the bottom grid), e.g.
            ``{"type": "resnet", "in_channels": 1, "out_channels": 64, "num_downsamples": 1}``.
        top_encoder: top encoder spec (bottom features → top latents), e.g.
            ``{"type": "resnet", "num_downsamples": 1}``.
        top_quantizer: quantizer spec of the top level, e.g. ``{"type": "vq", "dim": 32,
            "codebook_size": 256}``.
        bottom_quantizer: quantizer spec of the bottom level.
        decoder: decoder spec (``[upsample(q_t), q_b]`` → image), e.g. ``{"type": "resnet"}``.
        top_to_bottom: decoder spec of the top latents to the bottom grid, whose output is
            concatenated to the bottom features before quantising them (default ``"resnet"``).
        top_decoder: optional decoder spec of the image from the top latents alone; with it the
            loss has the term ``top_reconstruction_weight · top_recon`` and ``decode_top``
            works.
        top_reconstruction_weight: weight of the top-only reconstruction term (≥ 0; used only
            with a ``top_decoder``).
        prior: optional prior spec over the pair of code grids, e.g. ``{"type":
            "hierarchical", ...}``; its ``domain`` must be ``"codes"``.
        image_size: ``H`` or ``[H, W]`` of the training images; fixes ``latent_size``.
        reconstruction_loss: ``"mse"`` or ``"l1"``.
        data_variance: the reconstruction losses are divided by it (1.0: unscaled).

    Attributes:
        codebook_size: ``(K_top, K_bottom)``: the contract's ``codebook_size`` holds one codebook
            size per level, in the order of the code tuple.
        latent_size: ``((h_t, w_t), (h_b, w_b))``, the grid of each level for ``image_size``
            (None without it).
        factors: ``(f_t, f_b)``: the image-to-grid downsampling of each level.

    Shape:
        - Input: (B, C, H, W) with H, W divisible by ``f_t = f_b · top_encoder factor``
        - Codes: ``(top, bottom)``: (B, H / f_t, W / f_t) and (B, H / f_b, W / f_b), int64
        - Output: ``VQVAE2Output`` with ``reconstruction`` (B, C, H, W)
    """

    family: ClassVar[str] = "discrete"
    adversarial: ClassVar[bool] = False
    # registered parts (their types come from the registry, their contracts from the kinds)
    encoder: Any
    top_encoder: Any
    top_quantizer: Any
    bottom_quantizer: Any
    top_to_bottom: Any
    decoder: Any
    top_decoder: Any
    prior: Any
    codebook_size: tuple[int, int]
    dims: tuple[int, int]
    factors: tuple[int, int]
    latent_size: tuple[tuple[int, int], tuple[int, int]] | None

    def __init__(
        self,
        encoder: str | dict,
        top_encoder: str | dict,
        top_quantizer: str | dict,
        bottom_quantizer: str | dict,
        decoder: str | dict,
        top_to_bottom: str | dict = "resnet",
        top_decoder: str | dict | None = None,
        top_reconstruction_weight: float = 1.0,
        prior: str | dict | None = None,
        image_size: int | list[int] | None = None,
        reconstruction_loss: str = "mse",
        data_variance: float = 1.0,
    ) -> None:
        super().__init__()
        owner = "VQVAE2"
        if not isinstance(reconstruction_loss, str) or reconstruction_loss not in _RECON_LOSSES:
            raise ValueError(
                f"{owner}: reconstruction_loss must be one of {_RECON_LOSSES}, got "
                f"{reconstruction_loss!r}"
            )
        self.reconstruction_loss = reconstruction_loss
        self.data_variance = check_number(
            owner, "data_variance", data_variance, low=0, low_open=True
        )
        self.top_reconstruction_weight = check_number(
            owner, "top_reconstruction_weight", top_reconstruction_weight, low=0
        )
        self.image_size = _image_size(image_size)

        # bottom encoder: image -> h_b
        enc = as_spec("encoder", encoder)
        self.encoder = build("encoder", enc if enc is not None else encoder)
        image_channels, bottom_channels = self.encoder.in_channels, self.encoder.out_channels
        bottom_factor = self.encoder.downsample_factor
        bottom_ups = _log2(owner, bottom_factor, "the encoder's downsample_factor")

        # top level: h_b -> top latents -> q_t
        top_enc, top_q = as_spec("encoder", top_encoder), as_spec("quantizer", top_quantizer)
        self.top_quantizer = self._quantizer(top_q, top_quantizer, top_enc)
        top_dim = self.top_quantizer.dim
        wire("encoder", top_enc, "in_channels", bottom_channels, "the encoder's out_channels")
        wire("encoder", top_enc, "out_channels", top_dim, "the top quantizer dim")
        self.top_encoder = build("encoder", top_enc if top_enc is not None else top_encoder)
        check_attr("encoder", self.top_encoder, "in_channels", bottom_channels, "encoder out")
        check_attr("encoder", self.top_encoder, "out_channels", top_dim, "top quantizer dim")
        top_factor = self.top_encoder.downsample_factor
        top_ups = _log2(owner, top_factor, "the top encoder's downsample_factor")

        # bottom level: [h_b, top_to_bottom(q_t)] -> 1x1 -> q_b
        self.bottom_quantizer = self._quantizer(
            as_spec("quantizer", bottom_quantizer), bottom_quantizer, None
        )
        bottom_dim = self.bottom_quantizer.dim
        self.top_to_bottom = self._decoder(
            top_to_bottom, top_dim, bottom_dim, top_ups, top_factor, "top_to_bottom", out_free=True
        )
        bridge = self.top_to_bottom.out_channels
        ref = next(self.encoder.parameters(), None)
        kw: dict[str, Any] = {"device": None, "dtype": None}
        if ref is not None:
            kw = {"device": ref.device, "dtype": ref.dtype}
        self.bottom_project = nn.Conv2d(bottom_channels + bridge, bottom_dim, 1, **kw)

        # decoder path: q_t is upsampled to the bottom grid by transposed convs (D_t channels)
        self.upsample_top = nn.Sequential(
            *strided_transposed_convs([top_dim] * top_ups, top_dim, nn.ReLU, **kw)
        )
        self.decoder = self._decoder(
            decoder, top_dim + bottom_dim, image_channels, bottom_ups, bottom_factor, "decoder"
        )
        self.top_decoder = None
        if top_decoder is not None:
            self.top_decoder = self._decoder(
                top_decoder,
                top_dim,
                image_channels,
                bottom_ups + top_ups,
                bottom_factor * top_factor,
                "top_decoder",
            )
        self.dims = (top_dim, bottom_dim)
        self.codebook_size = (self.top_quantizer.codebook_size, self.bottom_quantizer.codebook_size)
        self.factors = (bottom_factor * top_factor, bottom_factor)
        self.latent_size = self._latent_size()
        self.prior = None if prior is None else self._build_prior(prior)

    # ------------------------------------------------------------------ assembly
    @staticmethod
    def _quantizer(spec: Spec, given: Any, enc: Spec) -> nn.Module:
        if spec is not None and "dim" not in spec and accepts("quantizer", spec, "dim"):
            dim = (enc or {}).get("out_channels")
            if dim is not None:
                spec["dim"] = dim
        quantizer = build("quantizer", spec if spec is not None else given)
        if not _is_int(quantizer.dim) or not _is_int(quantizer.codebook_size):
            raise TypeError(
                f"VQVAE2: quantizer {type(quantizer).__name__} must expose integer attributes "
                f"'dim' and 'codebook_size', got dim={quantizer.dim!r}, "
                f"codebook_size={quantizer.codebook_size!r}"
            )
        return quantizer

    @staticmethod
    def _decoder(
        given: Any,
        in_channels: int,
        out_channels: int,
        upsamples: int,
        factor: int,
        name: str,
        out_free: bool = False,
    ) -> nn.Module:
        """A decoder part with its sizes wired; ``out_free``: explicit out_channels allowed."""
        spec = as_spec("decoder", given)
        wire("decoder", spec, "in_channels", in_channels, f"{name}'s input width")
        if not (out_free and spec is not None and "out_channels" in spec):
            wire("decoder", spec, "out_channels", out_channels, f"{name}'s output width")
        wire("decoder", spec, "num_upsamples", upsamples, f"{name}'s upsampling (log2 {factor})")
        built = build("decoder", spec if spec is not None else given)
        check_attr("decoder", built, "in_channels", in_channels, f"{name} input width")
        if not out_free:
            check_attr("decoder", built, "out_channels", out_channels, f"{name} output width")
        check_attr("decoder", built, "upsample_factor", factor, f"{name} upsampling")
        return built

    def _build_prior(self, prior: Any) -> nn.Module:
        spec = as_spec("prior", prior)
        wire("prior", spec, "num_embeddings", list(self.codebook_size), "the codebook sizes")
        built = build("prior", spec if spec is not None else prior)
        if built.domain != "codes":
            raise TypeError(
                f"VQVAE2: prior {type(built).__name__} is not a prior over code indices (its "
                f"domain is {built.domain!r}); use {{'type': 'hierarchical', ...}}"
            )
        if tuple(built.num_embeddings) != self.codebook_size:
            raise ValueError(
                f"VQVAE2: prior {type(built).__name__} has num_embeddings="
                f"{built.num_embeddings!r} but the codebook sizes are {self.codebook_size}"
            )
        return built

    def _latent_size(self) -> tuple[tuple[int, int], tuple[int, int]] | None:
        if self.image_size is None:
            return None
        height, width = self.image_size
        top, bottom = self.factors
        if height % top or width % top:
            raise ValueError(
                f"VQVAE2: image_size {list(self.image_size)} is not divisible by the top "
                f"level's downsampling factor {top} (= bottom {bottom} × top encoder "
                f"{top // bottom})"
            )
        return (height // top, width // top), (height // bottom, width // bottom)

    def _check_input(self, x: Any) -> None:
        _check_images(x, "VQVAE2")
        top = self.factors[0]
        if x.shape[-2] % top or x.shape[-1] % top:
            raise ValueError(
                f"VQVAE2: H and W must be divisible by the top level's downsampling factor "
                f"{top}, got {tuple(x.shape[-2:])} (crop or pad the images, e.g. 25×25 to 24×24 "
                "or 28×28 for a factor of 4)"
            )

    # ------------------------------------------------------------------ stage 1
    def _encode(self, x: torch.Tensor) -> tuple[Any, Any]:
        """Both quantizers' outputs: the paper's wiring (the bottom sees the decoded top)."""
        h_b = self.encoder(x)  # (B, C_b, h_b, w_b)
        q_top = self.top_quantizer(self.top_encoder(h_b))  # quantized (B, D_t, h_t, w_t)
        bridge = self.top_to_bottom(q_top.quantized)  # (B, C', h_b, w_b)
        z_b = self.bottom_project(torch.cat([h_b, bridge], dim=1))  # (B, D_b, h_b, w_b)
        return q_top, self.bottom_quantizer(z_b)

    def _decode(self, q_t: torch.Tensor, q_b: torch.Tensor) -> torch.Tensor:
        up = self.upsample_top(q_t)  # (B, D_t, h_b, w_b)
        return self.decoder(torch.cat([up, q_b], dim=1))  # (B, C, H, W)

    def _recon(self, x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if x_hat.shape != x.shape:
            raise ValueError(
                f"VQVAE2: decoder output {tuple(x_hat.shape)} does not match the input "
                f"{tuple(x.shape)}"
            )
        loss = F.mse_loss(x_hat, x) if self.reconstruction_loss == "mse" else F.l1_loss(x_hat, x)
        return loss / self.data_variance

    def forward(self, x: torch.Tensor) -> VQVAE2Output:
        """Encode both levels, quantize, decode; see ``VQVAE2Output`` for the loss terms.

        Args:
            x: images (B, C, H, W), floating point, at least one, H and W divisible by the top
                level's factor.

        Raises:
            TypeError: ``x`` is not a floating-point tensor.
            ValueError: ``x`` is on the ``meta`` device, empty, or of the wrong shape.
        """
        self._check_input(x)
        q_top, q_bottom = self._encode(x)
        x_hat = self._decode(q_top.quantized, q_bottom.quantized)
        recon = self._recon(x_hat, x)
        quantizer = q_top.loss + q_bottom.loss
        loss = recon + quantizer
        losses = {"recon": recon}
        top_hat = None
        if self.top_decoder is not None:
            top_hat = self.top_decoder(q_top.quantized)
            top_recon = self._recon(top_hat, x)
            loss = loss + self.top_reconstruction_weight * top_recon
            losses["top_recon"] = top_recon
        losses.update(quantizer_top=q_top.loss, quantizer_bottom=q_bottom.loss, quantizer=quantizer)
        for level, q, k in zip(_LEVELS, (q_top, q_bottom), self.codebook_size, strict=True):
            perplexity, usage = _batch_usage(q.indices, k)
            losses[f"perplexity_{level}"], losses[f"usage_{level}"] = perplexity, usage
        losses["total"] = loss
        return VQVAE2Output(loss, losses, x_hat, top_hat, (q_top, q_bottom))

    @torch.no_grad()
    def encode_indices(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Code grids ``(top, bottom)`` of ``x`` (B, C, H, W), without gradients or EMA updates.

        Shape:
            - Output: ``(B, H / f_t, W / f_t)`` and ``(B, H / f_b, W / f_b)``, int64
        """
        self._check_input(x)
        with eval_mode(self.top_quantizer), eval_mode(self.bottom_quantizer):
            q_top, q_bottom = self._encode(x)
        return q_top.indices, q_bottom.indices

    def _codes(self, codes: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(codes, (tuple, list)) or len(codes) != 2:
            raise TypeError(
                "VQVAE2: codes must be a tuple (top, bottom) of integer grids, got "
                f"{type(codes).__name__}"
            )
        top = _check_codes("top", codes[0], self.codebook_size[0])
        bottom = _check_codes("bottom", codes[1], self.codebook_size[1])
        ratio = self.factors[0] // self.factors[1]
        if top.shape[0] != bottom.shape[0] or (
            top.shape[1] * ratio,
            top.shape[2] * ratio,
        ) != tuple(bottom.shape[1:]):
            raise ValueError(
                f"VQVAE2: the bottom grid must be {ratio}× the top grid with the same batch, got "
                f"top {tuple(top.shape)} and bottom {tuple(bottom.shape)}"
            )
        return top, bottom

    def decode_indices(self, codes: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """Images from the code grids ``(top, bottom)`` → (B, C, H, W).

        Equal to the eval-mode ``forward(x).reconstruction`` for ``codes = encode_indices(x)``.
        """
        top, bottom = self._codes(codes)
        q_t = self.top_quantizer.decode(top)  # (B, D_t, h_t, w_t)
        q_b = self.bottom_quantizer.decode(bottom)  # (B, D_b, h_b, w_b)
        return self._decode(q_t, q_b)

    def decode_top(self, top: torch.Tensor) -> torch.Tensor:
        """Images from the top codes alone (the top decoder) → (B, C, H, W).

        Raises:
            RuntimeError: the model has no ``top_decoder``.
        """
        if self.top_decoder is None:
            raise RuntimeError(
                "VQVAE2.decode_top needs a top decoder: build the model with "
                "top_decoder={'type': 'resnet', ...}"
            )
        top = _check_codes("top", top, self.codebook_size[0])
        return self.top_decoder(self.top_quantizer.decode(top))

    # ------------------------------------------------------------------ stage 2
    def _require_prior(self, what: str) -> Any:
        if self.prior is None:
            raise RuntimeError(
                f"VQVAE2.{what} needs a prior; build the model with prior={{'type': "
                "'hierarchical', ...}}"
            )
        return self.prior

    def prior_nll(self, codes: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """The prior's negative log-likelihood of code grids ``(top, bottom)`` → (B,) nats."""
        prior = self._require_prior("prior_nll")
        if not prior.exact_likelihood:
            raise TypeError(f"prior {type(prior).__name__} has no exact likelihood")
        return -prior.log_prob(self._codes(codes))

    def prior_loss(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> Any:
        """Second-stage objective: the prior's ``loss`` on the frozen model's codes of ``x``.

        Returns a ``VQVAEPriorOutput`` whose ``indices`` is the tuple ``(top, bottom)``. Only
        the prior receives gradients.
        """
        from vqkit.models.vqvae import VQVAEPriorOutput

        prior = self._require_prior("prior_loss")
        codes = self.encode_indices(x)
        out = prior.loss(codes, cond)
        return VQVAEPriorOutput(loss=out.loss, losses=dict(out.losses), indices=codes)  # type: ignore[arg-type]

    def _generate_size(self, latent_size: Any) -> tuple[tuple[int, int], tuple[int, int]]:
        if latent_size is None:
            if self.latent_size is None:
                raise ValueError(
                    "VQVAE2.generate needs the latent grids: build the model with "
                    "image_size=[H, W] or pass latent_size=((h_t, w_t), (h_b, w_b))"
                )
            return self.latent_size
        ok = isinstance(latent_size, (tuple, list)) and len(latent_size) == 2
        ok = ok and all(isinstance(s, (tuple, list)) and len(s) == 2 for s in latent_size)
        if not ok:
            raise ValueError(
                f"VQVAE2.generate: latent_size must be ((h_t, w_t), (h_b, w_b)), got "
                f"{latent_size!r}"
            )
        for grid in latent_size:
            for side in grid:
                check_positive_int("VQVAE2.generate", "latent_size", side)
        top, bottom = latent_size
        return (int(top[0]), int(top[1])), (int(bottom[0]), int(bottom[1]))

    @torch.no_grad()
    def generate(
        self,
        n: int,
        cond: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        latent_size: Any = None,
    ) -> torch.Tensor:
        """Sample ``n`` pairs of code grids from the prior (top, then bottom given top) and
        decode them → (n, C, H, W).

        Args:
            n: number of images.
            cond: optional class labels (n,) for a class-conditional prior.
            generator: a ``torch.Generator`` for reproducible samples.
            temperature: softmax temperature of the prior's sampling.
            latent_size: ``((h_t, w_t), (h_b, w_b))``; defaults to ``latent_size``.
        """
        prior = self._require_prior("generate")
        check_positive_int("VQVAE2.generate", "n", n)
        check_number("VQVAE2.generate", "temperature", temperature, low=0, low_open=True)
        check_generator("VQVAE2.generate", generator)
        size = self._generate_size(latent_size)
        codes = prior.sample(n, size, cond=cond, temperature=temperature, generator=generator)
        return self.decode_indices(codes)

    def bits(self) -> float:
        """Bits of one image's codes: ``sum over levels of h · w · log2 K`` (needs image_size)."""
        if self.latent_size is None:
            raise ValueError("VQVAE2.bits needs image_size")
        return math.fsum(
            h * w * math.log2(k)
            for (h, w), k in zip(self.latent_size, self.codebook_size, strict=True)
        )

    def extra_repr(self) -> str:
        return (
            f"dims={self.dims}, codebook_size={self.codebook_size}, factors={self.factors}, "
            f"image_size={self.image_size}, latent_size={self.latent_size}, "
            f"top_reconstruction_weight={self.top_reconstruction_weight}"
        )
