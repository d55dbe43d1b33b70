"""What the viewer computes, without any UI: codes, reconstructions, edits, the code atlas, prior
samples and completions of a trained discrete model, over one dataset.

Everything goes through the discrete-model contract (``vqkit.contracts.DiscreteModel``):
``encode_indices``, ``decode_indices``, ``codebook_size``, ``latent_size`` and ``prior`` (whose
``sample`` draws code grids), so the viewer works for every discrete family (VQ-VAE, "Neural
Discrete Representation Learning", van den Oord et al. 2017, arXiv:1711.00937; VQ-GAN, "Taming
Transformers for High-Resolution Image Synthesis", Esser et al. 2020, arXiv:2012.09841).
Completion keeps part of a real image's code grid and lets the prior sample the rest (its
``sample(..., given=, given_mask=)``), as in the image completions of PixelCNN ("Conditional
Image Generation with PixelCNN Decoders", van den Oord et al. 2016, arXiv:1606.05328, §3.4).

Nothing here imports gradio: ``vqkit.viewer.pictures`` draws these results, ``vqkit.viewer.app``
shows them, and the tests check them.
"""

from __future__ import annotations

import inspect
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn

from vqkit._checks import check_int, check_non_negative_int, check_number, check_positive_int
from vqkit.data.loader import fetch, sequential_batches
from vqkit.train.evaluate import _ssim_window
from vqkit.train.metrics import psnr, ssim

__all__ = [
    "Analysis",
    "ViewerState",
    "edit_codes",
    "load_viewer_state",
]

_OWNER = "ViewerState"


@dataclass
class Analysis:
    """One image as the viewer shows it.

    Attributes:
        input: the image ``(C, H, W)`` in ``[0, 1]``.
        indices: its codes ``(h, w)``, ``model.encode_indices`` of the image (edits included
            once ``ViewerState.with_codes`` replaced them).
        reconstruction: ``model.decode_indices(indices)`` clamped to ``[0, 1]``, ``(C, H, W)``.
        difference: ``|input − reconstruction|``, ``(C, H, W)``.
        psnr: PSNR of the reconstruction in dB (``vqkit.train.metrics.psnr``, capped at 100).
        ssim: SSIM of the reconstruction (``vqkit.train.metrics.ssim``, the evaluation's window).
        edited: how many cells differ from the image's own codes.
    """

    input: torch.Tensor
    indices: torch.Tensor
    reconstruction: torch.Tensor
    difference: torch.Tensor
    psnr: float
    ssim: float
    edited: int = 0


def edit_codes(
    indices: torch.Tensor,
    row: int,
    col: int,
    code: int,
    codebook_size: int,
    *,
    height: int = 1,
    width: int = 1,
) -> torch.Tensor:
    """A copy of the grid ``indices`` with the rectangle at ``(row, col)`` set to ``code``.

    The rectangle is ``height × width`` cells from ``(row, col)`` down and right, cut at the
    grid's border (a brush near the edge paints what fits).

    Args:
        indices: a code grid ``(h, w)``.
        row: the row of the top-left cell, inside the grid.
        col: the column of the top-left cell, inside the grid.
        code: the code to assign, in ``[0, codebook_size)``.
        codebook_size: K.
        height: the rectangle's height in cells (≥ 1).
        width: the rectangle's width in cells (≥ 1).

    Shape:
        - indices: ``(h, w)`` integers; output: the same.
    """
    owner = "edit_codes"
    if not isinstance(indices, torch.Tensor) or indices.ndim != 2:
        shape = tuple(indices.shape) if isinstance(indices, torch.Tensor) else type(indices)
        raise ValueError(f"{owner}: indices must be a (h, w) code grid, got {shape}")
    if indices.dtype.is_floating_point or indices.dtype == torch.bool:
        raise TypeError(f"{owner}: indices must be integers, got {indices.dtype}")
    h, w = indices.shape
    check_int(owner, "row", row, low=0, high=h - 1)
    check_int(owner, "col", col, low=0, high=w - 1)
    check_int(owner, "code", code, low=0, high=codebook_size - 1)
    check_positive_int(owner, "height", height)
    check_positive_int(owner, "width", width)
    out = indices.clone()
    out[row : row + height, col : col + width] = code
    return out


