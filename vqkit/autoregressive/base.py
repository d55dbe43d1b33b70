"""The interface shared by vqkit's priors over grids of code indices (PixelCNN, Gated PixelCNN).

A ``GridPrior`` embeds integer codes (B, H, W) with an ``nn.Embedding``, maps the embedding
(B, E, H, W) to logits (B, K, H, W) with a causal network (``logits_from_embeddings``), and
provides ``log_prob`` and raster-order ``sample`` (naive: one full forward pass per position, as in
"Pixel Recurrent Neural Networks", van den Oord et al. 2016, arXiv:1601.06759). Subclasses may
add faster exact samplers by implementing ``_sample_<method>``.

Conditioning: on a class (``cond``, with ``num_classes``) and, for priors built with
``cond_channels``, on a spatial map ``cond_map`` (B, cond_channels, H, W) at the code grid's size
(the location-dependent conditioning of "Conditional Image Generation with PixelCNN Decoders",
van den Oord et al. 2016, arXiv:1606.05328, §2.3). The map is fully known, so it carries no
causality constraint; the logits stay exactly causal in the codes. Both can be combined.
"""

from __future__ import annotations

from typing import Any, ClassVar, cast

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from vqkit.autoregressive.checks import check_cond_map
from vqkit.autoregressive.sampling import (
    check_cond,
    check_indices,
    check_sampling,
    draw_codes,
    draw_uniform,
    prepare_given,
)
from vqkit.contracts import LossOutput, likelihood_loss

__all__ = ["GridPrior", "LogitsHead", "logits_head"]


