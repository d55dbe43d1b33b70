"""Input checks and the random draw shared by vqkit's autoregressive priors.

Every sampler (naive or cached) draws ``n`` uniform numbers per position with
``draw_uniform``, in raster order, whether or not the position is given, and maps them to
codes with ``draw_codes`` (the inverse CDF of ``softmax(logits / temperature)``). Two samplers
that compute the same logits and visit the positions in the same order therefore consume the
generator identically and return identical codes.
"""

from __future__ import annotations

from typing import Any

import torch

from vqkit._checks import (
    check_generator,
    check_number,
    check_positive_int,
    check_real_device,
)

__all__ = [
    "check_cond",
    "check_factory",
    "check_grid_position",
    "check_indices",
    "check_kernel_size",
    "check_num_embeddings",
    "check_optional_classes",
    "check_sampling",
    "check_temperature",
    "draw_codes",
    "draw_uniform",
    "no_distribution_error",
    "prepare_given",
]


def check_num_embeddings(owner: str, value: Any) -> int:
    """The number of categories K: an int >= 2 (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 2:
        raise ValueError(
            f"{owner}: num_embeddings must be an int >= 2 (the number of categories K), "
            f"got {value!r}"
        )
    return value


def check_optional_classes(owner: str, value: Any) -> int | None:
    """``num_classes``: None (unconditional) or a positive int."""
    return None if value is None else check_positive_int(owner, "num_classes", value)


def check_kernel_size(owner: str, name: str, value: Any, minimum: int = 1) -> int:
    """An odd int kernel size >= ``minimum`` (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or value % 2 == 0:
        raise ValueError(f"{owner}: {name} must be an odd int >= {minimum}, got {value!r}")
    return value


def check_factory(owner: str, device: Any, dtype: Any) -> None:
    """``device`` / ``dtype`` factory arguments: a device (or its name) and a floating dtype."""
    if device is not None and not isinstance(device, (str, torch.device)):
        raise TypeError(
            f"{owner}: device must be a torch.device, a str or None, got {type(device).__name__}"
        )
    if dtype is not None and (not isinstance(dtype, torch.dtype) or not dtype.is_floating_point):
        raise TypeError(f"{owner}: dtype must be a floating torch.dtype or None, got {dtype!r}")


def check_grid_position(owner: str, size: Any, position: Any) -> tuple[int, int, int, int]:
    """``size`` (H, W) a pair of positive ints and ``position`` (i, j) a pair of ints inside it;
    returns ``(H, W, i, j)``."""

    def pair(value: Any, low: int) -> bool:
        return (
            isinstance(value, (tuple, list))
            and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= low for v in value)
        )

    if not pair(size, 1):
        raise ValueError(f"{owner}: size must be a pair of positive ints (H, W), got {size!r}")
    if not pair(position, 0) or position[0] >= size[0] or position[1] >= size[1]:
        raise ValueError(
            f"{owner}: position must be a pair of ints (i, j) inside the grid {tuple(size)}, "
            f"got {position!r}"
        )
    return int(size[0]), int(size[1]), int(position[0]), int(position[1])


def check_sampling(
    owner: str, n: Any, temperature: Any, generator: Any, device: torch.device
) -> tuple[int, float]:
    """The arguments every sampler shares: ``n`` (a positive int, not a bool), ``temperature``
    (finite, > 0), ``generator`` (None or a ``torch.Generator`` on ``device``'s type) and the
    model's own device (refused when it is ``meta``: there are no weights to sample with)."""
    n = check_positive_int(owner, "n (the number of samples)", n)
    temperature = check_temperature(temperature, owner)
    check_generator(owner, generator, device)
    if torch.device(device).type == "meta":
        raise ValueError(
            f"{owner}: the model is on the 'meta' device (shapes only, no weights); "
            "materialise it (to_empty + load_state_dict, or from_pretrained) before sampling"
        )
    return n, temperature


