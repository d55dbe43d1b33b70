"""Gated PixelCNN prior over grids of code indices, with no blind spot.

"Conditional Image Generation with PixelCNN Decoders", van den Oord, Kalchbrenner, Vinyals,
Espeholt, Graves and Kavukcuoglu, 2016, arXiv:1606.05328 (§2.2 gated units, §2.3 class and
location-dependent conditioning, Fig. 2 one layer).

Each layer has two stacks (p = kernel_size // 2):

- the vertical stack sees a (p+1)×k window ending at the current row (the first layer: a p×k
  window of the rows strictly above), so it covers every column within reach of all rows above;
- the horizontal stack sees a 1×(p+1) window ending at the current column (the first layer: the
  p columns strictly to the left) and receives the vertical stack through a 1×1 convolution of its
  pre-gate features. The vertical stack never receives the horizontal one.

Both stacks use ``tanh(a + V_f c + V_f' * s) ⊙ σ(b + V_g c + V_g' * s)`` gates, with c the class
embedding (if ``num_classes``) and ``V' * s`` a 1×1 convolution of the spatial conditioning map s
(if ``cond_channels``; paper §2.3, "location dependent"); the map enters each layer's
pre-activations after the vertical-to-horizontal link, like the class term. The horizontal stack
has a residual connection (except the first layer, whose input is the current code) and a 1×1
skip connection. Causal windows are implemented by padding and cropping, not by
masks, so no weight is ever wasted.

Receptive field of the output at (i, j) with L layers, R = first_kernel_size // 2 +
(L - 1) * (kernel_size // 2): every (i', j') with ``i - R <= i' < i`` and ``|j' - j| <= R``, and
every (i, j') with ``j - R <= j' < j`` (clipped to the grid). ``GatedPixelCNN.receptive_field``
returns it; the tests check that autograd finds exactly this set.

The map is fully known, so it may be seen anywhere: the logits at (i, j) depend on s at every
(i', j') with ``i - Q <= i' <= i`` and ``|j' - j| <= Q``, Q = R - first_kernel_size // 2
(``GatedPixelCNN.cond_map_field``, also checked by autograd), and stay exactly causal in the
codes.

Sampling: ``method="naive"`` runs H·W full forward passes; ``method="fast"`` (the default) caches
the stacks: see ``vqkit.autoregressive.gated_sampling``. Both take the same ``cond_map``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple, cast

import torch
import torch.nn.functional as F
from torch import nn

from vqkit._checks import check_bool, check_positive_int
from vqkit._hub import HubMixin
from vqkit._registry import register
from vqkit.autoregressive.base import GridPrior, LogitsHead
from vqkit.autoregressive.checks import check_cond_channels
from vqkit.autoregressive.gated_sampling import sample_fast
from vqkit.autoregressive.sampling import (
    check_factory,
    check_grid_position,
    check_kernel_size,
    check_num_embeddings,
    check_optional_classes,
)

__all__ = ["GatedLayer", "GatedPixelCNN", "StepBuffers", "StepWeights"]


def gate(x: torch.Tensor) -> torch.Tensor:
    """``tanh(a) * sigmoid(b)`` with ``a, b`` the two halves of the channel dimension (dim 1)."""
    a, b = x.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


class StepWeights(NamedTuple):
    """A ``GatedLayer``'s weights as matrices for its incremental steps (``step_weights``).

    Matrices act on channels-last rows from the right (``x @ M``):

    - ``vertical`` (vertical_reach·k·C, 2C) and ``vertical_bias`` (2C,): the vertical
      convolution on a flattened (rows, columns, channels) window;
    - ``v_to_h`` (2C, 2C) and ``link_bias`` (2C,): the vertical-to-horizontal 1×1 convolution,
      with the horizontal convolution's bias folded in;
    - ``window`` (horizontal_reach·C, 2C): the horizontal convolution on a flattened window;
    - ``residual`` and ``skip`` (C + 1, C): the two halves of the output 1×1 convolution, with
      their bias as the last row.
    """

    vertical: torch.Tensor
    vertical_bias: torch.Tensor
    v_to_h: torch.Tensor
    link_bias: torch.Tensor
    window: torch.Tensor
    residual: torch.Tensor
    skip: torch.Tensor


class StepBuffers(NamedTuple):
    """Scratch space of ``GatedLayer.horizontal_step`` (see ``step_buffers``).

    ``pre`` (N, 2C) holds the pre-activations and ``pre_tanh`` / ``pre_sigmoid`` are its two
    halves; ``gated`` (N, C + 1) is ``[g, 1]`` and ``features`` its first C columns.
    """

    pre: torch.Tensor
    pre_tanh: torch.Tensor
    pre_sigmoid: torch.Tensor
    gated: torch.Tensor
    features: torch.Tensor


class GatedLayer(nn.Module):
    """One Gated PixelCNN layer (paper Fig. 2): vertical and horizontal stacks.

    Args:
        channels: number of channels C of both stacks.
        kernel_size: odd k; the vertical window is (p+1)×k and the horizontal one 1×(p+1), with
            p = k // 2 (for the first layer, p×k and 1×p: strictly before the current position).
        first: whether this is the first layer (type "A": excludes the current position, and has
            no residual connection).
        num_classes: number of classes for conditioning, or None.
        cond_channels: channels S of a spatial conditioning map, or None; a bias-free 1×1
            convolution ``map_proj`` maps it to the 2C vertical and 2C horizontal
            pre-activations (zero weights: exactly the unconditioned layer).
        device: factory arguments for the parameters.
        dtype: factory arguments for the parameters.

    Shape:
        - v, h: (B, C, H, W); cond: (B,) int64 or None; cond_map: (B, S, H, W) or None
        - Output: (v_out, h_out, skip), each (B, C, H, W)
    """

    cond_v: nn.Embedding | None
    cond_h: nn.Embedding | None

    def __init__(
        self,
        channels: int,
        kernel_size: int,
        first: bool,
        num_classes: int | None = None,
        cond_channels: int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        owner = "GatedLayer"
        check_positive_int(owner, "channels", channels)
        check_bool(owner, "first", first)
        name = "kernel_size (of the first layer)" if first else "kernel_size"
        check_kernel_size(owner, name, kernel_size, 3 if first else 1)
        check_optional_classes(owner, num_classes)
        self.cond_channels = check_cond_channels(owner, cond_channels)
        check_factory(owner, device, dtype)
        kw: dict[str, Any] = {"device": device, "dtype": dtype}
        self.channels, self.kernel_size, self.first = channels, kernel_size, first
        self.pad = kernel_size // 2
        reach = self.pad if first else self.pad + 1  # rows (vertical) / columns (horizontal)
        self.v_conv = nn.Conv2d(channels, 2 * channels, (reach, kernel_size), **kw)
        self.h_conv = nn.Conv2d(channels, 2 * channels, (1, reach), **kw)
        self.v_to_h = nn.Conv2d(2 * channels, 2 * channels, 1, **kw)
        # one 1×1 conv for both outputs of the gated horizontal features: residual and skip
        self.h_out = nn.Conv2d(channels, 2 * channels, 1, **kw)
        self.cond_v: nn.Embedding | None = None
        self.cond_h: nn.Embedding | None = None
        if num_classes is not None:
            self.cond_v = nn.Embedding(num_classes, 2 * channels, **kw)
            self.cond_h = nn.Embedding(num_classes, 2 * channels, **kw)
        # V' * s of both stacks in one bias-free 1×1 convolution: [vertical 2C | horizontal 2C]
        self.map_proj: nn.Conv2d | None = None
        if cond_channels is not None:
            self.map_proj = nn.Conv2d(cond_channels, 4 * channels, 1, bias=False, **kw)

    def project_map(self, cond_map: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The map's terms in the vertical and the horizontal pre-activations, ``V' * s``.

        Shape:
            - cond_map: (B, S, H, W)
            - Output: (vertical, horizontal), each (B, 2C, H, W)
        """
        if self.map_proj is None:
            raise ValueError("GatedLayer.project_map: the layer has no cond_channels")
        vertical, horizontal = self.map_proj(cond_map).chunk(2, dim=1)
        return vertical, horizontal

    def forward(
        self,
        v: torch.Tensor,
        h: torch.Tensor,
        cond: torch.Tensor | None = None,
        cond_map: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        height, width = v.shape[-2:]
        p = self.pad
        # Pad p rows on top and p columns each side; the first layer's p-row kernel then yields
        # H + 1 rows, row r covering rows r-p..r-1: cropping to H keeps it strictly above.
        v_pre = self.v_conv(F.pad(v, (p, p, p, 0)))[:, :, :height]  # (B, 2C, H, W)
        h_pre = self.h_conv(F.pad(h, (p, 0, 0, 0)))[:, :, :, :width]  # (B, 2C, H, W)
        h_pre = h_pre + self.v_to_h(v_pre)
        if self.cond_v is not None and self.cond_h is not None:  # (set together)
            v_pre = v_pre + self.cond_v(cond)[:, :, None, None]
            h_pre = h_pre + self.cond_h(cond)[:, :, None, None]
        if self.map_proj is not None:
            if cond_map is None:
                raise ValueError(
                    f"GatedLayer: cond_map (B, {self.cond_channels}, H, W) is required "
                    f"(cond_channels={self.cond_channels})"
                )
            map_v, map_h = self.project_map(cond_map)  # (B, 2C, H, W) each
            v_pre, h_pre = v_pre + map_v, h_pre + map_h
        v_out = gate(v_pre)  # (B, C, H, W)
        h_gated = gate(h_pre)  # (B, C, H, W)
        h_out, skip = self.h_out(h_gated).chunk(2, dim=1)  # (B, C, H, W) each
        if not self.first:
            h_out = h_out + h
        return v_out, h_out, skip

    # -- incremental steps, used by the fast sampler (vqkit.autoregressive.gated_sampling) --

    @property
    def vertical_reach(self) -> int:
        """Rows of the vertical stack's input that one output row sees: p (first layer) or p+1."""
        return self.v_conv.kernel_size[0]

    @property
    def horizontal_reach(self) -> int:
        """Columns of the horizontal stack's input that one output sees: p (first) or p+1."""
        return self.h_conv.kernel_size[1]

    def step_weights(self) -> StepWeights:
        """The layer's weights laid out as matrices for ``vertical_row`` and
        ``horizontal_step``.

        Compute them once per sampling call (they are copies: recompute after changing the
        parameters).
        """
        c = self.channels
        # (2C, C, reach, k) -> (reach·k·C, 2C): row (r·k + t)·C + c_in, a channels-last window
        vertical = self.v_conv.weight.permute(2, 3, 1, 0).reshape(-1, 2 * c)
        v_to_h = self.v_to_h.weight[:, :, 0, 0].t()  # (2C, 2C)
        window = self.h_conv.weight[:, :, 0, :]  # (2C, C, reach)
        window = window.permute(2, 1, 0).reshape(-1, 2 * c)  # (reach·C, 2C): row r·C + c_in
        # conv biases are typed Tensor | None by torch; every conv here is built with a bias
        v_bias, h_bias = cast(torch.Tensor, self.v_conv.bias), cast(torch.Tensor, self.h_conv.bias)
        link_bias = cast(torch.Tensor, self.v_to_h.bias) + h_bias
        out_w, out_b = self.h_out.weight[:, :, 0, 0].t(), cast(torch.Tensor, self.h_out.bias)
        return StepWeights(
            vertical=vertical.contiguous(),
            vertical_bias=v_bias,
            v_to_h=v_to_h.contiguous(),
            link_bias=link_bias,
            window=window.contiguous(),
            residual=torch.cat([out_w[:, :c], out_b[None, :c]]).contiguous(),
            skip=torch.cat([out_w[:, c:], out_b[None, c:]]).contiguous(),
        )

    def step_map(self, cond_map: torch.Tensor) -> torch.Tensor:
        """The map's pre-activation terms for ``vertical_row``, for the whole grid.

        Computed once per sampling call (one 1×1 convolution over the grid), never per position.

        Shape:
            - cond_map: (N, S, H, W)
            - Output: (N, H, W, 4C) channels last: ``[..., :2C]`` the vertical stack's term,
              ``[..., 2C:]`` the horizontal one's.
        """
        if self.map_proj is None:
            raise ValueError("GatedLayer.step_map: the layer has no cond_channels")
        return self.map_proj(cond_map).permute(0, 2, 3, 1).contiguous()  # (N, H, W, 4C)

    def vertical_row(
        self,
        weights: StepWeights,
        window: torch.Tensor,
        cond: torch.Tensor | None = None,
        map_row: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One row of the vertical stack, and its contribution to the horizontal stack.

        Row i of the layer's vertical output depends only on the rows of its input above i (and
        on row i itself, except for the first layer), so an incremental sampler computes it once
        per row, as one matrix product over the batch and the row. ``link`` holds everything of
        the horizontal pre-activations at row i that does not depend on row i of the horizontal
        input: ``v_to_h`` of the vertical pre-activations, the biases, the class embedding and
        the conditioning map's term.

        Args:
            weights: ``step_weights``.
            window: the vertical stack's input at rows ``i - p .. i - 1`` (first layer) or
                ``i - p .. i`` (zeros above the grid), zero-padded by p columns on each side,
                channels last.
            cond: class labels (N,) int64, or None.
            map_row: row i of ``step_map`` (layers with ``cond_channels``), or None.

        Shape:
            - window: (N, vertical_reach, W + 2p, C); map_row: (N, W, 4C)
            - Output: ``v_out`` (N, W, C), the gated vertical features of row i, and ``link``
              (N, W, 2C), both channels last.
        """
        n, _, padded, c = window.shape
        width = padded - 2 * self.pad
        # im2col: (N, reach, W, C, k) -> (N, W, reach, k, C) -> (N·W, reach·k·C)
        cols = window.unfold(2, self.kernel_size, 1).permute(0, 2, 1, 4, 3)
        cols = cols.reshape(n * width, -1)
        v_pre = torch.addmm(weights.vertical_bias, cols, weights.vertical)  # (N·W, 2C)
        link = torch.addmm(weights.link_bias, v_pre, weights.v_to_h)  # (N·W, 2C)
        v_pre, link = v_pre.view(n, width, 2 * c), link.view(n, width, 2 * c)
        if self.cond_v is not None and self.cond_h is not None:  # (set together)
            v_pre = v_pre + self.cond_v(cond)[:, None, :]
            link = link + self.cond_h(cond)[:, None, :]
        if map_row is not None:
            v_pre = v_pre + map_row[..., : 2 * c]
            link = link + map_row[..., 2 * c :]
        return torch.tanh(v_pre[..., :c]) * torch.sigmoid(v_pre[..., c:]), link

    def class_terms(self, cond: torch.Tensor | None) -> torch.Tensor | None:
        """The class embedding's terms of ``vertical_row``, for ``vertical_row_calls``.

        Args:
            cond: class labels (N,) int64, or None.

        Shape:
            - Output: (N, 1, 4C), ``[..., :2C]`` added to the vertical pre-activations and
              ``[..., 2C:]`` to ``link``; None without class conditioning (or ``cond``).
        """
        if self.cond_v is None or self.cond_h is None or cond is None:
            return None
        return torch.cat([self.cond_v(cond), self.cond_h(cond)], dim=1)[:, None, :]

    def vertical_row_calls(
        self,
        weights: StepWeights,
        window: torch.Tensor,
        cols: torch.Tensor,
        pre: torch.Tensor,
        link: torch.Tensor,
        class_terms: torch.Tensor | None = None,
        out: torch.Tensor | None = None,
    ) -> list[Callable[[], object]]:
        """``vertical_row`` (without a map) as zero-argument calls that write into buffers.

        Running the calls in order computes ``v_out, link = vertical_row(weights, window, cond)``
        with the same kernels, the same values bit for bit, and writes ``link`` into ``link``
        and ``v_out`` into ``out`` (skipped when ``out`` is None: the last layer's vertical
        output feeds nothing). ``window`` and ``class_terms`` are read when the calls run, so a
        sampler binds them once per call (or once for all calls) and refills the buffers.

        Args:
            weights: ``step_weights``.
            window: as for ``vertical_row``, (N, vertical_reach, W + 2p, C).
            cols: scratch buffer (N·W, vertical_reach·k·C), the window as rows of patches.
            pre: scratch buffer (N·W, 2C), the vertical pre-activations.
            link: (N, W, 2C) contiguous: receives ``link``.
            class_terms: (N, 1, 4C) buffer holding ``class_terms(cond)``, or None (no class
                conditioning).
            out: (N, W, C), receives the gated vertical features of the row, or None.
        """
        n, reach, padded, c = window.shape
        width = padded - 2 * self.pad
        # im2col into the scratch buffer: (N, reach, W, C, k) -> (N, W, reach, k, C)
        patches = window.unfold(2, self.kernel_size, 1).permute(0, 2, 1, 4, 3)
        cols_view = cols.view(n, width, reach, self.kernel_size, c)
        link_flat = link.view(n * width, 2 * c)
        calls: list[Callable[[], object]] = [
            partial(cols_view.copy_, patches),
            partial(torch.addmm, weights.vertical_bias, cols, weights.vertical, out=pre),
            partial(torch.addmm, weights.link_bias, pre, weights.v_to_h, out=link_flat),
        ]
        pre_rows = pre.view(n, width, 2 * c)
        if class_terms is not None:
            calls.append(partial(pre_rows.add_, class_terms[..., : 2 * c]))
            calls.append(partial(link.add_, class_terms[..., 2 * c :]))
        if out is not None:
            pre_tanh, pre_sigmoid = pre_rows[..., :c], pre_rows[..., c:]
            calls += [
                pre_tanh.tanh_,
                pre_sigmoid.sigmoid_,
                partial(torch.mul, pre_tanh, pre_sigmoid, out=out),
            ]
        return calls

    def step_buffers(self, gated: torch.Tensor) -> StepBuffers:
        """Scratch buffers and views for ``horizontal_step``, built once per sampling call.

        Args:
            gated: (N, C + 1) tensor (usually a view of the sampler's buffer of all layers) that
                receives the gated features ``[g, 1]``; its last column is set to 1 here.
        """
        c = self.channels
        if gated.dim() != 2 or gated.shape[1] != c + 1:
            raise ValueError(f"gated must have shape (N, {c + 1}), got {tuple(gated.shape)}")
        gated[:, c] = 1
        pre = gated.new_empty(gated.shape[0], 2 * c)
        return StepBuffers(pre, pre[:, :c], pre[:, c:], gated, gated[:, :c])

    def horizontal_step(
        self,
        weights: StepWeights,
        buffers: StepBuffers,
        window: torch.Tensor,
        link: torch.Tensor,
        residual: torch.Tensor | None = None,
        out: torch.Tensor | None = None,
    ) -> None:
        """One position (i, j) of the horizontal stack, written into preallocated buffers.

        The gated features go to ``buffers.gated[:, :C]`` (its last column holds ones): the
        augmented row ``[g, 1]`` times ``weights.skip`` is the layer's skip output, bias
        included, so a sampler sums the skips of all layers in one matrix product. The layer's
        output ``[g, 1] @ weights.residual (+ residual)`` goes to ``out``; it is skipped when
        ``out`` is None (the last layer's output feeds nothing but its skip). Writing into
        buffers needs ``torch.no_grad()`` or ``torch.inference_mode()``: this is a sampling step,
        not a differentiable one.

        Args:
            weights: ``step_weights``.
            buffers: ``step_buffers``.
            window: the horizontal input at columns ``j - p .. j - 1`` (first layer) or
                ``j - p .. j`` (zeros left of the grid), flattened channels last.
            link: row i's ``link`` at column j (see ``vertical_row``).
            residual: the horizontal input at column j (layers after the first).
            out: where to write the layer's horizontal output, or None.

        Shape:
            - window: (N, horizontal_reach·C); link: (N, 2C); residual, out: (N, C).
        """
        torch.addmm(link, window, weights.window, out=buffers.pre)  # (N, 2C)
        # in place on the scratch buffer: no allocation per position
        torch.mul(buffers.pre_tanh.tanh_(), buffers.pre_sigmoid.sigmoid_(), out=buffers.features)
        if out is None:
            return
        if self.first:
            torch.mm(buffers.gated, weights.residual, out=out)
        else:
            # residual is given for every layer after the first (see Args)
            torch.addmm(cast(torch.Tensor, residual), buffers.gated, weights.residual, out=out)

    def horizontal_calls(
        self,
        weights: StepWeights,
        buffers: StepBuffers,
        window: torch.Tensor,
        link: torch.Tensor,
        residual: torch.Tensor | None = None,
        out: torch.Tensor | None = None,
    ) -> list[Callable[[], object]]:
        """``horizontal_step`` as a list of zero-argument calls bound to fixed views.

        Running the calls in order is exactly ``horizontal_step(weights, buffers, window, link,
        residual, out)`` (the same kernels on the same tensors): a sampler that visits the same
        column of every row with the same buffers binds them once per sampling call and then
        pays one Python call per kernel, with no argument handling, per position. The views
        must stay valid (not be reallocated) while the calls are used.

        Args:
            weights: ``step_weights``.
            buffers: ``step_buffers``.
            window: as for ``horizontal_step``.
            link: as for ``horizontal_step``.
            residual: as for ``horizontal_step``.
            out: as for ``horizontal_step``.

        Shape:
            - as for ``horizontal_step``.
        """
        calls: list[Callable[[], object]] = [
            partial(torch.addmm, link, window, weights.window, out=buffers.pre),
            buffers.pre_tanh.tanh_,
            buffers.pre_sigmoid.sigmoid_,
            partial(torch.mul, buffers.pre_tanh, buffers.pre_sigmoid, out=buffers.features),
        ]
        if out is not None:
            if self.first:
                calls.append(partial(torch.mm, buffers.gated, weights.residual, out=out))
            else:
                if residual is None:
                    raise ValueError(
                        "GatedLayer.horizontal_calls: residual is required after the first layer"
                    )
                calls.append(
                    partial(torch.addmm, residual, buffers.gated, weights.residual, out=out)
                )
        return calls

    def extra_repr(self) -> str:
        text = f"channels={self.channels}, kernel_size={self.kernel_size}, first={self.first}"
        if self.cond_channels is not None:
            text += f", cond_channels={self.cond_channels}"
        return text


@register("prior", "gated_pixelcnn")
class GatedPixelCNN(GridPrior, HubMixin):
    """Gated PixelCNN prior over (H, W) grids of K code indices; no blind spot.

    Args:
        num_embeddings: number of categories K (the codebook size).
        hidden_channels: channels C of both stacks (and the embedding size).
        num_layers: number of gated layers L (the first one excludes the current position).
        num_classes: number of classes for class conditioning (paper §2.3), or None.
        kernel_size: odd kernel size k of layers 2..L.
        first_kernel_size: odd kernel size of the first layer (>= 3).
        head_channels: width of the hidden 1×1 convolution of the output head.
        cond_channels: channels S of a spatial conditioning map (paper §2.3, location
            dependent: a 1×1 convolution of the map inside both gates of every layer), or None.
            With it, ``forward``, ``log_prob``, ``loss`` and ``sample`` require ``cond_map``.
        device: factory arguments for the parameters.
        dtype: factory arguments for the parameters.

    Shape:
        - indices: (B, H, W) int64 in [0, K); any H, W (non-square too).
        - cond_map: (B, S, H, W) floating point, finite, at the code grid's size (``sample``:
          (n, S, H, W) or (1, S, H, W), broadcast).
        - Output of ``forward``: logits (B, K, H, W); of ``log_prob``: (B,) nats.

    Example:
        >>> prior = GatedPixelCNN(16, hidden_channels=8, num_layers=2, cond_channels=3)
        >>> s = torch.randn(2, 3, 4, 5)  # e.g. upsampled top-level codes of VQ-VAE-2
        >>> codes = prior.sample(2, (4, 5), cond_map=s)
        >>> prior.log_prob(codes, cond_map=s).shape
        torch.Size([2])
    """

    sample_methods = ("fast", "naive")

    def __init__(
        self,
        num_embeddings: int = 512,
        hidden_channels: int = 64,
        num_layers: int = 15,
        num_classes: int | None = None,
        kernel_size: int = 3,
        first_kernel_size: int = 7,
        head_channels: int = 512,
        cond_channels: int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        owner = "GatedPixelCNN"
        self.num_embeddings = check_num_embeddings(owner, num_embeddings)
        self.hidden_channels = check_positive_int(owner, "hidden_channels", hidden_channels)
        self.num_layers = check_positive_int(owner, "num_layers", num_layers)
        check_kernel_size(owner, "kernel_size", kernel_size)
        check_kernel_size(owner, "first_kernel_size", first_kernel_size, 3)
        check_positive_int(owner, "head_channels", head_channels)
        self.num_classes = check_optional_classes(owner, num_classes)
        self.cond_channels = check_cond_channels(owner, cond_channels)
        check_factory(owner, device, dtype)
        kw: dict[str, Any] = {"device": device, "dtype": dtype}
        self.embedding = nn.Embedding(num_embeddings, hidden_channels, **kw)
        self.layers = nn.ModuleList(
            GatedLayer(
                hidden_channels,
                first_kernel_size if index == 0 else kernel_size,
                first=index == 0,
                num_classes=self.num_classes,
                cond_channels=self.cond_channels,
                **kw,
            )
            for index in range(num_layers)
        )
        self.head = LogitsHead(hidden_channels, head_channels, num_embeddings, **kw)

    def logits_from_embeddings(
        self,
        x: torch.Tensor,
        cond: torch.Tensor | None = None,
        cond_map: torch.Tensor | None = None,
    ) -> torch.Tensor:
        v = h = x  # (B, C, H, W)
        skips: torch.Tensor | int = 0
        for layer in self.layers:
            v, h, skip = layer(v, h, cond, cond_map)
            skips = skips + skip
        return self.head(skips)  # (B, K, H, W)

    @property
    def reach(self) -> int:
        """R: how many rows up, and columns left or right, the output at a position sees."""
        return sum(layer.pad for layer in self._gated_layers())

    def _gated_layers(self) -> list[GatedLayer]:
        return [cast(GatedLayer, layer) for layer in self.layers]

    def receptive_field(self, size: tuple[int, int], position: tuple[int, int]) -> torch.Tensor:
        """The positions the logits at ``position`` depend on, by construction.

        Shape:
            - Output: (H, W) bool; True at (i', j') iff i-R <= i' < i and |j'-j| <= R, or
              i' == i and j-R <= j' < j.
        """
        h, w, i, j = check_grid_position("GatedPixelCNN.receptive_field", size, position)
        r = self.reach
        rows = torch.arange(h)[:, None]
        cols = torch.arange(w)[None, :]
        above = (rows >= i - r) & (rows < i) & ((cols - j).abs() <= r)
        left = (rows == i) & (cols >= j - r) & (cols < j)
        return above | left

    def cond_map_field(self, size: tuple[int, int], position: tuple[int, int]) -> torch.Tensor:
        """The positions of the conditioning map the logits at ``position`` depend on.

        The map enters every layer at its own position; the vertical stacks of layers 2..L then
        spread it by their kernel_size // 2 rows up and columns either side, and the
        horizontal stacks move it to the right: the logits at (i, j) see the map in the box
        ``i - Q <= i' <= i``, ``|j' - j| <= Q`` with Q = R - first_kernel_size // 2 (Q = 0 for
        one layer: only its own position). Rows below i are never seen.

        Shape:
            - Output: (H, W) bool.
        """
        h, w, i, j = check_grid_position("GatedPixelCNN.cond_map_field", size, position)
        q = self.reach - self._gated_layers()[0].pad
        rows = torch.arange(h)[:, None]
        cols = torch.arange(w)[None, :]
        return (rows >= i - q) & (rows <= i) & ((cols - j).abs() <= q)

    def _sample_fast(
        self,
        codes: torch.Tensor,
        known: torch.Tensor,
        cond: torch.Tensor | None,
        temperature: float,
        generator: torch.Generator | None,
        cond_map: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return sample_fast(self, codes, known, cond, temperature, generator, cond_map)

    def extra_repr(self) -> str:
        return (
            f"num_embeddings={self.num_embeddings}, hidden_channels={self.hidden_channels}, "
            f"num_layers={self.num_layers}, num_classes={self.num_classes}, "
            f"cond_channels={self.cond_channels}, reach={self.reach}"
        )
