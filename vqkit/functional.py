"""Pure numerics shared by vqkit's layers: nearest codes, EMA statistics, k-means, estimators.

Everything here is a function of tensors, with no module state, so it can be tested against a
closed form and reused by every quantizer.

- ``nearest_code``: fp32 nearest-code search, centred so that a large common offset does not
  cancel: chunked (one matrix product and one ``min`` per chunk, never an N×K matrix for the
  whole batch), or, opt-in for a small batch (N×K ≤ ``SINGLE_PRODUCT_ELEMENTS``, 0 by default),
  one product over all rows.
- ``cluster_stats`` (a sparse product on CPU, ``index_add_`` elsewhere), ``ema_``,
  ``laplace_smooth``: the EMA codebook update of van den
  Oord et al., "Neural Discrete Representation Learning" (arXiv:1711.00937, appendix A.1), in the
  form of Sonnet's ``VectorQuantizerEMA`` (Laplace smoothing of the cluster sizes).
- ``perplexity``, ``index_perplexity``: exp(entropy) of code usage.
- ``kmeans``: Lloyd iterations on the same chunked search, with an optional all-reduce hook.
- ``straight_through``, ``straight_through_commitment``: the straight-through estimator
  (alone, or fused with the commitment loss into one autograd node).
- ``rotate_to``: the rotation trick of Fifty et al., "Restructuring Vector Quantization with
  the Rotation Trick" (arXiv:2410.06424).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, cast, overload

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "cluster_stats",
    "default_chunk_size",
    "ema_",
    "index_perplexity",
    "kmeans",
    "laplace_smooth",
    "nearest_code",
    "perplexity",
    "rotate_to",
    "straight_through",
    "straight_through_commitment",
]

# Elements of one distance chunk (rows × K). On CPU 2**22 fp32 values (16 MiB): smaller chunks
# stay in cache (on an idle 2-core box 4k-row chunks at K=512 are ~20% faster than 8k), but every
# chunk costs three parallel operations, and on a busy machine each parallel operation can wait a
# scheduler slice for its second thread (measured there: 512-row chunks at K=8192 twice as fast
# as 128-row ones). On CUDA a chunk of 2**26 values (256 MiB) keeps the GPU busy.
_CHUNK_ELEMENTS = {"cpu": 2**22, "cuda": 2**26}


def default_chunk_size(
    codebook_size: int, device: torch.device | str = "cpu", rows: int | None = None
) -> int:
    """Rows per distance chunk: about 2**22 values on CPU, 2**26 on GPUs, and at most a quarter
    of ``rows`` (but 64 or more), so a chunk never rivals the full N×K matrix in memory."""
    budget = _CHUNK_ELEMENTS.get(torch.device(device).type, 2**26)
    size = budget // max(1, codebook_size)
    if rows is not None:
        size = min(size, -(-rows // 4))
    return max(64, size)


# Opt-in: a batch whose whole distance matrix (N × K) has at most this many values is searched
# with one product over all rows (``_nearest_single``) instead of chunks; 0 (the default) keeps
# the chunked search for every size. Set it to e.g. 2**21 (8 MiB of fp32 distances: N = 4,096 at
# K = 512) to try it. On the quiet 2-core development CPU (2 threads, N = 4,096, K = 512, fwd +
# bwd + EMA, interleaved in one process by ``benchmarks/vq_step_interleaved.py``) the chunks were
# as fast or faster in three runs: 6.85 / 8.63 / 9.60 ms a step against 8.37 / 10.56 / 9.49 ms
# (medians of 40-60), while under a load of ~5 the single product won (85.5 against 101.8 ms).
# No clear gain, so it stays off. On GPUs it is unmeasured.
SINGLE_PRODUCT_ELEMENTS = 0


def _chunks(n: int, chunk_size: int) -> list[tuple[int, int]]:
    return [(start, min(start + chunk_size, n)) for start in range(0, n, chunk_size)]


def _argmin_block(codebook_size: int) -> int | None:
    """Block width for ``_blocked_argmin`` at this K, or None where a plain ``min`` wins
    (small or indivisible K). Measured on a 2-core Zen 3 box, one thread: at K = 512 a
    1024-row chunk takes 0.29 ms blocked (B = 32) against 0.58 ms for ``min(dim=1)``, at
    K = 8192 a 512-row chunk 1.1 ms (B = 64) against 4.2 ms; at K = 64 ``min`` is faster."""
    for block in (64, 32) if codebook_size >= 2048 else (32,):
        if codebook_size % block == 0 and codebook_size >= 8 * block:
            return block
    return None


def _row_offsets(n: int, step: int, device: torch.device) -> Tensor:
    """``arange(0, n·step, step)`` (n,) int64, cached per shape: a step of the same size reuses
    it instead of allocating it again. Read-only; at most a few small tensors are kept."""
    return _cached(
        ("arange", n, step, device), lambda: torch.arange(0, n * step, step, device=device)
    )


def _ones(n: int, device: torch.device) -> Tensor:
    """``ones(n)`` fp32, cached per size like ``_row_offsets`` (read-only)."""
    return _cached(("ones", n, 1, device), lambda: torch.ones(n, device=device))


def _cached(key: tuple[str, int, int, torch.device], make: Callable[[], Tensor]) -> Tensor:
    value = _SHAPE_CONSTANTS.get(key)
    if value is None:
        if len(_SHAPE_CONSTANTS) >= 16:  # a bound, not an LRU: sizes rarely change in training
            _SHAPE_CONSTANTS.clear()
        value = _SHAPE_CONSTANTS[key] = make()
    return value


# Shape-only constants of the eager CPU paths (never used while compiling, never written to).
_SHAPE_CONSTANTS: dict[tuple[str, int, int, torch.device], Tensor] = {}


def _blocked_argmin(dist: Tensor, block: int, out: Tensor | None = None) -> Tensor:
    """``dist.argmin(1)``, the first index among ties, as ``min(dim=1)`` gives it.

    ``min`` with indices runs a scalar loop over each row on CPU, while ``amin`` (values only)
    is vectorised: the row minimum is found among ``block``-wide minima, then the index is
    searched in the one block holding it (the first such block, so ties resolve to the first
    index). About a quarter of ``min``'s scalar work, exactly the same result. Each row's
    minimum is computed once: the block minima, then the index within one block.

    Shape:
        - dist: (n, K) contiguous with K divisible by ``block``; out: (n,) int64 or None
        - Output: (n,) int64 (``out`` when given)
    """
    n, k = dist.shape
    blocks = k // block
    best = dist.view(n, blocks, block).amin(-1).min(1).indices  # (n,) block of each minimum
    # (n,) the chosen block as a row of the (n·blocks, block) view: i·blocks + b
    best.add_(_row_offsets(n, blocks, dist.device))
    within = dist.view(n * blocks, block).index_select(0, best).min(1).indices  # (n,)
    # column b·block + j = (i·blocks + b)·block + j − i·K
    if out is None:
        out = within.add_(best, alpha=block)
    else:
        torch.add(within, best, alpha=block, out=out)
    return out.sub_(_row_offsets(n, k, dist.device))


def _single_product(n: int, k: int, device: torch.device, compiling: bool) -> bool:
    """Whether ``nearest_code`` searches N rows against K codes with one product.

    Only when the N × K distances fit ``SINGLE_PRODUCT_ELEMENTS``, and not on a CPU running one
    thread: there the chunks' smaller matrices stay in cache and were measured faster (N = 4,096,
    K = 512, CPU time of one thread: 13.8 ms a step chunked against 16.3 ms with one product),
    while with two threads every chunk's parallel operations can wait for a descheduled thread
    and one product was faster (88.6 against 94.2 ms a step on the loaded 2-core box).
    """
    if not 0 < n * k <= SINGLE_PRODUCT_ELEMENTS:
        return False
    return compiling or device.type != "cpu" or torch.get_num_threads() > 1


def _nearest_single(
    x: Tensor, codebook: Tensor, cosine: bool, center: Tensor | None, compiling: bool
) -> Tensor:
    """``nearest_code`` for a batch whose N × K distances fit ``SINGLE_PRODUCT_ELEMENTS``: one
    product over all rows with the aligned inner dimension D (``addmm`` with the code norms as
    its bias, ``alpha = −2``) and one minimum per row.

    Shape:
        - x: (N, D) fp32; codebook: (K, D) fp32; center: (D,) (euclidean) or None (cosine)
        - Output: (N,) int64
    """
    if cosine:
        dist = torch.mm(x, codebook.neg().t())  # (N, K): −x·e, exactly (negation is exact)
    else:
        m = cast(Tensor, center)  # (D,), set by the caller in the euclidean case
        shifted = codebook - m  # (K, D)
        # ‖e − m‖² − 2(x − m)·(e − m): the squared distance less ‖x − m‖², a per-row constant
        dist = torch.addmm(shifted.square().sum(1), x - m, shifted.t(), alpha=-2.0)
    block = None if compiling or x.device.type != "cpu" else _argmin_block(codebook.shape[0])
    if block is None:
        return dist.min(1).indices
    return _blocked_argmin(dist, block)


@overload
def nearest_code(
    x: Tensor,
    codebook: Tensor,
    *,
    chunk_size: int | None = ...,
    cosine: bool = ...,
    closest_rows: Literal[False] = ...,
    center: Tensor | None = ...,
) -> Tensor: ...
@overload
def nearest_code(
    x: Tensor,
    codebook: Tensor,
    *,
    chunk_size: int | None = ...,
    cosine: bool = ...,
    closest_rows: Literal[True],
    center: Tensor | None = ...,
) -> tuple[Tensor, Tensor, Tensor]: ...
@overload
def nearest_code(
    x: Tensor,
    codebook: Tensor,
    *,
    chunk_size: int | None = ...,
    cosine: bool = ...,
    closest_rows: bool = ...,
    center: Tensor | None = ...,
) -> Tensor | tuple[Tensor, Tensor, Tensor]: ...
@torch.no_grad()
def nearest_code(
    x: Tensor,
    codebook: Tensor,
    *,
    chunk_size: int | None = None,
    cosine: bool = False,
    closest_rows: bool = False,
    center: Tensor | None = None,
) -> Tensor | tuple[Tensor, Tensor, Tensor]:
    """Index of the nearest code (squared euclidean, or largest dot product with ``cosine``).

    The search runs in fp32 with autocast off. Opt-in: a batch whose N × K distances fit
    ``vqkit.functional.SINGLE_PRODUCT_ELEMENTS`` (0, i.e. off, by default; and no
    ``chunk_size`` or ``closest_rows`` is asked for; on CPU with more than one thread) is
    searched by one ``addmm`` over all rows, ``‖e − m‖² − 2(x − m)·(e − m)``, with the aligned
    inner dimension D. Otherwise the search runs ``chunk_size`` rows at a time, so it holds
    ``chunk_size × (K + D + 1)`` floats whatever N is. Rows and codes are
    first centred on the batch mean: the expansion ``‖e‖² − 2x·e`` loses the distances to
    cancellation when x and e share a large offset, and a common shift changes no distance
    (‖x‖² is constant per row, so it is left out). In chunks the expansion is one matrix
    product of ``[x − m, 1]`` with ``[−2(e − m), ‖e − m‖²]ᵀ`` per chunk (no bias broadcast), then
    ``min(dim=1)``, which is vectorised on CPU where ``argmin`` is not (3–5× faster there); for
    K ≥ 256 divisible by 32 the eager CPU path finds the same first minimum through vectorised
    block minima (``_blocked_argmin``, 2–4× faster than ``min`` there).
    Few, large operations: on a shared CPU every parallel operation can wait for a descheduled
    thread, so the number of operations matters as much as their size.

    Args:
        x: vectors to quantize.
        codebook: code vectors. With ``cosine`` both are expected to be l2-normalised already and
            the search maximises ``x·e``.
        chunk_size: rows per chunk; ``None`` picks ``default_chunk_size``.
        cosine: search by dot product instead of euclidean distance.
        closest_rows: also return, for every code, the index of its nearest row of ``x`` and
            that squared distance (or negated dot product): the "closest" anchors of CVQ-VAE.
        center: ``x.mean(0)`` if the caller has it already (any vector works; the mean is best).

    Shape:
        - x: (N, D); codebook: (K, D); center: (D,)
        - Output: indices (N,) int64; with ``closest_rows`` also (K,) int64 and (K,) fp32.
    """
    n, k = x.shape[0], codebook.shape[0]
    compiling = torch.compiler.is_compiling()
    single = chunk_size is None and not closest_rows and _single_product(n, k, x.device, compiling)
    rows = chunk_size if chunk_size is not None else default_chunk_size(k, x.device, n)
    with torch.autocast(device_type=x.device.type, enabled=False):
        x = x.float()
        codebook = codebook.float()
        if not cosine:
            center = (x.mean(0) if center is None else center).float()  # (D,)
        if single:
            return _nearest_single(x, codebook, cosine, None if cosine else center, compiling)
        if cosine:
            codes_t = codebook.t()  # (D, K)
        else:
            shifted = codebook - cast(Tensor, center)  # (K, D)
            codes_t = torch.cat([shifted * -2.0, shifted.square().sum(1, keepdim=True)], 1).t()
            buffer = x.new_empty(min(rows, n), x.shape[1] + 1)  # (n_c, D + 1), reused
            buffer[:, -1] = 1.0
        if not compiling:
            # Eager: every chunk writes into the same buffers. Fresh per-chunk allocations let
            # small long-lived ones (the indices) split the freed chunk's heap block, and glibc
            # then grows the heap by a chunk per chunk (measured: +1.8 GiB at N=65,536, K=8,192).
            out = torch.empty(n, dtype=torch.long, device=x.device)  # (N,)
            dist_buffer = x.new_empty(min(rows, n), k)  # (n_c, K)
            min_buffer = x.new_empty(min(rows, n))  # (n_c,)
            block = _argmin_block(k) if x.device.type == "cpu" else None
        indices = []
        best_val = best_row = None
        for start, stop in _chunks(n, rows):
            if cosine:
                rows_c = x[start:stop]  # (n_c, D)
            else:
                rows_c = buffer[: stop - start]  # (n_c, D + 1): [x − m, 1]
                if compiling:  # out= into a strided view does not trace
                    rows_c[:, :-1].copy_(x[start:stop]).sub_(cast(Tensor, center))
                else:  # (center is set above in the euclidean branch)
                    torch.sub(x[start:stop], cast(Tensor, center), out=rows_c[:, :-1])
            if compiling:
                dist = torch.mm(rows_c, codes_t)  # (n_c, K): −x·e, or ‖e‖² − 2x·e (centred)
            else:
                dist = torch.mm(rows_c, codes_t, out=dist_buffer[: stop - start])
            if cosine:
                dist.neg_()
            if compiling:
                indices.append(dist.min(1).indices)
            elif block is not None:
                _blocked_argmin(dist, block, out[start:stop])
            else:
                torch.min(dist, 1, out=(min_buffer[: stop - start], out[start:stop]))
            if closest_rows:
                if not cosine:  # true squared distance
                    dist += rows_c[:, :-1].square().sum(1, keepdim=True)
                val, row = dist.min(0)  # (K,), (K,)
                row = row + start
                if best_val is None or best_row is None:  # (both are set together)
                    best_val, best_row = val, row
                else:
                    better = val < best_val
                    best_val = torch.where(better, val, best_val)
                    best_row = torch.where(better, row, best_row)
            del dist
        if compiling:
            out = torch.cat(indices) if len(indices) > 1 else indices[0]
    if closest_rows:
        # best_* are None only for an empty x (no chunk ran), which the quantizers refuse first
        return out, cast(Tensor, best_row), cast(Tensor, best_val)
    return out


def cluster_stats(indices: Tensor, x: Tensor, codebook_size: int) -> tuple[Tensor, Tensor]:
    """Per-code assignment counts and sums of assigned vectors, without a one-hot matrix.

    Shape:
        - indices: (N,) int64; x: (N, D)
        - Output: counts (K,) fp32 and sums (K, D) fp32
    """
    x = x.float()
    n, d = x.shape
    if torch.compiler.is_compiling():  # bincount's output size depends on the values
        ones = x.new_ones(n)
        counts = x.new_zeros(codebook_size).index_add_(0, indices, ones)  # (K,)
        return counts, x.new_zeros(codebook_size, d).index_add_(0, indices, x)
    # Integer counts below 2**24 are exact in fp32: the same values as an index_add_ of ones.
    counts = torch.bincount(indices, minlength=codebook_size).float()  # (K,)
    if x.device.type == "cpu" and torch.get_num_threads() > 1:
        # A 2-D index_add_ on CPU with 2 threads was measured ~100× slower (66 ms at N=4,096,
        # K=512) while another process held a core. The product of the sparse (K, N) assignment
        # matrix with x (nnz = N, never dense) is robust to a busy machine. With one thread the
        # index_add_ is faster (0.24 against 0.43 ms there); both add each code's rows in row
        # order from zero, so the sums are the same bits either way (tested).
        rows = torch.stack([indices, _row_offsets(n, 1, x.device)])  # (2, N)
        assign = torch.sparse_coo_tensor(
            rows, _ones(n, x.device), (codebook_size, n), check_invariants=False
        )
        return counts, torch.sparse.mm(assign, x)  # (K, D)
    sums = x.new_zeros(codebook_size, d).index_add_(0, indices, x)  # (K, D)
    return counts, sums


def ema_(average: Tensor, value: Tensor, decay: float) -> Tensor:
    """In-place exponential moving average ``average ← decay·average + (1 − decay)·value``."""
    return average.lerp_(value, 1.0 - decay)


def laplace_smooth(counts: Tensor, eps: float) -> Tensor:
    """Laplace (additive) smoothing of cluster sizes, keeping their total.

    ``(N_k + ε) / (n + K·ε) · n`` with ``n = Σ N_k``: no code has a zero size, so the EMA
    codebook ``sums / sizes`` never divides by zero (Sonnet ``VectorQuantizerEMA``).

    Shape:
        - counts: (K,); Output: (K,)
    """
    total = counts.sum()
    return (counts + eps) / (total + counts.shape[0] * eps) * total


def perplexity(counts: Tensor, total: Tensor | None = None) -> Tensor:
    """exp(entropy) of the usage distribution ``counts / Σ counts``: 1 for a single code, K for
    uniform use of K codes. Zero counts contribute nothing; all-zero counts give 1.

    ``total`` is ``counts.sum()`` when the caller has it already (it must be that sum).

    Shape:
        - counts: (K,); total: scalar; Output: scalar fp32
    """
    counts = counts.float()
    total = counts.sum() if total is None else total.float()
    probs = counts / total.clamp_min(1e-12)
    return torch.exp(-torch.special.xlogy(probs, probs).sum())


def index_perplexity(indices: Tensor) -> Tensor:
    """Perplexity of a set of code indices from a code space too large to count into (FSQ with a
    huge implicit codebook). Sort-based and of fixed shape, so it traces under ``torch.compile``.

    The entropy is the mean over samples of ``−log p(code of the sample)``, and ``p`` of a code
    is its run length in the sorted indices over N.

    Shape:
        - indices: any shape of integers; Output: scalar fp32
    """
    flat = indices.reshape(-1).sort().values  # (N,)
    n = flat.shape[0]
    run = torch.searchsorted(flat, flat, right=True) - torch.searchsorted(flat, flat)  # (N,)
    entropy = -(run.float() / n).log().mean()
    return torch.exp(entropy)


@torch.no_grad()
def kmeans(
    x: Tensor,
    init: Tensor,
    iters: int,
    *,
    chunk_size: int | None = None,
    cosine: bool = False,
    all_reduce: Callable[[Tensor], Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """Lloyd's k-means from ``init``; clusters that end up empty keep their previous centre.

    Args:
        x: the data.
        init: initial centres.
        iters: Lloyd iterations.
        chunk_size: rows per distance chunk (see ``nearest_code``).
        cosine: spherical k-means (centres re-normalised each iteration; ``x`` must be unit).
        all_reduce: a sum over processes applied to the per-cluster statistics, so that every
            rank computes the same centres from the union of the ranks' data.

    Shape:
        - x: (N, D); init: (K, D)
        - Output: centres (K, D) fp32 and the final cluster sizes (K,) fp32
    """
    centres = init.float().clone()
    k = centres.shape[0]
    counts = centres.new_zeros(k)
    for _ in range(iters):
        idx = nearest_code(x, centres, chunk_size=chunk_size, cosine=cosine)
        counts, sums = cluster_stats(idx, x, k)
        if all_reduce is not None:
            stats = all_reduce(torch.cat([counts[:, None], sums], 1))  # (K, 1 + D)
            counts, sums = stats[:, 0], stats[:, 1:]
        new = sums / counts.clamp_min(1.0)[:, None]
        if cosine:
            new = F.normalize(new, dim=-1)
        centres = torch.where(counts[:, None] > 0, new, centres)
    return centres, counts


def straight_through(z: Tensor, q: Tensor) -> Tensor:
    """Value ``q``, gradient identity to ``z`` (van den Oord et al. 2017, §3.1).

    Written ``sg(q) + (z − sg(z))`` rather than ``z + sg(q − z)`` so that the forward value is
    exactly ``q`` (``z − sg(z)`` is exactly 0), which keeps ``decode(indices) == quantized``.
    """
    return (z - z.detach()).add_(q.detach())  # in place: one (N, D) allocation, not two


class _StraightThroughCommitment(torch.autograd.Function):
    """Straight-through value ``q`` and the commitment loss ``mean((z − q)²)`` in one node.

    ``z − q`` is computed once: its dot product with itself is the loss, and the backward turns
    it in place into the input's gradient ``upstream + ∂loss · 2(z − q)/numel``. A step then
    allocates one (N, D) tensor here, where the composed version allocates the loss temporary,
    its gradient and their sum.
    """

    @staticmethod
    def forward(ctx, z: Tensor, q: Tensor) -> tuple[Tensor, Tensor]:
        diff = z - q  # (N, D)
        flat = diff.reshape(-1)
        commitment = torch.dot(flat, flat) / diff.numel()
        ctx.save_for_backward(z, q)
        # An intermediate, kept on ctx (not version-checked) and handed over once in backward.
        ctx.diff = None if torch.compiler.is_compiling() else diff
        return q.view_as(q), commitment

    @staticmethod
    def backward(ctx, grad_out: Tensor | None, grad_loss: Tensor | None):
        z, q = ctx.saved_tensors
        if grad_loss is None:
            return (None if grad_out is None else grad_out.clone()), None
        scale = grad_loss * (2.0 / z.numel())
        diff, ctx.diff = ctx.diff, None
        if diff is None:  # compiled, or a second backward through a retained graph
            diff = torch.sub(z, q)
        if grad_out is None:
            return diff.mul_(scale), None
        if torch.compiler.is_compiling():
            return torch.addcmul(grad_out, diff, scale), None
        # upstream + scale·(z − q) in one pass, written over the difference
        return torch.addcmul(grad_out, diff, scale, out=diff), None


def straight_through_commitment(z: Tensor, q: Tensor) -> tuple[Tensor, Tensor]:
    """``straight_through`` of ``z`` to ``q`` and the commitment loss ``mean((z − sg(q))²)``
    (van den Oord et al. 2017, eq. 3, third term, unweighted), fused so that a training step
    allocates one (N, D) gradient instead of three.

    Shape:
        - z, q: (N, D); Output: quantized (N, D) (a view of ``q``), scalar loss
    """
    return _StraightThroughCommitment.apply(z, q.detach())


def rotate_to(z: Tensor, q: Tensor, eps: float = 1e-12) -> Tensor:
    """Rotation-trick estimator (Fifty et al. 2024, arXiv:2410.06424, §4.2).

    Returns ``sg(λR)·z`` where ``R`` is the rotation taking ``z/‖z‖`` to ``q/‖q‖`` and
    ``λ = ‖q‖/‖z‖``, so the value is ``q`` (exactly: it is written as
    ``sg(q) + (f(z) − sg(f(z)))``) and the gradient to ``z`` is ``λRᵀ`` times the upstream one,
    which keeps the angle between the gradient and the code. ``R = I − 2rrᵀ + 2q̂ẑᵀ`` with
    ``r = (ẑ + q̂)/‖ẑ + q̂‖`` is applied without forming a D×D matrix. Rows with
    ``‖z‖ ≤ eps`` (zero or tiny) have no direction to rotate: they get the straight-through
    gradient, so the result stays finite and bounded for any finite input.

    Shape:
        - z, q: (N, D); Output: (N, D)
    """
    zd, qd = z.detach(), q.detach()
    z_len = zd.norm(dim=-1, keepdim=True)  # (N, 1)
    z_norm = z_len.clamp_min(eps)
    q_norm = qd.norm(dim=-1, keepdim=True).clamp_min(eps)  # (N, 1)
    z_hat, q_hat = zd / z_norm, qd / q_norm
    r = F.normalize(z_hat + q_hat, dim=-1, eps=eps)  # (N, D)
    rz = z - 2 * r * (r * z).sum(-1, keepdim=True) + 2 * q_hat * (z_hat * z).sum(-1, keepdim=True)
    rotated = rz * (q_norm / z_norm)  # (N, D), equal to q up to rounding
    # A (near-)zero z has no direction to rotate from, and λ = ‖q‖/‖z‖ would scale its gradient
    # by up to 1/eps: such rows get the straight-through gradient instead.
    rotated = torch.where(z_len > eps, rotated, z)
    return (rotated - rotated.detach()).add_(qd)
