"""Image folders read with Pillow: resize or crop, grayscale or RGB, inconsistent sizes reported.

Every image file under a folder (recursively) becomes one sample. Files whose size differs from
the folder's common size are left out with a report (medical image exports often mix a few
differently sized scans into a folder), unless a target ``image_size`` is given, in which case
every image is resized (``fit="stretch"``) or resized and centre-cropped (``fit="crop"``).
Images in sub-folders get the sub-folder's index (sorted by name) as their label.
"""

from __future__ import annotations

import errno
import os
import warnings
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    import numpy as np

    from vqkit.data.lazy import ImageFolderDataset

from vqkit.data._convert import unit_scale
from vqkit.data.dataset import ArrayDataset, LoadReport

__all__ = ["IMAGE_EXTENSIONS", "load_image_folder"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm")
_GRAY_MODES = ("1", "L", "LA", "P", "I", "I;16", "I;16B", "I;16L", "F")
_WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "F")  # more than 8 bits per pixel


def _image_module():
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - Pillow is in the `data` extra
        raise ImportError("reading image folders needs Pillow: pip install 'vqkit[data]'") from exc
    return Image


def _as_size(image_size: Any) -> tuple[int, int] | None:
    if image_size is None:
        return None
    if isinstance(image_size, int) and not isinstance(image_size, bool):
        image_size = (image_size, image_size)
    if (
        not isinstance(image_size, (tuple, list))
        or len(image_size) != 2
        or any(isinstance(s, bool) or not isinstance(s, int) or s <= 0 for s in image_size)
    ):
        raise ValueError(
            f"image_size must be a positive int or (height, width) of positive ints, "
            f"got {image_size!r}"
        )
    return (image_size[0], image_size[1])


def _check_options(mode, fit, on_mismatch, on_unreadable, extensions) -> tuple[str, ...]:
    """Validate the folder options shared by the in-memory and the lazy path; the suffixes."""
    if mode not in (None, "L", "RGB"):
        raise ValueError(f"mode must be 'L', 'RGB' or None, got {mode!r}")
    for name, value, choices in (
        ("fit", fit, ("crop", "stretch")),
        ("on_mismatch", on_mismatch, ("skip", "error")),
        ("on_unreadable", on_unreadable, ("skip", "error")),
    ):
        if not isinstance(value, str) or value not in choices:
            raise ValueError(f"{name} must be {' or '.join(map(repr, choices))}, got {value!r}")
    if (
        isinstance(extensions, str)
        or not isinstance(extensions, (tuple, list))
        or not extensions
        or not all(isinstance(e, str) and e.startswith(".") for e in extensions)
    ):
        raise ValueError(
            f"extensions must be a non-empty tuple of suffixes such as ('.png', '.jpg'), "
            f"got {extensions!r}"
        )
    return tuple(e.lower() for e in extensions)


def _list_files(root: Path, suffixes: tuple[str, ...], report: LoadReport) -> list[Path]:
    """Image files under ``root`` in sorted order, following folder symlinks once.

    Dangling and looping symlinks, folders reached twice (a symlink loop) and folders that
    cannot be listed go into ``report.skipped``; files with other suffixes are counted in
    ``report.ignored``.
    """
    files: list[Path] = []
    visited = {os.path.realpath(root)}

    def unlistable(exc: OSError) -> None:
        report.skipped[str(exc.filename)] = f"cannot list folder ({exc.strerror})"

    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=unlistable):
        kept = []
        for d in sorted(dirnames):
            full = Path(dirpath) / d
            real = os.path.realpath(full)
            if real in visited:
                report.skipped[str(full)] = (
                    f"symlink loop: folder {real!r} is already read through another path"
                )
                continue
            visited.add(real)
            kept.append(d)
        dirnames[:] = kept
        for name in filenames:
            full = Path(dirpath) / name
            if full.is_symlink() and not full.exists():
                try:
                    os.stat(full)
                    reason = "unreadable symlink"
                except OSError as exc:
                    if exc.errno == errno.ELOOP:
                        reason = "symlink loop (the link points back to itself)"
                    else:
                        reason = f"dangling symlink to {os.readlink(full)!r} ({exc.strerror})"
                report.skipped[str(full)] = reason
                continue
            if full.suffix.lower() in suffixes:
                files.append(full)
            else:
                report.ignored += 1
    return sorted(files)


def _unreadable(file: Path, exc: Exception) -> str:
    """Why a file could not be read, for messages and reports."""
    try:
        if file.stat().st_size == 0:
            return "empty file (0 bytes)"
    except OSError:
        pass
    return f"{type(exc).__name__}: {exc}"


def _is_gray(img) -> bool:
    import numpy as np

    if img.mode == "P":
        palette = np.asarray(img.convert("RGB"))
        return bool(
            (palette[..., 0] == palette[..., 1]).all()
            and (palette[..., 1] == palette[..., 2]).all()
        )
    return img.mode in _GRAY_MODES


