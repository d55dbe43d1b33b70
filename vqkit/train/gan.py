"""One VQ-GAN training step: a generator update then a discriminator update, two optimizers.

The schedule of *Taming Transformers for High-Resolution Image Synthesis* (Esser et al. 2021,
arXiv:2012.09841; CompVis/taming-transformers ``VQModel.training_step`` and
``VQLPIPSWithDiscriminator``): at every step the generator (encoder, quantizer, decoder)
minimises ``vqkit.models.VQGAN.generator_loss``; from step ``disc_start`` on, the
discriminator then minimises ``discriminator_loss`` on the real batch and
the (detached) reconstructions of the same step. Both optimizers are Adam with taming's
β = (0.5, 0.9). Taming's learning rate is ``4.5e-6 × batch size × GPUs`` (its
``base_learning_rate`` scaled in ``main.py``); here ``lr`` is the rate itself.

Usage::

    step = GANStep(model, perceptual=LPIPS(weights="lpips_vgg16.safetensors"), lr=1e-4)
    for x in batches:
        logs = step(x)          # rec, perceptual, quantizer, g_loss, lambda, d_loss, logits_*
    state = step.state_dict()   # discriminator, both optimizers, the step: for a checkpoint

The model's own weights are not in ``GANStep.state_dict`` (a trainer checkpoints the model).

``gan_update`` is the one implementation of the two updates: ``GANStep`` calls it with its two
optimizers, ``vqkit.train.Trainer`` with its one optimizer holding both parameter groups (and,
under torchrun, with the generator and the discriminator objectives each wrapped in
DistributedDataParallel, and λ computed from all-reduced gradients).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn

from vqkit._checks import check_int, check_number, check_real_device
from vqkit.models.vqgan import VQGAN
from vqkit.models.vqvae import VQVAEOutput

__all__ = ["GANStep", "gan_update"]

Perceptual = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class GeneratorObjective(nn.Module):
    """``model.generator_loss`` as a module's forward, so DistributedDataParallel can wrap it.

    Only the generator is a submodule: the discriminator is passed to ``forward`` (its
    parameters take no gradient in this update), so DDP reduces the generator's gradients only.
    """

    def __init__(self, model: VQGAN) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        x: torch.Tensor,
        discriminator: nn.Module,
        step: int,
        perceptual: Perceptual | None,
        grad_sync: Callable[[torch.Tensor], torch.Tensor] | None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], VQVAEOutput]:
        return self.model.generator_loss(x, discriminator, step, perceptual, grad_sync=grad_sync)


class DiscriminatorObjective(nn.Module):
    """``model.discriminator_loss`` as a module's forward; only the discriminator is a
    submodule (the model is held outside the module tree), so DDP reduces its gradients only."""

    def __init__(self, discriminator: nn.Module, model: VQGAN) -> None:
        super().__init__()
        self.discriminator = discriminator
        self._model = (model,)  # a tuple: not registered as a submodule

    def forward(
        self, x: torch.Tensor, reconstruction: torch.Tensor, step: int
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self._model[0].discriminator_loss(x, reconstruction, self.discriminator, step)


def _check_images(owner: str, x: Any) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{owner}: expected an image batch tensor, got {type(x).__name__}")
    check_real_device(owner, x)
    if x.dim() != 4 or not x.dtype.is_floating_point:
        raise ValueError(
            f"{owner}: expected floating-point images (B, C, H, W), got {tuple(x.shape)} {x.dtype}"
        )
    if x.shape[0] == 0:
        raise ValueError(f"{owner}: got an empty batch {tuple(x.shape)}")


def _clip(params: Iterable[nn.Parameter], max_norm: float) -> torch.Tensor:
    with_grad = [p for p in params if p.grad is not None]
    return torch.nn.utils.clip_grad_norm_(with_grad, max_norm).detach()


def gan_update(
    model: VQGAN,
    discriminator: nn.Module,
    x: torch.Tensor,
    step: int,
    *,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    perceptual: Perceptual | None = None,
    generator_runner: Callable[..., Any] | None = None,
    discriminator_runner: Callable[..., Any] | None = None,
    grad_sync: Callable[[torch.Tensor], torch.Tensor] | None = None,
    grad_clip: float | None = None,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> tuple[dict[str, torch.Tensor], VQVAEOutput, bool]:
    """One VQ-GAN training step: the generator update, then (from ``disc_start`` on) the
    discriminator update on the real batch and this step's detached reconstructions.

    During the generator update the discriminator's parameters have ``requires_grad=False``, so
    they take no gradient and an optimizer holding both groups updates the generator only;
    ``opt_g`` and ``opt_d`` may be one optimizer with two parameter groups (Adam skips
    parameters without a gradient, so that is exactly two optimizers).

    Args:
        model: the VQ-GAN (the generator).
        discriminator: its discriminator (set to training mode here).
        x: the images (B, C, H, W) of this step (this process's share under DDP).
        step: the global step (0-based), compared with ``model.disc_start``.
        opt_g: the optimizer of the generator's parameters.
        opt_d: the optimizer of the discriminator's parameters (may be ``opt_g``).
        perceptual: the perceptual distance, when ``model.perceptual_weight > 0``.
        generator_runner: calls ``(x, discriminator, step, perceptual, grad_sync)`` and returns
            ``generator_loss``'s triple; default ``GeneratorObjective(model)``; the trainer
            passes it wrapped in DistributedDataParallel under torchrun.
        discriminator_runner: calls ``(x, reconstruction, step)`` and returns
            ``discriminator_loss``'s pair; default ``DiscriminatorObjective(discriminator,
            model)`` (or its DDP wrapper). It is only called from ``disc_start`` on.
        grad_sync: see ``VQGAN.generator_loss`` (under DDP: the all-reduced mean).
        grad_clip: clip each update's gradient norm to this (None: no clipping); the norms are
            logged as ``grad_norm`` and ``disc_grad_norm``.
        autocast: a context factory around both forwards (e.g. bf16 autocast).

    Returns:
        ``(logs, out, active)``: the generator's and discriminator's detached scalar logs
        (see ``GANStep``), the generator's forward output and whether the adversarial part ran.
    """
    owner = "gan_update"
    if not (isinstance(model, nn.Module) and getattr(model, "adversarial", False)):
        raise TypeError(
            f"{owner}: model must be an adversarial vqkit model (a VQGAN), got "
            f"{type(model).__name__}"
        )
    if not isinstance(discriminator, nn.Module):
        raise TypeError(
            f"{owner}: discriminator must be an nn.Module, got {type(discriminator).__name__}"
        )
    _check_images(owner, x)
    step = check_int(owner, "step", step, low=0)
    for name, opt in (("opt_g", opt_g), ("opt_d", opt_d)):
        if not isinstance(opt, torch.optim.Optimizer):
            raise TypeError(f"{owner}: {name} must be a torch optimizer, got {type(opt).__name__}")
    if grad_clip is not None:
        grad_clip = check_number(owner, "grad_clip", grad_clip, low=0.0, low_open=True)
    generator_runner = generator_runner or GeneratorObjective(model)
    discriminator_runner = discriminator_runner or DiscriminatorObjective(discriminator, model)
    discriminator.train()
    # Generator: the discriminator's parameters take no gradient from this backward.
    discriminator.requires_grad_(False)
    try:
        opt_g.zero_grad(set_to_none=True)
        with autocast():
            loss, logs, out = generator_runner(x, discriminator, step, perceptual, grad_sync)
        loss.float().backward()
    finally:
        discriminator.requires_grad_(True)
    if grad_clip is not None:
        logs["grad_norm"] = _clip(model.parameters(), grad_clip)
    opt_g.step()
    # Discriminator: only from disc_start on (before it, it is not even run).
    opt_d.zero_grad(set_to_none=True)
    active = model.adversarial_active(step)
    if active and model.disc_factor > 0:
        with autocast():
            d_loss, d_logs = discriminator_runner(x, out.reconstruction.detach(), step)
        if d_loss.requires_grad:
            d_loss.float().backward()
            if grad_clip is not None:
                d_logs["disc_grad_norm"] = _clip(discriminator.parameters(), grad_clip)
            opt_d.step()
    else:  # zeros, and the discriminator is not run
        d_loss, d_logs = model.discriminator_loss(x, out.reconstruction, discriminator, step)
    opt_d.zero_grad(set_to_none=True)
    logs.update(d_logs)
    return logs, out, active


def _betas(owner: str, betas: Any) -> tuple[float, float]:
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"{owner}: betas must be a pair (beta1, beta2), got {betas!r}")
    return tuple(  # type: ignore[return-value]
        check_number(owner, "betas", b, low=0.0, high=1.0, high_open=True) for b in betas
    )


class GANStep:
    """Generator step then discriminator step for a ``VQGAN``.

    Args:
        model: the VQ-GAN (its prior, if any, is not trained here: stage 2 comes later).
        discriminator: a discriminator module; None builds one with
            ``model.build_discriminator()`` on the model's device.
        perceptual: the perceptual distance (e.g. ``vqkit.losses.LPIPS``); required when
            ``model.perceptual_weight > 0``.
        lr: generator learning rate.
        disc_lr: discriminator learning rate (default: ``lr``).
        betas: Adam betas of both optimizers (taming: (0.5, 0.9)).
        step: the global step to start from (0 for a new run).

    Calling the object with a batch ``x`` (B, C, H, W) runs one step and returns a dict of
    detached scalars: ``rec``, ``perceptual``, ``quantizer``, ``nll``, ``g_loss``, ``lambda``,
    ``total`` (generator side), ``d_loss``, ``logits_real``, ``logits_fake``, ``r1``
    (discriminator side; 0 before ``disc_start``) and ``disc_active`` (1.0 or 0.0).
    """

    def __init__(
        self,
        model: VQGAN,
        discriminator: nn.Module | None = None,
        perceptual: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        lr: float = 1e-4,
        disc_lr: float | None = None,
        betas: tuple[float, float] = (0.5, 0.9),
        step: int = 0,
    ) -> None:
        owner = type(self).__name__
        if not isinstance(model, VQGAN):
            raise TypeError(f"{owner}: model must be a vqkit VQGAN, got {type(model).__name__}")
        if discriminator is not None and not isinstance(discriminator, nn.Module):
            raise TypeError(
                f"{owner}: discriminator must be an nn.Module or None, got "
                f"{type(discriminator).__name__}"
            )
        if model.perceptual_weight > 0 and perceptual is None:
            raise ValueError(
                f"{owner}: the model has perceptual_weight={model.perceptual_weight} but no "
                "perceptual network was given: pass perceptual=vqkit.losses.LPIPS(weights=...) "
                "(docs/vqgan.md says which weights) or build the model with perceptual_weight=0"
            )
        lr = check_number(owner, "lr", lr, low=0.0, low_open=True)
        disc_lr = lr if disc_lr is None else check_number(
            owner, "disc_lr", disc_lr, low=0.0, low_open=True
        )  # fmt: skip
        betas = _betas(owner, betas)
        self.step = check_int(owner, "step", step, low=0)
        self.model, self.perceptual = model, perceptual
        device = next(model.parameters()).device
        self.discriminator = (
            model.build_discriminator(device=device) if discriminator is None else discriminator
        )
        prior = {id(p) for p in model.prior.parameters()} if model.prior is not None else set()
        generator_params = [p for p in model.parameters() if id(p) not in prior]
        self.opt_g = torch.optim.Adam(generator_params, lr=lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=disc_lr, betas=betas)

    def __call__(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        _check_images(type(self).__name__, x)
        model, disc, step = self.model, self.discriminator, self.step
        model.train()

        logs, _, active = gan_update(
            model, disc, x, step, opt_g=self.opt_g, opt_d=self.opt_d, perceptual=self.perceptual
        )
        self.step += 1
        logs["disc_active"] = torch.tensor(float(active))
        return logs

    def state_dict(self) -> dict[str, Any]:
        """Everything this object owns: the discriminator, both optimizers and the step."""
        return {
            "discriminator": self.discriminator.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "step": self.step,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore ``state_dict`` output (the model's weights are restored separately)."""
        keys = {"discriminator", "opt_g", "opt_d", "step"}
        if not isinstance(state, Mapping) or set(state) != keys:
            got = sorted(state) if isinstance(state, Mapping) else type(state).__name__
            raise ValueError(f"GANStep.load_state_dict: expected keys {sorted(keys)}, got {got}")
        self.discriminator.load_state_dict(state["discriminator"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.step = check_int("GANStep.load_state_dict", "step", state["step"], low=0)
