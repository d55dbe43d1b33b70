"""Fast exact sampling for the Gated PixelCNN by caching both stacks.

The idea follows "Fast Generation for Convolutional Autoregressive Models", Ramachandran, Paine,
Khorrami, Babaeizadeh, Chang, Zhang, Hasegawa-Johnson, Campbell and Huang, 2017,
arXiv:1704.06001: never recompute a feature that cannot have changed.

- The vertical stack at row i depends only on rows above, so once row i-1 is complete, each layer
  computes its row i from a (p+1)-row window of the layer below: once per row, not per pixel.
- The horizontal stack at (i, j) depends on columns j-p..j of the layer below in the same row and
  on the vertical stack at (i, j). Each layer keeps the current row; for a new pixel it computes
  one column from a (p+1)-column window, as a matrix product.

Per pixel the cost is O(L·C²·p) instead of the naive O(H·W·L·C²·k²). The logits equal the naive
ones up to floating-point rounding, the positions are visited in the same raster order and the
generator is consumed identically (one uniform per sample per position), so the codes are the
same as ``method="naive"``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vqkit.autoregressive.gated_pixelcnn import GatedPixelCNN, gate
from vqkit.autoregressive.sampling import draw_codes, draw_uniform

__all__ = ["sample_fast"]


def _as_matrix(conv: torch.nn.Conv2d) -> torch.Tensor:
    """A 1×1 conv weight (O, I, 1, 1) as the matrix (O, I)."""
    return conv.weight.reshape(conv.weight.shape[0], -1)


def _window_matrix(conv: torch.nn.Conv2d) -> torch.Tensor:
    """A 1×kw conv weight (O, I, 1, kw) as the matrix (O, kw·I) acting on a flattened
    channels-last window (kw, I) of one row."""
    weight = conv.weight[:, :, 0, :]  # (O, I, kw)
    return weight.transpose(1, 2).reshape(weight.shape[0], -1)


@torch.no_grad()
def sample_fast(
    model: GatedPixelCNN,
    codes: torch.Tensor,
    known: torch.Tensor,
    cond: torch.Tensor | None,
    temperature: float,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Raster-order sampling with per-row vertical and per-pixel horizontal caches.

    Args:
        model: the Gated PixelCNN.
        codes: (n, H, W) int64, the given codes (anything where unknown).
        known: (n, H, W) bool, True where ``codes`` is given.
        cond: (n,) int64 class labels or None.
        temperature: softmax temperature (> 0).
        generator: random generator, consumed exactly as by the naive sampler.

    Shape:
        - Output: (n, H, W) int64.
    """
    n, height, width = codes.shape
    codes = codes.clone()
    weight = model.embedding.weight
    c, kw = model.hidden_channels, {"device": weight.device, "dtype": weight.dtype}
    layers = list(model.layers)
    pads = [layer.pad for layer in layers]

    # v_in[l]: the input of layer l's vertical conv for the whole grid, zero-padded by p rows on
    # top and p columns each side; v_in[0] holds the embedded codes written so far.
    v_in = [torch.zeros(n, c, height + p, width + 2 * p, **kw) for p in pads]
    # h_in[l]: the input of layer l's horizontal conv for the current row, channels last, with p
    # zero columns on the left, so that a window of columns is a contiguous (n, reach·C) view.
    h_in = [torch.zeros(n, width + p, c, **kw) for p in pads]
    h_mats = [_window_matrix(layer.h_conv) for layer in layers]  # (2C, reach·C)
    out_mats = [_as_matrix(layer.h_out) for layer in layers]  # (2C, C): residual, skip
    head_1, head_2 = model.head[1], model.head[3]
    head_mats = (_as_matrix(head_1), _as_matrix(head_2))
    cond_h = [None if cond is None else layer.cond_h(cond) for layer in layers]  # (n, 2C)
    cond_v = [None if cond is None else layer.cond_v(cond) for layer in layers]

    for i in range(height):
        # Vertical stack, row i of every layer; link[l] is its contribution to the horizontal
        # stack's pre-activations for the whole row.
        link = []
        for index, layer in enumerate(layers):
            # Padded rows i .. i+reach-1 are rows i-p .. i-1 (first layer) or i-p .. i.
            reach = layer.v_conv.kernel_size[0]
            window = v_in[index][:, :, i : i + reach, :]  # (n, C, reach, W + 2p)
            v_pre = layer.v_conv(window)[:, :, 0, :]  # (n, 2C, W)
            row_link = layer.v_to_h(v_pre[..., None])[..., 0]  # (n, 2C, W)
            if cond_v[index] is not None:
                v_pre = v_pre + cond_v[index][:, :, None]
                row_link = row_link + cond_h[index][:, :, None]
            link.append(row_link.transpose(1, 2).contiguous())  # (n, W, 2C)
            if index + 1 < len(layers):
                q = pads[index + 1]
                v_in[index + 1][:, :, i + q, q : q + width] = gate(v_pre)

        for j in range(width):
            u = draw_uniform(n, generator, codes.device)
            skips = 0
            for index, layer in enumerate(layers):
                # Padded columns j .. j+reach-1 are columns j-p .. j-1 (first layer) or j-p .. j.
                p, reach = pads[index], layer.h_conv.kernel_size[1]
                window = h_in[index][:, j : j + reach].reshape(n, -1)  # (n, reach·C)
                h_pre = F.linear(window, h_mats[index], layer.h_conv.bias) + link[index][:, j]
                h_gated = gate(h_pre)  # (n, C)
                h_out, skip = F.linear(h_gated, out_mats[index], layer.h_out.bias).chunk(2, dim=1)
                skips = skips + skip
                if not layer.first:
                    h_out = h_out + h_in[index][:, j + p]
                if index + 1 < len(layers):
                    h_in[index + 1][:, j + pads[index + 1]] = h_out
            known_ij = known[:, i, j]
            if not bool(known_ij.all()):
                hidden = F.relu(F.linear(F.relu(skips), head_mats[0], head_1.bias))
                logits = F.linear(hidden, head_mats[1], head_2.bias)  # (n, K)
                drawn = draw_codes(logits, u, temperature)
                codes[:, i, j] = torch.where(known_ij, codes[:, i, j], drawn)
            emb = model.embedding(codes[:, i, j])  # (n, C)
            h_in[0][:, j + pads[0]] = emb
            v_in[0][:, :, i + pads[0], j + pads[0]] = emb
    return codes
