"""MaskGIT prior: a bidirectional transformer over code grids, sampled in a few parallel steps.

"MaskGIT: Masked Generative Image Transformer", Chang, Zhang, Jiang, Liu and Freeman 2022,
arXiv:2202.04200 (google-research/maskgit).

Training (paper §3.2): draw r ~ U(0, 1) per grid, mask ⌈γ(r)·L⌉ of its L codes at random (γ the
mask schedule), replace them by a mask token, and minimise the cross-entropy, with label
smoothing (0.1 in the official class-conditional config), of the masked codes only.

Decoding (paper §3.2, Alg. 1; the official ``libml/parallel_decode.py``), with N₀ unknown codes
and T steps; at step t = 0..T-1, with r = (t+1)/T:

1. predict every position; draw a code at each *masked* position from ``softmax(logits / τ)``
   (τ = ``temperature``; revealed and given codes are kept);
2. confidence of a drawn code: ``log p(code) + choice_temperature · (1 - r) · Gumbel`` (revealed
   and given codes: +∞);
3. keep m = clamp(⌊N₀·γ(r)⌋, 1, unknown - 1) masked (the least confident), reveal the rest; the
   last step reveals everything.

No exact likelihood: ``log_prob`` raises ``NotImplementedError``; in eval mode ``MaskGIT.loss``
reports deterministic masked-token NLLs at fixed mask ratios (``masked_nll_r25/_r50/_r75``).

Note on sample sharpness: the confidence step keeps likely codes more often than a draw from the
model would, so samples are sharper than the model's distribution (a position with fixed
marginals ends up at its mode more often than its marginal says). The Gumbel term, annealed by
(1 - r), counteracts this; ``order="random"`` reveals positions uniformly at random instead (the
tests check it then preserves fixed per-position marginals exactly). Too little choice noise is
one cause of the blank or monochrome samples users of PyTorch ports report.

Class conditioning adds a class embedding to every token; a spare "null" class trained with
probability ``cond_drop_prob`` gives classifier-free guidance ("Classifier-Free Diffusion
Guidance", Ho and Salimans 2022, arXiv:2207.12598): ``ℓ_u + s·(ℓ_c - ℓ_u)`` with s =
``guidance_scale`` (1: none).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar, cast, overload

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from vqkit._checks import (
    check_bool,
    check_choice,
    check_generator,
    check_int,
    check_number,
    check_positive_int,
)
from vqkit._hub import HubMixin
from vqkit._registry import register
from vqkit.autoregressive._attention import Block, GridPositions, check_widths
from vqkit.autoregressive.sampling import (
    check_cond,
    check_indices,
    check_temperature,
    prepare_given,
)
from vqkit.autoregressive.transformer import _init_weights, _max_size
from vqkit.contracts import LossOutput

__all__ = ["SCHEDULES", "MaskGIT", "mask_ratio", "masked_counts"]

#: The mask schedules γ(r), r ∈ [0, 1]: the fraction of codes still masked (γ(0) = 1, γ(1) = 0).
SCHEDULES: dict[str, Callable[[float], float]] = {
    "cosine": lambda r: math.cos(math.pi / 2 * r),
    "linear": lambda r: 1.0 - r,
    "square": lambda r: 1.0 - r**2,
    "cubic": lambda r: 1.0 - r**3,
    "sqrt": lambda r: 1.0 - math.sqrt(r),
}

#: Mask ratios at which eval-mode ``MaskGIT.loss`` reports masked-token NLLs.
EVAL_RATIOS = (0.25, 0.5, 0.75)


@overload
def mask_ratio(schedule: str, r: torch.Tensor) -> torch.Tensor: ...
@overload
def mask_ratio(schedule: str, r: float) -> float: ...
def mask_ratio(schedule: str, r: float | torch.Tensor) -> float | torch.Tensor:
    """γ(r) of a named schedule, clipped to [1e-6, 1] as in the official ``mask_schedule.py``.

    Accepts a float or a tensor of r in [0, 1].
    """
    check_choice("mask_ratio", "schedule", schedule, list(SCHEDULES))
    if isinstance(r, torch.Tensor):
        if not r.dtype.is_floating_point or not bool(((r >= 0) & (r <= 1)).all()):
            raise ValueError("mask_ratio: r must be a floating-point tensor with values in [0, 1]")
        tensor = {
            "cosine": lambda x: torch.cos(math.pi / 2 * x),
            "linear": lambda x: 1.0 - x,
            "square": lambda x: 1.0 - x**2,
            "cubic": lambda x: 1.0 - x**3,
            "sqrt": lambda x: 1.0 - x.sqrt(),
        }[schedule](r)
        return tensor.clamp(1e-6, 1.0)
    r = check_number("mask_ratio", "r", r, low=0.0, high=1.0)
    return min(max(SCHEDULES[schedule](r), 1e-6), 1.0)


def masked_counts(num_unknown: int, steps: int, schedule: str = "cosine") -> list[int]:
    """How many codes are still masked after each decoding step (the decoder's closed form).

    ``m_t = clamp(⌊N₀·γ((t+1)/T)⌋, 1, u_t - 1)`` for t < T-1 (u_t: masked before step t), 0 after
    the last step; with nothing unknown, all zeros.
    """
    check_int("masked_counts", "num_unknown", num_unknown, low=0)
    check_positive_int("masked_counts", "steps", steps)
    counts, unknown = [], num_unknown
    for t in range(steps):
        if t == steps - 1 or unknown == 0:
            unknown = 0
        else:
            target = math.floor(num_unknown * mask_ratio(schedule, (t + 1) / steps))
            unknown = max(1, min(unknown - 1, target))
        counts.append(unknown)
    return counts


@register("prior", "maskgit")
class MaskGIT(nn.Module, HubMixin):
    """MaskGIT prior over (H, W) grids of K codes: bidirectional transformer with a mask token.

    Args:
        num_embeddings: number of codes K; the mask token is index K of the embedding.
        embed_dim: width E.
        num_layers: number of (non-causal) transformer blocks.
        num_heads: attention heads per block.
        max_size: the largest grid the learned positions cover: an int or [H, W].
        num_classes: number of classes for class conditioning, or None.
        dropout: dropout on embeddings, attention weights and residual branches while training.
        label_smoothing: label smoothing of the training cross-entropy (official: 0.1).
        schedule: the mask schedule of training and the default of ``sample``, one of
            ``SCHEDULES`` (official: ``"cosine"``).
        cond_drop_prob: probability of replacing a class label by the null class while training
            (enables classifier-free guidance; conditional priors only).
        device: factory arguments for the parameters.
        dtype: factory arguments for the parameters.

    Shape:
        - indices: (B, H, W) int64 in [0, K); H ≤ max_size[0], W ≤ max_size[1].
        - Output of ``forward(tokens)``: logits (B, K, H, W) for tokens in [0, K] (K: masked).

    Example:
        >>> prior = MaskGIT(num_embeddings=16, embed_dim=32, num_layers=2, num_heads=2)
        >>> codes = prior.sample(2, (4, 4), steps=4, generator=torch.Generator().manual_seed(0))
        >>> codes.shape
        torch.Size([2, 4, 4])
    """

    domain: ClassVar[str] = "codes"
    exact_likelihood: ClassVar[bool] = False

    def __init__(
        self,
        num_embeddings: int = 512,
        embed_dim: int = 256,
        num_layers: int = 8,
        num_heads: int = 8,
        max_size: int | list[int] = 32,
        num_classes: int | None = None,
        dropout: float = 0.0,
        label_smoothing: float = 0.1,
        schedule: str = "cosine",
        cond_drop_prob: float = 0.1,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.num_embeddings = check_int(owner, "num_embeddings", num_embeddings, low=2)
        check_widths(owner, embed_dim, num_heads, num_layers)
        self.embed_dim, self.num_layers, self.num_heads = embed_dim, num_layers, num_heads
        self.max_size = _max_size(owner, max_size)
        self.num_classes = (
            None if num_classes is None else check_positive_int(owner, "num_classes", num_classes)
        )
        self.label_smoothing = check_number(
            owner, "label_smoothing", label_smoothing, low=0.0, high=1.0, high_open=True
        )
        self.schedule = check_choice(owner, "schedule", schedule, list(SCHEDULES))
        self.cond_drop_prob = check_number(
            owner, "cond_drop_prob", cond_drop_prob, low=0.0, high=1.0
        )
        self.mask_id = num_embeddings
        kw: dict[str, Any] = {"device": device, "dtype": dtype}
        self.embedding = nn.Embedding(num_embeddings + 1, embed_dim, **kw)  # + the mask token
        # + a null class, the unconditional model of classifier-free guidance
        self.class_embedding = (
            None if num_classes is None else nn.Embedding(num_classes + 1, embed_dim, **kw)
        )
        self.positions = GridPositions(self.max_size, embed_dim, **kw)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, dropout, causal=False, **kw) for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(embed_dim, **kw)
        self.head = nn.Linear(embed_dim, num_embeddings, **kw)
        self.apply(_init_weights)

    # ------------------------------------------------------------------ scoring
    def logits_from_embeddings(
        self, x: torch.Tensor, cond: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits from embedded tokens (B, E, H, W) → (B, K, H, W); every output sees every
        input. ``cond`` (B,) may hold the null class ``num_classes``."""
        _, _, h, w = x.shape
        tokens = rearrange(x, "b e h w -> b (h w) e") + self.positions((h, w))  # (B, L, E)
        if self.class_embedding is not None:
            tokens = tokens + self.class_embedding(cond)[:, None, :]
        hidden = self.drop(tokens)
        for block in self.blocks:
            hidden = block(hidden)
        logits = self.head(self.norm(hidden))  # (B, L, K)
        return rearrange(logits, "b (h w) k -> b k h w", h=h)

    def _logits(self, tokens: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """Validated tokens (B, H, W) in [0, K] → logits (B, K, H, W)."""
        x = rearrange(self.embedding(tokens), "b h w e -> b e h w")
        return self.logits_from_embeddings(x, cond)

    def forward(self, tokens: torch.Tensor, cond: torch.Tensor | int | None = None) -> torch.Tensor:
        """Logits of every position given the unmasked tokens.

        Args:
            tokens: (B, H, W) integer codes in [0, K], ``K`` (= ``mask_id``) where masked.
            cond: class labels (B,) or an int, required iff ``num_classes`` is set.

        Shape:
            - Output: (B, K, H, W).
        """
        tokens = check_indices(tokens, self.num_embeddings + 1)
        self._check_grid(cast(tuple[int, int], tuple(tokens.shape[1:])))  # (H, W)
        cond = check_cond(cond, self.num_classes, tokens.shape[0], tokens.device)
        return self._logits(tokens, cond)

    def _check_grid(self, size: tuple[int, int]) -> None:
        if size[0] < 1 or size[1] < 1:
            raise ValueError(f"{type(self).__name__}: the code grid must be non-empty, got {size}")
        self.positions.check_size(type(self).__name__, size)

    def log_prob(self, indices: torch.Tensor, cond: torch.Tensor | int | None = None):
        """MaskGIT has no exact likelihood: raises ``NotImplementedError``."""
        raise NotImplementedError(
            "MaskGIT has no exact likelihood (exact_likelihood=False); use prior.eval() and "
            "prior.loss(indices).losses: masked-token NLLs at fixed mask ratios "
            "('masked_nll_r25', 'masked_nll_r50', 'masked_nll_r75')"
        )

    def loss(self, indices: torch.Tensor, cond: torch.Tensor | int | None = None) -> LossOutput:
        """The training objective, or in eval mode deterministic masked-token NLLs.

        Training mode: masked-token cross-entropy (with ``label_smoothing``) at a random mask
        ratio γ(r), r ~ U(0, 1) per grid; ``losses``: ``masked_ce``, ``mask_ratio``.
        Eval mode: the NLL in nats per masked code (no smoothing) at mask ratios 0.25, 0.5, 0.75
        with fixed masks (seed 0), ``losses``: ``masked_nll_r25/_r50/_r75``; ``loss`` is their
        mean. Both are nats per masked code position, batch mean.

        Args:
            indices: codes (B, H, W) in [0, K).
            cond: class labels (B,) or an int (conditional priors only).
        """
        indices = check_indices(indices, self.num_embeddings)
        b, h, w = indices.shape
        if b == 0:
            raise ValueError(
                f"{type(self).__name__}.loss: the batch is empty (shape (0, {h}, {w}))"
            )
        self._check_grid((h, w))
        cond = check_cond(cond, self.num_classes, b, indices.device)
        length = h * w
        if not self.training:
            gen = torch.Generator().manual_seed(0)
            scores = torch.rand(b, length, generator=gen).to(indices.device)  # (B, L)
            ranks = scores.argsort(dim=1).argsort(dim=1).view(b, h, w)
            losses = {}
            for ratio in EVAL_RATIOS:
                masked = ranks < max(1, round(ratio * length))  # (B, H, W)
                nll = self._masked_ce(indices, masked, cond, smoothing=0.0)
                losses[f"masked_nll_r{round(ratio * 100)}"] = nll.detach()
            loss = torch.stack(list(losses.values())).mean()
            return LossOutput(loss, losses)
        device = indices.device
        ratios = mask_ratio(self.schedule, torch.rand(b, device=device))  # (B,)
        num_masked = (ratios * length).ceil().clamp(1, length)  # (B,)
        ranks = torch.rand(b, length, device=device).argsort(dim=1).argsort(dim=1)  # (B, L)
        masked = (ranks < num_masked[:, None]).view(b, h, w)  # (B, H, W)
        if cond is not None and self.cond_drop_prob > 0:
            drop = torch.rand(b, device=device) < self.cond_drop_prob
            # a cond is only accepted by a class-conditional prior (check_cond)
            null_class = cast(int, self.num_classes)
            cond = torch.where(drop, torch.full_like(cond, null_class), cond)
        loss = self._masked_ce(indices, masked, cond, smoothing=self.label_smoothing)
        return LossOutput(
            loss, {"masked_ce": loss.detach(), "mask_ratio": masked.float().mean().detach()}
        )

    def _masked_ce(
        self, indices: torch.Tensor, masked: torch.Tensor, cond: torch.Tensor | None, smoothing
    ) -> torch.Tensor:
        """Mean cross-entropy over the masked positions (no boolean indexing: no host sync)."""
        tokens = torch.where(masked, torch.full_like(indices, self.mask_id), indices)
        logits = self._logits(tokens, cond)  # (B, K, H, W)
        ce = F.cross_entropy(logits, indices, reduction="none", label_smoothing=smoothing)
        weight = masked.to(ce.dtype)  # (B, H, W)
        return (ce * weight).sum() / weight.sum()

    # ----------------------------------------------------------------- sampling
    @torch.no_grad()
    def sample(
        self,
        n: int,
        size: tuple[int, int] | None = None,
        *,
        cond: torch.Tensor | int | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        given: torch.Tensor | None = None,
        given_mask: torch.Tensor | None = None,
        steps: int = 8,
        choice_temperature: float = 4.5,
        schedule: str | None = None,
        guidance_scale: float = 1.0,
        order: str = "confidence",
        return_history: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Draw ``n`` grids with the iterative parallel decoder (module docstring).

        Args:
            n: number of samples.
            size: grid size (H, W); may be omitted when ``given`` is passed.
            cond: class labels (n,) or an int (conditional priors only).
            temperature: τ of the code draws, ``softmax(logits / τ)``.
            generator: a ``torch.Generator`` for reproducible draws.
            given: known codes (n, H, W) or (H, W) (inpainting / outpainting); kept as they are.
            given_mask: bool, broadcastable to (n, H, W): True where ``given`` is known
                (default: ``given >= 0``).
            steps: decoding steps T (official: 8 to 12 at 16×16).
            choice_temperature: scale of the annealed Gumbel noise of the confidence
                (official: 4.5); 0 keeps exactly the most confident codes.
            schedule: mask schedule of the decoder (default: the prior's ``schedule``).
            guidance_scale: classifier-free guidance scale s (1: no guidance; conditional only).
            order: ``"confidence"`` (the official decoder) or ``"random"`` (reveal uniformly at
                random positions, whatever their codes).
            return_history: also return the tokens after each step, -1 where still masked.

        Shape:
            - Output: (n, H, W) int64; with ``return_history``, also (steps, n, H, W).
        """
        owner = f"{type(self).__name__}.sample"
        temperature = check_temperature(temperature)
        steps = check_positive_int(owner, "steps", steps)
        choice_temperature = check_number(owner, "choice_temperature", choice_temperature, low=0)
        schedule = self.schedule if schedule is None else schedule
        schedule = check_choice(owner, "schedule", schedule, list(SCHEDULES))
        guidance_scale = check_number(owner, "guidance_scale", guidance_scale, low=0)
        order = check_choice(owner, "order", order, ("confidence", "random"))
        check_bool(owner, "return_history", return_history)
        device = self.embedding.weight.device
        check_generator(owner, generator, device)
        size, given, known = prepare_given(n, size, given, given_mask, self.num_embeddings, device)
        self._check_grid(size)
        cond = check_cond(cond, self.num_classes, n, device)
        if guidance_scale != 1.0 and cond is None:
            raise ValueError(f"{owner}: guidance_scale needs a class-conditional prior and cond")

        h, w = size
        length = h * w
        tokens = torch.where(known, given, torch.full_like(given, self.mask_id))  # (n, H, W)
        num_unknown = (~known).reshape(n, length).sum(dim=1)  # (n,) N₀
        history = []
        for t in range(steps):
            logits = self._guided_logits(tokens, cond, guidance_scale)  # (n, K, H, W)
            logits = rearrange(logits, "n k h w -> n (h w) k").double() / temperature
            log_probs = torch.log_softmax(logits, dim=-1)  # (n, L, K)
            u = self._uniform((n, length), generator, device)
            cdf = log_probs.exp().cumsum(dim=-1)  # (n, L, K)
            drawn = (cdf <= u[..., None]).sum(dim=-1).clamp_(max=self.num_embeddings - 1)
            flat = tokens.reshape(n, length)
            unknown = flat == self.mask_id  # (n, L)
            drawn = torch.where(unknown, drawn, flat)  # (n, L)
            noise = self._uniform((n, length), generator, device)
            if t == steps - 1:
                tokens = drawn.view(n, h, w)
                history.append(tokens.clone())
                break
            r = (t + 1) / steps
            target = (num_unknown.double() * mask_ratio(schedule, r)).floor().long()  # (n,)
            left = unknown.sum(dim=1)  # (n,)
            keep_masked = torch.minimum(left - 1, target).clamp(min=1)
            keep_masked = torch.where(left == 0, torch.zeros_like(keep_masked), keep_masked)
            gumbel = -torch.log(-torch.log(noise.clamp(min=1e-300)))  # (n, L)
            if order == "confidence":
                chosen = log_probs.gather(-1, drawn[..., None])[..., 0]  # (n, L)
                confidence = chosen + choice_temperature * (1.0 - r) * gumbel
            else:
                confidence = gumbel
            confidence = confidence.masked_fill(~unknown, float("inf"))
            ranks = confidence.argsort(dim=1, stable=True).argsort(dim=1)  # (n, L)
            remask = ranks < keep_masked[:, None]
            tokens = torch.where(remask, torch.full_like(drawn, self.mask_id), drawn).view(n, h, w)
            history.append(tokens.masked_fill(tokens == self.mask_id, -1))
        if return_history:
            return tokens, torch.stack(history)
        return tokens

    @staticmethod
    def _uniform(shape, generator, device) -> torch.Tensor:
        gen_device = generator.device if generator is not None else device
        u = torch.rand(shape, generator=generator, device=gen_device, dtype=torch.float64)
        return u.to(device)

    def _guided_logits(
        self, tokens: torch.Tensor, cond: torch.Tensor | None, scale: float
    ) -> torch.Tensor:
        """Logits, with classifier-free guidance ``ℓ_u + s·(ℓ_c - ℓ_u)`` when s ≠ 1."""
        if cond is None or scale == 1.0:
            return self._logits(tokens, cond)
        null = torch.full_like(cond, cast(int, self.num_classes))  # cond implies classes
        both = self._logits(torch.cat([tokens, tokens]), torch.cat([cond, null]))
        conditional, unconditional = both.chunk(2)
        return unconditional + scale * (conditional - unconditional)

    def extra_repr(self) -> str:
        return (
            f"num_embeddings={self.num_embeddings}, embed_dim={self.embed_dim}, "
            f"num_layers={self.num_layers}, num_heads={self.num_heads}, "
            f"max_size={list(self.max_size)}, num_classes={self.num_classes}, "
            f"schedule={self.schedule!r}"
        )
