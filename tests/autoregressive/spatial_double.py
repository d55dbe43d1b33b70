"""A tiny spatially conditioned PixelCNN: a test double of the ``spatial`` branch's interface.

The interface (``GatedPixelCNN(cond_channels=...)`` after that branch merges): the constructor
takes ``cond_channels``; ``forward``, ``log_prob``, ``loss`` and ``sample`` take a keyword
``cond_map`` (B, cond_channels, H, W), required iff ``cond_channels`` is set. One type-"A" masked
3×3 convolution of the code embeddings plus a 1×1 convolution of the conditioning map, then a
1×1 head: the logits at (i, j) see the codes strictly before (i, j) in raster order and the map
at (i, j). Registered as prior ``"spatial_stand_in"`` (tests only) so that Hub round trips of a
``HierarchicalPrior`` built on it work.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

import vqkit
from vqkit._hub import HubMixin
from vqkit.autoregressive.masked import MaskedConv2d
from vqkit.autoregressive.sampling import check_indices, draw_codes, draw_uniform
from vqkit.contracts import likelihood_loss

NAME = "spatial_stand_in"


class SpatialStandIn(nn.Module, HubMixin):
    domain: ClassVar[str] = "codes"
    exact_likelihood: ClassVar[bool] = True

    def __init__(
        self,
        num_embeddings: int = 4,
        cond_channels: int | None = None,
        hidden_channels: int = 8,
        num_classes: int | None = None,
    ) -> None:
        super().__init__()
        if num_classes is not None:
            raise ValueError("the stand-in has no class conditioning")
        self.num_embeddings, self.cond_channels, self.num_classes = (
            num_embeddings,
            cond_channels,
            None,
        )
        self.embedding = nn.Embedding(num_embeddings, hidden_channels)
        self.causal = MaskedConv2d(hidden_channels, hidden_channels, 3, mask_type="A")
        self.cond = None if cond_channels is None else nn.Conv2d(cond_channels, hidden_channels, 1)
        self.head = nn.Conv2d(hidden_channels, num_embeddings, 1)

    def _cond(self, cond_map, shape) -> None:
        if (cond_map is None) != (self.cond_channels is None):
            raise ValueError("cond_map is required iff cond_channels is set")
        if cond_map is not None:
            b, h, w = shape
            if not isinstance(cond_map, torch.Tensor) or tuple(cond_map.shape) != (
                b,
                self.cond_channels,
                h,
                w,
            ):
                raise ValueError(f"cond_map must be {(b, self.cond_channels, h, w)}")

    def logits_from_embeddings(self, x, cond=None, cond_map=None):
        features = self.causal(x)
        if self.cond is not None:
            features = features + self.cond(cond_map)
        return self.head(torch.relu(features))

    def forward(self, indices, cond=None, *, cond_map=None):
        indices = check_indices(indices, self.num_embeddings)
        self._cond(cond_map, indices.shape)
        embedded = self.embedding(indices).permute(0, 3, 1, 2)  # (B, E, H, W)
        return self.logits_from_embeddings(embedded, cond, cond_map)

    def log_prob(self, indices, cond=None, *, cond_map=None):
        logits = self(indices, cond, cond_map=cond_map)
        return -F.cross_entropy(logits, indices.long(), reduction="none").sum(dim=(1, 2))

    def loss(self, indices, cond=None, *, cond_map=None):
        return likelihood_loss(self.log_prob(indices, cond, cond_map=cond_map), indices[0].numel())

    @torch.no_grad()
    def sample(self, n, size=None, cond=None, temperature=1.0, generator=None, *, cond_map=None):
        h, w = size
        self._cond(cond_map, (n, h, w))
        codes = torch.zeros(n, h, w, dtype=torch.long)
        for i in range(h):
            for j in range(w):
                u = draw_uniform(n, generator, codes.device)
                logits = self(codes, cond, cond_map=cond_map)[:, :, i, j]
                codes[:, i, j] = draw_codes(logits, u, temperature)
        return codes


if NAME not in vqkit.list_registered("prior"):
    vqkit.register("prior", NAME)(SpatialStandIn)


def gated_takes_cond_map() -> bool:
    """Whether the registry's ``gated_pixelcnn`` has the spatial branch's ``cond_channels``."""
    import inspect

    return "cond_channels" in inspect.signature(vqkit.autoregressive.GatedPixelCNN).parameters
