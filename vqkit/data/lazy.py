"""Datasets read on access: image folders decoded per item, ``.npy`` / IDX arrays memory-mapped.

The in-memory path (``ArrayDataset``) decodes a whole folder into one float32
tensor: CelebA-64's 202,599 images need about 10 GB before training starts. The datasets here keep
only file names (or a memory map) and decode each sample when it is indexed, so memory stays
bounded by the batch and the DataLoader workers (``TrainConfig.num_workers``) decode in parallel.
Every item equals the in-memory path's value bit for bit; both return ``(C, H, W)`` float32 images
in ``[0, 1]``.

They pickle cheaply (file names, not pixels): a worker reopens memory maps itself.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import torch
from torch.utils.data import Dataset

from vqkit.data.dataset import LoadReport

__all__ = ["ImageFolderDataset", "MemmapArrayDataset"]

#: The share of the available memory a uint8 cache may take.
CACHE_MEMORY_SHARE = 0.5


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (Linux ``MemAvailable``), or None."""
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB"


def _index(index: Any, n: int) -> int:
    """``index`` as a position in ``[0, n)`` (negative ones count from the end)."""
    try:
        if isinstance(index, bool):
            raise TypeError
        index = operator.index(index)  # ints, numpy integers, 0-d integer tensors
    except TypeError:
        raise TypeError(f"index must be an int, got {type(index).__name__}") from None
    if not -n <= index < n:
        raise IndexError(f"index {index} is out of range for {n} samples")
    return index % n


