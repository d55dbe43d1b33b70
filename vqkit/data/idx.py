"""MNIST-style IDX files (gzipped or not): MNIST, Fashion-MNIST and their labels.

The IDX format (LeCun et al., "Gradient-based learning applied to document recognition", 1998):
two zero bytes, a type code, the number of dimensions, one big-endian uint32 per dimension, then
the values in C order, big-endian.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    import numpy as np

from vqkit.data._convert import to_image_tensor
from vqkit.data.dataset import ArrayDataset, LoadReport

__all__ = ["FASHION_MNIST_PATH", "load_fashion_mnist", "load_idx_images", "load_mnist", "read_idx"]

#: Where Debian's ``dataset-fashion-mnist`` package installs the IDX files.
FASHION_MNIST_PATH = "/usr/share/datasets/fashion-mnist"

_IDX_TYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_SPLIT_PREFIX = {"train": "train", "test": "t10k"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (gzip detected from the content, not the name) into a numpy array.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not IDX (bad magic number, unknown type) or is truncated.
    """
    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file {str(path)!r} does not exist")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise ValueError(
                f"{str(path)!r} looks gzipped but cannot be decompressed: {exc}"
            ) from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise ValueError(
            f"{str(path)!r} is not an IDX file: expected magic bytes 00 00 <type> <ndim> with type "
            f"in {sorted(hex(t) for t in _IDX_TYPES)}, got {raw[:4].hex(' ')}"
        )
    dtype, ndim = np.dtype(_IDX_TYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{str(path)!r} is truncated: header of {ndim} dimensions is incomplete")
    shape = tuple(int(d) for d in np.frombuffer(raw[4:header], dtype=">u4"))
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(
            f"{str(path)!r} is truncated or padded: shape {shape} of {dtype} needs "
            f"{expected} bytes of data, found {len(raw) - header}"
        )
    return (
        np.frombuffer(raw, dtype=dtype, offset=header)
        .reshape(shape)
        .astype(dtype.newbyteorder("="))
    )


def _find(directory: Path, stem: str) -> Path:
    for name in (
        stem,
        stem + ".gz",
        stem.replace("-idx", ".idx"),
        stem.replace("-idx", ".idx") + ".gz",
    ):
        if (directory / name).is_file():
            return directory / name
    raise FileNotFoundError(
        f"no {stem}[.gz] in {str(directory)!r}; expected the MNIST file names "
        f"(train-images-idx3-ubyte.gz, t10k-images-idx3-ubyte.gz, ...)"
    )


def load_idx_images(
    images: str | Path, labels: str | Path | None = None, *, name: str = "idx"
) -> ArrayDataset:
    """An IDX image file (and optionally its label file) as an :class:`ArrayDataset`.

    Shape:
        - data: ``(N, 1, H, W)`` float32 in ``[0, 1]`` (uint8 pixels divided by 255).
    """
    import numpy as np

    array = read_idx(images)
    if array.ndim not in (3, 4):
        raise ValueError(f"{str(images)!r} holds shape {array.shape}; expected (N, H, W) images")
    data = to_image_tensor(array, source=str(images))
    label_tensor = None
    if labels is not None:
        label_array = read_idx(labels)
        if label_array.shape != (array.shape[0],):
            raise ValueError(
                f"labels {str(labels)!r} have shape {label_array.shape}, expected "
                f"({array.shape[0]},) to match {str(images)!r}"
            )
        label_tensor = torch.from_numpy(label_array.astype(np.int64))
    return ArrayDataset(
        data, label_tensor, name=name, report=LoadReport(str(images), kept=len(data))
    )


def load_mnist(path: str | Path, split: str = "train", *, name: str = "mnist") -> ArrayDataset:
    """MNIST-layout IDX files from a folder: ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``.

    Args:
        path: the folder holding the four files (or an images file directly).
        split: ``"train"`` (60,000 images) or ``"test"`` (10,000 images).
    """
    if split not in _SPLIT_PREFIX:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    path = Path(path)
    if path.is_file():
        return load_idx_images(path, name=name)
    if not path.is_dir():
        raise FileNotFoundError(f"MNIST folder {str(path)!r} does not exist")
    prefix = _SPLIT_PREFIX[split]
    images = _find(path, f"{prefix}-images-idx3-ubyte")
    try:
        labels = _find(path, f"{prefix}-labels-idx1-ubyte")
    except FileNotFoundError:
        labels = None
    return load_idx_images(images, labels, name=name)


def load_fashion_mnist(path: str | Path | None = None, split: str = "train") -> ArrayDataset:
    """Fashion-MNIST (Xiao et al., arXiv:1708.07747): 28×28 grayscale, 60k train / 10k test.

    Args:
        path: folder with the IDX files; defaults to ``$VQKIT_FASHION_MNIST`` or Debian's
            location ``/usr/share/datasets/fashion-mnist`` (``apt-get install
            dataset-fashion-mnist``).
        split: ``"train"`` or ``"test"``.
    """
    path = path or os.environ.get("VQKIT_FASHION_MNIST", FASHION_MNIST_PATH)
    if not Path(path).exists():
        raise FileNotFoundError(
            f"Fashion-MNIST not found at {str(path)!r}; install it with "
            "`apt-get install dataset-fashion-mnist` or pass the folder holding the IDX files"
        )
    return load_mnist(path, split, name="fashion-mnist")