def _raw_array(img, mode: str, size: tuple[int, int] | None, fit: str) -> np.ndarray:
    """One image as ``(C, H, W)``: uint8 for 8-bit data, float32 in [0, 1] for 16-bit / float."""
    import numpy as np

    Image = _image_module()
    if mode == "L" and img.mode in ("I", "I;16", "I;16B", "I;16L"):
        # 16-bit grayscale: keep the precision by resizing in float mode.
        planes = [Image.fromarray(unit_scale(np.asarray(img).astype(np.uint16)), mode="F")]
    elif mode == "L" and img.mode == "F":
        planes = [img]
    else:
        planes = [img if img.mode == mode else img.convert(mode)]  # convert would copy
    if size is not None:
        h, w = size
        planes = [_fit(p, h, w, fit) for p in planes]
    plane = planes[0]
    array = np.asarray(plane, dtype=np.float32) if plane.mode == "F" else np.asarray(plane)
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def _to_array(img, mode: str, size: tuple[int, int] | None, fit: str) -> np.ndarray:
    """One image as float32 ``(C, H, W)`` in ``[0, 1]``, resized when ``size`` is given."""
    import numpy as np

    array = _raw_array(img, mode, size, fit)
    return array if array.dtype == np.float32 else unit_scale(array)


def _fit(img, h: int, w: int, fit: str):
    Image = _image_module()
    if fit == "stretch":
        return img.resize((w, h), Image.Resampling.BICUBIC if img.mode != "F" else Image.BILINEAR)
    # "crop": scale the shorter side to the target, then cut the centre.
    scale = max(h / img.height, w / img.width)
    new_w, new_h = max(w, round(img.width * scale)), max(h, round(img.height * scale))
    img = img.resize(
        (new_w, new_h), Image.Resampling.BICUBIC if img.mode != "F" else Image.BILINEAR
    )
    left, top = (new_w - w) // 2, (new_h - h) // 2
    return img.crop((left, top, left + w, top + h))


