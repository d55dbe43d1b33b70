"""MADE: a masked MLP whose outputs are autoregressive in its inputs, and a categorical prior on it.

"MADE: Masked Autoencoder for Distribution Estimation", Germain, Gregor, Murray and Larochelle,
2015, arXiv:1502.03509.

Every unit gets a degree. Input feature d has degree ``m(d)`` = its 1-based position in the
ordering; hidden units draw degrees uniformly from ``[min degree of the layer below, D - 1]``; the
hidden mask connects a unit to the units below of degree ``<=`` its own, and the output mask
connects output d to hidden units of degree ``< m(d)``. Output d then depends only on the inputs
before it in the ordering (paper §4, eqs. 12-13).

Several connectivity masks (``num_masks``, paper §4.2: "connectivity-agnostic training"; with
``order_agnostic=True`` every mask after the first also draws its own ordering) make an ensemble.
Its likelihood is the average of the probabilities, ``logsumexp_k log p_k(x) - log n``, a valid
mixture; averaging the logits instead is not a distribution and leaks future inputs.

Layouts: an input of ``D`` features with ``I`` units each is ``(B, D·I)`` with unit ``d·I + i``;
an output with ``P`` parameters per feature is ``(B, D·P)`` with unit ``d·P + p``, i.e.
``out.view(B, D, P)`` (feature-major, "interleaved" parameters).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import ClassVar, cast

import torch
import torch.nn.functional as F
from torch import nn

from vqkit._checks import check_bool, check_choice, check_int, check_positive_int
from vqkit._hub import HubMixin
from vqkit._registry import register
from vqkit.autoregressive.masked import MaskedLinear
from vqkit.autoregressive.sampling import (
    check_factory,
    check_indices,
    check_num_embeddings,
    check_sampling,
    draw_codes,
    draw_uniform,
)
from vqkit.contracts import LossOutput, likelihood_loss

__all__ = ["MADE", "MaskedMLP"]

ORDERINGS = ("natural", "reversed", "random")


def check_hidden_features(owner: str, value: object) -> list[int]:
    """``hidden_features``: a list or tuple of positive ints (possibly empty)."""
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in value
    ):
        raise ValueError(
            f"{owner}: hidden_features must be a list of positive ints (the hidden widths), "
            f"got {value!r}"
        )
    return list(value)


class MaskedMLP(nn.Module):
    """The MADE network: an MLP of ``MaskedLinear`` layers with ReLU in between.

    Args:
        num_features: number of features D.
        hidden_features: widths of the hidden layers (may be empty).
        in_per_feature: input units per feature I (e.g. K for one-hot categories).
        out_per_feature: output units per feature P (e.g. K logits, or 2 flow parameters).
        num_masks: number of connectivity masks (each with its own hidden degrees).
        ordering: ``"natural"`` (0, 1, ..., D-1), ``"reversed"`` or ``"random"`` (seeded).
        order_agnostic: masks after the first draw their own random ordering.
        seed: seed of the degrees and orderings (masks are reproducible, not saved).
        device: factory arguments for the parameters.
        dtype: factory arguments for the parameters.

    Shape:
        - Input: (B, D·I)
        - Output: (B, D·P); output units of feature d depend only on inputs of features before d
          in the ordering of the selected mask.
    """

    def __init__(
        self,
        num_features: int,
        hidden_features: Sequence[int] = (512, 512),
        in_per_feature: int = 1,
        out_per_feature: int = 1,
        num_masks: int = 1,
        ordering: str = "natural",
        order_agnostic: bool = False,
        seed: int = 0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        owner = "MaskedMLP"
        for name, value in (
            ("num_features", num_features),
            ("in_per_feature", in_per_feature),
            ("out_per_feature", out_per_feature),
            ("num_masks", num_masks),
        ):
            check_positive_int(owner, name, value)
        hidden_features = check_hidden_features(owner, hidden_features)
        check_choice(owner, "ordering", ordering, ORDERINGS)
        check_bool(owner, "order_agnostic", order_agnostic)
        check_int(owner, "seed", seed, low=0, high=2**31 - 1)
        check_factory(owner, device, dtype)
        self.num_features, self.hidden_features = num_features, hidden_features
        self.in_per_feature, self.out_per_feature = in_per_feature, out_per_feature
        self.num_masks, self.ordering, self.order_agnostic = num_masks, ordering, order_agnostic
        self.seed = seed
        sizes = [num_features * in_per_feature, *hidden_features, num_features * out_per_feature]
        self.layers = nn.ModuleList(
            MaskedLinear(a, b, device=device, dtype=dtype) for a, b in itertools.pairwise(sizes)
        )
        self.mask_index = -1
        self.select_mask(0)

    def order(self, mask_index: int = 0) -> torch.Tensor:
        """(D,) int64: ``order[t]`` is the feature generated t-th under mask ``mask_index``."""
        d = self.num_features
        if self.ordering == "natural" and not (self.order_agnostic and mask_index > 0):
            return torch.arange(d)
        if self.ordering == "reversed" and not (self.order_agnostic and mask_index > 0):
            return torch.arange(d - 1, -1, -1)
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + mask_index)
        return torch.randperm(d, generator=gen)

    def degrees(self, mask_index: int = 0) -> list[torch.Tensor]:
        """Degrees of the input features (D,) and of every hidden layer, for one mask."""
        d = self.num_features
        order = self.order(mask_index)
        feature_degree = torch.empty(d, dtype=torch.long)
        feature_degree[order] = torch.arange(1, d + 1)
        out = [feature_degree]
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + mask_index + 7919)
        for width in self.hidden_features:
            low = int(out[-1].min())
            high = max(d - 1, low)  # with D = 1 nothing may feed the output: any degree >= 1
            out.append(torch.randint(low, high + 1, (width,), generator=gen))
        return out

    def masks(self, mask_index: int = 0) -> list[torch.Tensor]:
        """The 0/1 masks (out, in) of every layer for one mask index."""
        degrees = self.degrees(mask_index)
        feature_in = degrees[0].repeat_interleave(self.in_per_feature)  # (D·I,)
        feature_out = degrees[0].repeat_interleave(self.out_per_feature)  # (D·P,)
        below = [feature_in, *degrees[1:]]
        above = [*degrees[1:], feature_out]
        masks = [(a[:, None] >= b[None, :]) for a, b in zip(above[:-1], below[:-1], strict=True)]
        masks.append(above[-1][:, None] > below[-1][None, :])
        return [m.float() for m in masks]

    def select_mask(self, mask_index: int) -> None:
        """Switch every layer to connectivity mask ``mask_index`` in [0, num_masks)."""
        if (
            isinstance(mask_index, bool)
            or not isinstance(mask_index, int)
            or not 0 <= mask_index < self.num_masks
        ):
            raise ValueError(
                f"mask_index must be an int in [0, {self.num_masks}), got {mask_index!r}"
            )
        if mask_index == self.mask_index:
            return
        for layer, mask in zip(self.layers, self.masks(mask_index), strict=True):
            cast(MaskedLinear, layer).set_mask(mask)  # ModuleList items are typed Module
        self.mask_index = mask_index

    def forward(self, x: torch.Tensor, mask_index: int | None = None) -> torch.Tensor:
        if mask_index is not None:
            self.select_mask(mask_index)
        for index, layer in enumerate(self.layers):
            x = layer(x)
            if index + 1 < len(self.layers):
                x = F.relu(x)
        return x

    def extra_repr(self) -> str:
        return (
            f"num_features={self.num_features}, hidden_features={self.hidden_features}, "
            f"num_masks={self.num_masks}, ordering={self.ordering!r}, "
            f"order_agnostic={self.order_agnostic}"
        )


@register("prior", "made")
class MADE(nn.Module, HubMixin):
    """MADE prior over ``num_features`` categorical variables (binary when K = 2).

    Inputs are one-hot encoded (``D·K`` input units); each feature gets K logits. With several
    masks, ``log_prob`` is the ensemble (mixture) likelihood and ``sample`` draws from the same
    mixture: a mask is drawn per sample, then its D conditionals in its ordering (D passes).

    Args:
        num_features: number of variables D (e.g. H·W of a code grid).
        num_embeddings: number of categories K of each variable.
        hidden_features: widths of the hidden layers.
        num_masks: number of connectivity masks in the ensemble.
        ordering: ``"natural"``, ``"reversed"`` or ``"random"``.
        order_agnostic: masks after the first draw their own random ordering.
        seed: seed of the masks.
        device: factory arguments for the parameters.
        dtype: factory arguments for the parameters.

    Shape:
        - indices: (B, *event) int64 in [0, K) with ``prod(event) == D``, e.g. (B, D) or
          (B, H, W).
        - Output of ``forward``: logits (B, K, *event); of ``log_prob``: (B,) nats.
    """

    domain: ClassVar[str] = "codes"
    exact_likelihood: ClassVar[bool] = True
    num_classes: int | None = None

    def __init__(
        self,
        num_features: int,
        num_embeddings: int = 2,
        hidden_features: Sequence[int] = (512, 512),
        num_masks: int = 1,
        ordering: str = "natural",
        order_agnostic: bool = False,
        seed: int = 0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        check_positive_int("MADE", "num_features", num_features)
        check_num_embeddings("MADE", num_embeddings)
        self.num_features, self.num_embeddings = num_features, num_embeddings
        self.net = MaskedMLP(
            num_features,
            hidden_features,
            in_per_feature=num_embeddings,
            out_per_feature=num_embeddings,
            num_masks=num_masks,
            ordering=ordering,
            order_agnostic=order_agnostic,
            seed=seed,
            device=device,
            dtype=dtype,
        )

    @property
    def num_masks(self) -> int:
        return self.net.num_masks

    def _check(self, indices: torch.Tensor, cond: object) -> torch.Tensor:
        if cond is not None:
            raise ValueError("cond was given but MADE is unconditional")
        ndim = indices.dim() if isinstance(indices, torch.Tensor) else 2
        indices = check_indices(indices, self.num_embeddings, ndim=max(ndim, 2))
        if math.prod(indices.shape[1:]) != self.num_features:
            raise ValueError(
                f"indices must have shape (B, *event) with {self.num_features} features per "
                f"sample (num_features), got {tuple(indices.shape)}"
            )
        return indices

    def _logits(self, flat: torch.Tensor, mask_index: int | None) -> torch.Tensor:
        """(B, D) codes -> (B, K, D) logits, no validation."""
        first = cast(MaskedLinear, self.net.layers[0])  # ModuleList items are typed Module
        one_hot = F.one_hot(flat, self.num_embeddings).to(first.weight.dtype)
        out = self.net(one_hot.flatten(1), mask_index)  # (B, D·K)
        return out.view(flat.shape[0], self.num_features, self.num_embeddings).transpose(1, 2)

    def forward(
        self, indices: torch.Tensor, cond: None = None, mask_index: int | None = None
    ) -> torch.Tensor:
        """Logits of every variable given those before it, under mask ``mask_index``.

        ``mask_index=None`` keeps the currently selected mask (initially 0).

        Shape:
            - indices: (B, *event); output: (B, K, *event).
        """
        indices = self._check(indices, cond)
        logits = self._logits(indices.flatten(1), mask_index)  # (B, K, D)
        return logits.reshape(indices.shape[0], self.num_embeddings, *indices.shape[1:])

    def log_prob(
        self, indices: torch.Tensor, cond: None = None, mask_index: int | None = None
    ) -> torch.Tensor:
        """Log-likelihood in nats of each sample.

        With ``mask_index=None`` and several masks: the ensemble likelihood
        ``logsumexp_k log p_k(x) - log(num_masks)`` (the mixture of the masks' models).
        With an int: the likelihood under that mask alone (use this for training, cycling or
        drawing the mask per step).

        Shape:
            - indices: (B, *event); output: (B,).
        """
        indices = self._check(indices, cond)
        flat = indices.flatten(1)  # (B, D)
        ks = range(self.num_masks) if mask_index is None else [mask_index]
        previous = self.net.mask_index
        per_mask = []
        for k in ks:
            logits = self._logits(flat, k)  # (B, K, D)
            per_mask.append(-F.cross_entropy(logits, flat, reduction="none").sum(dim=1))
        if mask_index is None:
            self.net.select_mask(previous)
        stacked = torch.stack(per_mask)  # (n_masks, B)
        return torch.logsumexp(stacked, dim=0) - math.log(len(per_mask))

    def loss(self, indices: torch.Tensor, cond: None = None) -> LossOutput:
        """Training objective: NLL in nats per variable (see
        ``vqkit.contracts.likelihood_loss``); an empty batch raises ``ValueError``."""
        log_prob = self.log_prob(indices, cond)
        if log_prob.shape[0] == 0:
            raise ValueError(
                "MADE.loss: the batch is empty; the mean NLL of no samples is undefined"
            )
        return likelihood_loss(log_prob, self.num_features)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        size: Sequence[int] | None = None,
        cond: None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        mask_index: int | None = None,
    ) -> torch.Tensor:
        """Draw ``n`` samples, one variable at a time in the mask's ordering (D passes).

        Args:
            n: number of samples.
            size: event shape of the output (default ``(num_features,)``).
            cond: must be None (MADE is unconditional).
            temperature: logits are divided by it.
            generator: a ``torch.Generator`` for reproducible draws.
            mask_index: sample from this mask's model; None samples the ensemble mixture.

        Shape:
            - Output: (n, *size) int64.
        """
        if cond is not None:
            raise ValueError("cond was given but MADE is unconditional")
        device = cast(MaskedLinear, self.net.layers[0]).weight.device
        n, temperature = check_sampling("MADE.sample", n, temperature, generator, device)
        if size is None:
            size = (self.num_features,)
        elif not isinstance(size, (tuple, list)) or not all(
            isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size
        ):
            raise ValueError(f"MADE.sample: size must be a tuple of positive ints, got {size!r}")
        size = tuple(size)
        if math.prod(size) != self.num_features:
            raise ValueError(f"size {size} must hold num_features={self.num_features} values")
        if mask_index is not None:
            check_int("MADE.sample", "mask_index", mask_index, low=0, high=self.num_masks - 1)
        if mask_index is None:
            gen_device = generator.device if generator is not None else device
            which = torch.randint(self.num_masks, (n,), generator=generator, device=gen_device)
            which = which.to(device)
        else:
            which = torch.full((n,), mask_index, dtype=torch.long, device=device)
        codes = torch.zeros(n, self.num_features, dtype=torch.long, device=device)
        previous = self.net.mask_index
        for k in range(self.num_masks):
            rows = (which == k).nonzero().flatten()
            if rows.numel() == 0:
                continue
            sub = codes[rows]  # (n_k, D)
            for d in self.net.order(k).tolist():
                u = draw_uniform(rows.numel(), generator, device)
                sub[:, d] = draw_codes(self._logits(sub, k)[:, :, d], u, temperature)
            codes[rows] = sub
        self.net.select_mask(previous)
        return codes.view(n, *size)

    def extra_repr(self) -> str:
        return f"num_features={self.num_features}, num_embeddings={self.num_embeddings}"
