"""Conversion of raw arrays to vqkit's image layout: float32 ``(N, C, H, W)`` in ``[0, 1]``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    import numpy as np

__all__ = ["to_image_tensor", "unit_scale"]


def unit_scale(array: np.ndarray) -> np.ndarray:
    """Integers scaled by their type's maximum (uint8 by 255, uint16 by 65535); floats as is."""
    import numpy as np

    if array.dtype == np.bool_:
        return array.astype(np.float32)
    if np.issubdtype(array.dtype, np.unsignedinteger):
        return array.astype(np.float32) / np.float32(np.iinfo(array.dtype).max)
    if np.issubdtype(array.dtype, np.integer):
        raise TypeError(
            f"signed integer arrays ({array.dtype}) have no fixed range; convert them to float "
            "in [0, 1] or to an unsigned type first"
        )
    if np.issubdtype(array.dtype, np.floating):
        return array.astype(np.float32)
    raise TypeError(f"expected a numeric array, got dtype {array.dtype}")


def to_image_tensor(array: np.ndarray, *, layout: str = "auto", source: str = "array"):
    """Samples as a float32 tensor: images ``(N, C, H, W)``, vectors ``(N, D)``.

    Args:
        array: ``(N, D)`` vectors, ``(N, H, W)`` grayscale, or ``(N, C, H, W)`` / ``(N, H, W, C)``.
        layout: ``"nchw"``, ``"nhwc"`` or ``"auto"`` (channels last when the last axis has 1, 3
            or 4 entries and the second does not).
        source: named in error messages.
    """
    import numpy as np

    if layout not in ("auto", "nchw", "nhwc"):
        raise ValueError(f"layout must be 'auto', 'nchw' or 'nhwc', got {layout!r}")
    array = unit_scale(np.asarray(array))
    if array.ndim == 2:
        return torch.from_numpy(np.ascontiguousarray(array))
    if array.ndim == 3:
        return torch.from_numpy(np.ascontiguousarray(array[:, None]))
    if array.ndim != 4:
        raise ValueError(
            f"{source}: expected (N, D), (N, H, W), (N, C, H, W) or (N, H, W, C) samples, got "
            f"shape {array.shape}"
        )
    if layout == "auto":
        channels_last = array.shape[-1] in (1, 3, 4) and array.shape[1] not in (1, 3, 4)
        layout = "nhwc" if channels_last else "nchw"
    if layout == "nhwc":
        array = array.transpose(0, 3, 1, 2)
    return torch.from_numpy(np.ascontiguousarray(array))