class LogitsHead(nn.Sequential):
    """The two 1×1 convolutions (with ReLUs) that turn a grid prior's features into logits.

    ``ReLU → 1×1 conv → ReLU → 1×1 conv``, an ``nn.Sequential`` so that its ``state_dict`` keys
    (``1.weight``, ``1.bias``, ``3.weight``, ``3.bias``) are those of vqkit 0.1.0.

    Args:
        hidden_channels: number of input features C.
        head_channels: width of the hidden 1×1 convolution.
        num_embeddings: number of output logits K.
        device: factory arguments for the parameters.
        dtype: factory arguments for the parameters.

    Shape:
        - Input of ``forward``: (B, C, H, W); output: (B, K, H, W).
        - Input of ``step``: (N, C) features of N positions; output: (N, K).
    """

    def __init__(
        self,
        hidden_channels: int,
        head_channels: int,
        num_embeddings: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        kw: dict[str, Any] = {"device": device, "dtype": dtype}
        super().__init__(
            nn.ReLU(),
            nn.Conv2d(hidden_channels, head_channels, 1, **kw),
            nn.ReLU(),
            nn.Conv2d(head_channels, num_embeddings, 1, **kw),
        )

    def step_weights(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(W1, b1, W2, b2)`` for ``step``: the two 1×1 convolutions as matrices acting
        from the right, (C, head) and (head, K). Copies: compute once per sampling call."""
        # nn.Sequential indexes as Module; these two are the 1×1 convolutions built above
        hidden, out = cast(nn.Conv2d, self[1]), cast(nn.Conv2d, self[3])
        w1 = hidden.weight[:, :, 0, 0].t().contiguous()  # (C, head)
        w2 = out.weight[:, :, 0, 0].t().contiguous()  # (head, K)
        return w1, cast(torch.Tensor, hidden.bias), w2, cast(torch.Tensor, out.bias)  # bias=True

    @staticmethod
    def step(
        weights: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
        features: torch.Tensor,
    ) -> torch.Tensor:
        """The head on the features of single positions (an incremental sampler's step).

        Equal to ``forward`` on a (N, C, 1, 1) input, as two matrix products. ``features`` is
        overwritten (the first ReLU is applied in place).

        Args:
            weights: ``step_weights``.
            features: (N, C) features of N positions.

        Shape:
            - Output: (N, K) logits.
        """
        w1, b1, w2, b2 = weights
        hidden = torch.addmm(b1, features.relu_(), w1)  # (N, head)
        return torch.addmm(b2, hidden.relu_(), w2)  # (N, K)


def logits_head(
    hidden_channels: int, head_channels: int, num_embeddings: int, **factory_kwargs
) -> LogitsHead:
    """A ``LogitsHead`` (kept for the callers of vqkit 0.1.0)."""
    return LogitsHead(hidden_channels, head_channels, num_embeddings, **factory_kwargs)


class GridPrior(nn.Module):
    """Base class: an autoregressive distribution over (H, W) grids of K categories.

    Subclasses set ``num_embeddings``, ``num_classes``, ``cond_channels`` (None: no spatial
    conditioning) and ``embedding`` and implement ``logits_from_embeddings``.
    ``sample_methods`` lists the samplers, fastest first.
    """

    domain: ClassVar[str] = "codes"
    exact_likelihood: ClassVar[bool] = True
    num_embeddings: int
    num_classes: int | None
    cond_channels: int | None = None
    embedding: nn.Embedding
    sample_methods: tuple[str, ...] = ("naive",)

    def logits_from_embeddings(
        self,
        x: torch.Tensor,
        cond: torch.Tensor | None = None,
        cond_map: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits from embedded codes; the causal network without the embedding lookup.

        Useful for exact causality checks by autograd (the input is continuous).

        Args:
            x: embedded codes (B, E, H, W).
            cond: validated class labels (B,) int64, or None.
            cond_map: validated spatial map (B, cond_channels, H, W), or None.

        Shape:
            - Output: (B, K, H, W)
        """
        raise NotImplementedError

    def embed(self, indices: torch.Tensor) -> torch.Tensor:
        """(B, H, W) int64 codes -> (B, E, H, W) embeddings (no validation)."""
        return rearrange(self.embedding(indices), "b h w e -> b e h w")

    def forward(
        self,
        indices: torch.Tensor,
        cond: torch.Tensor | int | None = None,
        *,
        cond_map: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits of every position given the codes before it in raster order.

        Args:
            indices: codes (B, H, W), integer dtype, values in [0, num_embeddings).
            cond: class labels (B,) or an int, required iff ``num_classes`` is set.
            cond_map: floating-point map (B, cond_channels, H, W) at the code grid's size,
                finite, required iff ``cond_channels`` is set.

        Shape:
            - Output: (B, K, H, W); ``logits[:, :, i, j]`` depends only on codes before (i, j)
              (and on ``cond`` and ``cond_map``).
        """
        indices = check_indices(indices, self.num_embeddings)
        self._check_grid((int(indices.shape[1]), int(indices.shape[2])))
        cond = check_cond(cond, self.num_classes, indices.shape[0], indices.device)
        cond_map = self._check_cond_map("forward", cond_map, indices.shape[0], indices.shape[1:])
        return self.logits_from_embeddings(self.embed(indices), cond, cond_map)

    def _check_grid(self, size: tuple[int, int]) -> None:
        """Refuse a code grid (H, W) the network cannot model (a hook: convolutional priors take
        any size; a transformer's learned positions bound it)."""

    def _check_cond_map(
        self, method: str, cond_map: object, batch: int, size: Any, broadcast: bool = False
    ) -> torch.Tensor | None:
        owner = f"{type(self).__name__}.{method}"
        like = self.embedding.weight
        return check_cond_map(
            owner, cond_map, self.cond_channels, batch, tuple(size), like, broadcast
        )

    def log_prob(
        self,
        indices: torch.Tensor,
        cond: torch.Tensor | int | None = None,
        *,
        cond_map: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Log-likelihood of each grid in nats: ``sum_{i,j} log p(x_ij | x_<ij)``.

        Args:
            indices: codes (B, H, W).
            cond: class labels, as for ``forward``.
            cond_map: spatial map (B, cond_channels, H, W), as for ``forward``.

        Shape:
            - indices: (B, H, W) int64
            - Output: (B,)
        """
        logits = self(indices, cond, cond_map=cond_map)  # (B, K, H, W)
        nll = F.cross_entropy(logits, indices.long(), reduction="none")  # (B, H, W)
        return -nll.sum(dim=(1, 2))

    def loss(
        self,
        indices: torch.Tensor,
        cond: torch.Tensor | int | None = None,
        *,
        cond_map: torch.Tensor | None = None,
    ) -> LossOutput:
        """Training objective: NLL in nats per latent position (see
        [`vqkit.contracts.likelihood_loss`][vqkit.contracts.likelihood_loss]); ``cond`` and
        ``cond_map`` as for ``forward``.

        An empty batch has no mean NLL: it raises ``ValueError`` (``log_prob`` of an empty
        batch is the empty (0,) tensor)."""
        log_prob = self.log_prob(indices, cond, cond_map=cond_map)
        if indices.shape[0] == 0 or indices[0].numel() == 0:
            raise ValueError(
                f"{type(self).__name__}.loss: the batch is empty (indices of shape "
                f"{tuple(indices.shape)}); the mean NLL of no grids is undefined"
            )
        return likelihood_loss(log_prob, indices[0].numel())

    @torch.no_grad()
    def sample(
        self,
        n: int,
        size: tuple[int, int] | None = None,
        cond: torch.Tensor | int | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        given: torch.Tensor | None = None,
        given_mask: torch.Tensor | None = None,
        method: str = "auto",
        *,
        cond_map: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Draw ``n`` grids of codes in raster order.

        Each position draws one uniform number per sample from ``generator`` (also at given
        positions), so every exact method returns the same codes for the same generator state.

        Args:
            n: number of samples.
            size: grid size (H, W); may be omitted when ``given`` is passed.
            cond: class labels (n,) or an int (conditional models only).
            temperature: logits are divided by it; < 1 sharpens, > 1 flattens.
            generator: a ``torch.Generator`` for reproducible draws.
            given: known codes (n, H, W) or (H, W) to complete; positions not known are sampled.
                A sampled position is conditioned on all codes before it in raster order (given
                or sampled); given codes after it cannot influence it.
            given_mask: bool (n, H, W), (H, W) or broadcastable: True where ``given`` is known.
                Default: ``given >= 0``.
            method: ``"auto"`` (the fastest exact sampler) or one of ``sample_methods``.
            cond_map: the spatial map (n, cond_channels, H, W), or (1, cond_channels, H, W)
                shared by all n samples (broadcast); required iff ``cond_channels`` is set.
                Every exact method returns the same codes with it too.

        Shape:
            - Output: (n, H, W) int64 on the model's device.
        """
        owner = f"{type(self).__name__}.sample"
        if method == "auto":
            method = self.sample_methods[0]
        if not isinstance(method, str) or method not in self.sample_methods:
            raise ValueError(
                f"{owner}: unknown method {method!r}; expected 'auto' or one "
                f"of {list(self.sample_methods)}"
            )
        device = self.embedding.weight.device
        n, temperature = check_sampling(owner, n, temperature, generator, device)
        size, given, known = prepare_given(n, size, given, given_mask, self.num_embeddings, device)
        cond = check_cond(cond, self.num_classes, n, device)
        cond_map = self._check_cond_map("sample", cond_map, n, size, broadcast=True)
        sampler = getattr(self, f"_sample_{method}")
        return sampler(given, known, cond, temperature, generator, cond_map)

    def _sample_naive(
        self,
        codes: torch.Tensor,
        known: torch.Tensor,
        cond: torch.Tensor | None,
        temperature: float,
        generator: torch.Generator | None,
        cond_map: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One full forward pass per unknown position: H·W passes over the whole grid."""
        n, h, w = codes.shape
        codes = codes.clone()
        for i in range(h):
            for j in range(w):
                u = draw_uniform(n, generator, codes.device)
                if bool(known[:, i, j].all()):
                    continue
                logits = self.logits_from_embeddings(self.embed(codes), cond, cond_map)
                logits = logits[:, :, i, j]
                drawn = draw_codes(logits, u, temperature)
                codes[:, i, j] = torch.where(known[:, i, j], codes[:, i, j], drawn)
        return codes
