"""Samples stored as numpy arrays: ``.npy`` files and ``.npz`` archives (never unpickled)."""

from __future__ import annotations

from pathlib import Path

import torch

from vqkit.data._convert import to_image_tensor
from vqkit.data.dataset import ArrayDataset, LoadReport

__all__ = ["load_array"]


def load_array(
    path: str | Path,
    *,
    key: str | None = None,
    label_key: str | None = None,
    layout: str = "auto",
) -> ArrayDataset:
    """Load ``.npy`` / ``.npz`` samples as an :class:`ArrayDataset`.

    Integer pixels are scaled to ``[0, 1]`` by their type's maximum (uint8 by 255); floats are
    kept as they are. Object arrays are refused (``allow_pickle=False``).

    Args:
        path: a ``.npy`` file or an ``.npz`` archive.
        key: the array to read from an ``.npz``; may be omitted when the archive holds one array,
            or one array besides ``label_key``.
        label_key: optional ``.npz`` array of integer labels.
        layout: ``"auto"``, ``"nchw"`` or ``"nhwc"`` for 4-D arrays.

    Shape:
        - ``(N, D)`` vectors stay ``(N, D)``; ``(N, H, W)`` becomes ``(N, 1, H, W)``;
          ``(N, H, W, C)`` and ``(N, C, H, W)`` become ``(N, C, H, W)``.
    """
    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"array file {str(path)!r} does not exist")
    try:
        loaded = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise ValueError(f"cannot read {str(path)!r} without unpickling: {exc}") from exc
    except Exception as exc:
        raise ValueError(
            f"cannot read {str(path)!r} as .npy/.npz: {type(exc).__name__}: {exc}"
        ) from exc
    labels = None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        with loaded:
            names = list(loaded.files)
            if label_key is not None:
                if label_key not in names:
                    raise KeyError(f"{str(path)!r} has no array {label_key!r}; it holds {names}")
                labels = torch.from_numpy(loaded[label_key].astype(np.int64))
            candidates = [n for n in names if n != label_key]
            if key is None:
                if len(candidates) != 1:
                    raise ValueError(
                        f"{str(path)!r} holds several arrays {names}; pass key= to choose one"
                    )
                key = candidates[0]
            if key not in names:
                raise KeyError(f"{str(path)!r} has no array {key!r}; it holds {names}")
            array = loaded[key]
    else:
        if key is not None or label_key is not None:
            raise ValueError(f"key/label_key apply to .npz archives, {str(path)!r} is a .npy array")
        array = loaded
    if array.ndim < 2 or array.shape[0] == 0:
        raise ValueError(
            f"{str(path)!r}: expected (N, ...) samples with N > 0, got shape {array.shape}"
        )
    data = to_image_tensor(array, layout=layout, source=str(path))
    return ArrayDataset(data, labels, name=path.stem, report=LoadReport(str(path), kept=len(data)))