def check_indices(indices: torch.Tensor, num_embeddings: int, ndim: int = 3) -> torch.Tensor:
    """Validate integer code indices of shape (B, ...) with ``ndim`` dims and values in [0, K).

    Returns the indices as int64. Raises TypeError for non-tensors and non-integer dtypes and
    ValueError for a wrong rank or out-of-range values.
    """
    if not isinstance(indices, torch.Tensor):
        raise TypeError(f"indices must be a torch.Tensor of int64 codes, got {type(indices)}")
    if indices.dtype.is_floating_point or indices.dtype.is_complex or indices.dtype == torch.bool:
        raise TypeError(
            f"indices must be an integer tensor (int64 codes in [0, {num_embeddings})), "
            f"got dtype {indices.dtype}"
        )
    if indices.dim() != ndim:
        expected = "(B, H, W)" if ndim == 3 else "(B, *event)" if ndim > 3 else "(B, D)"
        raise ValueError(f"indices must have shape {expected}, got {tuple(indices.shape)}")
    if any(size == 0 for size in indices.shape[1:]):
        raise ValueError(f"indices must have a non-empty grid, got shape {tuple(indices.shape)}")
    check_real_device("prior", indices, "indices")
    if indices.numel() and not torch.compiler.is_compiling():
        lo, hi = int(indices.min()), int(indices.max())
        if lo < 0 or hi >= num_embeddings:
            raise ValueError(
                f"indices must lie in [0, {num_embeddings}) (num_embeddings={num_embeddings}), "
                f"got values in [{lo}, {hi}]"
            )
    return indices.long()


def check_cond(
    cond: torch.Tensor | int | None, num_classes: int | None, batch: int, device: torch.device
) -> torch.Tensor | None:
    """Validate class labels for a conditional model; None for an unconditional one.

    ``cond`` may be an int (broadcast to the batch) or an integer tensor of shape (B,).
    """
    if num_classes is None:
        if cond is not None:
            raise ValueError(
                "cond was given but this model is unconditional (num_classes=None); build it "
                "with num_classes=... to condition on class labels"
            )
        return None
    if cond is None:
        raise ValueError(
            f"this model is class-conditional (num_classes={num_classes}); pass cond=labels "
            f"of shape ({batch},) or an int"
        )
    if isinstance(cond, bool) or not isinstance(cond, (int, torch.Tensor)):
        raise TypeError(f"cond must be an int or an int64 tensor of shape (B,), got {type(cond)}")
    if isinstance(cond, torch.Tensor):
        check_real_device("prior", cond, "cond")
    cond = torch.as_tensor(cond, device=device)
    if cond.dtype.is_floating_point or cond.dtype.is_complex or cond.dtype == torch.bool:
        raise TypeError(f"cond must hold integer class labels, got dtype {cond.dtype}")
    if cond.dim() == 0:
        cond = cond.expand(batch)
    if tuple(cond.shape) != (batch,):
        raise ValueError(f"cond must have shape ({batch},) or be a scalar, got {tuple(cond.shape)}")
    if cond.numel() and not torch.compiler.is_compiling():
        lo, hi = int(cond.min()), int(cond.max())
        if lo < 0 or hi >= num_classes:
            raise ValueError(
                f"cond labels must lie in [0, {num_classes}), got values in [{lo}, {hi}]"
            )
    return cond.long()


