"""Hugging Face ``datasets`` as a source of images: Hub datasets, ``save_to_disk`` folders, parquet.

``load_dataset("hf:NAME[:split]")`` reads ``NAME`` with the ``datasets`` library (Lhoest et al.,
"Datasets: A Community Library for Natural Language Processing", arXiv:2109.02846):

- a folder written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``;
- a ``.parquet`` file;
- any other local folder ``datasets`` understands (an image folder, a folder of parquet files);
- otherwise a dataset name on the Hugging Face Hub (``"user/name"``), which needs the network
  the first time.

The result is an ``HFImageDataset``: rows are decoded when they are indexed (by DataLoader
workers with ``TrainConfig.num_workers``), with the same colour modes, resizing and ``[0, 1]``
scaling as [`load_image_folder`][vqkit.data.load_image_folder]. ``datasets`` is an optional extra
(``pip install 'vqkit[hf]'``), imported only here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, cast

import torch
from torch.utils.data import Dataset

from vqkit.data.dataset import LoadReport

__all__ = ["HFImageDataset", "load_hf_dataset"]

_SAVED_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")


def _datasets_module():
    try:
        import datasets
    except ImportError as exc:
        raise ImportError(
            "the hf: data source needs the Hugging Face datasets package: pip install 'vqkit[hf]'"
        ) from exc
    return datasets


def _find_image_column(hf: Any, datasets: Any, column: str | None) -> str:
    names = list(hf.column_names)
    if column is not None:
        if column not in names:
            raise KeyError(f"the dataset has no column {column!r}; it has {names}")
        return column
    images = [n for n, f in hf.features.items() if isinstance(f, datasets.Image)]
    if len(images) == 1:
        return images[0]
    for guess in ("image", "img", "pixel_values"):
        if guess in names:
            return guess
    raise ValueError(
        f"cannot tell which column holds the images among {names} "
        f"({len(images)} have the Image feature); pass image_column="
    )


def _find_label_column(hf: Any, datasets: Any, column: str | None) -> str | None:
    if column is not None:
        if column not in hf.column_names:
            raise KeyError(f"the dataset has no column {column!r}; it has {hf.column_names}")
        return column
    labels = [n for n, f in hf.features.items() if isinstance(f, datasets.ClassLabel)]
    if len(labels) == 1:
        return labels[0]
    for guess in ("label", "labels"):
        if guess in hf.column_names:
            return guess
    return None


def _as_pil(value: Any, where: str):
    """A PIL image from a decoded ``datasets.Image`` value or a ``(H, W[, C])`` uint8 array."""
    import numpy as np
    from PIL import Image

    if isinstance(value, Image.Image):
        return value
    if isinstance(value, dict) and value.get("bytes") is not None:
        import io

        return Image.open(io.BytesIO(value["bytes"]))
    array = np.asarray(value)
    if array.dtype == np.uint8 and array.ndim in (2, 3):
        return Image.fromarray(array)
    raise TypeError(
        f"{where}: expected an image (PIL image, encoded bytes or a (H, W[, C]) uint8 array), "
        f"got {type(value).__name__}"
        + (f" of dtype {array.dtype} and shape {array.shape}" if array.dtype != object else "")
    )


class HFImageDataset(Dataset):
    """Rows of a Hugging Face dataset decoded as ``(C, H, W)`` float32 images in ``[0, 1]``.

    Built by ``load_hf_dataset``. With ``image_size=None`` every image must have the size of
    the first one (a row of another size raises, naming it); with an ``image_size`` every image
    is resized like [`load_image_folder`][vqkit.data.load_image_folder] does.

    Args:
        hf: a ``datasets.Dataset``.
        image_column: the column holding the images.
        labels: optional ``(N,)`` integer labels.
        mode: ``"L"`` or ``"RGB"``.
        image_size: ``(H, W)`` of every item.
        resize: resize to ``image_size`` (False: images must already have it).
        fit: ``"crop"`` or ``"stretch"``.
        name: a short name for logs.
        report: what the loader read.

    Shape:
        - ``dataset[i]``: ``(C, H, W)``, C = 1 for ``"L"``, 3 for ``"RGB"``.
    """

    def __init__(
        self,
        hf: Any,
        *,
        image_column: str,
        labels: torch.Tensor | None,
        mode: str,
        image_size: tuple[int, int],
        resize: bool,
        fit: str = "crop",
        name: str = "hf",
        report: LoadReport | None = None,
    ) -> None:
        self.hf = hf
        self.image_column = image_column
        self.labels = labels
        self.mode = mode
        self.image_size = cast(tuple[int, int], tuple(image_size))  # (H, W)
        self.resize = resize
        self.fit = fit
        self.name = name
        self.report = report if report is not None else LoadReport(name, kept=len(hf))

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one sample, ``(C, H, W)``."""
        return (1 if self.mode == "L" else 3, *self.image_size)

    def __len__(self) -> int:
        return len(self.hf)

    def __getitem__(self, index: Any) -> torch.Tensor:
        import numpy as np

        from vqkit.data.folder import _raw_array
        from vqkit.data.lazy import _index

        i = _index(index, len(self))
        where = f"{self.name} row {i}"
        img = _as_pil(self.hf[i][self.image_column], where)
        if not self.resize and (img.height, img.width) != self.image_size:
            raise ValueError(
                f"{where}: image is {img.height}x{img.width}, the dataset's first image is "
                f"{self.image_size[0]}x{self.image_size[1]}; pass image_size to resize them all"
            )
        array = _raw_array(img, self.mode, self.image_size if self.resize else None, self.fit)
        if array.dtype != np.float32:
            array = array.astype(np.float32) / np.float32(255)
        return torch.from_numpy(np.array(array, order="C"))

    def select(self, indices: torch.Tensor, name: str | None = None) -> HFImageDataset:
        """The rows at ``indices`` (a 1-D integer tensor), as a new dataset."""
        out = HFImageDataset.__new__(HFImageDataset)
        out.__dict__.update(self.__dict__)
        out.hf = self.hf.select([int(i) for i in indices])
        out.labels = self.labels[indices] if self.labels is not None else None
        out.name = name or self.name
        return out

    def __repr__(self) -> str:
        return (
            f"HFImageDataset(name={self.name!r}, n={len(self)}, sample_shape={self.sample_shape}, "
            f"column={self.image_column!r})"
        )


