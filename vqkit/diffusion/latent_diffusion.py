"""Latent diffusion prior over a VQ model's pre-quantisation latents (LDM-VQ).

*High-Resolution Image Synthesis with Latent Diffusion Models*, Rombach, Blattmann, Lorenz,
Esser, Ommer, 2022 (arXiv:2112.10752): a denoising UNet is trained on the first stage's latents
``z_e`` *before* the quantizer, and the quantizer is applied only when decoding (§3, the "VQ-reg."
autoencoders; CompVis/latent-diffusion ``VQModelInterface``: ``encode`` returns ``z_e``,
``decode`` quantises). Training is DDPM's ε-prediction with L_simple (Ho et al. 2020,
arXiv:2006.11239, eq. 14); sampling is DDPM or DDIM (Song et al. 2020, arXiv:2010.02502).

The network is diffusers' ``UNet2DModel`` and the schedule diffusers' ``DDPMScheduler`` /
``DDIMScheduler`` (the optional extra ``vqkit[diffusion]``, imported only when a prior is
built). Every scheduler option is set explicitly, because diffusers' defaults are not LDM's:

- ``beta_schedule="scaled_linear"`` with ``beta_start=0.0015``, ``beta_end=0.0195``,
  ``num_train_timesteps=1000``: LDM's ``linear`` schedule is ``linspace(√β₀, √β₁, T)²``
  (``ldm/modules/diffusionmodules/util.py`` ``make_beta_schedule``), which diffusers calls
  ``scaled_linear`` (its ``linear`` is linear in β); 0.0015 / 0.0195 are ``linear_start`` /
  ``linear_end`` of CompVis/latent-diffusion ``configs/latent-diffusion/ffhq-ldm-vq-4.yaml``;
- ``clip_sample=False`` (LDM: ``clip_denoised=False``; latents are not in [-1, 1]);
- ``timestep_spacing="trailing"``, ``steps_offset=0``, ``set_alpha_to_one=True``: the first
  sampling step is at t = T − 1, where x_T ~ N(0, I) is closest to the training marginal, and the
  last step lands on ᾱ = 1 (Lin et al. 2024, *Common Diffusion Noise Schedules and Sample Steps
  are Flawed*, arXiv:2305.08891, §3.3); LDM's own "uniform" DDIM discretisation is diffusers'
  ``"leading"`` with ``steps_offset=1``;
- ``variance_type="fixed_small"`` (DDPM's σ² = β̃), ``thresholding=False``,
  ``rescale_betas_zero_snr=False``, ``prediction_type="epsilon"`` (the loops hand the scheduler
  ε; a ``v_prediction`` network is converted first).

The latent scale factor (LDM's ``scale_factor``, ``scale_by_std``) multiplies ``z_e`` before
diffusion so the latents the UNet sees have unit variance: fixed by ``scale_factor=`` or, with
``scale_factor=None``, set to ``1 / std`` of the first training batch ``loss`` sees (pooled over
the ranks under torchrun, so every replica sets the same value). It is a buffer, saved with the
model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from vqkit._checks import (
    check_bool,
    check_choice,
    check_generator,
    check_int,
    check_number,
    check_positive_int,
    check_positive_ints,
    check_real_device,
)
from vqkit._hub import HubMixin
from vqkit._registry import register
from vqkit.autoregressive.sampling import check_cond
from vqkit.contracts import LossOutput
from vqkit.diffusion.sampling import ddim_invert, sample_loop
from vqkit.quantize._distributed import all_reduce_sum, world_size

__all__ = ["LatentDiffusion", "require_diffusers"]

SAMPLERS = ("ddim", "ddpm")
PREDICTIONS = ("epsilon", "v_prediction")
SPACINGS = ("trailing", "leading", "linspace")

INSTALL = 'pip install "vqkit[diffusion]"'


def require_diffusers() -> Any:
    """The ``diffusers`` module, or an ``ImportError`` naming the extra to install."""
    try:
        import diffusers
    except ImportError:
        raise ImportError(
            f"the latent diffusion prior needs diffusers, which is not installed: {INSTALL}"
        ) from None
    return diffusers


def _latent_size(owner: str, size: Any) -> tuple[int, int]:
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size, size)
    if not isinstance(size, (tuple, list)) or len(size) != 2:
        raise ValueError(f"{owner}: size must be (h, w) of the latent grid, got {size!r}")
    h, w = (check_positive_int(owner, "size", s) for s in size)
    return h, w


@register("prior", "latent_diffusion")
class LatentDiffusion(
    nn.Module,
    HubMixin,
    tags=["latent-diffusion", "ldm"],
    paper_url="https://arxiv.org/abs/2112.10752",
):
    """Denoising diffusion prior over continuous latent grids (B, D, h, w).

    Args:
        channels: D, the channels of the latents (a ``VQVAE`` wires its quantizer's ``dim``).
        block_out_channels: the UNet's widths per resolution; ``len - 1`` halvings (inputs are
            padded to a multiple of ``2 ** (len - 1)`` and cropped back).
        layers_per_block: residual blocks per resolution.
        down_block_types: diffusers block names; default ``DownBlock2D`` at the first
            resolution and ``AttnDownBlock2D`` below it.
        up_block_types: diffusers block names; default ``UpBlock2D`` at the first resolution
            and ``AttnUpBlock2D`` below it.
        attention_head_dim: channels per attention head.
        norm_num_groups: GroupNorm groups (must divide every width).
        num_classes: number of classes of a class-conditional prior (a learned class embedding
            added to the time embedding), or None.
        num_train_timesteps: T.
        beta_start: LDM's ``linear_start``.
        beta_end: LDM's ``linear_end``.
        timestep_spacing: the sampling timesteps, ``"trailing"`` (default), ``"leading"`` or
            ``"linspace"`` (diffusers' names).
        prediction_type: what the UNet predicts, ``"epsilon"`` (LDM) or ``"v_prediction"``
            (Salimans & Ho 2022, arXiv:2202.00512).
        scale_factor: the fixed latent scale, or None to estimate ``1 / std`` from the first
            training batch.
        quantize_denoised: quantise each step's predicted x₀ with the first stage's quantizer
            while sampling (LDM's ``quantize_denoised``); the final latents are always quantised
            by the model when decoding.
        ema_decay: decay of the exponential moving average of the UNet's weights used for
            sampling (LDM's ``LitEma``: ``min(decay, (1 + n) / (10 + n))`` after n updates), or
            None for no EMA. The average is updated at the start of each training-mode ``loss``
            with gradients enabled (so it lags the optimizer by one step), or by
            ``update_ema()``.
        sampler: the default sampler of ``sample``, ``"ddim"`` or ``"ddpm"``.
        steps: the default number of sampling steps.
        eta: the default DDIM η.
        device: factory argument for the parameters.
        dtype: factory argument for the parameters.

    Shape:
        - latents (``loss``, ``sample`` output): (B, D, h, w), the first stage's scale (the
          scale factor is applied inside).

    Example:
        >>> prior = LatentDiffusion(channels=2, block_out_channels=[8, 16], norm_num_groups=4,
        ...                         layers_per_block=1, scale_factor=1.0)
        >>> prior.sample(2, (5, 5), steps=3, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([2, 2, 5, 5])
    """

    domain: ClassVar[str] = "continuous"
    exact_likelihood: ClassVar[bool] = False
    sample_options: ClassVar[tuple[str, ...]] = ("steps", "eta", "sampler")
    scale_factor: torch.Tensor
    alphas_cumprod: torch.Tensor
    ema_updates: torch.Tensor
    unet: nn.Module

    def __init__(
        self,
        channels: int = 4,
        block_out_channels: list[int] | tuple[int, ...] = (64, 128),
        layers_per_block: int = 2,
        down_block_types: list[str] | tuple[str, ...] | None = None,
        up_block_types: list[str] | tuple[str, ...] | None = None,
        attention_head_dim: int = 8,
        norm_num_groups: int = 32,
        num_classes: int | None = None,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0015,
        beta_end: float = 0.0195,
        timestep_spacing: str = "trailing",
        prediction_type: str = "epsilon",
        scale_factor: float | None = None,
        quantize_denoised: bool = False,
        ema_decay: float | None = 0.9999,
        sampler: str = "ddim",
        steps: int = 50,
        eta: float = 0.0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.channels = check_positive_int(owner, "channels", channels)
        widths = check_positive_ints(owner, "block_out_channels", block_out_channels)
        self.block_out_channels = widths
        self.layers_per_block = check_positive_int(owner, "layers_per_block", layers_per_block)
        self.norm_num_groups = check_positive_int(owner, "norm_num_groups", norm_num_groups)
        bad = [w for w in widths if w % norm_num_groups]
        if bad:
            raise ValueError(
                f"{owner}: norm_num_groups={norm_num_groups} must divide every width of "
                f"block_out_channels, got {widths}"
            )
        self.attention_head_dim = check_positive_int(
            owner, "attention_head_dim", attention_head_dim
        )
        levels = len(widths)
        down = ["DownBlock2D"] + ["AttnDownBlock2D"] * (levels - 1)
        up = ["AttnUpBlock2D"] * (levels - 1) + ["UpBlock2D"]
        self.down_block_types = self._blocks(owner, "down_block_types", down_block_types, down)
        self.up_block_types = self._blocks(owner, "up_block_types", up_block_types, up)
        self.num_classes = (
            None if num_classes is None else check_positive_int(owner, "num_classes", num_classes)
        )
        self.num_embeddings = None  # the prior contract: no codebook, a continuous domain
        self.num_train_timesteps = check_int(
            owner, "num_train_timesteps", num_train_timesteps, low=2
        )
        self.beta_start = check_number(owner, "beta_start", beta_start, low=0, low_open=True)
        self.beta_end = check_number(owner, "beta_end", beta_end, low=beta_start, high=1)
        self.timestep_spacing = check_choice(owner, "timestep_spacing", timestep_spacing, SPACINGS)
        self.prediction_type = check_choice(owner, "prediction_type", prediction_type, PREDICTIONS)
        if scale_factor is not None:
            check_number(owner, "scale_factor", scale_factor, low=0, low_open=True)
        self.quantize_denoised = check_bool(owner, "quantize_denoised", quantize_denoised)
        if ema_decay is not None:
            check_number(owner, "ema_decay", ema_decay, low=0, high=1, high_open=True)
        self.ema_decay = ema_decay
        self.sampler = check_choice(owner, "sampler", sampler, SAMPLERS)
        self.steps = check_int(owner, "steps", steps, low=1, high=num_train_timesteps)
        self.eta = check_number(owner, "eta", eta, low=0)

        diffusers = require_diffusers()
        self.unet = diffusers.UNet2DModel(
            sample_size=None,
            in_channels=channels,
            out_channels=channels,
            down_block_types=tuple(self.down_block_types),
            up_block_types=tuple(self.up_block_types),
            block_out_channels=tuple(widths),
            layers_per_block=layers_per_block,
            attention_head_dim=attention_head_dim,
            norm_num_groups=norm_num_groups,
            num_class_embeds=self.num_classes,
        )
        if device is not None or dtype is not None:
            self.unet.to(device=device, dtype=dtype)
        alphas_cumprod = self.make_scheduler("ddpm").alphas_cumprod
        kw: dict[str, Any] = {"device": device}
        self.register_buffer(
            "alphas_cumprod", alphas_cumprod.to(**kw, dtype=torch.float32), persistent=False
        )
        nan = float("nan") if scale_factor is None else float(scale_factor)
        self.register_buffer("scale_factor", torch.tensor(nan, **kw, dtype=torch.float32))
        self._scale_known = scale_factor is not None
        self._ema_names: dict[str, str] = {}
        if ema_decay is not None:
            for name, param in self.unet.named_parameters():
                buffer = "ema__" + name.replace(".", "__")
                self._ema_names[name] = buffer
                self.register_buffer(buffer, param.detach().clone())
            self.register_buffer("ema_updates", torch.zeros((), **kw, dtype=torch.long))

    @staticmethod
    def _blocks(owner: str, name: str, given: Any, default: list[str]) -> list[str]:
        if given is None:
            return default
        if not isinstance(given, (list, tuple)) or not all(isinstance(b, str) for b in given):
            raise ValueError(f"{owner}: {name} must be a list of block names, got {given!r}")
        if len(given) != len(default):
            raise ValueError(
                f"{owner}: {name} needs one block per width of block_out_channels "
                f"({len(default)}), got {len(given)}"
            )
        return list(given)

    # ------------------------------------------------------------------ schedule
    def make_scheduler(self, sampler: str = "ddim") -> Any:
        """A fresh diffusers scheduler with every option set explicitly (see the module doc)."""
        diffusers = require_diffusers()
        check_choice(type(self).__name__, "sampler", sampler, SAMPLERS)
        common: dict[str, Any] = {
            "num_train_timesteps": self.num_train_timesteps,
            "beta_start": self.beta_start,
            "beta_end": self.beta_end,
            "beta_schedule": "scaled_linear",
            "trained_betas": None,
            "clip_sample": False,
            "prediction_type": "epsilon",
            "thresholding": False,
            "timestep_spacing": self.timestep_spacing,
            "steps_offset": 0,
            "rescale_betas_zero_snr": False,
        }
        if sampler == "ddim":
            return diffusers.DDIMScheduler(**common, set_alpha_to_one=True)
        return diffusers.DDPMScheduler(**common, variance_type="fixed_small")

    # ------------------------------------------------------------------ weights
    def _load_from_state_dict(self, state_dict, prefix, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        scale = state_dict.get(prefix + "scale_factor")
        if isinstance(scale, torch.Tensor) and scale.device.type != "meta":
            self._scale_known = bool(torch.isfinite(scale).all())

    @torch.no_grad()
    def update_ema(self) -> None:
        """One EMA step of the sampling weights towards the UNet's current weights."""
        if self.ema_decay is None:
            return
        n = self.ema_updates.to(torch.float32)
        decay = torch.clamp((1 + n) / (10 + n), max=self.ema_decay)
        for name, param in self.unet.named_parameters():
            ema = getattr(self, self._ema_names[name])
            ema.lerp_(param.detach(), (1 - decay).to(ema.dtype))
        self.ema_updates += 1

    def ema_parameters(self) -> dict[str, torch.Tensor]:
        """The EMA weights by UNet parameter name (empty without EMA)."""
        return {name: getattr(self, buffer) for name, buffer in self._ema_names.items()}

    # ------------------------------------------------------------------ network
    def _check_latents(self, z: Any, what: str = "latents") -> torch.Tensor:
        owner = type(self).__name__
        if not isinstance(z, torch.Tensor):
            raise TypeError(
                f"{owner}: {what} must be a tensor (B, D, h, w), got {type(z).__name__}"
            )
        check_real_device(owner, z, what)
        if not z.is_floating_point():
            raise TypeError(
                f"{owner}: {what} must be floating point (the pre-quantisation latents z_e), got "
                f"{z.dtype}; a latent diffusion prior does not model code indices"
            )
        if z.dim() != 4 or z.shape[1] != self.channels:
            raise ValueError(
                f"{owner}: {what} must have shape (B, {self.channels}, h, w), got {tuple(z.shape)}"
            )
        if z.shape[0] == 0 or z.shape[2] == 0 or z.shape[3] == 0:
            raise ValueError(f"{owner}: {what} are empty (shape {tuple(z.shape)})")
        if not torch.compiler.is_compiling() and not bool(torch.isfinite(z).all()):
            raise ValueError(f"{owner}: {what} contain NaN or infinite values")
        return z

    def _net(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        cond: torch.Tensor | None,
        params: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """The UNet on scaled latents (B, D, h, w), padded to its resolution multiple."""
        _, _, h, w = x.shape
        multiple = 2 ** (len(self.block_out_channels) - 1)
        pad_h, pad_w = -h % multiple, -w % multiple
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))  # (B, D, h', w'), zeros right and below
        kwargs = {"class_labels": cond, "return_dict": False}
        if params:
            out = torch.func.functional_call(self.unet, params, (x, t), kwargs)[0]
        else:
            out = self.unet(x, t, **kwargs)[0]
        return out[:, :, :h, :w]  # (B, D, h, w)

    def _to_eps(self, out: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.prediction_type == "epsilon":
            return out
        ab = self.alphas_cumprod[t].to(x_t.dtype).view(-1, 1, 1, 1)
        return ab.sqrt() * out + (1 - ab).sqrt() * x_t  # ε = √ᾱ v + √(1−ᾱ) x_t

    def eps_fn(
        self, cond: torch.Tensor | None = None, use_ema: bool = True
    ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """``eps(x_t, t)`` of the network (its EMA weights when ``use_ema`` and there are some)
        on *scaled* latents, for ``sample_loop`` / ``ddim_invert``."""
        params = self.ema_parameters() if use_ema else None

        def eps(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            steps = torch.as_tensor(t, device=x_t.device).long().expand(x_t.shape[0])  # (B,)
            return self._to_eps(self._net(x_t, steps, cond, params), x_t, steps)

        return eps

    def _scale(self) -> torch.Tensor:
        if not self._scale_known:
            raise RuntimeError(
                f"{type(self).__name__}: the latent scale factor is not known yet: it is set from "
                "the first training batch (train the prior first), or build the prior with "
                "scale_factor=..."
            )
        return self.scale_factor

    # ------------------------------------------------------------------ contract
    def loss(self, x: torch.Tensor, cond: torch.Tensor | int | None = None) -> LossOutput:
        """Denoising MSE (L_simple) on latents ``x`` (B, D, h, w) at uniform random timesteps.

        Training mode: timesteps and noise from the global RNG; the first call estimates the
        scale factor when it is unknown, and the EMA is updated. Eval mode: a fixed draw
        (seed 0), so the figure is comparable between models. ``losses``: ``"mse"``.
        """
        z = self._check_latents(x)
        cond = check_cond(cond, self.num_classes, z.shape[0], z.device)
        if not self._scale_known:
            if not self.training:
                self._scale()  # raises: an eval-mode batch does not set the scale
            if z.numel() < 2:
                raise ValueError(
                    f"{type(self).__name__}: estimating the scale factor needs at least two "
                    "latent values in the first batch"
                )
            with torch.no_grad():
                self.scale_factor.copy_(1.0 / _pooled_std(z.detach()))
            self._scale_known = True
        if self.training and torch.is_grad_enabled():
            self.update_ema()
        x0 = z * self.scale_factor.to(z.dtype)  # (B, D, h, w), unit variance
        b = z.shape[0]
        gen = None
        if not self.training:
            gen = torch.Generator(device=z.device).manual_seed(0)
        t = torch.randint(0, self.num_train_timesteps, (b,), device=z.device, generator=gen)
        noise = torch.randn(z.shape, device=z.device, dtype=z.dtype, generator=gen)
        ab = self.alphas_cumprod[t].to(z.dtype).view(b, 1, 1, 1)
        x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * noise  # q(x_t | x_0)
        if self.prediction_type == "epsilon":
            target = noise
        else:
            target = ab.sqrt() * noise - (1 - ab).sqrt() * x0  # v
        mse = F.mse_loss(self._net(x_t, t, cond), target)
        return LossOutput(mse, {"mse": mse.detach()})

    def log_prob(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Latent diffusion has no exact likelihood: raises ``NotImplementedError``."""
        raise NotImplementedError(
            "LatentDiffusion has no exact likelihood (exact_likelihood=False); use "
            "prior.loss(latents) for its denoising MSE"
        )

    def _options(self, steps: Any, eta: Any, sampler: Any) -> tuple[int, float, str]:
        owner = f"{type(self).__name__}.sample"
        steps = self.steps if steps is None else steps
        steps = check_int(owner, "steps", steps, low=1, high=self.num_train_timesteps)
        sampler = self.sampler if sampler is None else sampler
        sampler = check_choice(owner, "sampler", sampler, SAMPLERS)
        if sampler == "ddpm" and eta is not None:
            raise ValueError(f"{owner}: eta applies to the 'ddim' sampler, not to 'ddpm'")
        eta = check_number(owner, "eta", self.eta if eta is None else eta, low=0)
        return steps, eta, sampler

    @torch.no_grad()
    def sample(
        self,
        n: int,
        size: Any = None,
        *,
        cond: torch.Tensor | int | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        steps: int | None = None,
        eta: float | None = None,
        sampler: str | None = None,
        noise: torch.Tensor | None = None,
        quantize: Callable[[torch.Tensor], torch.Tensor] | None = None,
        use_ema: bool = True,
    ) -> torch.Tensor:
        """Draw ``n`` latent grids of ``size`` (h, w) → (n, D, h, w) in the first stage's scale.

        Args:
            n: number of samples.
            size: (h, w) of the latent grid (or an int for a square one).
            cond: class labels (n,) or an int, iff ``num_classes`` is set.
            temperature: must be 1 (diffusion samples have no softmax temperature).
            generator: the source of the starting noise and of every step's noise.
            steps: number of sampling steps (default: the prior's ``steps``).
            eta: DDIM's η (default: the prior's ``eta``); 0 is deterministic given the noise.
            sampler: ``"ddim"`` or ``"ddpm"`` (default: the prior's ``sampler``).
            noise: the starting x_T (n, D, h, w) instead of a draw (e.g. from ``invert``).
            quantize: the first stage's quantizer on latents (B, D, h, w), used on each step's
                predicted x₀ when ``quantize_denoised``; a ``VQVAE`` passes it.
            use_ema: sample with the EMA weights (when the prior keeps them).
        """
        owner = f"{type(self).__name__}.sample"
        check_positive_int(owner, "n", n)
        h, w = _latent_size(owner, size)
        if isinstance(temperature, bool) or temperature != 1.0:
            raise ValueError(
                f"{owner}: temperature must be 1.0 (a diffusion prior has no softmax "
                f"temperature), got {temperature!r}"
            )
        steps, eta, sampler = self._options(steps, eta, sampler)
        check_bool(owner, "use_ema", use_ema)
        param = next(self.unet.parameters())
        check_generator(owner, generator, param.device)
        cond = check_cond(cond, self.num_classes, n, param.device)
        if self.quantize_denoised and quantize is None:
            raise ValueError(
                f"{owner}: quantize_denoised=True needs the first stage's quantizer: pass "
                "quantize=... (VQVAE.generate does)"
            )
        scale = self._scale()
        shape = (n, self.channels, h, w)
        if noise is None:
            x = torch.randn(shape, generator=generator, device=param.device, dtype=param.dtype)
        else:
            x = self._check_latents(noise, "noise")
            if tuple(x.shape) != shape:
                raise ValueError(f"{owner}: noise must have shape {shape}, got {tuple(x.shape)}")
        scheduler = self.make_scheduler(sampler)
        scheduler.set_timesteps(steps, device=param.device)
        quantize_x0 = None
        if self.quantize_denoised and quantize is not None:
            q = quantize

            def quantize_x0(x0: torch.Tensor) -> torch.Tensor:
                return q(x0 / scale) * scale

        eps = self.eps_fn(cond, use_ema=use_ema)
        x = sample_loop(eps, scheduler, x, eta=eta, generator=generator, quantize_x0=quantize_x0)
        return x / scale

    @torch.no_grad()
    def invert(
        self,
        z: torch.Tensor,
        *,
        cond: torch.Tensor | int | None = None,
        steps: int | None = None,
        refine: int = 3,
        use_ema: bool = True,
    ) -> torch.Tensor:
        """DDIM (η = 0) inversion: the x_T from which ``sample(noise=x_T, sampler="ddim",
        eta=0, steps=steps)`` returns the latents ``z`` (B, D, h, w)."""
        owner = f"{type(self).__name__}.invert"
        z = self._check_latents(z)
        steps = self.steps if steps is None else steps
        steps = check_int(owner, "steps", steps, low=1, high=self.num_train_timesteps)
        check_int(owner, "refine", refine, low=0)
        cond = check_cond(cond, self.num_classes, z.shape[0], z.device)
        scheduler = self.make_scheduler("ddim")
        scheduler.set_timesteps(steps, device=z.device)
        x0 = z * self._scale().to(z.dtype)
        return ddim_invert(self.eps_fn(cond, use_ema=use_ema), scheduler, x0, refine=refine)

    def extra_repr(self) -> str:
        known = self._scale_known and self.scale_factor.device.type != "meta"
        scale = float(self.scale_factor) if known else None
        return (
            f"channels={self.channels}, block_out_channels={self.block_out_channels}, "
            f"prediction_type={self.prediction_type!r}, scale_factor={scale}, "
            f"quantize_denoised={self.quantize_denoised}, ema_decay={self.ema_decay}, "
            f"timestep_spacing={self.timestep_spacing!r}"
        )


def _pooled_std(z: torch.Tensor) -> torch.Tensor:
    """The standard deviation (Bessel-corrected) of ``z``'s values pooled over every process.

    Under torchrun each rank's first batch differs; pooling makes every rank set the same scale
    factor (the std of the concatenated batches), so the replicas stay identical. Two passes in
    float64 (count and sum, then squared deviations from the pooled mean), one scalar
    all-reduce each; a single process gives ``z.float().std()``.
    """
    if world_size() == 1:
        return z.float().std()
    flat = z.double().flatten()
    n, total = all_reduce_sum(torch.stack([flat.new_tensor(flat.numel()), flat.sum()])).unbind()
    squares = all_reduce_sum((flat - total / n).square().sum())
    return (squares / (n - 1)).sqrt().float()
