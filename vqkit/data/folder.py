"""Image folders read with Pillow: resize or crop, grayscale or RGB, inconsistent sizes reported.

Every image file under a folder (recursively) becomes one sample. Files whose size differs from
the folder's common size are left out with a report (medical image exports often mix a few
differently sized scans into a folder), unless a target ``image_size`` is given, in which case
every image is resized (``fit="stretch"``) or resized and centre-cropped (``fit="crop"``).
Images in sub-folders get the sub-folder's index (sorted by name) as their label.
"""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    import numpy as np

from vqkit.data._convert import unit_scale
from vqkit.data.dataset import ArrayDataset, LoadReport

__all__ = ["IMAGE_EXTENSIONS", "load_image_folder"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm")
_GRAY_MODES = ("1", "L", "LA", "P", "I", "I;16", "I;16B", "I;16L", "F")


def _image_module():
    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - Pillow is in the `data` extra
        raise ImportError("reading image folders needs Pillow: pip install 'vqkit[data]'") from exc
    return Image


def _as_size(image_size: int | tuple[int, int] | None) -> tuple[int, int] | None:
    if image_size is None:
        return None
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    if len(image_size) != 2 or any(not isinstance(s, int) or s <= 0 for s in image_size):
        raise ValueError(f"image_size must be a positive int or (height, width), got {image_size}")
    return tuple(image_size)


def _is_gray(img) -> bool:
    import numpy as np

    if img.mode == "P":
        palette = np.asarray(img.convert("RGB"))
        return bool(
            (palette[..., 0] == palette[..., 1]).all()
            and (palette[..., 1] == palette[..., 2]).all()
        )
    return img.mode in _GRAY_MODES


def _to_array(img, mode: str, size: tuple[int, int] | None, fit: str) -> np.ndarray:
    """One image as float32 ``(C, H, W)`` in ``[0, 1]``, resized when ``size`` is given."""
    import numpy as np

    Image = _image_module()
    if mode == "L" and img.mode in ("I", "I;16", "I;16B", "I;16L"):
        # 16-bit grayscale: keep the precision by resizing in float mode.
        planes = [Image.fromarray(unit_scale(np.asarray(img).astype(np.uint16)), mode="F")]
    elif mode == "L" and img.mode == "F":
        planes = [img]
    else:
        planes = [img.convert(mode)]
    if size is not None:
        h, w = size
        planes = [_fit(p, h, w, fit) for p in planes]
    arrays = [
        np.asarray(p, dtype=np.float32) if p.mode == "F" else unit_scale(np.asarray(p))
        for p in planes
    ]
    array = arrays[0]
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


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
) -> ArrayDataset:
    """Read every image under ``path`` into one ``(N, C, H, W)`` float tensor in ``[0, 1]``.

    Args:
        path: a folder; files are found recursively and read in sorted order.
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

    Returns:
        An :class:`ArrayDataset` with ``labels`` from sub-folder names (all 0 without them) and
        ``report`` listing every file that was left out and why.

    Raises:
        FileNotFoundError: ``path`` is not a folder.
        ValueError: no image files, an unreadable file (with ``on_unreadable="error"``), sizes
            that differ (with ``on_mismatch="error"``), or bad arguments.
    """
    import numpy as np

    Image = _image_module()
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {str(root)!r} does not exist or is not a folder")
    if mode not in (None, "L", "RGB"):
        raise ValueError(f"mode must be 'L', 'RGB' or None, got {mode!r}")
    if fit not in ("crop", "stretch"):
        raise ValueError(f"fit must be 'crop' or 'stretch', got {fit!r}")
    if on_mismatch not in ("skip", "error"):
        raise ValueError(f"on_mismatch must be 'skip' or 'error', got {on_mismatch!r}")
    if on_unreadable not in ("skip", "error"):
        raise ValueError(f"on_unreadable must be 'skip' or 'error', got {on_unreadable!r}")
    size = _as_size(image_size)
    suffixes = tuple(e.lower() for e in extensions)
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        raise ValueError(
            f"no image files ({', '.join(suffixes)}) found in {str(root)!r}; "
            "point to a folder that contains images (sub-folders are searched too)"
        )
    report = LoadReport(str(root))

    # Pass 1: open every file, note its size and colour; unreadable files fail or are reported.
    images = {}
    for file in files:
        try:
            with Image.open(file) as img:
                img.load()
                images[file] = img.copy()
        except Exception as exc:  # Pillow raises several types for broken files
            message = f"cannot read image file {str(file)!r}: {type(exc).__name__}: {exc}"
            if on_unreadable == "error":
                raise ValueError(message + " (pass on_unreadable='skip' to leave it out)") from exc
            report.skipped[str(file)] = f"unreadable ({type(exc).__name__}: {exc})"
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

    # Pass 2: convert; labels are the index of the first-level sub-folder (0 for the root).
    classes = sorted({f.relative_to(root).parts[0] for f in images if f.parent != root})
    class_index = {name: i for i, name in enumerate(classes)}
    arrays, labels = [], []
    for file, img in images.items():
        arrays.append(_to_array(img, mode, size, fit))
        parts = file.relative_to(root).parts
        labels.append(class_index[parts[0]] if len(parts) > 1 else 0)
    report.kept = len(arrays)
    if report.skipped:
        warnings.warn(report.summary(), UserWarning, stacklevel=2)
    data = torch.from_numpy(np.stack(arrays))  # (N, C, H, W)
    return ArrayDataset(data, torch.tensor(labels), name=root.name or "images", report=report)