def _open(datasets: Any, source: str, split: str, cache_dir: str | None) -> Any:
    path = Path(source).expanduser()
    try:
        if path.is_dir() and any((path / m).is_file() for m in _SAVED_MARKERS):
            loaded = datasets.load_from_disk(str(path))
            if isinstance(loaded, datasets.DatasetDict):
                if split not in loaded:
                    raise KeyError(f"{source!r} has no split {split!r}; it has {sorted(loaded)}")
                loaded = loaded[split]
            return loaded
        if path.is_file():
            if path.suffix != ".parquet":
                raise ValueError(f"{source!r}: expected a .parquet file or a folder")
            return datasets.load_dataset(
                "parquet", data_files={split: str(path)}, split=split, cache_dir=cache_dir
            )
        if path.is_dir():
            return datasets.load_dataset(str(path), split=split, cache_dir=cache_dir)
        if source.startswith((".", "/", "~")) or os.sep + os.sep in source:
            raise FileNotFoundError(f"Hugging Face dataset folder {source!r} does not exist")
        return datasets.load_dataset(source, split=split, cache_dir=cache_dir)
    except (KeyError, ValueError, FileNotFoundError, TypeError):
        raise
    except Exception as exc:  # network, Hub and builder errors of many types
        raise RuntimeError(
            f"cannot load Hugging Face dataset {source!r} (split {split!r}): "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def load_hf_dataset(
    source: str,
    split: str = "train",
    *,
    image_column: str | None = None,
    label_column: str | None = None,
    image_size: int | tuple[int, int] | None = None,
    mode: str | None = None,
    fit: str = "crop",
    cache_dir: str | None = None,
) -> HFImageDataset:
    """A Hugging Face dataset of images as an ``HFImageDataset`` (decoded per item).

    Args:
        source: a ``save_to_disk`` folder, a ``.parquet`` file, a local folder ``datasets``
            reads (images, parquet files), or a Hub dataset name.
        split: the split to read (``"train"`` by default).
        image_column: the column of images; by default the one column with the ``Image``
            feature, or one named ``image`` / ``img`` / ``pixel_values``.
        label_column: the column of integer labels; by default the one ``ClassLabel`` column,
            or one named ``label`` / ``labels``; absent when there is none.
        image_size: target ``H`` or ``(H, W)``; None keeps the first image's size (every image
            must have it).
        mode: ``"L"`` or ``"RGB"``; None takes the first image's (grayscale → ``"L"``).
        fit: ``"crop"`` or ``"stretch"`` when resizing.
        cache_dir: where ``datasets`` keeps the files it prepares (its default otherwise).

    Raises:
        ImportError: ``datasets`` is not installed (the message names the ``pip install``).
        FileNotFoundError: a local path that does not exist.
        KeyError: a missing split or column.
        ValueError: an empty split, bad options, or a column that holds no images.
        RuntimeError: ``datasets`` could not load the source (network, Hub, format).
    """
    from vqkit.data.arrays import check_labels
    from vqkit.data.folder import _GRAY_MODES, _as_size, _check_options

    if not isinstance(source, str) or not source:
        raise TypeError(f"source must be a non-empty string, got {source!r}")
    if not isinstance(split, str) or not split:
        raise TypeError(f"split must be a non-empty string, got {split!r}")
    for name, value in (
        ("image_column", image_column),
        ("label_column", label_column),
        ("cache_dir", cache_dir),
    ):
        if value is not None and not isinstance(value, str):
            raise TypeError(f"{name} must be a string or None, got {value!r}")
    _check_options(mode, fit, "skip", "error", (".png",))
    size = _as_size(image_size)
    datasets = _datasets_module()
    hf = _open(datasets, source, split, cache_dir)
    if len(hf) == 0:
        raise ValueError(f"Hugging Face dataset {source!r} split {split!r} has no rows")
    column = _find_image_column(hf, datasets, image_column)
    label_name = _find_label_column(hf, datasets, label_column)
    first = _as_pil(hf[0][column], f"{source} row 0")
    if mode is None:
        mode = "L" if first.mode in _GRAY_MODES and first.mode != "P" else "RGB"
    labels = None
    if label_name is not None:
        labels = check_labels(hf[label_name], len(hf), f"{source} column {label_name!r}")
    name = Path(source).name or source
    return HFImageDataset(
        hf,
        image_column=column,
        labels=labels,
        mode=mode,
        image_size=size if size is not None else (first.height, first.width),
        resize=size is not None,
        fit=fit,
        name=name,
        report=LoadReport(f"hf:{source}[{split}]", kept=len(hf)),
    )