class ViewerState:
    """A trained discrete model and a dataset, and everything the viewer shows of them.

    Args:
        model: a model of family ``"discrete"`` (``vqkit.contracts.DiscreteModel``) whose codes
            form one grid ``(B, h, w)`` per image.
        data: a map-style dataset of images ``(C, H, W)`` in ``[0, 1]``, or None (then only
            uploaded images, prior samples and the atlas are available).
        name: a short name of the model for titles.
        max_images: at most this many images of ``data`` (the first ones) enter the usage
            counts and the atlas's patches.
        batch_size: images per forward pass when encoding the dataset.
    """

    def __init__(
        self,
        model: Any,
        data: Any = None,
        *,
        name: str = "",
        max_images: int = 10000,
        batch_size: int = 256,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"{_OWNER}: model must be a vqkit model, got {type(model).__name__}")
        family = getattr(model, "family", None)
        if family != "discrete":
            raise ValueError(
                f"{_OWNER}: the viewer shows discrete models (family 'discrete'); "
                f"{type(model).__name__} has family {family!r}"
            )
        model.eval()
        self.model: Any = cast(Any, model)  # read through the discrete-model contract
        self.name = name or type(model).__name__
        self.max_images = check_positive_int(_OWNER, "max_images", max_images)
        self.batch_size = check_positive_int(_OWNER, "batch_size", batch_size)
        self.codebook_size = int(self.model.codebook_size)
        self.device = next(self.model.parameters()).device
        if data is not None and len(data) == 0:
            raise ValueError(f"{_OWNER}: the dataset {getattr(data, 'name', '')!r} is empty")
        self.data: Any = data  # a map-style dataset with __len__
        sample_shape = tuple(fetch(data, torch.arange(1))[0].shape) if data is not None else None
        if sample_shape is not None and len(sample_shape) != 3:
            raise ValueError(
                f"{_OWNER}: the viewer shows images (C, H, W); the dataset holds samples of "
                f"shape {sample_shape}"
            )
        latent = self.model.latent_size
        if latent is None:
            if sample_shape is None:
                raise ValueError(
                    f"{_OWNER}: {type(model).__name__} has no image_size (so no latent grid "
                    "size); pass a dataset whose images fix it"
                )
            probe = torch.zeros(1, *sample_shape, device=self.device)
            latent = tuple(self._encode(probe).shape[-2:])
        self.latent_size: tuple[int, int] = (int(latent[0]), int(latent[1]))
        with torch.no_grad():
            blank = self.model.decode_indices(
                torch.zeros(1, *self.latent_size, dtype=torch.long, device=self.device)
            )  # (1, C, H, W)
        c, height, width = blank.shape[1:]
        self.image_shape: tuple[int, int, int] = (int(c), int(height), int(width))
        if sample_shape is not None and sample_shape != self.image_shape:
            raise ValueError(
                f"{_OWNER}: the dataset's images are {list(sample_shape)} but the model decodes "
                f"{list(self.image_shape)} images; pass data of the model's size"
            )
        self._codes: torch.Tensor | None = None  # (N, h, w) of the first max_images images
        self._atlas: torch.Tensor | None = None  # (K, C, H, W)

    # ------------------------------------------------------------------ dataset and images
    def __len__(self) -> int:
        return len(self.data) if self.data is not None else 0

    def image(self, index: int) -> torch.Tensor:
        """Image ``index`` of the dataset, ``(C, H, W)``."""
        if self.data is None:
            raise ValueError(f"{_OWNER}: no dataset was given, so there is no image {index!r}")
        check_int(_OWNER, "index", index, low=0, high=len(self.data) - 1)
        return fetch(self.data, torch.tensor([index]))[0].float()

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            codes = self.model.encode_indices(x.to(self.device))
        if not isinstance(codes, torch.Tensor) or codes.ndim != 3:
            shape = tuple(codes.shape) if isinstance(codes, torch.Tensor) else type(codes).__name__
            raise ValueError(
                f"{_OWNER}: the viewer edits one code grid (B, h, w) per image; "
                f"{type(self.model).__name__}.encode_indices gave {shape}"
            )
        return codes

    def check_image(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` as a float ``(C, H, W)`` image of the model's size, values in ``[0, 1]``."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{_OWNER}: an image must be a tensor, got {type(x).__name__}")
        if tuple(x.shape) != self.image_shape:
            raise ValueError(
                f"{_OWNER}: expected an image of shape {list(self.image_shape)}, got "
                f"{list(x.shape)}"
            )
        x = x.float()
        if not bool(torch.isfinite(x).all()) or float(x.min()) < 0 or float(x.max()) > 1:
            raise ValueError(f"{_OWNER}: image values must be finite and in [0, 1]")
        return x

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The codes ``(h, w)`` of one image ``(C, H, W)``: ``model.encode_indices``."""
        return self._encode(self.check_image(x)[None])[0].cpu()

    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        """The image ``(C, H, W)`` that a code grid ``(h, w)`` decodes to, clamped to [0, 1]."""
        indices = self.check_codes(indices)
        with torch.no_grad():
            image = self.model.decode_indices(indices[None].to(self.device))[0]
        return image.float().clamp(0, 1).cpu()

    def check_codes(self, indices: torch.Tensor) -> torch.Tensor:
        """``indices`` as an int64 ``(h, w)`` grid of the model's size with codes in ``[0, K)``."""
        if not isinstance(indices, torch.Tensor) or tuple(indices.shape) != self.latent_size:
            shape = list(indices.shape) if isinstance(indices, torch.Tensor) else type(indices)
            raise ValueError(
                f"{_OWNER}: expected a code grid of shape {list(self.latent_size)}, got {shape}"
            )
        if indices.dtype.is_floating_point or indices.dtype == torch.bool:
            raise TypeError(f"{_OWNER}: codes must be integers, got {indices.dtype}")
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= self.codebook_size):
            raise ValueError(
                f"{_OWNER}: codes must be in [0, {self.codebook_size}), got values in "
                f"[{int(indices.min())}, {int(indices.max())}]"
            )
        return indices.long()

    def analyse(self, x: torch.Tensor, indices: torch.Tensor | None = None) -> Analysis:
        """Input, codes, reconstruction, difference, PSNR and SSIM of one image.

        Args:
            x: the image ``(C, H, W)``.
            indices: a code grid ``(h, w)`` to decode instead of the image's own (an edit).
        """
        x = self.check_image(x)
        own = self.encode(x)
        codes = own if indices is None else self.check_codes(indices)
        x_hat = self.decode(codes)
        window = _ssim_window(*x.shape[-2:])
        value_psnr = float(psnr(x_hat[None], x[None]).clamp(max=100.0)[0])
        value_ssim = float(ssim(x_hat[None], x[None], 1.0, win_size=window)[0]) if window else 0.0
        return Analysis(
            input=x,
            indices=codes,
            reconstruction=x_hat,
            difference=(x - x_hat).abs(),
            psnr=value_psnr,
            ssim=value_ssim,
            edited=int((codes != own).sum()),
        )

    def prepare_upload(self, image: Any) -> torch.Tensor:
        """An uploaded picture as an image of the model's size: a Pillow image or a uint8 /
        float array ``(H, W)`` or ``(H, W, 3 or 4)`` is converted to the model's channels
        (grey or RGB), resized (bilinear, antialiased) to ``(H, W)`` and scaled to ``[0, 1]``."""
        import numpy as np
        from PIL import Image

        if isinstance(image, np.ndarray):
            array = image
            if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
                raise ValueError(
                    f"{_OWNER}: an uploaded image must be (H, W) or (H, W, 1/3/4), got "
                    f"{array.shape}"
                )
            if array.size == 0:
                raise ValueError(f"{_OWNER}: the uploaded image is empty")
            if array.dtype != np.uint8:
                array = np.clip(np.nan_to_num(array.astype(np.float64)), 0, 1)
                array = (array * 255 + 0.5).astype(np.uint8)
            if array.ndim == 3 and array.shape[2] == 1:
                array = array[..., 0]
            image = Image.fromarray(array)
        if not isinstance(image, Image.Image):
            raise TypeError(
                f"{_OWNER}: an upload must be a Pillow image or a numpy array, got "
                f"{type(image).__name__}"
            )
        channels, height, width = self.image_shape
        if channels not in (1, 3):
            raise ValueError(f"{_OWNER}: uploads need a model of 1 or 3 channels, not {channels}")
        picture = image.convert("L" if channels == 1 else "RGB")
        picture = picture.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=None)
        array = np.asarray(picture, dtype=np.float32) / 255
        tensor = torch.from_numpy(array.copy())
        return tensor[None] if channels == 1 else tensor.permute(2, 0, 1).contiguous()

    # ------------------------------------------------------------------ the dataset's codes
    def dataset_codes(self) -> torch.Tensor:
        """Codes ``(N, h, w)`` of the first ``max_images`` images of the dataset (cached)."""
        if self.data is None:
            raise ValueError(f"{_OWNER}: no dataset was given, so there are no usage counts")
        if self._codes is None:
            n = min(len(self.data), self.max_images)
            head = self.data
            if n < len(self.data):
                head = torch.utils.data.Subset(self.data, range(n))
            batches = sequential_batches(head, self.batch_size)
            self._codes = torch.cat([self._encode(x.float()).cpu() for x in batches])
        return self._codes

    def usage(self) -> torch.Tensor:
        """``(K,)`` int64: how many latent cells of the dataset's images use each code."""
        return torch.bincount(self.dataset_codes().flatten(), minlength=self.codebook_size)

    def code_images(self, codes: list[int] | None = None) -> torch.Tensor:
        """What each code decodes to when it fills the whole grid: ``(len(codes), C, H, W)``
        (default: every code, ``(K, C, H, W)``, cached)."""
        if codes is None and self._atlas is not None:
            return self._atlas
        chosen = list(range(self.codebook_size)) if codes is None else codes
        for code in chosen:
            check_int(_OWNER, "code", code, low=0, high=self.codebook_size - 1)
        grids = torch.tensor(chosen, dtype=torch.long)[:, None, None].expand(
            -1, *self.latent_size
        )  # (n, h, w)
        out = []
        with torch.no_grad():
            for start in range(0, len(chosen), 64):
                batch = grids[start : start + 64].to(self.device)
                out.append(self.model.decode_indices(batch).float().clamp(0, 1).cpu())
        images = torch.cat(out) if out else torch.zeros(0, *self.image_shape)
        if codes is None:
            self._atlas = images
        return images

    def cell_box(self, row: int, col: int, margin: int = 0) -> tuple[int, int, int, int]:
        """Pixel box ``(top, left, bottom, right)`` of latent cell ``(row, col)``, grown by
        ``margin`` cells on each side and cut at the image border."""
        h, w = self.latent_size
        _, height, width = self.image_shape
        top = max(0, math.floor((row - margin) * height / h))
        left = max(0, math.floor((col - margin) * width / w))
        bottom = min(height, math.ceil((row + 1 + margin) * height / h))
        right = min(width, math.ceil((col + 1 + margin) * width / w))
        return top, left, bottom, right

    def top_patches(self, code: int, num: int = 8, *, margin: int = 1) -> list[dict[str, Any]]:
        """Dataset patches encoded as ``code``, from the images that use it most.

        For each of the (at most ``num``) images with the most cells of ``code`` (ties: lower
        index first), its first such cell in raster order: the image's pixels under that cell
        grown by ``margin`` cells of context.

        Returns:
            A list of ``{"image": i, "row": r, "col": c, "count": n, "patch": (C, h', w')}``.
        """
        check_int(_OWNER, "code", code, low=0, high=self.codebook_size - 1)
        check_positive_int(_OWNER, "num", num)
        check_non_negative_int(_OWNER, "margin", margin)
        codes = self.dataset_codes()  # (N, h, w)
        hits = (codes == code).flatten(1)  # (N, h·w)
        counts = hits.sum(1)  # (N,)
        order = sorted(range(len(counts)), key=lambda i: (-int(counts[i]), i))
        out = []
        w = self.latent_size[1]
        for i in order[:num]:
            if int(counts[i]) == 0:
                break
            first = int(hits[i].nonzero()[0, 0])
            row, col = divmod(first, w)
            top, left, bottom, right = self.cell_box(row, col, margin)
            patch = self.image(i)[:, top:bottom, left:right]
            out.append(
                {"image": i, "row": row, "col": col, "count": int(counts[i]), "patch": patch}
            )
        return out

    # ------------------------------------------------------------------ the prior
    def _prior(self, what: str) -> Any:
        prior = self.model.prior
        if prior is None:
            raise ValueError(
                f"{_OWNER}: {what} needs a prior; {type(self.model).__name__} was trained "
                "without one"
            )
        return prior

    def sample(
        self, num: int, *, temperature: float = 1.0, seed: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``num`` code grids drawn from the prior and their images:
        ``((num, h, w), (num, C, H, W))``; the same seed gives the same draws."""
        prior = self._prior("sampling")
        check_positive_int(_OWNER, "num", num)
        check_number(_OWNER, "temperature", temperature, low=0, low_open=True)
        check_non_negative_int(_OWNER, "seed", seed)
        generator = torch.Generator(device=self.device).manual_seed(seed)
        with torch.no_grad():
            codes = prior.sample(
                num, self.latent_size, temperature=float(temperature), generator=generator
            )  # (num, h, w)
            images = self.model.decode_indices(codes).float().clamp(0, 1)
        return codes.cpu(), images.cpu()

    def complete(
        self,
        indices: torch.Tensor,
        num: int = 4,
        *,
        keep_rows: int | None = None,
        temperature: float = 1.0,
        seed: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Keep the first ``keep_rows`` rows of a code grid and let the prior sample the rest.

        Args:
            indices: the grid ``(h, w)`` to complete (an image's codes).
            num: completions to draw.
            keep_rows: rows kept from the top (default ``h // 2``, the top half).
            temperature: the prior's softmax temperature.
            seed: seed of the draws.

        Returns:
            ``((num, h, w), (num, C, H, W))``: the completed grids (their kept rows equal
            ``indices``) and their images.
        """
        prior = self._prior("completion")
        indices = self.check_codes(indices)
        h = self.latent_size[0]
        keep = h // 2 if keep_rows is None else check_int(_OWNER, "keep_rows", keep_rows, low=0)
        if keep > h:
            raise ValueError(f"{_OWNER}: keep_rows must be in [0, {h}], got {keep}")
        check_positive_int(_OWNER, "num", num)
        check_number(_OWNER, "temperature", temperature, low=0, low_open=True)
        check_non_negative_int(_OWNER, "seed", seed)
        parameters = inspect.signature(type(prior).sample).parameters
        if "given" not in parameters or "given_mask" not in parameters:
            raise ValueError(
                f"{_OWNER}: completion needs a prior whose sample() takes given= and "
                f"given_mask= (Gated PixelCNN, transformer, MaskGIT); {type(prior).__name__} "
                "does not"
            )
        known = torch.zeros(num, *self.latent_size, dtype=torch.bool)
        known[:, :keep] = True
        given = indices[None].expand(num, -1, -1).clone()
        generator = torch.Generator(device=self.device).manual_seed(seed)
        with torch.no_grad():
            codes = prior.sample(
                num,
                self.latent_size,
                temperature=float(temperature),
                generator=generator,
                given=given.to(self.device),
                given_mask=known.to(self.device),
            )  # (num, h, w)
            images = self.model.decode_indices(codes).float().clamp(0, 1)
        return codes.cpu(), images.cpu()

    # ------------------------------------------------------------------ pictures
    def display_scale(self, target: int = 224) -> int:
        """Nearest-neighbour upscaling that shows an image about ``target`` pixels high."""
        return max(1, target // self.image_shape[1])

    def cell_at(self, x: float, y: float, shown: tuple[int, int]) -> tuple[int, int]:
        """The latent cell ``(row, col)`` under pixel ``(x, y)`` of a picture of ``shown =
        (height, width)`` pixels that covers the whole image (the code map, any panel)."""
        height, width = shown
        h, w = self.latent_size
        check_number(_OWNER, "x", x, low=0, high=width, high_open=True)
        check_number(_OWNER, "y", y, low=0, high=height, high_open=True)
        return min(h - 1, int(y * h / height)), min(w - 1, int(x * w / width))

    def describe(self) -> dict[str, Any]:
        """What the viewer shows, as JSON-ready facts (model, grid, dataset)."""
        return {
            "model": self.name,
            "class": type(self.model).__name__,
            "codebook_size": self.codebook_size,
            "latent_size": list(self.latent_size),
            "image_shape": list(self.image_shape),
            "images": len(self),
            "dataset": getattr(self.data, "name", None) if self.data is not None else None,
            "prior": type(self.model.prior).__name__ if self.model.prior is not None else None,
        }


def _is_run(path: Path) -> bool:
    return (path / "config.json").is_file() and (path / "model").is_dir()


def load_viewer_state(
    source: str | Path,
    data: str | None = None,
    *,
    device: str | None = None,
    max_images: int = 10000,
) -> ViewerState:
    """The viewer's state for a run folder or a ``save_pretrained`` model folder.

    Args:
        source: a run folder written by ``vqkit train`` (its ``model/`` and its data spec) or a
            saved model folder (``config.json`` and ``model.safetensors``).
        data: a dataset spec (``vqkit.data.load_dataset``: ``"digits"``,
            ``"fashion-mnist"``, a folder...) to show instead of the run's own held-out data;
            required for a model folder. Images are resized to the model's ``image_size``.
        device: where the model runs (default CPU).
        max_images: images of the dataset that enter the usage counts.

    Raises:
        FileNotFoundError: ``source`` is not a folder.
        ValueError: neither a run nor a model folder, a model that is not discrete, a model
            folder without ``data``, or data the model cannot take.
    """
    import vqkit
    from vqkit.train.recipes import load_run_model
    from vqkit.train.run import DataSpec, held_out, read_run_spec

    path = Path(source)
    if not path.is_dir():
        raise FileNotFoundError(f"no such run or model folder: {str(source)!r}")
    if _is_run(path):
        model = load_run_model(path, device=device)
        name = path.name
        spec = DataSpec(data, image_size=_size(model), val_fraction=0.0) if data else None
        if spec is None:
            spec = read_run_spec(path).data
    elif (path / "config.json").is_file() and (path / "model.safetensors").is_file():
        model = vqkit.from_pretrained(str(path), device=device or "cpu").eval()
        name = path.name
        if data is None:
            raise ValueError(
                f"{str(source)!r} is a saved model folder, which names no dataset: pass one "
                "with --data SPEC (e.g. --data digits)"
            )
        spec = DataSpec(data, image_size=_size(model), val_fraction=0.0)
    elif (path / "config.json").is_file():
        try:
            record = json.loads((path / "config.json").read_text())
        except (OSError, ValueError):
            record = None
        if isinstance(record, dict) and "model" in record:
            raise ValueError(f"{str(source)!r} is a run folder whose training has not finished")
        raise ValueError(f"{str(source)!r} has a config.json but no model.safetensors")
    else:
        raise ValueError(
            f"{str(source)!r} is neither a run folder written by `vqkit train` nor a saved "
            "model folder (it has no config.json)"
        )
    if getattr(model, "family", None) != "discrete":
        raise ValueError(
            f"the viewer shows discrete models (VQ-VAE, VQ-GAN); {str(source)!r} holds a "
            f"{type(model).__name__} (family {getattr(model, 'family', None)!r})"
        )
    dataset = held_out(spec, "test")
    return ViewerState(model, dataset, name=name, max_images=max_images)


def _size(model: Any) -> list[int] | None:
    size = model.image_size
    return [int(size[0]), int(size[1])] if size is not None else None
