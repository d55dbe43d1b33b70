"""Fast exact sampling for the Gated PixelCNN by caching both stacks.

The idea follows "Fast Generation for Convolutional Autoregressive Models", Ramachandran, Paine,
Khorrami, Babaeizadeh, Chang, Zhang, Hasegawa-Johnson, Campbell and Huang, 2017,
arXiv:1704.06001: never recompute a feature that cannot have changed.

- The vertical stack at row i depends only on rows above, so once row i-1 is complete, each layer
  computes its row i from a (p+1)-row window of the layer below: once per row, not per pixel
  (``GatedLayer.vertical_row``, or its bound form ``GatedLayer.vertical_row_calls``, which writes
  straight into the next layer's input).
- The horizontal stack at (i, j) depends on columns j-p..j of the layer below in the same row and
  on the vertical stack at (i, j). Each layer keeps the current row in a preallocated
  channels-last buffer; for a new pixel it computes one column from a (p+1)-column window, as one
  matrix product over the whole batch (``GatedLayer.horizontal_step``, bound:
  ``GatedLayer.horizontal_calls``).
- The skip outputs of all layers are summed by one matrix product over the concatenated gated
  features, and the head runs on the (N, C) features of one position (the two products of
  ``LogitsHead.step_weights``).

The sampler uses only those documented steps, never a layer's private convolutions.

At batch 1 the cost is per-kernel overhead, not arithmetic, so a position runs nothing but its
kernels: everything that does not depend on the codes (the step weights, every buffer, and per
column j each kernel of the position as a zero-argument call bound to fixed views of the buffers) is
a *plan*, built once and kept per model while its parameters (identity, storage, shape, dtype), the
sizes and the temperature are unchanged; each call copies the current weights into it, so an
in-place change of the weights never leaves it stale. A position then costs exactly 5·L + 8 kernels
(the window product, three for the gate and the output product per layer, none of the latter for the
last; the skip product; the head's two products and two ReLUs; softmax, cumsum, searchsorted, the
embedding lookup), with no allocation, no slicing and no argument handling; the vertical stacks cost
6 kernels per layer per row. The draw is ``draw_codes``'s inverse CDF in one kernel:
``searchsorted(cdf[:, :K-1], u, right=True)`` counts the CDF entries <= u, already clamped to K - 1
(the CDF is a running sum of non-negative terms, hence sorted). Whether a row's logits define a
distribution is checked once per row (``_check_row``) instead of per position, with ``draw_codes``'s
error. On a CPU the uniforms of the whole grid are drawn at once: the CPU generator's serial uniform
kernel gives the same numbers as one draw per position. Per pixel the arithmetic is O(L·C²·p +
C·head + head·K) instead of the naive sampler's O(H·W·(L·C²·k² + C·head + head·K)).

A plan's buffers serve one call at a time (a lock; a concurrent call builds its own plan), and a
plan over 64 MiB is not kept after its call.

A spatial conditioning map (``cond_map``) is projected once per call, by each layer's
``GatedLayer.step_map`` over the whole grid; row i of the projection joins the vertical
pre-activations and the ``link`` of the horizontal stack in ``GatedLayer.vertical_row``, so
the per-pixel loop is the same with or without a map.

The logits equal the naive ones up to floating-point rounding, the positions are visited in the
same raster order and the generator is consumed identically (one uniform per sample per
position), so the codes are the same as ``method="naive"``.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from functools import partial
from typing import Any

import torch

from vqkit.autoregressive.sampling import no_distribution_error

__all__ = ["sample_fast"]


def sample_fast(
    model: Any,
    codes: torch.Tensor,
    known: torch.Tensor,
    cond: torch.Tensor | None,
    temperature: float,
    generator: torch.Generator | None,
    cond_map: torch.Tensor | None = None,
) -> torch.Tensor:
    """Raster-order sampling with per-row vertical and per-pixel horizontal caches.

    Args:
        model: a [`GatedPixelCNN`][vqkit.autoregressive.GatedPixelCNN] (its ``embedding``, its
            ``layers``' incremental steps and its ``head.step`` are all that is used).
        codes: (n, H, W) int64, the given codes (anything where unknown).
        known: (n, H, W) bool, True where ``codes`` is given.
        cond: (n,) int64 class labels or None.
        temperature: softmax temperature (> 0).
        generator: random generator, consumed exactly as by the naive sampler.
        cond_map: (n, S, H, W) spatial conditioning map (validated), or None.

    Shape:
        - Output: (n, H, W) int64.
    """
    # Inference mode skips autograd's bookkeeping on the ~100 small kernels per position; the
    # codes are cloned out of it so that callers get an ordinary tensor.
    with torch.inference_mode():
        out = _sample(model, codes, known, cond, temperature, generator, cond_map)
    return out.clone()


class _Plan:
    """Everything a sampling call needs that does not depend on the codes: the layers' step
    weights, preallocated buffers and, per column, the position's kernels bound to views of them.

    Built for one (model weights, n, H, W, temperature); ``_plan`` keeps the last one per model.
    """

    def __init__(self, model: Any, n: int, height: int, width: int, temperature: float) -> None:
        embedding = model.embedding.weight  # (K, C)
        num_codes, c = embedding.shape
        device = embedding.device
        kw: dict[str, Any] = {"device": device, "dtype": embedding.dtype}
        f64: dict[str, Any] = {"device": device, "dtype": torch.float64}
        layers = list(model.layers)
        num_layers = len(layers)
        pads = [layer.pad for layer in layers]
        weights = [layer.step_weights() for layer in layers]
        self.layers, self.weights, self.pads = layers, weights, pads

        # v_in[l]: the input of layer l's vertical stack over the whole grid, zero-padded by p
        # rows on top and p columns each side, channels last; v_in[0] holds the embedded codes of
        # the rows done so far. Only the interior is ever written: the padding stays zero.
        self.v_in = [torch.zeros(n, height + p, width + 2 * p, c, **kw) for p in pads]
        # h_in[l]: the input of layer l's horizontal stack for the current row, channels last,
        # with p zero columns on the left; a window of columns is a contiguous (n, reach·C) view.
        h_in = [torch.zeros(n, width + p, c, **kw) for p in pads]
        self.h_in = h_in
        link = [torch.empty(n, width, 2 * c, **kw) for _ in layers]  # (n, W, 2C) per layer
        self.link = link
        # gated[:, l] = [g_l, 1]: all layers' gated features, so that one product sums the skips
        gated = torch.empty(n, num_layers, c + 1, **kw)
        buffers = [layer.step_buffers(gated[:, index]) for index, layer in enumerate(layers)]
        head_weights = model.head.step_weights()
        w1, b1, w2, b2 = head_weights
        skip_weight = torch.cat([w.skip for w in weights])  # (L·(C+1), C)
        self.head_weights, self.skip_weight = head_weights, skip_weight
        gated_flat = gated.view(n, -1)  # (n, L·(C+1))
        skips = torch.empty(n, c, **kw)
        hidden = torch.empty(n, w1.shape[1], **kw)
        # one row of logits, (W, n, K): checked once per row for rows that define no distribution
        self.logits = torch.zeros(width, n, num_codes, **kw)
        scaled = torch.empty(n, num_codes, **f64)
        probs = torch.empty(n, num_codes, **f64)
        # the CDF without its last entry: the number of entries <= u is the drawn code, already
        # clamped to K - 1 (the CDF is a running sum of non-negative terms, so it is sorted)
        cdf = torch.empty(n, num_codes - 1, **f64)
        self.u_row = torch.empty(width, n, 1, **f64)  # the row's uniforms
        # the row's codes and given-code mask
        self.codes_row = torch.empty(width, n, 1, dtype=torch.long, device=device)
        self.known_row = torch.empty(width, n, 1, dtype=torch.bool, device=device)
        drawn = torch.empty(n, 1, dtype=torch.long, device=device)
        # The vertical stacks of row i, all layers in order, as bound calls (the path without a
        # map; with one, ``GatedLayer.vertical_row`` is called per row with the map's row).
        cols = [
            torch.empty(n * width, layer.vertical_reach * layer.kernel_size * c, **kw)
            for layer in layers
        ]
        pre = torch.empty(n * width, 2 * c, **kw)
        self.class_terms: list[torch.Tensor] | None = None  # (n, 1, 4C) per layer, per call
        if getattr(model, "num_classes", None) is not None:
            self.class_terms = [torch.empty(n, 1, 4 * c, **kw) for _ in layers]
        self.vertical_calls: list[list[Callable[[], object]]] = []
        for i in range(height):
            row: list[Callable[[], object]] = []
            for index, layer in enumerate(layers):
                # padded rows i .. i+reach-1 are rows i-p .. i-1 (first layer) or i-p .. i
                window = self.v_in[index][:, i : i + layer.vertical_reach]
                out = None
                if index + 1 < num_layers:
                    q = pads[index + 1]
                    out = self.v_in[index + 1][:, i + q, q : q + width]
                terms = None if self.class_terms is None else self.class_terms[index]
                row += layer.vertical_row_calls(
                    weights[index], window, cols[index], pre, link[index], terms, out
                )
            self.vertical_calls.append(row)
        buffers_kept = [*self.v_in, *h_in, *link, gated, self.logits, scaled, probs, cdf, *cols]
        self.nbytes = sum(b.numel() * b.element_size() for b in buffers_kept)

        # Per column j, every kernel of one position as a zero-argument call bound to fixed
        # views of the buffers above: the inner loop does no argument handling, slicing or
        # allocation.
        self.layer_calls: list[list[Callable[[], object]]] = []  # both stacks of every layer
        self.draw_calls: list[list[Callable[[], object]]] = []  # skips, head, draw: codes_row[j]
        self.masked_calls: list[list[Callable[[], object]]] = []  # the same, some codes given
        self.embed_calls: list[Callable[[], object]] = []  # the code into layer 0's input
        for j in range(width):
            column: list[Callable[[], object]] = []
            for index, layer in enumerate(layers):
                p, reach = pads[index], layer.horizontal_reach
                window = h_in[index][:, j : j + reach].reshape(n, reach * c)  # j-p .. j(-1)
                residual = None if layer.first else h_in[index][:, j + p]  # column j
                out = None
                if index + 1 < num_layers:
                    out = h_in[index + 1][:, j + pads[index + 1]]
                column += layer.horizontal_calls(
                    weights[index], buffers[index], window, link[index][:, j], residual, out
                )
            self.layer_calls.append(column)
            head: list[Callable[[], object]] = [
                partial(torch.mm, gated_flat, skip_weight, out=skips),  # Σ_l skip_l, (n, C)
                skips.relu_,
                partial(torch.addmm, b1, skips, w1, out=hidden),
                hidden.relu_,
                partial(torch.addmm, b2, hidden, w2, out=self.logits[j]),
                *_softmax_calls(self.logits[j], scaled, probs, temperature),
                partial(torch.cumsum, probs[:, :-1], -1, out=cdf),
            ]
            search = partial(torch.searchsorted, cdf, self.u_row[j], right=True)
            codes_j = self.codes_row[j]
            self.draw_calls.append([*head, partial(search, out=codes_j)])
            where = partial(torch.where, self.known_row[j], codes_j, drawn, out=codes_j)
            self.masked_calls.append([*head, partial(search, out=drawn), where])
            embed_row = h_in[0][:, j + pads[0]]  # (n, C) view
            self.embed_calls.append(
                partial(torch.index_select, embedding, 0, codes_j[:, 0], out=embed_row)
            )


# Devices whose generators give the same numbers for one draw of N·M uniforms as for M draws of N
# (the CPU's mt19937 with its serial uniform kernel; CUDA's Philox offsets differ).
_PREDRAW_DEVICES = ("cpu",)

# plans whose buffers take more are not kept between calls (16×16 at batch 16 with the benchmark's
# 15 layers of 64 channels takes about 30 MiB)
_MAX_CACHED_BYTES = 64 * 2**20

# the last plan of each model, with its key and a lock (a plan's buffers serve one call at a time)
_PLANS: weakref.WeakKeyDictionary[Any, tuple[tuple, _Plan, threading.Lock]] = (
    weakref.WeakKeyDictionary()
)


def _plan_key(model: Any, n: int, height: int, width: int, temperature: float) -> tuple:
    """What a plan's buffers and bound calls depend on: the sizes, the temperature and every
    parameter's identity, storage, shape and dtype (``.to()`` or ``load_state_dict(...,
    assign=True)`` change them). The values are not part of it: ``_refresh`` copies the current
    weights into the plan at every call, so no in-place change (an optimizer step,
    ``load_state_dict``, an edit through ``.data``, which bumps no version counter) can leave a
    plan stale."""
    params = tuple((id(q), q.data_ptr(), q.shape, q.dtype) for q in model.parameters())
    return (n, height, width, temperature, params)


def _refresh(model: Any, plan: _Plan) -> None:
    """Copy the model's current step weights into the tensors the plan's calls are bound to
    (about a hundred copies; the weights that are the parameters themselves are skipped)."""
    pairs: list[tuple[torch.Tensor, torch.Tensor]] = []
    for layer, bound in zip(plan.layers, plan.weights, strict=True):
        pairs += zip(bound, layer.step_weights(), strict=True)
    fresh = model.head.step_weights()
    pairs += zip(plan.head_weights, fresh, strict=True)
    for dst, src in pairs:
        if dst is not src:
            dst.copy_(src)
    torch.cat([w.skip for w in plan.weights], out=plan.skip_weight)


def _sample(
    model: Any,
    codes: torch.Tensor,
    known: torch.Tensor,
    cond: torch.Tensor | None,
    temperature: float,
    generator: torch.Generator | None,
    cond_map: torch.Tensor | None = None,
) -> torch.Tensor:
    n, height, width = codes.shape
    key = _plan_key(model, n, height, width, temperature)
    cached = _PLANS.get(model)
    if cached is not None and cached[0] == key and cached[2].acquire(blocking=False):
        plan, lock = cached[1], cached[2]
        try:
            _refresh(model, plan)
        except BaseException:
            lock.release()
            raise
    else:  # a new plan (another thread may be using the cached one: it is then left alone)
        plan, lock = _Plan(model, n, height, width, temperature), threading.Lock()
        lock.acquire()
        if plan.nbytes <= _MAX_CACHED_BYTES:  # large buffers are not kept between calls
            _PLANS[model] = (key, plan, lock)
    try:
        return _run(plan, codes, known, cond, temperature, generator, cond_map)
    finally:
        lock.release()


def _run(
    plan: _Plan,
    codes: torch.Tensor,
    known: torch.Tensor,
    cond: torch.Tensor | None,
    temperature: float,
    generator: torch.Generator | None,
    cond_map: torch.Tensor | None,
) -> torch.Tensor:
    n, height, width = codes.shape
    device = codes.device
    layers, weights, pads, v_in, h_in, link = (
        plan.layers,
        plan.weights,
        plan.pads,
        plan.v_in,
        plan.h_in,
        plan.link,
    )
    num_layers = len(layers)
    u_row, codes_row, known_row = plan.u_row, plan.codes_row, plan.known_row
    layer_calls, draw_calls, masked_calls = plan.layer_calls, plan.draw_calls, plan.masked_calls
    embed_calls = plan.embed_calls
    # each layer's map term over the whole grid, (n, H, W, 4C), once per call
    maps: list[torch.Tensor | None] = [
        None if cond_map is None else layer.step_map(cond_map) for layer in layers
    ]
    plan.logits.zero_()  # positions whose codes are all given keep finite logits

    codes_t = codes.permute(1, 2, 0).contiguous()  # (H, W, n): one row is contiguous
    known_t = known.permute(1, 2, 0).contiguous()
    known_all = known_t.all(dim=2).tolist()
    known_any = known_t.any(dim=2).tolist()
    # On a CPU generator one draw of H·W·n uniforms consumes it exactly like H·W draws of n
    # (its uniform kernel is serial), so they are drawn at once; other devices draw per position.
    u_all = None
    if device.type in _PREDRAW_DEVICES:
        u_all = torch.rand(height, width, n, 1, generator=generator, dtype=torch.float64)
    p0 = pads[0]

    if plan.class_terms is not None:
        for layer, terms in zip(layers, plan.class_terms, strict=True):
            terms.copy_(layer.class_terms(cond))

    for i in range(height):
        if cond_map is None:
            for call in plan.vertical_calls[i]:
                call()
        else:
            for index, layer in enumerate(layers):
                # padded rows i .. i+reach-1 are rows i-p .. i-1 (first layer) or i-p .. i
                window = v_in[index][:, i : i + layer.vertical_reach]  # (n, reach, W + 2p, C)
                layer_map = maps[index]
                map_row = None if layer_map is None else layer_map[:, i]  # (n, W, 4C)
                v_out, row_link = layer.vertical_row(weights[index], window, cond, map_row)
                link[index].copy_(row_link)
                if index + 1 < num_layers:
                    q = pads[index + 1]
                    v_in[index + 1][:, i + q, q : q + width].copy_(v_out)
        if u_all is not None:
            u_row.copy_(u_all[i])
        row_known_any = known_any[i]
        if any(row_known_any):
            codes_row.copy_(codes_t[i, :, :, None])
            known_row.copy_(known_t[i, :, :, None])
        row_known_all = known_all[i]
        for j in range(width):
            if u_all is None:  # one draw per position (given or not), as the naive sampler's
                _uniform(generator, u_row[j, :, 0])
            for call in layer_calls[j]:
                call()
            if not row_known_all[j]:
                for call in masked_calls[j] if row_known_any[j] else draw_calls[j]:
                    call()
            embed_calls[j]()
        _check_row(plan.logits, temperature)
        codes_t[i].copy_(codes_row[:, :, 0])
        # the row's embedded codes join layer 0's vertical input for the rows below
        v_in[0][:, i + p0, p0 : p0 + width].copy_(h_in[0][:, p0:])
    return codes_t.permute(2, 0, 1).contiguous()


def _softmax_calls(
    logits: torch.Tensor, scaled: torch.Tensor, probs: torch.Tensor, temperature: float
) -> list[Callable[[], object]]:
    """``probs = softmax(logits.double() / temperature)`` into preallocated buffers, with the
    kernels of ``draw_codes`` (so the same values)."""
    if temperature == 1.0:  # x / 1 == x exactly: skipped, as in draw_codes
        return [partial(torch.softmax, logits, -1, dtype=torch.float64, out=probs)]
    return [
        partial(scaled.copy_, logits),
        partial(scaled.div_, temperature),
        partial(torch.softmax, scaled, -1, out=probs),
    ]


def _uniform(generator: torch.Generator | None, out: torch.Tensor) -> None:
    """One position's uniforms into ``out``, as ``draw_uniform`` draws them (the generator is on
    the model's device)."""
    torch.rand(out.shape, generator=generator, out=out)


def _check_row(logits: torch.Tensor, temperature: float) -> None:
    """Raise ``draw_codes``'s error if a row's logits define no distribution.

    ``draw_codes`` refuses a softmax whose sum is not above 0.5; that happens exactly when the
    largest scaled logit is not finite (NaN, which ``amax`` propagates, +inf, or all -inf), so one
    reduction over the row's (W, n, K) logits checks every position. Positions whose codes were
    all given keep logits that passed an earlier check.
    """
    top = logits.amax(dim=-1)  # (W, n)
    if temperature != 1.0:
        top = top.double() / temperature  # the largest of logits.double() / temperature
    finite = torch.isfinite(top)
    if not bool(finite.all()):
        raise no_distribution_error((~finite).any(dim=0).nonzero().flatten().tolist())