class ImageFolderDataset(Dataset):
    """An image folder decoded one image at a time; ``dataset[i]`` is a ``(C, H, W)`` tensor.

    Built by ``load_image_folder`` with ``lazy=True`` (which validates the folder
    and reads every header once); items equal that function's in-memory values exactly.

    Args:
        files: image paths, in dataset order.
        labels: ``(N,)`` integer labels.
        mode: ``"L"`` or ``"RGB"``.
        image_size: ``(H, W)`` of every item.
        fit: ``"crop"`` or ``"stretch"``, used when ``resize`` is True.
        resize: resize every image to ``image_size``; False means every file already has it.
        name: a short name for logs and run folders.
        report: what the scan read and left out.
        cache: True decodes everything now into a uint8 tensor ``(N, C, H, W)`` kept in
            memory; ``"fill"`` reserves that tensor (after the same memory check) and fills it
            with the batches ``vqkit.data.loader.iterate_batches`` reads, decoded by the
            DataLoader workers during the first epoch: once every row is filled the dataset is
            cached (``cache`` is set) and later epochs are sliced in the training process.
        wide: some images have more than 8 bits per pixel (16-bit grayscale): no uint8 cache.

    Shape:
        - ``dataset[i]``: ``(C, H, W)`` float32 in ``[0, 1]``, C = 1 for ``"L"``, 3 for ``"RGB"``.
    """

    def __init__(
        self,
        files: Sequence[str],
        labels: torch.Tensor,
        *,
        mode: str,
        image_size: tuple[int, int],
        fit: str = "crop",
        resize: bool = True,
        name: str = "images",
        report: LoadReport | None = None,
        cache: bool | str = False,
        wide: bool = False,
    ) -> None:
        if len(files) == 0:
            raise ValueError("an ImageFolderDataset needs at least one file")
        if labels.shape != (len(files),):
            raise ValueError(f"labels must be ({len(files)},), got {tuple(labels.shape)}")
        self.files = list(files)
        self.labels = labels
        self.mode = mode
        self.image_size = cast(tuple[int, int], tuple(image_size))  # (H, W)
        self.fit = fit
        self.resize = resize
        self.name = name
        self.report = report if report is not None else LoadReport(name, kept=len(files))
        self.wide = wide
        self.cache: torch.Tensor | None = None
        # cache="fill": the rows read so far and which they are, until every row is there.
        self.filling: torch.Tensor | None = None
        self.filled: torch.Tensor | None = None
        if cache == "fill":
            self._reserve_cache()
        elif cache is True:
            self._fill_cache()
        elif cache is not False:
            raise ValueError(f"cache must be True, False or 'fill', got {cache!r}")

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one sample, ``(C, H, W)``."""
        return (1 if self.mode == "L" else 3, *self.image_size)

    def __len__(self) -> int:
        return len(self.files)

    def _decode(self, i: int):
        from vqkit.data.folder import _image_module, _raw_array

        file = self.files[i]
        Image = _image_module()
        try:
            with Image.open(file) as img:
                img.load()
                size = self.image_size if self.resize else None
                if size is None and (img.height, img.width) != self.image_size:
                    raise ValueError(
                        f"size {img.height}x{img.width} differs from the dataset's "
                        f"{self.image_size[0]}x{self.image_size[1]} (the file changed since the "
                        "folder was scanned)"
                    )
                return _raw_array(img, self.mode, size, self.fit)
        except Exception as exc:
            from vqkit.data.folder import _unreadable

            raise ValueError(
                f"cannot read image file {file!r} (item {i}): {_unreadable(Path(file), exc)}"
            ) from exc

    def __getitem__(self, index: Any) -> torch.Tensor:
        import numpy as np

        i = _index(index, len(self))
        if self.cache is not None:
            return self.cache[i].float() / 255
        array = self._decode(i)  # (C, H, W), maybe a transposed view
        if array.dtype == np.float32:
            return torch.from_numpy(np.array(array, order="C"))  # a writable, contiguous copy
        out = np.empty(array.shape, dtype=np.float32)
        np.divide(array, np.float32(255), out=out, dtype=np.float32)
        return torch.from_numpy(out)

    def read_batch(self, indices: Sequence[Any], *, as_uint8: bool = False) -> torch.Tensor:
        """The images at ``indices`` as one batch, decoded straight into one array.

        8-bit images are decoded into a single ``(B, C, H, W)`` uint8 array and converted to
        float32 in one operation (``x / 255``, the same bits as ``dataset[i]``), instead of one
        float conversion per image and a stack of B float tensors. ``as_uint8=True`` returns
        the uint8 batch itself (a quarter of the bytes, for a DataLoader worker to send); the
        caller then converts it with ``batch.float().div_(255)``. A dataset of 16-bit images
        (``wide``) has no uint8 form: its batches are stacked float items, and ``as_uint8`` is
        refused.

        Shape:
            - Output: ``(B, C, H, W)``, float32 in ``[0, 1]`` (or uint8 with ``as_uint8``).
        """
        import numpy as np

        positions = [_index(i, len(self)) for i in indices]
        if self.wide:
            if as_uint8:
                raise ValueError(f"{self.name}: 16-bit images have no uint8 batch form")
            return torch.stack([self[i] for i in positions]) if positions else self._empty()
        if self.cache is not None:
            batch = self.cache[torch.tensor(positions, dtype=torch.long)]
            return batch if as_uint8 else batch.float().div_(255)
        out = np.empty((len(positions), *self.sample_shape), dtype=np.uint8)
        for row, i in enumerate(positions):
            array = self._decode(i)
            if array.dtype != np.uint8:  # a file that is not 8-bit after all: never truncate
                raise ValueError(
                    f"{self.name}: item {i} ({self.files[i]!r}) decodes to {array.dtype}, not "
                    "8-bit; the folder scan marked the dataset 8-bit (the file changed?)"
                )
            out[row] = array
        batch = torch.from_numpy(out)
        return batch if as_uint8 else batch.float().div_(255)

    def __getitems__(self, indices: Sequence[Any]) -> list[torch.Tensor]:
        """The items at ``indices`` from one ``read_batch`` (views of one batch tensor): what a
        ``DataLoader`` asks for once per batch instead of once per item; ``default_collate``
        stacks them as it stacks ``dataset[i]``."""
        return list(self.read_batch(indices).unbind(0))

    def _empty(self) -> torch.Tensor:
        return torch.empty((0, *self.sample_shape), dtype=torch.float32)

    def _check_cache_fits(self) -> None:
        if self.wide:
            raise ValueError(
                f"{self.name}: a uint8 cache would lose the precision of its 16-bit images; "
                "use cache=False"
            )
        c, h, w = self.sample_shape
        need = len(self) * c * h * w
        free = available_memory()
        if free is not None and need > CACHE_MEMORY_SHARE * free:
            raise MemoryError(
                f"{self.name}: a uint8 cache of {len(self)} images of {c}x{h}x{w} needs "
                f"{_gib(need)}, more than half of the {_gib(free)} available; use cache=False "
                "(images are then decoded when they are read)"
            )

    def _fill_cache(self) -> None:
        import numpy as np

        self._check_cache_fits()
        c, h, w = self.sample_shape
        cache = torch.empty((len(self), c, h, w), dtype=torch.uint8)
        for i in range(len(self)):
            cache[i] = torch.from_numpy(np.array(self._decode(i)))  # a writable copy
        self.cache = cache

    def _reserve_cache(self) -> None:
        self._check_cache_fits()
        # torch.empty maps no pages yet: memory grows as rows are filled.
        self.filling = torch.empty((len(self), *self.sample_shape), dtype=torch.uint8)
        self.filled = torch.zeros(len(self), dtype=torch.bool)

    def keep_rows(self, indices: torch.Tensor, batch: torch.Tensor) -> None:
        """With ``cache="fill"``: store the uint8 ``batch`` read at ``indices``; when every row
        is stored, the filling becomes ``cache``. Does nothing otherwise.

        Args:
            indices: ``(B,)`` positions in ``[0, N)``.
            batch: ``(B, C, H, W)`` uint8, the rows ``read_batch(indices, as_uint8=True)`` gave.
        """
        if self.filling is None or self.filled is None:
            return
        self.filling[indices] = batch
        self.filled[indices] = True
        if bool(self.filled.all()):
            self.cache, self.filling, self.filled = self.filling, None, None

    def fill_missing(self, limit: int) -> bool:
        """With ``cache="fill"``: decode the rows not read yet here, if there are at most
        ``limit`` (an epoch's dropped last batch), completing the cache; whether it is complete.

        Args:
            limit: the most rows to decode in this process.
        """
        if self.filled is None:
            return self.cache is not None
        missing = torch.nonzero(~self.filled).flatten()
        if len(missing) > limit:
            return False
        for chunk in torch.split(missing, 256):
            self.keep_rows(chunk, self.read_batch(chunk.tolist(), as_uint8=True))
        return self.cache is not None

    def __getstate__(self) -> dict:
        """The dataset without a cache being filled (a worker decodes; it never fills)."""
        state = dict(self.__dict__)
        state["filling"] = state["filled"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        """Restore a pickled dataset (also one pickled before ``cache="fill"`` existed).

        Args:
            state: what ``__getstate__`` returned.
        """
        state.setdefault("filling", None)
        state.setdefault("filled", None)
        self.__dict__.update(state)

    def select(self, indices: torch.Tensor, name: str | None = None) -> ImageFolderDataset:
        """The samples at ``indices`` (a 1-D integer tensor), as a new dataset.

        A cache is sliced along: the new dataset holds a copy of the selected rows, and a cache
        being filled carries the selected rows and their state.

        Args:
            indices: positions of the samples to keep.
            name: the new dataset's name (default: this one's).
        """
        out = ImageFolderDataset.__new__(ImageFolderDataset)
        out.__dict__.update(self.__dict__)
        out.files = [self.files[int(i)] for i in indices]
        out.labels = self.labels[indices]
        out.name = name or self.name
        out.cache = self.cache[indices] if self.cache is not None else None
        out.filling = self.filling[indices] if self.filling is not None else None
        out.filled = self.filled[indices] if self.filled is not None else None
        return out

    def __repr__(self) -> str:
        cached = ", cache=uint8" if self.cache is not None else ""
        if self.filled is not None:
            cached = f", cache=filling {int(self.filled.sum())}/{len(self)}"
        return (
            f"ImageFolderDataset(name={self.name!r}, n={len(self)}, "
            f"sample_shape={self.sample_shape}{cached})"
        )


class MemmapArrayDataset(Dataset):
    """Samples of a ``.npy`` or uncompressed IDX file read through a memory map.

    Built by [`load_array`][vqkit.data.load_array] / ``load_idx_images`` with
    ``lazy=True``. Only the pages of the items read are loaded; items equal the in-memory path's
    values exactly (integers scaled by their type's maximum, layout as ``load_array``'s).

    Args:
        path: the file.
        dtype: numpy dtype of the stored values.
        offset: byte offset of the first value.
        shape: the stored shape ``(N, ...)``.
        layout: ``"nchw"`` or ``"nhwc"`` for 4-D arrays (already resolved from ``"auto"``).
        fortran_order: whether the ``.npy`` stores the array in Fortran order.
        labels: optional ``(N,)`` integer labels.
        indices: the stored rows this dataset shows (all of them by default).
        name: a short name for logs.
        report: what the loader read.
    """

    def __init__(
        self,
        path: str,
        *,
        dtype: Any,
        offset: int,
        shape: tuple[int, ...],
        layout: str = "nchw",
        fortran_order: bool = False,
        labels: torch.Tensor | None = None,
        indices: torch.Tensor | None = None,
        name: str = "array",
        report: LoadReport | None = None,
    ) -> None:
        import numpy as np

        self.path = str(path)
        self.dtype = np.dtype(dtype)
        self.offset = int(offset)
        self.shape = tuple(int(s) for s in shape)
        self.layout = layout
        self.fortran_order = fortran_order
        self.indices = indices if indices is not None else torch.arange(self.shape[0])
        self.labels = labels
        self.name = name
        self.report = report if report is not None else LoadReport(self.path, len(self.indices))
        self._array = None

    def _map(self):
        import numpy as np

        if self._array is None:
            self._array = np.memmap(
                self.path,
                dtype=self.dtype,
                mode="r",
                offset=self.offset,
                shape=self.shape,
                order="F" if self.fortran_order else "C",
            )
        return self._array

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_array"] = None  # each process maps the file itself
        return state

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one sample: ``(C, H, W)`` images, ``(1, H, W)`` grayscale, ``(D,)``."""
        rest = self.shape[1:]
        if len(rest) == 2:
            return (1, *rest)
        if len(rest) == 3 and self.layout == "nhwc":
            return (rest[2], rest[0], rest[1])
        return rest

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: Any) -> torch.Tensor:
        from vqkit.data._convert import to_image_tensor

        row = int(self.indices[_index(index, len(self))])
        array = self._map()[row : row + 1]  # (1, ...): only these pages are read
        item = to_image_tensor(array, layout=self.layout, source=self.path)[0]
        if item.is_floating_point() and not torch.isfinite(item).all():
            raise ValueError(f"{self.path}: sample {row} holds NaN or infinite values")
        return item

    def select(self, indices: torch.Tensor, name: str | None = None) -> MemmapArrayDataset:
        """The samples at ``indices`` (a 1-D integer tensor), as a new dataset."""
        out = MemmapArrayDataset.__new__(MemmapArrayDataset)
        out.__dict__.update(self.__getstate__())
        out.indices = self.indices[indices]
        out.labels = self.labels[indices] if self.labels is not None else None
        out.name = name or self.name
        return out

    def __repr__(self) -> str:
        return (
            f"MemmapArrayDataset(name={self.name!r}, n={len(self)}, "
            f"sample_shape={self.sample_shape}, path={self.path!r})"
        )