def prepare_given(
    n: int,
    size: tuple[int, int] | list[int] | None,
    given: torch.Tensor | None,
    given_mask: torch.Tensor | None,
    num_embeddings: int,
    device: torch.device,
) -> tuple[tuple[int, int], torch.Tensor, torch.Tensor]:
    """Normalise the ``size``/``given``/``given_mask`` arguments of ``sample``.

    ``given`` is (n, H, W) or (H, W) int; ``given_mask`` is bool of the same or a broadcastable
    shape. Without ``given_mask``, the known positions are those where ``given >= 0`` (so
    unknown codes may be written as -1).

    Returns ``(size, given, known)`` with ``given`` (n, H, W) int64 (zeros where unknown) and
    ``known`` (n, H, W) bool.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n (the number of samples) must be a positive int, got {n!r}")
    if size is not None:
        if (
            not isinstance(size, (tuple, list))
            or len(size) != 2
            or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size)
        ):
            raise ValueError(f"size must be a pair of positive ints (H, W), got {size!r}")
        size = (int(size[0]), int(size[1]))
    if given is None:
        if given_mask is not None:
            raise ValueError("given_mask was passed without given")
        if size is None:
            raise ValueError("pass size=(H, W), or given=... to complete known codes")
        h, w = size
        zeros = torch.zeros(n, h, w, dtype=torch.long, device=device)
        return size, zeros, torch.zeros(n, h, w, dtype=torch.bool, device=device)
    if not isinstance(given, torch.Tensor):
        raise TypeError(f"given must be an integer tensor of codes, got {type(given).__name__}")
    if given.dtype.is_floating_point or given.dtype.is_complex or given.dtype == torch.bool:
        raise TypeError(f"given must be an integer tensor of codes, got dtype {given.dtype}")
    check_real_device("sample", given, "given")
    if given.dim() == 2:
        given = given.unsqueeze(0).expand(n, -1, -1)
    if given.dim() != 3 or given.shape[0] != n:
        raise ValueError(f"given must have shape ({n}, H, W) or (H, W), got {tuple(given.shape)}")
    if given.shape[1] == 0 or given.shape[2] == 0:
        raise ValueError(f"given must have a non-empty grid, got shape {tuple(given.shape)}")
    if size is not None and tuple(given.shape[1:]) != size:
        raise ValueError(f"size {size} does not match given's grid {tuple(given.shape[1:])}")
    size = (int(given.shape[1]), int(given.shape[2]))
    given = given.to(device=device, dtype=torch.long)
    if given_mask is None:
        known = given >= 0
    else:
        if not isinstance(given_mask, torch.Tensor) or given_mask.dtype != torch.bool:
            raise TypeError(f"given_mask must be a bool tensor, got {given_mask!r:.80}")
        check_real_device("sample", given_mask, "given_mask")
        try:
            known = given_mask.to(device).expand(n, *size)
        except RuntimeError:
            raise ValueError(
                f"given_mask of shape {tuple(given_mask.shape)} does not broadcast to {(n, *size)}"
            ) from None
    values = given[known]
    if values.numel() and (int(values.min()) < 0 or int(values.max()) >= num_embeddings):
        raise ValueError(
            f"given codes at known positions must lie in [0, {num_embeddings}), got values in "
            f"[{int(values.min())}, {int(values.max())}]"
        )
    return size, torch.where(known, given, torch.zeros_like(given)), known.clone()


def draw_uniform(n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """The random numbers for one position: ``n`` uniforms in float64, drawn on the generator's
    device (the default generator's when ``generator`` is None) and moved to ``device``."""
    gen_device = generator.device if generator is not None else device
    u = torch.rand(n, generator=generator, device=gen_device, dtype=torch.float64)
    return u.to(device)


def no_distribution_error(rows: list[int]) -> ValueError:
    """The error of ``draw_codes`` (and of the samplers that draw like it) for the batch rows
    ``rows`` whose logits define no distribution."""
    more = " ..." if len(rows) > 8 else ""
    return ValueError(
        f"draw_codes: the logits of rows {rows[:8]}{more} hold NaN or +inf, or are all -inf, so "
        "they define no distribution (a diverged or corrupt model?)"
    )


def draw_codes(logits: torch.Tensor, u: torch.Tensor, temperature: float) -> torch.Tensor:
    """Map uniforms to codes through the inverse CDF of ``softmax(logits / temperature)``.

    Logits may hold ``-inf`` (a category that is never drawn), but a row whose distribution is
    undefined (a NaN or ``+inf`` logit, or every logit ``-inf``) raises ``ValueError`` instead of
    silently drawing code 0. That check costs one comparison of (B,) values per call.

    Shape:
        - logits: (B, K)
        - u: (B,) uniforms in [0, 1) (see ``draw_uniform``)
        - output: (B,) int64
    """
    k = logits.shape[-1]
    scaled = logits.double()
    if temperature != 1.0:  # x / 1 == x exactly: skipping it changes no draw
        scaled = scaled / temperature
    probs = torch.softmax(scaled, dim=-1)  # (B, K)
    cdf = probs.cumsum(dim=-1)  # (B, K)
    # a valid row sums to 1; NaN (from a NaN or +inf logit, or an all -inf row) fails this test
    if not bool((cdf[:, -1] > 0.5).all()):
        raise no_distribution_error((~(cdf[:, -1] > 0.5)).nonzero().flatten().tolist())
    # the smallest k with cdf_k > u; the clamp guards against cdf[-1] rounding below u
    return (cdf <= u[:, None]).sum(dim=-1).clamp_(max=k - 1)


def check_temperature(temperature: Any, owner: str = "sample") -> float:
    """Return ``temperature`` as a float; it must be a finite number > 0."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise TypeError(f"{owner}: temperature must be a positive float, got {temperature!r}")
    check_number(owner, "temperature", temperature)  # finite
    if not temperature > 0:
        raise ValueError(f"{owner}: temperature must be > 0, got {temperature}")
    return float(temperature)
