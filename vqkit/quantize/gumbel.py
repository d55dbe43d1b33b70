"""Gumbel-softmax quantizer: a categorical posterior over K codes per position (the DALL-E dVAE).

Ramesh et al., "Zero-Shot Text-to-Image Generation" (arXiv:2102.12092), §2.1: the dVAE's encoder
gives K = 8192 logits per position of a 32×32 grid; training replaces the categorical draw by
the Gumbel-softmax relaxation of Jang et al., "Categorical Reparameterization with
Gumbel-Softmax" (arXiv:1611.01144) and Maddison et al., "The Concrete Distribution"
(arXiv:1611.00712), with a temperature τ annealed towards 1/16, and the ELBO's KL from the
per-position posterior q to the uniform prior, weighted by β (Appendix A.2). At test time the
code is the argmax of the logits (the paper's §2.2 and the reference notebook).

Design: the 1×1 projection from the encoder's ``dim`` channels to the K logits belongs to this
quantizer (``to_logits``, DALL-E's last encoder conv), and the codebook (K, dim) is the linear map
from a one-hot (or relaxed) code back to ``dim`` channels (DALL-E's first decoder conv). So the
quantizer takes and returns (B, dim, h, w) like every other vqkit quantizer and any encoder /
decoder pair fits around it. The logits are (N, K) by nature, so this quantizer's memory is
N × K floats in training (the DALL-E shape: 1,024 × 8,192 per image); eval mode and ``decode``
look codes up without any one-hot.

``temperature`` and ``kl_weight`` are plain attributes (validated on assignment) that
``vqkit.train.schedules`` change per step, e.g. ``{"name": "quantizer.temperature", "type":
"cosine", "start": 1.0, "end": 0.0625, "steps": 5000}``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vqkit._checks import check_bool, check_generator, check_number, check_positive_int
from vqkit._registry import register
from vqkit.functional import perplexity
from vqkit.quantize.output import QuantizerOutput, check_indices, from_rows, input_rows

__all__ = ["GumbelQuantizer", "categorical_kl_to_uniform", "gumbel_softmax_sample"]

# Uniforms are clamped to [_TINY, 1): −log(−log u) stays finite (u = 0 would give −∞ noise).
_TINY = torch.finfo(torch.float32).tiny


def gumbel_softmax_sample(
    logits: Tensor,
    temperature: float,
    *,
    hard: bool = False,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """One Gumbel-softmax draw per row of ``logits`` (N, K): the relaxed weights and the code.

    ``g = −log(−log u)`` with ``u ~ U(0, 1)``; the code ``argmax(logits + g)`` is an exact draw
    from ``softmax(logits)`` (the Gumbel-max trick), and the soft sample is
    ``softmax((logits + g) / τ)`` (Jang et al. 2016, eq. 1). With ``hard=True`` the weights are
    the exact one-hot of the code in the forward pass and carry the soft sample's gradient
    (the straight-through Gumbel-softmax, Jang et al. 2016 §2.2): ``one_hot + (soft −
    sg(soft))``, whose value is the one-hot bit for bit.

    Args:
        logits: (N, K) unnormalised log-probabilities, floating point.
        temperature: τ > 0.
        hard: straight-through one-hot weights instead of the relaxed ones.
        generator: a ``torch.Generator`` for the uniforms (default: the global RNG).

    Returns:
        ``(weights, indices)``: weights (N, K) in the logits' dtype (rows sum to 1), indices
        (N,) int64.
    """
    owner = "gumbel_softmax_sample"
    if not isinstance(logits, Tensor) or not logits.is_floating_point() or logits.ndim != 2:
        shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(f"{owner}: logits must be a floating (N, K) tensor, got {shape}")
    tau = check_number(owner, "temperature", temperature, low=0.0, low_open=True)
    check_bool(owner, "hard", hard)
    check_generator(owner, generator, logits.device)
    u = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=logits.dtype)
    gumbel = -torch.log(-torch.log(u.clamp_min(_TINY)))  # (N, K)
    perturbed = logits + gumbel  # (N, K)
    indices = perturbed.argmax(-1)  # (N,), exact categorical draws
    soft = torch.softmax(perturbed / tau, dim=-1)  # (N, K)
    if not hard:
        return soft, indices
    one_hot = torch.zeros_like(soft).scatter_(1, indices[:, None], 1.0)  # (N, K)
    return one_hot + (soft - soft.detach()), indices


def categorical_kl_to_uniform(logits: Tensor) -> Tensor:
    """KL(q ‖ U(K)) in nats of each row's categorical q = softmax(logits) (N, K) → (N,).

    ``Σ_k q_k log q_k + log K``, computed from ``log_softmax`` (0 for uniform logits; at most
    ``log K``).
    """
    log_q = torch.log_softmax(logits.float(), dim=-1)  # (N, K)
    return (log_q.exp() * log_q).sum(-1) + math.log(logits.shape[-1])  # (N,)


@register("quantizer", "gumbel")
class GumbelQuantizer(nn.Module):
    """Gumbel-softmax quantizer over ``codebook_size`` codes (the dVAE of DALL-E).

    Training mode: logits = ``to_logits(z)``; a Gumbel-softmax sample at ``temperature`` (soft,
    or straight-through hard with ``straight_through=True``) weights the codebook rows;
    ``loss = kl_weight · KL(q ‖ uniform)`` in nats per latent position (mean over batch and
    positions); ``indices`` are the sampled codes (the argmax of the perturbed logits). Eval
    mode is deterministic: ``indices = argmax(logits)`` and ``quantized`` is that code's row, so
    ``decode(indices)`` equals it exactly.

    The KL's scale: DALL-E's objective sums the reconstruction NLL over the H·W·C pixel values
    and the KL over the h·w positions, with β = 6.6 on the KL (Ramesh et al. 2021, Appendix
    A.2). A model whose reconstruction term is a per-value mean (``DVAE``) matches that with
    ``kl_weight = β · h·w / (H·W·C)``: 6.6 / 192 ≈ 0.034 for 256×256×3 images and a 32×32 grid.

    Args:
        dim: channels ``D`` of the input (the encoder's output) and of ``quantized``.
        codebook_size: number of codes ``K``.
        temperature: τ of the relaxation (DALL-E anneals it from 1 to 1/16). Settable.
        kl_weight: weight of the KL to the uniform prior in ``loss`` (see above). Settable.
        straight_through: hard one-hot samples in the forward pass with the soft sample's
            gradient, instead of DALL-E's relaxed (soft) samples.
        channel_last: input is (B, *, D) instead of (B, D, *spatial).
        check_finite: raise on NaN/Inf input (outside ``torch.compile``).
        device: of the projection and the codebook.
        dtype: a floating dtype of the projection and the codebook (logits and the KL are fp32).

    Metrics (detached): ``perplexity`` and ``batch_usage`` of this batch's codes, ``kl`` (the
    unweighted KL per position), ``mean_perplexity`` (exp of the entropy of the batch-averaged
    posterior, which falls towards 1 when the encoder collapses onto few codes), ``temperature``.

    Shape:
        - Input: (B, D, *spatial), or (B, *, D) with ``channel_last=True``.
        - Output: ``QuantizerOutput``; ``quantized`` has the input's shape, ``indices`` is
          (B, *spatial) int64.

    Example:
        >>> q = GumbelQuantizer(dim=16, codebook_size=64, temperature=0.5)
        >>> out = q(torch.randn(2, 16, 4, 4))
        >>> out.quantized.shape, out.indices.shape
        (torch.Size([2, 16, 4, 4]), torch.Size([2, 4, 4]))
    """

    def __init__(
        self,
        dim: int,
        codebook_size: int,
        *,
        temperature: float = 1.0,
        kl_weight: float = 1.0,
        straight_through: bool = False,
        channel_last: bool = False,
        check_finite: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self.dim = check_positive_int(name, "dim", dim)
        self.codebook_size = check_positive_int(name, "codebook_size", codebook_size)
        self.temperature = temperature
        self.kl_weight = kl_weight
        self.straight_through = check_bool(name, "straight_through", straight_through)
        self.channel_last = check_bool(name, "channel_last", channel_last)
        self.check_finite = check_bool(name, "check_finite", check_finite)
        if dtype is not None and not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise TypeError(f"{name}: dtype must be a floating torch.dtype or None, got {dtype!r}")
        self.project_in = None  # input_rows' hook; the logits projection is to_logits
        self.to_logits = nn.Linear(self.dim, self.codebook_size, device=device, dtype=dtype)
        self.embed = nn.Parameter(
            torch.randn(self.codebook_size, self.dim, device=device, dtype=dtype)
        )

    # ------------------------------------------------------------------ settable schedule targets
    @property
    def temperature(self) -> float:
        """τ > 0 of the Gumbel-softmax relaxation (training mode only)."""
        return self._temperature

    @temperature.setter
    def temperature(self, value: float) -> None:
        name = type(self).__name__
        self._temperature = check_number(name, "temperature", value, low=0.0, low_open=True)

    @property
    def kl_weight(self) -> float:
        """Weight ≥ 0 of KL(q ‖ uniform) in ``loss``."""
        return self._kl_weight

    @kl_weight.setter
    def kl_weight(self, value: float) -> None:
        self._kl_weight = check_number(type(self).__name__, "kl_weight", value, low=0.0)

    @property
    def codebook(self) -> Tensor:
        """The code vectors (K, D): row k is what code k contributes to ``quantized``."""
        return self.embed

    # ------------------------------------------------------------------ forward / decode
    def logits(self, x: Tensor) -> Tensor:
        """The posterior logits of an input (B, D, *spatial) → (B, *spatial, K), fp32."""
        rows, batch_shape = input_rows(self, x)  # (N, D)
        with torch.autocast(device_type=rows.device.type, enabled=False):
            logits = self.to_logits(rows.to(self.to_logits.weight.dtype)).float()  # (N, K)
        return logits.reshape(*batch_shape, self.codebook_size)

    def forward(self, x: Tensor) -> QuantizerOutput:
        rows, batch_shape = input_rows(self, x)  # (N, D)
        in_dtype = rows.dtype
        with torch.autocast(device_type=rows.device.type, enabled=False):
            logits = self.to_logits(rows.to(self.to_logits.weight.dtype)).float()  # (N, K)
            embed = self.embed.float()  # (K, D)
            if self.training:
                weights, indices = gumbel_softmax_sample(
                    logits, self.temperature, hard=self.straight_through
                )  # (N, K), (N,)
                quantized = weights @ embed  # (N, D)
            else:
                indices = logits.argmax(-1)  # (N,)
                quantized = F.embedding(indices, embed)  # (N, D)
            kl = categorical_kl_to_uniform(logits).mean()  # nats per position
            loss = self.kl_weight * kl
        metrics = self._metrics(indices, logits, kl)
        return QuantizerOutput(
            quantized=from_rows(quantized.to(in_dtype), batch_shape, self.channel_last),
            indices=indices.reshape(batch_shape),
            loss=loss,
            perplexity=metrics["perplexity"],
            metrics=metrics,
        )

    def decode(self, indices: Tensor) -> Tensor:
        """Code vectors for ``indices`` (B, *spatial) → (B, D, *spatial) (or channel-last)."""
        check_indices(indices, self.codebook_size, type(self).__name__)
        rows = F.embedding(indices.reshape(-1).long(), self.embed.float())  # (N, D)
        return from_rows(rows.to(self.embed.dtype), tuple(indices.shape), self.channel_last)

    @torch.no_grad()
    def _metrics(self, indices: Tensor, logits: Tensor, kl: Tensor) -> dict[str, Tensor]:
        ones = torch.ones(indices.shape[0], device=indices.device)
        counts = ones.new_zeros(self.codebook_size).index_add_(0, indices, ones)  # (K,)
        mean_q = torch.softmax(logits, dim=-1).mean(0)  # (K,), the batch-averaged posterior
        return {
            "perplexity": perplexity(counts),
            "batch_usage": (counts > 0).float().mean(),
            "mean_perplexity": perplexity(mean_q),
            "kl": kl.detach(),
            "temperature": kl.new_tensor(self.temperature),
        }

    def extra_repr(self) -> str:
        parts = [
            f"dim={self.dim}",
            f"codebook_size={self.codebook_size}",
            f"temperature={self.temperature:g}",
            f"kl_weight={self.kl_weight:g}",
        ]
        if self.straight_through:
            parts.append("straight_through=True")
        if self.channel_last:
            parts.append("channel_last=True")
        return ", ".join(parts)
