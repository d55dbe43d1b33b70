"""MNIST-style IDX files (gzipped or not): MNIST, Fashion-MNIST and their labels.

The IDX format (LeCun et al., "Gradient-based learning applied to document recognition", 1998):
two zero bytes, a type code, the number of dimensions, one big-endian uint32 per dimension, then
the values in C order, big-endian.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

from vqkit.data._convert import to_image_tensor
from vqkit.data.dataset import ArrayDataset, LoadReport
from vqkit.data.lazy import MemmapArrayDataset

__all__ = [
    "FASHION_MNIST_PATH",
    "load_fashion_mnist",
    "load_idx_images",
    "load_mnist",
    "read_idx",
    "read_idx_header",
]

#: Where Debian's ``dataset-fashion-mnist`` package installs the IDX files.
FASHION_MNIST_PATH = "/usr/share/datasets/fashion-mnist"

_IDX_TYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_SPLIT_PREFIX = {"train": "train", "test": "t10k"}
_CHUNK = 1 << 24  # bytes read at a time from a (possibly gzipped) IDX stream


def _open(path: Path):
    """The file's byte stream (gunzipped when its content starts with the gzip magic)."""
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    return (gzip.open(path, "rb") if gz else open(path, "rb")), gz


def _read_exactly(stream, n: int, path: Path, what: str) -> bytes:
    try:
        data = stream.read(n)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{str(path)!r} looks gzipped but cannot be decompressed: {exc}") from exc
    if len(data) < n:
        raise ValueError(f"{str(path)!r} is truncated: {what}")
    return data


def read_idx_header(path: str | Path) -> tuple[np.dtype, tuple[int, ...], int, bool]:
    """``(dtype, shape, data_offset, gzipped)`` of an IDX file, read from its header only.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not IDX, its header is incomplete, or its declared size does
            not match the file (for uncompressed files this is checked before reading data).
    """
    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file {str(path)!r} does not exist")
    stream, gz = _open(path)
    with stream:
        magic = stream.read(4) if not gz else _read_magic(stream, path)
        if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_TYPES:
            raise ValueError(
                f"{str(path)!r} is not an IDX file: expected magic bytes 00 00 <type> <ndim> "
                f"with type in {sorted(hex(t) for t in _IDX_TYPES)}, got {magic[:4].hex(' ')}"
            )
        dtype, ndim = np.dtype(_IDX_TYPES[magic[2]]), magic[3]
        if ndim == 0:
            raise ValueError(f"{str(path)!r} declares 0 dimensions; expected at least one")
        dims = _read_exactly(stream, 4 * ndim, path, f"header of {ndim} dimensions is incomplete")
    shape = tuple(int(d) for d in np.frombuffer(dims, dtype=">u4"))
    header = 4 + 4 * ndim
    expected = math.prod(shape) * dtype.itemsize  # exact Python ints: no overflow
    if not gz:
        found = path.stat().st_size - header
        if found != expected:
            raise ValueError(
                f"{str(path)!r} is truncated or padded: shape {shape} of {dtype} needs "
                f"{expected} bytes of data, found {found}"
            )
    return dtype, shape, header, gz


