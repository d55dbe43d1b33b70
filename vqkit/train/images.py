"""Pictures of a run, drawn with Pillow alone: image grids, latent index maps and loss curves."""

from __future__ import annotations

import colorsys
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "code_legend",
    "image_grid",
    "index_map_grid",
    "labelled",
    "loss_curves",
    "palette_colours",
    "save_image",
    "scatter_plot",
]


def _pil():
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError as exc:  # pragma: no cover - Pillow is in the `data` extra
        raise ImportError("drawing pictures needs Pillow: pip install 'vqkit[data]'") from exc
    return Image, ImageDraw, ImageFont


def image_grid(
    images: torch.Tensor,
    *,
    nrow: int = 8,
    padding: int = 2,
    scale: int = 1,
    pad_value: float = 1.0,
):
    """Tile images into one Pillow image, ``nrow`` per row.

    Args:
        images: ``(N, C, H, W)`` with C = 1 or 3, values in ``[0, 1]`` (clamped).
        nrow: images per row.
        padding: pixels between images (before scaling).
        scale: integer upscaling factor (nearest neighbour), e.g. 4 for 8×8 digits.
        pad_value: grey level of the padding.

    Returns:
        A ``PIL.Image.Image`` in mode ``"L"`` or ``"RGB"``.
    """
    import numpy as np

    Image, _, _ = _pil()
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"image_grid expects (N, 1 or 3, H, W) images, got {tuple(images.shape)}")
    if nrow < 1 or scale < 1 or padding < 0:
        raise ValueError(
            f"need nrow >= 1, scale >= 1, padding >= 0; got {nrow}, {scale}, {padding}"
        )
    n, c, h, w = images.shape
    ncol = min(nrow, n)
    rows = math.ceil(n / ncol)
    grid = torch.full(
        (c, rows * (h + padding) + padding, ncol * (w + padding) + padding), float(pad_value)
    )
    imgs = images.detach().float().cpu().clamp(0, 1)
    for i in range(n):
        r, k = divmod(i, ncol)
        top, left = padding + r * (h + padding), padding + k * (w + padding)
        grid[:, top : top + h, left : left + w] = imgs[i]
    array = (grid.numpy() * 255 + 0.5).astype(np.uint8)  # (C, H', W')
    image = Image.fromarray(array[0] if c == 1 else array.transpose(1, 2, 0))
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
    return image


def labelled(
    image,
    *,
    title: str = "",
    row_labels: Sequence[str] = (),
    row_height: int | None = None,
    label_width: int = 110,
):
    """``image`` with a title bar above it and a label left of each row (Pillow's default font).

    Args:
        image: a Pillow image (a grid from ``image_grid``).
        title: drawn above the image; "" for none.
        row_labels: one label per row of tiles, from the top; () for none.
        row_height: pixel height of one row (default: the image height / number of labels).
        label_width: width of the label column in pixels.

    Returns:
        A ``PIL.Image.Image`` in mode ``"RGB"``.
    """
    Image, ImageDraw, ImageFont = _pil()
    font = ImageFont.load_default()
    left = label_width if row_labels else 0
    top = 22 if title else 0
    canvas = Image.new("RGB", (image.width + left, image.height + top), "white")
    canvas.paste(image.convert("RGB"), (left, top))
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((left + 4, 5), title, fill="black", font=font)
    if row_labels:
        step = row_height or image.height / len(row_labels)
        for i, label in enumerate(row_labels):
            y = top + i * step + step / 2 - 6
            draw.text((6, y), label, fill="black", font=font)
    return canvas


