"""Samples stored as numpy arrays: ``.npy`` files and ``.npz`` archives (never unpickled)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from vqkit.data._convert import to_image_tensor
from vqkit.data.dataset import ArrayDataset, LoadReport
from vqkit.data.lazy import MemmapArrayDataset

__all__ = ["load_array"]


def check_labels(labels: Any, n: int, source: str) -> torch.Tensor:
    """Integer labels as an int64 tensor ``(n,)``; float, negative or misshapen labels refused."""
    import numpy as np

    labels = np.asarray(labels)
    if labels.dtype == np.bool_ or not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(
            f"{source}: labels must be integers, got dtype {labels.dtype} (float labels are "
            "refused rather than truncated)"
        )
    if labels.shape != (n,):
        raise ValueError(f"{source}: labels must have shape ({n},), got {labels.shape}")
    if n and labels.min() < 0:
        raise ValueError(f"{source}: labels must be >= 0, got {labels.min()}")
    if n and np.issubdtype(labels.dtype, np.unsignedinteger) and labels.max() > 2**63 - 1:
        raise ValueError(f"{source}: label {labels.max()} does not fit int64")
    return torch.from_numpy(labels.astype(np.int64))


def check_samples(array: Any, source: str) -> None:
    """Refuse arrays that are not numeric ``(N, ...)`` samples with N > 0, naming ``source``."""
    import numpy as np

    if array.dtype.hasobject or array.dtype.fields is not None:
        raise TypeError(
            f"{source}: expected a numeric array, got dtype {array.dtype} (object and "
            "structured arrays are refused)"
        )
    if not (
        array.dtype == np.bool_
        or np.issubdtype(array.dtype, np.integer)
        or np.issubdtype(array.dtype, np.floating)
    ):
        raise TypeError(f"{source}: expected a numeric array, got dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.signedinteger):
        raise TypeError(
            f"{source}: signed integer arrays ({array.dtype}) have no fixed range; convert them "
            "to float in [0, 1] or to an unsigned type first"
        )
    if array.ndim < 2 or 0 in array.shape:
        raise ValueError(
            f"{source}: expected (N, ...) samples with N > 0 and no empty axis, got shape "
            f"{array.shape}"
        )
    if array.ndim > 4:
        raise ValueError(
            f"{source}: expected (N, D), (N, H, W), (N, C, H, W) or (N, H, W, C) samples, got "
            f"shape {array.shape}"
        )


def check_finite(array: Any, source: str) -> None:
    """Refuse float samples holding NaN or infinity, naming ``source``."""
    import numpy as np

    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise ValueError(f"{source}: {bad} values are NaN or infinite; samples must be finite")


def _resolve_layout(shape: tuple[int, ...], layout: str) -> str:
    if len(shape) != 4 or layout != "auto":
        return "nchw" if layout == "auto" else layout
    channels_last = shape[-1] in (1, 3, 4) and shape[1] not in (1, 3, 4)
    return "nhwc" if channels_last else "nchw"


def load_array(
    path: str | Path,
    *,
    key: str | None = None,
    label_key: str | None = None,
    layout: str = "auto",
    lazy: bool = False,
) -> ArrayDataset | MemmapArrayDataset:
    """Load ``.npy`` / ``.npz`` samples as an ``ArrayDataset`` (or memory-mapped).

    Integer pixels are scaled to ``[0, 1]`` by their type's maximum (uint8 by 255); floats are
    kept as they are (NaN and infinity are refused). Object arrays are refused
    (``allow_pickle=False``), and so are signed integers, float labels and structured dtypes.

    Args:
        path: a ``.npy`` file or an ``.npz`` archive.
        key: the array to read from an ``.npz``; may be omitted when the archive holds one array,
            or one array besides ``label_key``.
        label_key: optional ``.npz`` array of integer labels.
        layout: ``"auto"``, ``"nchw"`` or ``"nhwc"`` for 4-D arrays.
        lazy: memory-map a ``.npy`` file and read samples when they are indexed (a
            [`MemmapArrayDataset`][vqkit.data.MemmapArrayDataset]), for arrays larger than memory.
            ``.npz`` archives are compressed or zipped and cannot be mapped.

    Shape:
        - ``(N, D)`` vectors stay ``(N, D)``; ``(N, H, W)`` becomes ``(N, 1, H, W)``;
          ``(N, H, W, C)`` and ``(N, C, H, W)`` become ``(N, C, H, W)``.
    """
    import numpy as np

    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or a path, got {type(path).__name__}")
    for name, value in (("key", key), ("label_key", label_key)):
        if value is not None and not isinstance(value, str):
            raise TypeError(f"{name} must be a string or None, got {value!r}")
    if not isinstance(layout, str) or layout not in ("auto", "nchw", "nhwc"):
        raise ValueError(f"layout must be 'auto', 'nchw' or 'nhwc', got {layout!r}")
    if not isinstance(lazy, bool):
        raise TypeError(f"lazy must be True or False, got {lazy!r}")
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise FileNotFoundError(f"array file {source!r} does not exist")
    try:
        loaded = np.load(path, allow_pickle=False, mmap_mode="r" if lazy else None)
    except ValueError as exc:
        raise ValueError(f"cannot read {source!r} without unpickling: {exc}") from exc
    except Exception as exc:
        raise ValueError(
            f"cannot read {source!r} as .npy/.npz: {type(exc).__name__}: {exc}"
        ) from exc
    labels = None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        if lazy:
            loaded.close()
            raise ValueError(
                f"{source!r} is an .npz archive, which cannot be memory-mapped; save the array "
                "with numpy.save as .npy for lazy=True, or use lazy=False"
            )
        with loaded:
            names = list(loaded.files)
            candidates = [n for n in names if n != label_key]
            if key is None:
                if len(candidates) != 1:
                    raise ValueError(
                        f"{source!r} holds several arrays {names}; pass key= to choose one"
                    )
                key = candidates[0]
            for wanted in (key, label_key):
                if wanted is not None and wanted not in names:
                    raise KeyError(f"{source!r} has no array {wanted!r}; it holds {names}")
            array = _npz_member(loaded, key, source)
            if label_key is not None:
                labels = _npz_member(loaded, label_key, source)
    else:
        if key is not None or label_key is not None:
            raise ValueError(f"key/label_key apply to .npz archives, {source!r} is a .npy array")
        array = loaded
    check_samples(array, source)
    label_tensor = check_labels(labels, array.shape[0], source) if labels is not None else None
    report = LoadReport(source, kept=array.shape[0])
    if lazy:
        return MemmapArrayDataset(
            source,
            dtype=array.dtype,
            offset=array.offset,
            shape=array.shape,
            layout=_resolve_layout(array.shape, layout),
            fortran_order=bool(array.flags.f_contiguous and not array.flags.c_contiguous),
            name=path.stem,
            report=report,
        )
    check_finite(array, source)
    data = to_image_tensor(array, layout=layout, source=source)
    return ArrayDataset(data, label_tensor, name=path.stem, report=report)


def _npz_member(archive: Any, key: str, source: str) -> Any:
    try:
        return archive[key]
    except ValueError as exc:  # object arrays need allow_pickle, which is never granted
        raise ValueError(
            f"cannot read array {key!r} of {source!r} without unpickling: {exc}"
        ) from exc
    except Exception as exc:
        raise ValueError(
            f"cannot read array {key!r} of {source!r}: {type(exc).__name__}: {exc}"
        ) from exc