def _read_magic(stream, path: Path) -> bytes:
    try:
        return stream.read(4)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{str(path)!r} looks gzipped but cannot be decompressed: {exc}") from exc


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (gzip detected from the content, not the name) into a numpy array.

    The header is checked before any data is read: a declared shape larger than the file
    (a plain file) or than what the stream holds (a gzipped one, read in bounded chunks) is
    refused without allocating the declared size.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not IDX (bad magic number, unknown type) or is truncated.
    """
    import numpy as np

    path = Path(path)
    dtype, shape, header, _ = read_idx_header(path)
    expected = math.prod(shape) * dtype.itemsize
    stream, _ = _open(path)
    chunks, got = [], 0
    with stream:
        stream.read(header)
        while True:  # bounded by the bytes that really exist, never by the declared size
            try:
                chunk = stream.read(min(_CHUNK, expected + 1 - got))
            except (OSError, EOFError, zlib.error) as exc:
                raise ValueError(
                    f"{str(path)!r} looks gzipped but cannot be decompressed: {exc}"
                ) from exc
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
            if got > expected:
                break
    if got != expected:
        raise ValueError(
            f"{str(path)!r} is truncated or padded: shape {shape} of {dtype} needs "
            f"{expected} bytes of data, found {'more' if got > expected else got}"
        )
    raw = b"".join(chunks)
    return np.frombuffer(raw, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


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
    images: str | Path,
    labels: str | Path | None = None,
    *,
    name: str = "idx",
    lazy: bool = False,
) -> ArrayDataset | MemmapArrayDataset:
    """An IDX image file (and optionally its label file) as an ``ArrayDataset``.

    Args:
        images: the IDX file of images ``(N, H, W)`` (or ``(N, C, H, W)``).
        labels: optional IDX file of ``N`` integer labels (float labels are refused).
        name: a short name for logs.
        lazy: memory-map an uncompressed file (a ``MemmapArrayDataset``);
            gzipped files cannot be mapped and are read into memory.

    Shape:
        - data: ``(N, 1, H, W)`` float32 in ``[0, 1]`` (uint8 pixels divided by 255).
    """
    from vqkit.data.arrays import _resolve_layout, check_finite, check_labels, check_samples

    if not isinstance(lazy, bool):
        raise TypeError(f"lazy must be True or False, got {lazy!r}")
    dtype, shape, offset, gz = read_idx_header(images)
    if len(shape) not in (3, 4):
        raise ValueError(f"{str(images)!r} holds shape {shape}; expected (N, H, W) images")
    label_tensor = None
    if labels is not None:
        label_array = read_idx(labels)
        if label_array.shape != (shape[0],):
            raise ValueError(
                f"labels {str(labels)!r} have shape {label_array.shape}, expected "
                f"({shape[0]},) to match {str(images)!r}"
            )
        label_tensor = check_labels(label_array, shape[0], str(labels))
    report = LoadReport(str(images), kept=shape[0])
    if lazy and not gz:
        import numpy as np

        check_samples(np.empty((1, *shape[1:]), dtype=dtype), str(images))
        if shape[0] == 0:
            raise ValueError(f"{str(images)!r} holds no images (N = 0)")
        return MemmapArrayDataset(
            str(images),
            dtype=dtype,
            offset=offset,
            shape=shape,
            layout=_resolve_layout(shape, "auto"),
            labels=label_tensor,
            name=name,
            report=report,
        )
    array = read_idx(images)
    check_samples(array, str(images))
    check_finite(array, str(images))
    data = to_image_tensor(array, source=str(images))
    return ArrayDataset(data, label_tensor, name=name, report=report)


def load_mnist(
    path: str | Path, split: str = "train", *, name: str = "mnist", lazy: bool = False
) -> ArrayDataset | MemmapArrayDataset:
    """MNIST-layout IDX files from a folder: ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``.

    Args:
        path: the folder holding the four files (or an images file directly).
        split: ``"train"`` (60,000 images) or ``"test"`` (10,000 images).
        name: a short name for logs.
        lazy: memory-map uncompressed files (see [`load_idx_images`][vqkit.data.load_idx_images]).
    """
    if not isinstance(split, str) or split not in _SPLIT_PREFIX:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or a path, got {type(path).__name__}")
    path = Path(path)
    if path.is_file():
        return load_idx_images(path, name=name, lazy=lazy)
    if not path.is_dir():
        raise FileNotFoundError(f"MNIST folder {str(path)!r} does not exist")
    prefix = _SPLIT_PREFIX[split]
    images = _find(path, f"{prefix}-images-idx3-ubyte")
    try:
        labels = _find(path, f"{prefix}-labels-idx1-ubyte")
    except FileNotFoundError:
        labels = None
    return load_idx_images(images, labels, name=name, lazy=lazy)


def load_fashion_mnist(
    path: str | Path | None = None, split: str = "train", *, lazy: bool = False
) -> ArrayDataset | MemmapArrayDataset:
    """Fashion-MNIST (Xiao et al., arXiv:1708.07747): 28×28 grayscale, 60k train / 10k test.

    Args:
        path: folder with the IDX files; defaults to ``$VQKIT_FASHION_MNIST`` or Debian's
            location ``/usr/share/datasets/fashion-mnist`` (``apt-get install
            dataset-fashion-mnist``).
        split: ``"train"`` or ``"test"``.
        lazy: memory-map uncompressed files (see [`load_idx_images`][vqkit.data.load_idx_images]).
    """
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str, a path or None, got {type(path).__name__}")
    path = path or os.environ.get("VQKIT_FASHION_MNIST", FASHION_MNIST_PATH)
    if not Path(path).exists():
        raise FileNotFoundError(
            f"Fashion-MNIST not found at {str(path)!r}; install it with "
            "`apt-get install dataset-fashion-mnist` or pass the folder holding the IDX files"
        )
    return load_mnist(path, split, name="fashion-mnist", lazy=lazy)
