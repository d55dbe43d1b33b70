"""The viewer's pictures: code maps, the four-panel figure, the usage histogram, the code atlas,
the hoverable SVG code grid, and PNG files written atomically.

Drawn with Pillow (and matplotlib for the histogram, from the ``viewer`` extra) from what a
``vqkit.viewer.state.ViewerState`` computes; no UI toolkit is imported.
"""

from __future__ import annotations

import html
import math
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from vqkit.train.images import image_grid, labelled, palette_colours

if TYPE_CHECKING:
    from vqkit.viewer.state import Analysis, ViewerState

__all__ = [
    "atlas_picture",
    "code_grid_svg",
    "code_map",
    "grid_picture",
    "panel",
    "save_png",
    "usage_histogram",
]


def code_grid_svg(
    indices: torch.Tensor,
    codebook_size: int,
    usage: torch.Tensor | None = None,
    *,
    cell: int = 36,
    element_id: str = "code-grid",
) -> str:
    """An SVG of a code grid: one coloured cell per latent position with its code index written
    in it and a ``<title>`` (the hover text) giving its position, its code and that code's usage.

    Args:
        indices: a code grid ``(h, w)``.
        codebook_size: K (fixes the colours, those of ``vqkit.train.images.palette_colours``).
        usage: ``(K,)`` counts of each code over the dataset, or None.
        cell: side of a cell in pixels.
        element_id: the ``id`` of the ``<svg>`` element.
    """
    if not isinstance(indices, torch.Tensor) or indices.ndim != 2:
        raise ValueError("code_grid_svg: indices must be a (h, w) code grid")
    h, w = indices.shape
    colours = (palette_colours(indices[None], codebook_size)[0] * 255).round().int()  # (3, h, w)
    total = int(usage.sum()) if usage is not None else 0
    font = max(8, cell // 3)
    parts = [
        f'<svg id="{html.escape(element_id)}" xmlns="http://www.w3.org/2000/svg" '
        f'width="{w * cell}" height="{h * cell}" viewBox="0 0 {w * cell} {h * cell}" '
        f'role="img" aria-label="code indices, {h} by {w}">'
    ]
    for i in range(h):
        for j in range(w):
            code = int(indices[i, j])
            r, g, b = (int(v) for v in colours[:, i, j])
            text = f"row {i}, column {j}: code {code}"
            if usage is not None:
                count = int(usage[code])
                share = 100 * count / total if total else 0.0
                text += f" (used {count} times, {share:.1f}% of all cells)"
            ink = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 140 else "white"
            parts.append(
                f'<g class="code-cell" data-row="{i}" data-col="{j}" data-code="{code}">'
                f"<title>{html.escape(text)}</title>"
                f'<rect x="{j * cell}" y="{i * cell}" width="{cell}" height="{cell}" '
                f'fill="rgb({r},{g},{b})" stroke="white" stroke-width="1"/>'
                f'<text x="{j * cell + cell / 2}" y="{i * cell + cell / 2 + font / 3}" '
                f'font-size="{font}" text-anchor="middle" fill="{ink}" '
                f'font-family="sans-serif">{code}</text></g>'
            )
    parts.append("</svg>")
    return "".join(parts)


def save_png(image: Any, path: str | Path) -> Path:
    """Write a Pillow image to ``path`` as PNG atomically (a temporary file, then a rename), so
    that no half-written picture is ever left behind."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"save_png: expected a .png file name, got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            image.save(handle, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def code_map(state: ViewerState, indices: torch.Tensor, scale: int | None = None) -> torch.Tensor:
    """A code grid ``(h, w)`` as an RGB picture ``(3, H·s, W·s)`` the size of the shown
    images: one colour per code, thin white lines between cells."""
    indices = state.check_codes(indices)
    s = scale or state.display_scale()
    _, height, width = state.image_shape
    colours = palette_colours(indices[None], state.codebook_size)  # (1, 3, h, w)
    big = F.interpolate(colours, size=(height * s, width * s), mode="nearest")[0]
    h, w = state.latent_size
    for i in range(1, h):
        big[:, round(i * height * s / h), :] = 1.0
    for j in range(1, w):
        big[:, :, round(j * width * s / w)] = 1.0
    return big


def panel(state: ViewerState, analysis: Analysis, *, scale: int | None = None) -> Any:
    """The four pictures of one image side by side with titles (a Pillow image): input,
    reconstruction, absolute difference and code indices, with PSNR / SSIM below."""
    from PIL import Image, ImageDraw

    s = scale or state.display_scale(160)
    tiles = [analysis.input, analysis.reconstruction, analysis.difference]
    tiles = [t.expand(3, -1, -1) if t.shape[0] == 1 else t for t in tiles]
    cells = "cell" if analysis.edited == 1 else "cells"
    edited = f" ({analysis.edited} {cells} edited)" if analysis.edited else ""
    titles = [
        "input",
        "reconstruction" + (" (edited)" if analysis.edited else ""),
        "|difference|",
        "code indices",
    ]
    pictures = [image_grid(t[None], nrow=1, padding=0, scale=s) for t in tiles]
    pictures.append(image_grid(code_map(state, analysis.indices, s)[None], nrow=1, padding=0))
    pictures = [labelled(p, title=t) for p, t in zip(pictures, titles, strict=True)]
    gap = 8
    width = sum(p.width for p in pictures) + gap * (len(pictures) + 1)
    height = max(p.height for p in pictures) + 30
    canvas = Image.new("RGB", (width, height), "white")
    x = gap
    for p in pictures:
        canvas.paste(p, (x, 0))
        x += p.width + gap
    text = f"{state.name}: PSNR {analysis.psnr:.2f} dB, SSIM {analysis.ssim:.3f}{edited}"
    ImageDraw.Draw(canvas).text((gap, height - 22), text, fill="black")
    return canvas


def usage_histogram(state: ViewerState, *, size: tuple[float, float] = (8.0, 3.0)) -> Any:
    """The codebook usage over the dataset as a bar chart (a Pillow image, matplotlib)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    counts = state.usage().double()
    share = 100 * counts / counts.sum().clamp(min=1)
    used = int((counts > 0).sum())
    figure, axes = plt.subplots(figsize=size, dpi=100)
    every = torch.arange(state.codebook_size)[None, None]  # (1, 1, K)
    colours = palette_colours(every, state.codebook_size)[0, :, 0].t().numpy()  # (K, 3)
    axes.bar(range(state.codebook_size), share.numpy(), width=1.0, color=colours)
    axes.set_xlabel("code index")
    axes.set_ylabel("share of latent cells (%)")
    axes.set_xlim(-0.5, state.codebook_size - 0.5)
    n = len(state.dataset_codes())
    axes.set_title(f"codebook usage over {n} images: {used} of {state.codebook_size} codes used")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def atlas_picture(state: ViewerState, *, columns: int = 16, scale: int | None = None) -> Any:
    """Every code's decoded full grid, labelled with its index and usage (a Pillow image)."""
    from PIL import Image, ImageDraw

    images = state.code_images()
    counts = state.usage() if state.data is not None else None
    s = scale or max(1, 64 // state.image_shape[1])
    tile_h, tile_w = state.image_shape[1] * s, state.image_shape[2] * s
    cell_w, cell_h = max(tile_w, 44) + 6, tile_h + 28
    columns = min(columns, state.codebook_size)
    rows = math.ceil(state.codebook_size / columns)
    canvas = Image.new("RGB", (columns * cell_w + 6, rows * cell_h + 28), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((6, 6), "code atlas: each code filling the whole grid, decoded", fill="black")
    for k in range(state.codebook_size):
        r, c = divmod(k, columns)
        x, y = 6 + c * cell_w, 28 + r * cell_h
        tile = images[k].expand(3, -1, -1) if images.shape[1] == 1 else images[k]
        canvas.paste(image_grid(tile[None], nrow=1, padding=0, scale=s).convert("RGB"), (x, y))
        label = f"{k}" + (f" ({int(counts[k])})" if counts is not None else "")
        draw.text((x, y + tile_h + 2), label, fill="black")
    return canvas


def grid_picture(
    state: ViewerState, images: torch.Tensor, *, title: str, nrow: int = 8, target: int = 96
) -> Any:
    """Images ``(N, C, H, W)`` tiled with a title (a Pillow image), each shown about ``target``
    pixels high."""
    from PIL import Image, ImageDraw

    s = max(1, target // images.shape[-2])
    grid = image_grid(images, nrow=nrow, scale=s).convert("RGB")
    text = int(ImageDraw.Draw(grid).textlength(title)) + 12
    if text > grid.width:  # a title wider than the tiles widens the picture, never is cut
        wide = Image.new("RGB", (text, grid.height), "white")
        wide.paste(grid, (0, 0))
        grid = wide
    return labelled(grid, title=title)
