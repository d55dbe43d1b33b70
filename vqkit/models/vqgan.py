"""VQ-GAN: a VQ-VAE trained with a patch discriminator and a perceptual loss.

*Taming Transformers for High-Resolution Image Synthesis*, Esser, Rombach, Ommer 2021
(arXiv:2012.09841), §3.1 and eq. 5–7: the same encoder → quantizer → decoder as a VQ-VAE, whose
reconstruction term becomes ``L1 + perceptual`` (LPIPS) and gains an adversarial term
``λ · L_G`` weighted adaptively (``vqkit.losses.adaptive_weight``) and switched on at step
``disc_start``. Everything else (codes, ``encode_indices`` / ``decode_indices``, the prior stage,
Hub save/load) is ``VQVAE``'s.

What lives where:

- the model holds the generator (encoder, quantizer, decoder, optional prior), the loss settings
  and the *spec* of the discriminator. ``model.safetensors`` holds the generator only; the
  discriminator (``VQGAN.build_discriminator``) and the optimizers belong to training
  checkpoints (``vqkit.train.gan.GANStep``'s ``state_dict``);
- the perceptual network (``vqkit.losses.LPIPS``, pretrained weights the user supplies) is
  passed to ``VQGAN.generator_loss``; it is not part of the model;
- ``VQGAN.forward`` is the plain VQ-VAE objective (reconstruction + quantizer loss), used for
  evaluation and for the steps before anything adversarial is wanted.

The commitment weight β: taming's ``VectorQuantizer2(legacy=True)`` (its default, kept for old
checkpoints) computes ``‖sg(z) − e‖² + β ‖z − sg(e)‖²`` with the roles swapped, i.e. β multiplies
the *codebook* term and the commitment term has weight 1 (taming-transformers #46, #57, PR #58).
vqkit's quantizers follow the paper (van den Oord et al. 2017, arXiv:1711.00937, eq. 3): β
multiplies the commitment term ``‖z − sg(e)‖²``; ``tests/gan`` checks it on the gradients.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, ClassVar, cast

import torch
from torch import nn

from vqkit._checks import (
    check_bool,
    check_choice,
    check_int,
    check_number,
    check_real_device,
)
from vqkit._registry import build, register
from vqkit.losses.gan import GAN_LOSSES, adaptive_weight, discriminator_loss, generator_loss
from vqkit.losses.gan import r1_penalty as _r1_penalty
from vqkit.models._assembly import as_spec as _as_spec
from vqkit.models.vqvae import VQVAE, VQVAEOutput

__all__ = ["VQGAN"]

# Architecture arguments a taming decoder takes from a taming encoder when it leaves them out.
_SHARED = (
    "ch",
    "ch_mult",
    "num_res_blocks",
    "attention_factors",
    "dropout",
    "norm_groups",
    "mid_attention",
    "z_channels",
)


def _mirror(encoder: Any, decoder: Any) -> Any:
    """A taming decoder spec completed from a taming encoder spec (taming's shared ddconfig)."""
    enc, dec = _as_spec("encoder", encoder), _as_spec("decoder", decoder)
    if enc is None or dec is None or enc["type"] != "taming" or dec["type"] != "taming":
        return decoder
    for key in _SHARED:
        if key in enc and key not in dec:
            dec[key] = copy.deepcopy(enc[key])
    return dec


@register("model", "vqgan")
class VQGAN(
    VQVAE,
    tags=["vq-gan", "vq-vae", "image-generation"],
    paper_url="https://arxiv.org/abs/2012.09841",
):
    """VQ-GAN: a ``VQVAE`` plus a discriminator spec and adversarial loss settings.

    A ``"taming"`` decoder spec takes the architecture arguments it leaves out (``ch``,
    ``ch_mult``, ``num_res_blocks``, ``attention_factors``, ...) from a ``"taming"`` encoder spec,
    as taming builds both from one config. The discriminator's ``in_channels`` is wired from the
    encoder's.

    Args:
        encoder: encoder spec (as for ``VQVAE``), e.g. ``{"type": "taming", "in_channels": 3}``.
        quantizer: quantizer spec (as for ``VQVAE``).
        decoder: decoder spec (as for ``VQVAE``); a ``"taming"`` one inherits the encoder's
            architecture arguments it leaves out.
        prior: optional prior spec over the code grid (as for ``VQVAE``).
        image_size: ``H`` or ``[H, W]`` of the training images (as for ``VQVAE``).
        data_variance: the reconstruction loss is divided by it (as for ``VQVAE``).
        reconstruction_loss: ``"l1"`` (taming's) or ``"mse"``.
        discriminator: discriminator spec, e.g. ``{"type": "patchgan", "n_layers": 3}``; built by
            ``build_discriminator``, never stored in the model's weights.
        perceptual_weight: weight of the perceptual loss in the reconstruction term (taming:
            1.0); 0 trains without one (no LPIPS weights needed).
        disc_weight: scale of the adaptive weight (taming's ImageNet configs: 0.8); with
            ``adaptive_weight=False`` the adversarial weight itself.
        gan_loss: ``"hinge"`` (taming's), ``"non_saturating"`` or ``"vanilla"``
            (see ``vqkit.losses.gan``).
        disc_start: first training step with an adversarial term and a discriminator update
            (taming: 250001 on ImageNet, 10000 in its custom configs).
        disc_factor: overall factor of the adversarial terms once they start (taming: 1.0).
        adaptive_weight: balance the adversarial gradient against the reconstruction gradient
            at the decoder's last layer (eq. 7); False uses ``disc_weight`` as a fixed weight.
        r1_weight: γ of the R1 penalty ``γ/2 · E‖∇D(x)‖²`` on real images (0: off; MaskGIT's
            VQ-GAN uses 10 with no adaptive weight).

    Shape:
        - Input: (B, C, H, W)
        - Codes: (B, h, w)
        - Output: ``VQVAEOutput``; ``generator_loss`` returns the GAN objective
    """

    adversarial: ClassVar[bool] = True

    # GAN settings, set from the checked constructor arguments in __init__
    perceptual_weight: float
    disc_weight: float
    gan_loss: str
    disc_start: int
    disc_factor: float
    adaptive_weight: bool
    r1_weight: float

    def __init__(
        self,
        encoder: str | dict,
        quantizer: str | dict,
        decoder: str | dict,
        prior: str | dict | None = None,
        image_size: int | list[int] | None = None,
        reconstruction_loss: str = "l1",
        data_variance: float = 1.0,
        discriminator: str | dict = "patchgan",
        perceptual_weight: float = 1.0,
        disc_weight: float = 0.8,
        gan_loss: str = "hinge",
        disc_start: int = 0,
        disc_factor: float = 1.0,
        adaptive_weight: bool = True,
        r1_weight: float = 0.0,
    ) -> None:
        owner = type(self).__name__
        settings = {
            "perceptual_weight": check_number(owner, "perceptual_weight", perceptual_weight, low=0),
            "disc_weight": check_number(owner, "disc_weight", disc_weight, low=0.0),
            "gan_loss": check_choice(owner, "gan_loss", gan_loss, GAN_LOSSES),
            "disc_start": check_int(owner, "disc_start", disc_start, low=0),
            "disc_factor": check_number(owner, "disc_factor", disc_factor, low=0.0),
            "adaptive_weight": check_bool(owner, "adaptive_weight", adaptive_weight),
            "r1_weight": check_number(owner, "r1_weight", r1_weight, low=0.0),
        }
        if isinstance(discriminator, nn.Module) or _as_spec("discriminator", discriminator) is None:
            raise TypeError(
                f"{owner}: discriminator must be a registered name or a {{'type': ...}} spec "
                "(the model stores the spec; the module lives in training checkpoints)"
            )
        super().__init__(
            encoder,
            quantizer,
            _mirror(encoder, decoder),
            prior,
            image_size,
            reconstruction_loss,
            data_variance,
        )
        for name, value in settings.items():
            setattr(self, name, value)
        spec = cast(dict[str, Any], _as_spec("discriminator", discriminator))  # checked above
        spec.setdefault("in_channels", self.encoder.in_channels)
        self.discriminator_spec = spec
        self.build_discriminator()  # fail at construction, not at disc_start, on a bad spec

    def build_discriminator(self, **kwargs: Any) -> nn.Module:
        """A freshly initialised discriminator from the model's spec (keyword overrides allowed,
        e.g. ``device=...``). Its ``in_channels`` is the image channels."""
        disc = build("discriminator", copy.deepcopy(self.discriminator_spec), **kwargs)
        channels = getattr(disc, "in_channels", None)
        if channels != self.encoder.in_channels:
            raise ValueError(
                f"discriminator {type(disc).__name__} has in_channels={channels!r} but the "
                f"images have {self.encoder.in_channels} channels"
            )
        return disc

    @property
    def last_layer(self) -> nn.Parameter:
        """The weight of the decoder's last conv (or linear) layer: where λ is measured.

        It is the last ``Conv2d`` / ``ConvTranspose2d`` / ``Linear`` among
        ``decoder.modules()`` (the output conv of the taming, resnet and conv decoders).
        """
        layers = [
            m
            for m in self.decoder.modules()
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))
        ]
        if not layers:
            raise TypeError(
                f"decoder {type(self.decoder).__name__} has no conv or linear layer for the "
                "adaptive weight; build the model with adaptive_weight=False"
            )
        return cast(nn.Parameter, layers[-1].weight)  # typed Tensor in torch's stubs

    def adversarial_active(self, step: int) -> bool:
        """Whether training step ``step`` has an adversarial term (``step >= disc_start``)."""
        return check_int(type(self).__name__, "step", step, low=0) >= self.disc_start

    # ----------------------------------------------------------- GAN objective
    def generator_loss(
        self,
        x: torch.Tensor,
        discriminator: nn.Module,
        step: int,
        perceptual: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        grad_sync: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], VQVAEOutput]:
        """The generator's objective at training step ``step`` (eq. 5–7 of the paper).

        ``rec = L1 (or MSE) / data_variance``, ``nll = rec + perceptual_weight · perceptual``,
        ``loss = nll + quantizer + disc_factor · λ · L_G`` with ``λ = disc_weight ·
        adaptive_weight(nll, L_G)`` (or ``disc_weight``); before ``disc_start`` the
        discriminator is not run and the adversarial term is absent (its gradient is exactly 0).

        Args:
            x: images (B, C, H, W) in the range the perceptual network expects (LPIPS: [-1, 1]).
            discriminator: from ``build_discriminator``.
            step: the global training step (0-based).
            perceptual: a perceptual distance ``(x, x̂) -> (B,)`` such as
                ``vqkit.losses.LPIPS``; required when ``perceptual_weight > 0``.
            grad_sync: passed to ``vqkit.losses.adaptive_weight``: applied to the two
                last-layer gradients before their norms (the trainer passes an all-reduced mean
                under DDP, so λ is the global batch's on every process).

        Returns:
            ``(loss, logs, out)``: the scalar loss, detached scalars ``rec``, ``perceptual``,
            ``quantizer``, ``nll``, ``g_loss``, ``lambda``, ``total``, and the forward output.
        """
        owner = f"{type(self).__name__}.generator_loss"
        active = self.adversarial_active(step)
        if not isinstance(discriminator, nn.Module):
            raise TypeError(f"{owner}: discriminator must be an nn.Module, got {discriminator!r}")
        if self.perceptual_weight > 0 and perceptual is None:
            raise ValueError(
                f"{owner}: perceptual_weight={self.perceptual_weight} needs a perceptual network: "
                "pass perceptual=vqkit.losses.LPIPS(weights=...) (see docs/vqgan.md for the "
                "weights), or build the model with perceptual_weight=0"
            )
        if perceptual is not None and not callable(perceptual):
            raise TypeError(f"{owner}: perceptual must be callable, got {perceptual!r}")
        out = self(x)
        rec = out.losses["recon"]
        zero = rec.new_zeros(())
        p_loss = zero
        if self.perceptual_weight > 0 and perceptual is not None:  # (required: checked above)
            p_loss = perceptual(x, out.reconstruction).mean()
        nll = rec + self.perceptual_weight * p_loss
        loss = nll + out.quantizer.loss
        g_loss, weight = zero, zero
        if active and self.disc_factor > 0:
            logits_fake = discriminator(out.reconstruction)
            g_loss = generator_loss(logits_fake, self.gan_loss)
            if self.adaptive_weight:
                weight = self.disc_weight * adaptive_weight(
                    nll, g_loss, self.last_layer, grad_sync=grad_sync
                )
            else:
                weight = torch.full_like(g_loss, self.disc_weight)
            loss = loss + self.disc_factor * weight * g_loss
        logs = {
            "rec": rec.detach(),
            "perceptual": p_loss.detach(),
            "quantizer": out.quantizer.loss.detach(),
            "nll": nll.detach(),
            "g_loss": g_loss.detach(),
            "lambda": weight.detach(),
            "total": loss.detach(),
        }
        return loss, logs, out

    def discriminator_loss(
        self,
        x: torch.Tensor,
        reconstruction: torch.Tensor,
        discriminator: nn.Module,
        step: int,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The discriminator's objective: ``disc_factor · L_D (+ γ/2 · R1)`` on real ``x`` and
        detached reconstructions; zero (and the discriminator not run) before ``disc_start``.

        Returns:
            ``(loss, logs)`` with detached ``d_loss``, ``logits_real``, ``logits_fake`` (means)
            and ``r1``.
        """
        owner = f"{type(self).__name__}.discriminator_loss"
        active = self.adversarial_active(step)
        for name, t in (("x", x), ("reconstruction", reconstruction)):
            if not isinstance(t, torch.Tensor):
                raise TypeError(f"{owner}: {name} must be a tensor, got {type(t).__name__}")
            check_real_device(owner, t, name)
        if x.shape != reconstruction.shape:
            raise ValueError(
                f"{owner}: x {tuple(x.shape)} and reconstruction {tuple(reconstruction.shape)} "
                "must have the same shape"
            )
        zero = x.new_zeros((), dtype=torch.float32)
        logs = {"d_loss": zero, "logits_real": zero, "logits_fake": zero, "r1": zero}
        if not active or self.disc_factor == 0:
            return zero, logs
        real = x.detach().requires_grad_(self.r1_weight > 0)
        logits_real = discriminator(real)
        logits_fake = discriminator(reconstruction.detach())
        loss = self.disc_factor * discriminator_loss(logits_real, logits_fake, self.gan_loss)
        r1 = zero
        if self.r1_weight > 0:
            r1 = _r1_penalty(logits_real, real)
            loss = loss + 0.5 * self.r1_weight * r1
        logs = {
            "d_loss": loss.detach(),
            "logits_real": logits_real.detach().float().mean(),
            "logits_fake": logits_fake.detach().float().mean(),
            "r1": r1.detach(),
        }
        return loss, logs

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, discriminator={self.discriminator_spec}, "
            f"perceptual_weight={self.perceptual_weight}, disc_weight={self.disc_weight}, "
            f"gan_loss={self.gan_loss!r}, disc_start={self.disc_start}, "
            f"adaptive_weight={self.adaptive_weight}, r1_weight={self.r1_weight}"
        )
