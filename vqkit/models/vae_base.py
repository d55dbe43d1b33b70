"""What every continuous VAE in vqkit shares: assembly, reparameterisation, the loss, sampling,
evaluation.

Kingma & Welling, "Auto-Encoding Variational Bayes", arXiv:1312.6114. The importance-weighted
log-likelihood estimate is the bound of Burda et al., "Importance Weighted Autoencoders",
arXiv:1509.00519. A subclass calls ``VAEBase._setup`` (latent size, likelihood, loss and
prior) and ``VAEBase._build_networks``, which builds ``self.encoder`` (x → (B, 2·latent_dim):
mean and log-variance of q(z|x)) and ``self.decoder`` (z → raw parameters of p(x|z), see
``vqkit.losses.likelihood``) from registry specs, as ``VQVAE`` does.

The prior p(z) is N(0, I) when ``self.prior is None`` (closed-form KL), else a registered prior of
domain ``"continuous"`` with an exact likelihood (VLAE's MADE flow; one-sample Monte Carlo KL).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import torch
from torch import Tensor, nn

from vqkit._checks import check_bool, check_generator, check_real_device
from vqkit._registry import build
from vqkit.losses.kl import at_least_float32, gaussian_kl
from vqkit.losses.likelihood import Likelihood, get_likelihood
from vqkit.models._assembly import accepts, as_spec, check_attr, wire

__all__ = ["VAEBase", "VAEOutput"]

_LOG_2PI = math.log(2.0 * math.pi)


@dataclass
class VAEOutput:
    """What a VAE's ``forward`` returns.

    Attributes:
        reconstruction: E[x|z] for the sampled z, the shape of the input.
        mu: posterior means, (B, latent_dim).
        logvar: posterior log-variances, (B, latent_dim).
        z: the reparameterised posterior sample, (B, latent_dim).
        loss: scalar training objective.
        losses: detached scalars for logging: ``"recon"``, ``"kl"``, ``"nelbo"``, ``"total"``
            and, for capacity-controlled losses, ``"capacity"`` (all nats per example).
        recon_nll: −log p(x|z) per example, (B,).
        kl: the KL term per example, (B,) (closed form, or a one-sample Monte Carlo estimate
            for a learned prior).
        decoder_logvar: the decoder's log-variance for a ``"diag_gaussian"`` likelihood, else None.
    """

    reconstruction: Tensor
    mu: Tensor
    logvar: Tensor
    z: Tensor
    loss: Tensor
    losses: dict[str, Tensor]
    recon_nll: Tensor
    kl: Tensor
    decoder_logvar: Tensor | None = None


class VAEBase(nn.Module):
    """Gaussian-posterior VAE machinery; the prior is N(0, I) or a registered continuous prior.

    ``sample``, ``reconstruct``, ``interpolate``, ``elbo`` and ``log_likelihood`` run without
    gradients and leave the module's mode alone: call ``model.eval()`` first for models with
    BatchNorm. None of them moves a capacity schedule.
    """

    family: ClassVar[str] = "continuous"
    encoder: nn.Module
    decoder: nn.Module
    prior: Any  # None or a registered prior (vqkit.contracts.Prior), checked when built

    def _setup(
        self,
        latent_dim: int,
        data_shape: tuple[int, ...],
        likelihood: str,
        loss,
        prior=None,
        device=None,
        dtype=None,
    ) -> None:
        owner = type(self).__name__
        if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim < 1:
            raise ValueError(f"{owner}: latent_dim must be a positive int, got {latent_dim!r}")
        self.latent_dim = latent_dim
        self.data_shape = tuple(data_shape)
        if not isinstance(likelihood, str):
            raise TypeError(f"{owner}: likelihood must be a string, got {likelihood!r}")
        self.likelihood: Likelihood = get_likelihood(likelihood)
        self.loss_fn = build("loss", loss)
        self.prior = None if prior is None else self._build_prior(prior, device, dtype)

    def _build_prior(self, prior, device, dtype) -> nn.Module:
        """A prior over the latent vectors: ``dim`` ← latent_dim; continuous and exact."""
        spec = as_spec("prior", prior)
        wire("prior", spec, "dim", self.latent_dim, "the latent_dim")
        built = _build_part("prior", spec, prior, device, dtype)
        owner = type(self).__name__
        if built.domain != "continuous" or not built.exact_likelihood:
            raise TypeError(
                f"{owner}: the prior over latents must have domain 'continuous' and an exact "
                f"likelihood (log p(z) enters the ELBO), got {type(built).__name__} with "
                f"domain={built.domain!r}, exact_likelihood={built.exact_likelihood!r}"
            )
        return built

    def _build_networks(
        self,
        encoder,
        decoder,
        *,
        encoder_sizes: dict,
        decoder_sizes: dict,
        encoder_defaults: dict,
        decoder_defaults: dict,
        device=None,
        dtype=None,
    ) -> None:
        """Build ``self.encoder`` and ``self.decoder`` from registry specs (or built modules).

        ``*_sizes`` must agree with the part (wired into the spec when it leaves them out, checked
        on the built part's contract attributes ``in_channels`` / ``out_channels``);
        ``*_defaults`` fill arguments the spec leaves out (widths), without overriding it.
        """
        parts = []
        for kind, given, sizes, defaults in (
            ("encoder", encoder, encoder_sizes, encoder_defaults),
            ("decoder", decoder, decoder_sizes, decoder_defaults),
        ):
            spec = as_spec(kind, given)
            for param, (value, _attr) in sizes.items():
                wire(kind, spec, param, value, f"the model's {param}")
            if spec is not None:
                for param, value in defaults.items():
                    if param not in spec and accepts(kind, spec, param):
                        spec[param] = value
            built = _build_part(kind, spec, given, device, dtype)
            for param, (value, attr) in sizes.items():
                if attr is not None:
                    check_attr(kind, built, attr, value, f"the model's {param}")
            parts.append(built)
        self.encoder, self.decoder = parts

    # ---- input checks -------------------------------------------------------------------------
    def _check_input(self, x: Tensor, name: str = "x") -> None:
        cls = type(self).__name__
        if not isinstance(x, Tensor):
            raise TypeError(f"{cls} expects {name} to be a Tensor, got {type(x).__name__}")
        check_real_device(cls, x, name)
        if not x.is_floating_point():
            raise TypeError(
                f"{cls} expects a floating-point {name}, got {x.dtype} (convert integer images "
                f"with x.float() / 255)"
            )
        expected = ", ".join(str(s) for s in self.data_shape)
        if x.dim() != 1 + len(self.data_shape) or x.shape[1:] != self.data_shape:
            raise ValueError(
                f"{cls} expects {name} of shape (B, {expected}), got {tuple(x.shape)}"
                f"{self._shape_hint(tuple(x.shape))}"
            )
        if x.shape[0] == 0:
            raise ValueError(
                f"{cls} received an empty batch (B = 0); its loss is a mean over examples and "
                "is undefined for none"
            )
        if torch.compiler.is_compiling():
            return  # value checks cost a host sync: one per call in eager mode, none compiled
        unit_interval = self.likelihood.name == "bernoulli"
        valid = ((x >= 0) & (x <= 1)) if unit_interval else torch.isfinite(x)  # NaN is invalid
        if valid.all():
            return
        if not torch.isfinite(x).all():
            raise ValueError(f"{cls} received {name} containing NaN or infinite values")
        if unit_interval:
            raise ValueError(
                f"{cls} has a Bernoulli decoder and expects {name} in [0, 1], got values in "
                f"[{x.min().item():.4g}, {x.max().item():.4g}]"
            )

    def _shape_hint(self, shape: tuple[int, ...]) -> str:
        return ""

    def _check_latent(self, z: Tensor) -> None:
        if not isinstance(z, Tensor) or z.dim() != 2 or z.shape[1] != self.latent_dim:
            got = tuple(z.shape) if isinstance(z, Tensor) else type(z).__name__
            raise ValueError(
                f"{type(self).__name__} expects latents of shape (B, {self.latent_dim}), got {got}"
            )
        check_real_device(type(self).__name__, z, "z")

    @property
    def _device_dtype(self) -> tuple[torch.device, torch.dtype]:
        p = next(self.parameters())
        return p.device, p.dtype

    # ---- the model ----------------------------------------------------------------------------
    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of q(z|x), each (B, latent_dim)."""
        self._check_input(x)
        mu, logvar = self.encoder(x).chunk(2, dim=1)  # (B, L) each
        return mu, logvar

    def decoder_output(self, z: Tensor) -> Tensor:
        """Raw parameters of p(x|z) (means, log-variances or logits), (B, num_params·C, ...)."""
        self._check_latent(z)
        return self.decoder(z)

    def decode(self, z: Tensor) -> Tensor:
        """E[x|z] for latents ``z`` of shape (B, latent_dim); the data shape."""
        return self.likelihood.mean(self.decoder_output(z))

    @staticmethod
    def reparameterize(
        mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """z = mu + exp(logvar / 2) · ε with ε ~ N(0, I)."""
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + torch.exp(0.5 * logvar) * eps

    @staticmethod
    def posterior_log_prob(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
        """log q(z|x) of a diagonal Gaussian posterior, (B,), in float32 at least."""
        z, mu, logvar = at_least_float32(z), at_least_float32(mu), at_least_float32(logvar)
        return -0.5 * ((z - mu).square() * torch.exp(-logvar) + logvar + _LOG_2PI).sum(1)

    def prior_log_prob(self, z: Tensor) -> Tensor:
        """log p(z), (B,): standard normal (in float32 at least) or the learned prior's."""
        if self.prior is None:
            return -0.5 * (at_least_float32(z).square() + _LOG_2PI).sum(1)
        return self.prior.log_prob(z)

    def sample_prior(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """n latents from the prior, (n, latent_dim) (``latent_dim`` passes for a MADE flow)."""
        if self.prior is not None:
            return self.prior.sample(n, generator=generator)
        device, dtype = self._device_dtype
        return torch.randn((n, self.latent_dim), generator=generator, device=device, dtype=dtype)

    def kl_divergence(self, mu: Tensor, logvar: Tensor, z: Tensor) -> Tensor:
        """The KL term of the ELBO per example, (B,): the closed form for the standard-normal
        prior, else the one-sample estimate log q(z|x) − log p(z) (no closed form exists)."""
        if self.prior is None:
            return gaussian_kl(mu, logvar)
        return self.posterior_log_prob(z, mu, logvar) - self.prior_log_prob(z)

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> VAEOutput:
        """Encode, sample z, decode, and evaluate the configured loss.

        Raises:
            TypeError: ``x`` is not a floating-point tensor, or ``generator`` is not one.
            ValueError: ``x`` has the wrong shape, no examples, non-finite values (or values
                outside [0, 1] for a Bernoulli decoder), or is on the ``meta`` device.

        Shape:
            - x: (B, *data_shape)
            - Output: ``VAEOutput``
        """
        check_generator(type(self).__name__, generator)
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar, generator)  # (B, L)
        out = self.decoder(z)  # (B, num_params·C, ...)
        recon_nll = self.likelihood.nll(x, out)  # (B,)
        kl = self.kl_divergence(mu, logvar, z)  # (B,)
        terms = self.loss_fn(recon_nll, kl)
        return VAEOutput(
            reconstruction=self.likelihood.mean(out),
            mu=mu,
            logvar=logvar,
            z=z,
            loss=terms.loss,
            losses=terms.losses,
            recon_nll=recon_nll,
            kl=kl,
            decoder_logvar=self.likelihood.logvar(out),
        )

    # ---- generation ---------------------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self, n: int, generator: torch.Generator | None = None, decoder_noise: bool = False
    ) -> Tensor:
        """Generate ``n`` examples: z from the prior, then E[x|z] or, with ``decoder_noise``,
        x ~ p(x|z).

        Shape:
            - Output: (n, *data_shape)
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"sample expects a positive int number of samples, got {n!r}")
        check_generator(f"{type(self).__name__}.sample", generator)
        check_bool(f"{type(self).__name__}.sample", "decoder_noise", decoder_noise)
        out = self.decoder(self.sample_prior(n, generator))
        if decoder_noise:
            return self.likelihood.sample(out, generator)
        return self.likelihood.mean(out)

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """E[x|z = posterior mean]: the deterministic reconstruction, the shape of ``x``."""
        mu, _ = self.encode(x)
        return self.decode(mu)

    @torch.no_grad()
    def interpolate(self, x1: Tensor, x2: Tensor, steps: int = 8) -> Tensor:
        """Decode ``steps`` points on the line between the posterior means of x1 and x2.

        Shape:
            - x1, x2: (*data_shape) or (B, *data_shape)
            - Output: (steps, *data_shape) or (B, steps, *data_shape); the ends are the
              reconstructions of x1 and x2.
        """
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
            raise ValueError(f"interpolate expects steps as an int >= 2, got {steps!r}")
        if not isinstance(x1, Tensor) or not isinstance(x2, Tensor) or x1.shape != x2.shape:
            raise ValueError(
                f"interpolate expects two tensors of the same shape, got "
                f"{getattr(x1, 'shape', type(x1))} and {getattr(x2, 'shape', type(x2))}"
            )
        unbatched = x1.dim() == len(self.data_shape)
        if unbatched:
            x1, x2 = x1.unsqueeze(0), x2.unsqueeze(0)
        b = x1.shape[0]
        mu1, _ = self.encode(x1)
        mu2, _ = self.encode(x2)
        t = torch.linspace(0.0, 1.0, steps, device=mu1.device, dtype=mu1.dtype)[None, :, None]
        z = mu1[:, None] * (1 - t) + mu2[:, None] * t  # (B, steps, L)
        frames = self.decode(z.reshape(b * steps, -1))  # (B·steps, *data_shape)
        frames = frames.reshape(b, steps, *self.data_shape)
        return frames[0] if unbatched else frames

    # ---- evaluation ---------------------------------------------------------------------------
    @torch.no_grad()
    def elbo(
        self, x: Tensor, num_samples: int = 1, generator: torch.Generator | None = None
    ) -> Tensor:
        """The evidence lower bound E_q[log p(x|z)] − KL per example, in nats (≤ log p(x)).

        The reconstruction expectation is averaged over ``num_samples`` posterior samples; the
        negative ELBO (−elbo) is the usual "NLL bound" reported for VAEs.

        Shape:
            - x: (B, *data_shape)
            - Output: (B,)
        """
        _check_num_samples(num_samples)
        check_generator(type(self).__name__, generator)
        mu, logvar = self.encode(x)
        total: Tensor | float = 0.0
        for _ in range(num_samples):
            z = self.reparameterize(mu, logvar, generator)
            nll = self.likelihood.nll(x, self.decoder(z))
            total = total - (nll + self.kl_divergence(mu, logvar, z))
        return cast(Tensor, total) / num_samples  # a tensor: num_samples >= 1 (checked)

    @torch.no_grad()
    def log_likelihood(
        self, x: Tensor, num_samples: int = 64, generator: torch.Generator | None = None
    ) -> Tensor:
        """Importance-weighted estimate of log p(x) in nats (Burda et al., arXiv:1509.00519).

        ``log (1/K) Σ_k p(x|z_k) p(z_k) / q(z_k|x)`` with z_k ~ q(z|x): a lower bound on
        log p(x) that tightens as K = ``num_samples`` grows (K = 1 is a one-sample ELBO).

        Shape:
            - x: (B, *data_shape)
            - Output: (B,)
        """
        _check_num_samples(num_samples)
        check_generator(type(self).__name__, generator)
        mu, logvar = self.encode(x)
        log_w = []
        for _ in range(num_samples):
            z = self.reparameterize(mu, logvar, generator)  # (B, L)
            log_px_z = -self.likelihood.nll(x, self.decoder(z))
            log_w.append(log_px_z + self.prior_log_prob(z) - self.posterior_log_prob(z, mu, logvar))
        return torch.logsumexp(torch.stack(log_w), dim=0) - math.log(num_samples)  # (B,)


def _build_part(kind: str, spec, given, device, dtype) -> nn.Module:
    """Build through the registry, with ``device`` / ``dtype`` when the constructor takes them."""
    if spec is None:
        return build(kind, given)
    placement = {k: v for k, v in (("device", device), ("dtype", dtype)) if v is not None}
    placement = {k: v for k, v in placement.items() if accepts(kind, spec, k)}
    return build(kind, spec, **placement)


def _check_num_samples(num_samples: int) -> None:
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
