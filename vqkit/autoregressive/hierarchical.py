"""Hierarchical prior over VQ-VAE-2's pair of code grids: top prior, then bottom given top.

*Generating Diverse High-Fidelity Images with VQ-VAE-2*, Razavi, van den Oord, Vinyals, 2019
(arXiv:1906.00446), §3.2: the joint distribution of the codes factorises as
``p(top, bottom) = p(top) · p(bottom | top)``. The top prior is any prior over a grid of codes;
the bottom prior is one that takes a spatial conditioning map (``cond_channels`` /
``cond_map``, e.g. ``GatedPixelCNN(cond_channels=...)``), here a small network of the top codes:
an embedding, a 3×3 convolution and stride-2 transposed convolutions up to the bottom grid (the
paper's bottom prior is conditioned on the top codes, §3.2; this small network is ours).

The log-likelihood of a pair is the sum of the two levels', so ``loss`` reports the NLL per
latent position over both grids and the terms of each level (``top_*`` / ``bottom_*``).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import nn

from vqkit._checks import check_positive_int
from vqkit._hub import HubMixin
from vqkit._registry import build, register
from vqkit.contracts import LossOutput, likelihood_loss
from vqkit.models._assembly import as_spec, check_attr, wire
from vqkit.nn.blocks import strided_transposed_convs

__all__ = ["HierarchicalPrior"]

Codes = tuple[torch.Tensor, torch.Tensor]
_OWNER = "HierarchicalPrior"


def _check_level(name: str, codes: Any) -> torch.Tensor:
    if not isinstance(codes, torch.Tensor):
        raise TypeError(f"{_OWNER}: the {name} codes must be a tensor, got {type(codes).__name__}")
    if codes.dtype.is_floating_point or codes.dtype.is_complex or codes.dtype == torch.bool:
        raise TypeError(f"{_OWNER}: the {name} codes must be an integer tensor, got {codes.dtype}")
    if codes.dim() != 3:
        raise ValueError(f"{_OWNER}: the {name} codes must be (B, h, w), got {tuple(codes.shape)}")
    return codes.long()


def _grid(name: str, size: Any) -> tuple[int, int]:
    if not isinstance(size, (tuple, list)) or len(size) != 2:
        raise ValueError(f"{_OWNER}.sample: the {name} size must be (h, w), got {size!r}")
    h = check_positive_int(f"{_OWNER}.sample", f"{name} height", size[0])
    w = check_positive_int(f"{_OWNER}.sample", f"{name} width", size[1])
    return h, w


@register("prior", "hierarchical")
class HierarchicalPrior(nn.Module, HubMixin, tags=["vq-vae-2", "pixelcnn"]):
    """``p(top) · p(bottom | top)`` over a pair of code grids ``(top, bottom)``.

    Args:
        top: prior spec over the top grid, e.g. ``{"type": "gated_pixelcnn",
            "hidden_channels": 64, "num_layers": 8}``; its ``num_embeddings`` is wired.
        bottom: prior spec over the bottom grid that takes a spatial conditioning map, e.g.
            ``{"type": "gated_pixelcnn", "num_layers": 8}``; its ``num_embeddings`` and
            ``cond_channels`` are wired.
        num_embeddings: ``[K_top, K_bottom]`` (a ``VQVAE2`` wires its codebook sizes); None
            takes them from the built priors.
        cond_channels: channels of the conditioning map passed to the bottom prior.
        embed_dim: size of the embedding of the top codes in the conditioning network.
        hidden_channels: width of the conditioning network.
        upsample_factor: the bottom grid's size over the top grid's (a power of two; 2 in the
            paper, whose 256×256 model has 32×32 top and 64×64 bottom codes).
        device: factory arguments for the parameters.
        dtype: factory arguments for the parameters.

    Attributes:
        num_embeddings: ``(K_top, K_bottom)``: the contract's ``num_embeddings`` per level.
        num_classes: the class count of both priors (None: unconditional).

    Shape:
        - codes: ``(top, bottom)``, (B, h, w) and (B, f·h, f·w) integer tensors
        - ``log_prob``: (B,) nats; ``condition``: (B, cond_channels, f·h, f·w)
    """

    domain: ClassVar[str] = "codes"
    exact_likelihood: ClassVar[bool] = True

    def __init__(
        self,
        top: str | dict,
        bottom: str | dict,
        num_embeddings: list[int] | tuple[int, int] | None = None,
        cond_channels: int = 32,
        embed_dim: int = 32,
        hidden_channels: int = 64,
        upsample_factor: int = 2,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.cond_channels = check_positive_int(_OWNER, "cond_channels", cond_channels)
        self.embed_dim = check_positive_int(_OWNER, "embed_dim", embed_dim)
        self.hidden_channels = check_positive_int(_OWNER, "hidden_channels", hidden_channels)
        factor = check_positive_int(_OWNER, "upsample_factor", upsample_factor)
        if factor & (factor - 1):
            raise ValueError(f"{_OWNER}: upsample_factor must be a power of two, got {factor}")
        self.upsample_factor = factor
        sizes: list[int | None] = [None, None]
        if num_embeddings is not None:
            if not isinstance(num_embeddings, (list, tuple)) or len(num_embeddings) != 2:
                raise ValueError(
                    f"{_OWNER}: num_embeddings must be [K_top, K_bottom], got {num_embeddings!r}"
                )
            sizes = [check_positive_int(_OWNER, "num_embeddings", k) for k in num_embeddings]
        kw: dict[str, Any] = {"device": device, "dtype": dtype}

        top_spec, bottom_spec = as_spec("prior", top), as_spec("prior", bottom)
        wire("prior", top_spec, "num_embeddings", sizes[0], "the top codebook size")
        wire("prior", bottom_spec, "num_embeddings", sizes[1], "the bottom codebook size")
        wire("prior", bottom_spec, "cond_channels", cond_channels, "the conditioning channels")
        for spec in (top_spec, bottom_spec):
            wire("prior", spec, "device", device, "the device")
            wire("prior", spec, "dtype", dtype, "the dtype")
        self.top = build("prior", top_spec if top_spec is not None else top)
        self.bottom = build("prior", bottom_spec if bottom_spec is not None else bottom)
        for name, prior in (("top", self.top), ("bottom", self.bottom)):
            if prior.domain != "codes" or not prior.exact_likelihood:
                raise TypeError(
                    f"{_OWNER}: the {name} prior {type(prior).__name__} must be an exact-"
                    "likelihood prior over codes (domain 'codes', exact_likelihood True)"
                )
        check_attr("prior", self.top, "num_embeddings", sizes[0], "top codebook size")
        check_attr("prior", self.bottom, "num_embeddings", sizes[1], "bottom codebook size")
        if getattr(self.bottom, "cond_channels", None) != cond_channels:
            raise ValueError(
                f"{_OWNER}: the bottom prior {type(self.bottom).__name__} must take a spatial "
                f"conditioning map of {cond_channels} channels (cond_channels="
                f"{getattr(self.bottom, 'cond_channels', None)!r})"
            )
        if self.top.num_classes != self.bottom.num_classes:
            raise ValueError(
                f"{_OWNER}: the top and bottom priors must have the same num_classes, got "
                f"{self.top.num_classes!r} and {self.bottom.num_classes!r}"
            )
        self.num_classes = self.top.num_classes
        self.num_embeddings = (int(self.top.num_embeddings), int(self.bottom.num_embeddings))

        # conditioning network: top codes -> (B, cond_channels, f·h_t, f·w_t)
        ups = factor.bit_length() - 1
        self.top_embedding = nn.Embedding(self.num_embeddings[0], embed_dim, **kw)
        layers: list[nn.Module] = [nn.Conv2d(embed_dim, hidden_channels, 3, padding=1, **kw)]
        if ups:
            layers.append(nn.ReLU())
            layers += strided_transposed_convs(
                [hidden_channels] * ups, hidden_channels, nn.ReLU, **kw
            )
        layers += [nn.ReLU(), nn.Conv2d(hidden_channels, cond_channels, 3, padding=1, **kw)]
        self.conditioner = nn.Sequential(*layers)

    # ------------------------------------------------------------------ codes
    def _codes(self, codes: Any) -> Codes:
        if not isinstance(codes, (tuple, list)) or len(codes) != 2:
            raise TypeError(
                f"{_OWNER}: codes must be a tuple (top, bottom) of integer grids, got "
                f"{type(codes).__name__}"
            )
        top, bottom = _check_level("top", codes[0]), _check_level("bottom", codes[1])
        f = self.upsample_factor
        expected = (top.shape[0], top.shape[1] * f, top.shape[2] * f)
        if tuple(bottom.shape) != expected:
            raise ValueError(
                f"{_OWNER}: the bottom grid must be {f}× the top grid with the same batch: top "
                f"{tuple(top.shape)} needs bottom {expected}, got {tuple(bottom.shape)}"
            )
        return top, bottom

    def condition_from_embedding(self, embedded: torch.Tensor) -> torch.Tensor:
        """The conditioning map from embedded top codes (B, E, h, w) → (B, cond_channels, f·h,
        f·w); differentiable in the embedding (for dependency checks by autograd)."""
        return self.conditioner(embedded)

    def condition(self, top: torch.Tensor) -> torch.Tensor:
        """The bottom prior's conditioning map of the top codes (B, h, w) → (B, cond_channels,
        f·h, f·w)."""
        top = _check_level("top", top)
        if top.numel() and (top.min() < 0 or top.max() >= self.num_embeddings[0]):
            raise ValueError(
                f"{_OWNER}: the top codes must lie in [0, {self.num_embeddings[0]}), got values "
                f"in [{int(top.min())}, {int(top.max())}]"
            )
        embedded = self.top_embedding(top).permute(0, 3, 1, 2)  # (B, E, h, w)
        return self.condition_from_embedding(embedded)

    # ------------------------------------------------------------------ likelihood
    def forward(self, codes: Codes, cond: torch.Tensor | int | None = None) -> Codes:
        """Logits of both levels: ``(top_logits, bottom_logits)``, (B, K_t, h, w) and
        (B, K_b, f·h, f·w); the bottom ones given the top codes."""
        top, bottom = self._codes(codes)
        return self.top(top, cond), self.bottom(bottom, cond, cond_map=self.condition(top))

    def level_log_probs(
        self, codes: Codes, cond: torch.Tensor | int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(log p(top), log p(bottom | top))`` of each pair in nats, each (B,)."""
        top, bottom = self._codes(codes)
        top_lp = self.top.log_prob(top, cond)
        bottom_lp = self.bottom.log_prob(bottom, cond, cond_map=self.condition(top))
        return top_lp, bottom_lp

    def log_prob(self, codes: Codes, cond: torch.Tensor | int | None = None) -> torch.Tensor:
        """``log p(top) + log p(bottom | top)`` of each pair in nats.

        Shape:
            - Output: (B,)
        """
        top_lp, bottom_lp = self.level_log_probs(codes, cond)
        return top_lp + bottom_lp

    def loss(self, codes: Codes, cond: torch.Tensor | int | None = None) -> LossOutput:
        """NLL in nats per latent position over both grids (``likelihood_loss`` with ``h_t·w_t
        + h_b·w_b`` positions), plus ``top_nll`` / ``bottom_nll`` (nats per position of that
        level), ``top_nll_per_sample`` / ``bottom_nll_per_sample`` (nats per grid; they add up
        to ``nll_per_sample``) and ``top_bits_per_latent`` / ``bottom_bits_per_latent``.

        Raises:
            ValueError: an empty batch (the mean NLL of no grids is undefined).
        """
        top, bottom = self._codes(codes)
        if top.shape[0] == 0 or top[0].numel() == 0:
            raise ValueError(
                f"{_OWNER}.loss: the batch is empty (top codes of shape {tuple(top.shape)}); "
                "the mean NLL of no grids is undefined"
            )
        top_lp, bottom_lp = self.level_log_probs((top, bottom), cond)
        positions = (top[0].numel(), bottom[0].numel())
        out = likelihood_loss(top_lp + bottom_lp, sum(positions))
        for name, lp, count in zip(("top", "bottom"), (top_lp, bottom_lp), positions, strict=True):
            per_sample = -lp.mean().detach()
            out.losses[f"{name}_nll_per_sample"] = per_sample
            out.losses[f"{name}_nll"] = per_sample / count
            out.losses[f"{name}_bits_per_latent"] = per_sample / count / math.log(2.0)
        return out

    # ------------------------------------------------------------------ sampling
    def _sizes(self, size: Any) -> tuple[tuple[int, int], tuple[int, int]]:
        if size is None:
            raise ValueError(
                f"{_OWNER}.sample needs the grid sizes: size=(h_t, w_t) or ((h_t, w_t), (h_b, w_b))"
            )
        nested = isinstance(size, (tuple, list)) and len(size) == 2
        if nested and all(isinstance(s, (tuple, list)) for s in size):
            top, bottom = _grid("top", size[0]), _grid("bottom", size[1])
        else:
            top = _grid("top", size)
            bottom = (top[0] * self.upsample_factor, top[1] * self.upsample_factor)
        f = self.upsample_factor
        if bottom != (top[0] * f, top[1] * f):
            raise ValueError(
                f"{_OWNER}.sample: the bottom grid must be {f}× the top grid, got top {top} and "
                f"bottom {bottom}"
            )
        return top, bottom

    @torch.no_grad()
    def sample(
        self,
        n: int,
        size: Any = None,
        cond: torch.Tensor | int | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> Codes:
        """Draw ``n`` pairs: the top codes from the top prior, then the bottom codes from the
        bottom prior given the top codes' conditioning map.

        Args:
            n: number of samples.
            size: the top grid ``(h_t, w_t)`` (the bottom one is ``f×`` it) or both grids
                ``((h_t, w_t), (h_b, w_b))``.
            cond: class labels (n,) or an int, for class-conditional priors.
            temperature: logits of both levels are divided by it.
            generator: a ``torch.Generator`` for reproducible draws.

        Shape:
            - Output: ``(top, bottom)``, (n, h_t, w_t) and (n, h_b, w_b) int64
        """
        top_size, bottom_size = self._sizes(size)
        top = self.top.sample(n, top_size, cond=cond, temperature=temperature, generator=generator)
        bottom = self.bottom.sample(
            n,
            bottom_size,
            cond=cond,
            temperature=temperature,
            generator=generator,
            cond_map=self.condition(top),
        )
        return top, bottom

    def extra_repr(self) -> str:
        return (
            f"num_embeddings={self.num_embeddings}, cond_channels={self.cond_channels}, "
            f"upsample_factor={self.upsample_factor}"
        )