def load_image_folder(
    path: str | Path,
    *,
    image_size: int | tuple[int, int] | None = None,
    mode: str | None = None,
    fit: str = "crop",
    on_mismatch: str = "skip",
    on_unreadable: str = "error",
    extensions: tuple[str, ...] = IMAGE_EXTENSIONS,
    lazy: bool = False,
    cache: bool | str = False,
) -> ArrayDataset | ImageFolderDataset:
    """Read every image under ``path``: into one ``(N, C, H, W)`` float tensor, or lazily.

    Args:
        path: a folder; files are found recursively (folder symlinks are followed once) and read
            in sorted order.
        image_size: target ``H`` (square) or ``(H, W)``. None keeps the images' own size: the
            most common size wins and images of other sizes are handled by ``on_mismatch``.
        mode: ``"L"`` (grayscale, 1 channel) or ``"RGB"`` (3 channels); None picks ``"L"`` when
            every image is grayscale, else ``"RGB"``. 16-bit grayscale keeps its precision.
        fit: with ``image_size``: ``"crop"`` scales the shorter side and cuts the centre
            (keeps the aspect ratio), ``"stretch"`` resizes to the target directly.
        on_mismatch: ``"skip"`` leaves out images whose size differs from the common size and
            warns with a report (``dataset.report``); ``"error"`` raises instead.
        on_unreadable: ``"error"`` raises on a file Pillow cannot read; ``"skip"`` reports it.
        extensions: file name endings counted as images (case-insensitive).
        lazy: return an ``ImageFolderDataset`` that reads only the image
            headers now and decodes each image when it is indexed (in DataLoader workers with
            ``TrainConfig.num_workers``), instead of decoding every image into memory.
            With ``lazy=True`` a file whose header reads but whose pixels are truncated raises
            when it is indexed, naming the file.
        cache: with ``lazy=True``, decode every image once into a uint8 tensor held in memory
            (``N·C·H·W`` bytes, a quarter of the float32 path's); refused when that does not
            fit in half the available memory or when the images are 16-bit. ``"fill"`` makes
            the same check and fills that tensor with the batches training reads (decoded by the
            DataLoader workers in the first epoch; later epochs are sliced from memory).

    Returns:
        An [`ArrayDataset`][vqkit.data.ArrayDataset] (or an ``ImageFolderDataset`` with ``lazy``)
        with ``labels`` from sub-folder names (all 0 without them) and ``report`` listing every
        file that was left out and why: unreadable, empty or truncated images, dangling or
        looping symlinks, odd sizes. Files with other suffixes are counted in
        ``report.ignored``.

    Raises:
        FileNotFoundError: ``path`` is not a folder.
        ValueError: no image files, an unreadable file (with ``on_unreadable="error"``), sizes
            that differ (with ``on_mismatch="error"``), or bad arguments.
    """
    import numpy as np

    from vqkit.data.lazy import ImageFolderDataset

    Image = _image_module()
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or a path, got {type(path).__name__}")
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {str(root)!r} does not exist or is not a folder")
    suffixes = _check_options(mode, fit, on_mismatch, on_unreadable, extensions)
    size = _as_size(image_size)
    if not isinstance(lazy, bool):
        raise TypeError(f"lazy must be True or False, got {lazy!r}")
    if not isinstance(cache, bool) and cache != "fill":
        raise TypeError(
            f"cache must be True or False, got {cache!r} (or 'fill': cache the batches "
            "training reads)"
        )
    if cache and not lazy:
        raise ValueError("cache=True applies to lazy=True (the in-memory path holds everything)")
    report = LoadReport(str(root))
    files = _list_files(root, suffixes, report)
    if not files:
        raise ValueError(
            f"no image files ({', '.join(suffixes)}) found in {str(root)!r}; "
            "point to a folder that contains images (sub-folders are searched too)"
            + (f"; left out: {report.summary()}" if report.skipped else "")
        )

    # Pass 1: open every file, note its size and colour; unreadable files fail or are reported.
    # The in-memory path decodes here; the lazy path reads headers only.
    images: dict[Path, Any] = {}
    for file in files:
        try:
            with Image.open(file) as img:
                if lazy and img.mode == "P":  # a palette is grey only if its used colours are
                    img.load()
                    grey = _is_gray(img)
                    images[file] = _Header(img.height, img.width, "L" if grey else "RGB")
                elif lazy:
                    images[file] = _Header(img.height, img.width, img.mode)
                else:
                    img.load()
                    images[file] = img.copy()
        except Exception as exc:  # Pillow raises several types for broken files
            reason = _unreadable(file, exc)
            if on_unreadable == "error":
                raise ValueError(
                    f"cannot read image file {str(file)!r}: {reason} "
                    "(pass on_unreadable='skip' to leave it out)"
                ) from exc
            report.skipped[str(file)] = f"unreadable ({reason})"
    if not images:
        raise ValueError(f"none of the {len(files)} image files in {str(root)!r} could be read")

    if size is None:
        sizes = Counter((img.height, img.width) for img in images.values())
        (common, _), *others = sizes.most_common()
        if others:
            odd = {f: (img.height, img.width) for f, img in images.items()}
            odd = {f: s for f, s in odd.items() if s != common}
            if on_mismatch == "error":
                examples = ", ".join(f"{f.name} {h}x{w}" for f, (h, w) in list(odd.items())[:5])
                raise ValueError(
                    f"images in {str(root)!r} have different sizes: {len(odd)} of {len(images)} "
                    f"differ from the common {common[0]}x{common[1]} (H x W), e.g. {examples}; "
                    "pass image_size to resize them or on_mismatch='skip' to leave them out"
                )
            for f, (h, w) in odd.items():
                report.skipped[str(f)] = (
                    f"size {h}x{w} differs from the common size {common[0]}x{common[1]}"
                )
                del images[f]
    if mode is None:
        mode = "L" if all(_is_gray(img) for img in images.values()) else "RGB"

    # Labels are the index of the first-level sub-folder (0 for the root).
    classes = sorted({f.relative_to(root).parts[0] for f in images if f.parent != root})
    class_index = {name: i for i, name in enumerate(classes)}
    labels = []
    for file in images:
        parts = file.relative_to(root).parts
        labels.append(class_index[parts[0]] if len(parts) > 1 else 0)
    report.kept = len(images)
    if report.skipped:
        warnings.warn(report.summary(), UserWarning, stacklevel=2)
    name = root.name or "images"
    if lazy:
        first = next(iter(images.values()))
        h, w = size if size is not None else (first.height, first.width)
        sixteen_bit = mode == "L" and any(img.mode in _WIDE_MODES for img in images.values())
        return ImageFolderDataset(
            [str(f) for f in images],
            torch.tensor(labels),
            mode=mode,
            image_size=(h, w),
            fit=fit,
            resize=size is not None,
            name=name,
            report=report,
            cache=cache,
            wide=sixteen_bit,
        )
    # Pass 2: convert.
    arrays = [_to_array(img, mode, size, fit) for img in images.values()]
    data = torch.from_numpy(np.stack(arrays))  # (N, C, H, W)
    return ArrayDataset(data, torch.tensor(labels), name=name, report=report)


class _Header:
    """Size and colour mode of an image whose pixels are not decoded yet."""

    __slots__ = ("height", "mode", "width")

    def __init__(self, height: int, width: int, mode: str) -> None:
        self.height, self.width, self.mode = height, width, mode