def code_legend(codes: Sequence[int], codebook_size: int, *, width: int, columns: int = 8):
    """A legend strip: one swatch per code with its index, ``columns`` per row.

    Args:
        codes: code indices to show (e.g. the most frequent ones of a picture).
        codebook_size: K, which fixes the palette (the colours of ``palette_colours``).
        width: the strip's width in pixels.
        columns: swatches per row.
    """
    Image, ImageDraw, ImageFont = _pil()
    font = ImageFont.load_default()
    palette = _palette(codebook_size)
    rows = max(1, math.ceil(len(codes) / columns))
    canvas = Image.new("RGB", (width, 20 + 18 * rows), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((6, 3), f"code index colours (K = {codebook_size}; most used shown)", fill="black")
    cell = max(1, (width - 12) // columns)
    for i, code in enumerate(codes):
        r, c = divmod(i, columns)
        x, y = 6 + c * cell, 20 + 18 * r
        colour = tuple(int(v) for v in palette[int(code)])
        draw.rectangle([x, y + 2, x + 12, y + 14], fill=colour, outline="black")
        draw.text((x + 16, y + 2), str(int(code)), fill="black", font=font)
    return canvas


def _palette(k: int) -> np.ndarray:
    """``(K, 3)`` uint8 colours spread around the hue circle (golden-ratio steps)."""
    import numpy as np

    colours = []
    for i in range(k):
        hue = (i * 0.618033988749895) % 1.0
        lightness = 0.45 + 0.2 * ((i // 7) % 2)
        colours.append(colorsys.hls_to_rgb(hue, lightness, 0.75))
    return (np.array(colours) * 255).round().astype(np.uint8)


def index_map_grid(
    indices: torch.Tensor, codebook_size: int, *, nrow: int = 8, padding: int = 2, scale: int = 8
):
    """Colour each latent position by its code index (one colour per code) and tile the maps.

    Shape:
        - indices: ``(N, h, w)`` integers in ``[0, codebook_size)``
    """
    if indices.ndim != 3:
        raise ValueError(f"index_map_grid expects (N, h, w) indices, got {tuple(indices.shape)}")
    colours = palette_colours(indices, codebook_size)  # (N, 3, h, w)
    return image_grid(colours, nrow=nrow, padding=padding, scale=scale)


def palette_colours(indices: torch.Tensor, codebook_size: int) -> torch.Tensor:
    """One distinct colour per code: ``(N, h, w)`` indices → ``(N, 3, h, w)`` RGB in ``[0, 1]``."""
    palette = torch.from_numpy(_palette(codebook_size)).float() / 255  # (K, 3)
    return palette[indices.long().cpu()].permute(0, 3, 1, 2)  # (N, 3, h, w)


def save_image(image, path: str | Path) -> Path:
    """Save a Pillow image (PNG by extension), creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        return [low]
    raw = (high - low) / count
    step = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * step:
            step *= m
            break
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step) + 1)]


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def loss_curves(
    series: Mapping[str, Sequence[tuple[float, float]]],
    *,
    title: str = "",
    xlabel: str = "step",
    ylabel: str = "",
    size: tuple[int, int] = (640, 400),
    log_y: bool = False,
):
    """Line chart of one or more ``(x, y)`` series, with axes, ticks and a legend.

    Args:
        series: ``{"train/loss": [(step, value), ...], "val/loss": [...]}``.
        title: drawn above the chart.
        xlabel: name of the x axis.
        ylabel: name of the y axis (drawn vertically left of the ticks); "" for none.
        size: ``(width, height)`` in pixels.
        log_y: logarithmic y axis (positive values only).

    Returns:
        A ``PIL.Image.Image`` in mode ``"RGB"``.
    """
    Image, ImageDraw, ImageFont = _pil()
    width, height = size
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    points = {
        k: [(float(x), float(y)) for x, y in v if math.isfinite(float(y))]
        for k, v in series.items()
    }
    points = {k: v for k, v in points.items() if v}
    if log_y:
        points = {k: [(x, math.log10(y)) for x, y in v if y > 0] for k, v in points.items()}
        points = {k: v for k, v in points.items() if v}
    left, right, top, bottom = 70 + (16 if ylabel else 0), width - 20, 30, height - 45
    draw.text((left, 8), title, fill="black", font=font)
    draw.text(((left + right) // 2 - 10, height - 18), xlabel, fill="black", font=font)
    if ylabel:
        text = Image.new("RGB", (max(10, 7 * len(ylabel)), 14), "white")
        ImageDraw.Draw(text).text((0, 0), ylabel, fill="black", font=font)
        rotated = text.rotate(90, expand=True)
        image.paste(rotated, (2, max(0, (top + bottom) // 2 - rotated.height // 2)))
    draw.rectangle([left, top, right, bottom], outline="black")
    if not points:
        draw.text((left + 10, top + 10), "no data", fill="black", font=font)
        return image
    xs = [x for v in points.values() for x, _ in v]
    ys = [y for v in points.values() for _, y in v]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 == y0:
        y0, y1 = y0 - 0.5 * abs(y0 or 1), y1 + 0.5 * abs(y1 or 1)
    margin = 0.05 * (y1 - y0)
    y0, y1 = y0 - margin, y1 + margin

    def px(x: float, y: float) -> tuple[float, float]:
        return (
            left + (x - x0) / (x1 - x0) * (right - left),
            bottom - (y - y0) / (y1 - y0) * (bottom - top),
        )

    for t in _ticks(y0, y1):
        _, yy = px(x0, t)
        draw.line([left, yy, right, yy], fill=(230, 230, 230))
        label = _fmt(10**t) if log_y else _fmt(t)
        draw.text((left - 8 - 6 * len(label), yy - 6), label, fill="black", font=font)
    x_ticks = _ticks(x0, x1)
    if all(float(x).is_integer() for x in xs):  # steps and epochs: no "2.5" ticks
        x_ticks = [t for t in x_ticks if abs(t - round(t)) < 1e-9] or x_ticks
    for t in x_ticks:
        xx, _ = px(t, y0)
        draw.line([xx, bottom, xx, bottom + 4], fill="black")
        draw.text((xx - 10, bottom + 6), _fmt(t), fill="black", font=font)
    colours = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189)]
    for i, (name, values) in enumerate(points.items()):
        colour = colours[i % len(colours)]
        coords = [px(x, y) for x, y in values]
        if len(coords) > 1:
            draw.line(coords, fill=colour, width=2)
        for cx, cy in coords if len(coords) <= 50 else coords[-1:]:
            draw.ellipse([cx - 2, cy - 2, cx + 2, cy + 2], fill=colour)
        ly = top + 8 + 14 * i
        draw.line([right - 150, ly + 6, right - 130, ly + 6], fill=colour, width=3)
        draw.text((right - 125, ly), name, fill="black", font=font)
    return image


def scatter_plot(
    series: Mapping[str, torch.Tensor], *, size: tuple[int, int] = (480, 480), title: str = ""
):
    """Scatter of 2-D point sets ``{"data": (N, 2), "samples": (M, 2)}`` on shared axes."""
    Image, ImageDraw, ImageFont = _pil()
    width, height = size
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    pts = {k: v.detach().float().cpu() for k, v in series.items() if v.numel()}
    for k, v in pts.items():
        if v.ndim != 2 or v.shape[1] != 2:
            raise ValueError(f"scatter_plot expects (N, 2) points, got {k}: {tuple(v.shape)}")
    left, right, top, bottom = 50, width - 10, 30, height - 30
    draw.rectangle([left, top, right, bottom], outline="black")
    draw.text((left, 8), title, fill="black", font=font)
    if not pts:
        return image
    everything = torch.cat(list(pts.values()))
    low, high = everything.quantile(0.001, dim=0), everything.quantile(0.999, dim=0)
    span = (high - low).clamp(min=1e-6)
    low, high = low - 0.05 * span, high + 0.05 * span
    colours = [(31, 119, 180), (255, 127, 14), (44, 160, 44)]
    for i, (name, v) in enumerate(pts.items()):
        colour = colours[i % len(colours)]
        xs = left + (v[:, 0] - low[0]) / (high[0] - low[0]) * (right - left)
        ys = bottom - (v[:, 1] - low[1]) / (high[1] - low[1]) * (bottom - top)
        for x, y in zip(xs.tolist(), ys.tolist(), strict=True):
            if left <= x <= right and top <= y <= bottom:
                draw.rectangle([x - 1, y - 1, x, y], fill=colour)
        ly = top + 6 + 14 * i
        draw.rectangle([right - 90, ly + 3, right - 84, ly + 9], fill=colour)
        draw.text((right - 78, ly), name, fill="black", font=font)
    for t in _ticks(float(low[0]), float(high[0])):
        x = left + (t - low[0]) / (high[0] - low[0]) * (right - left)
        draw.text((float(x) - 8, bottom + 6), _fmt(t), fill="black", font=font)
    for t in _ticks(float(low[1]), float(high[1])):
        y = bottom - (t - low[1]) / (high[1] - low[1]) * (bottom - top)
        draw.text((5, float(y) - 6), _fmt(t), fill="black", font=font)
    return image
