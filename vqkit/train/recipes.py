"""Whole training workflows that write a run folder: VQ-VAE then its prior, and VAEs.

VQ-VAE (van den Oord et al., "Neural Discrete Representation Learning", arXiv:1711.00937, §3.2):
stage 1 trains encoder, quantizer and decoder; stage 2 freezes them, encodes the data to code
grids once, and fits the autoregressive prior (a Gated PixelCNN, arXiv:1606.05328) to those codes.
VAE / β-VAE / VLAE (arXiv:1312.6114, Higgins et al. 2017, arXiv:1611.02731): one stage.

A run folder holds::

    config.json          the resolved settings (model, data, training)
    metrics.json         evaluation figures (see vqkit.train.evaluate)
    model/               the model in save_pretrained format (config.json, model.safetensors)
    <stage>/metrics.jsonl, <stage>/checkpoints/   per-stage training logs and checkpoints
    reconstructions.png, samples.png, interpolations.png, loss_curves.png, latent_maps.png
    report.html          one self-contained page of all the above (vqkit.train.report)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from vqkit._registry import get, list_registered
from vqkit.data.dataset import ArrayDataset
from vqkit.data.loader import fetch, sequential_batches
from vqkit.train.checkpoint import write_json_atomic
from vqkit.train.distributed import barrier, is_main_process
from vqkit.train.evaluate import evaluate_model, reconstruct
from vqkit.train.images import (
    code_legend,
    image_grid,
    labelled,
    loss_curves,
    palette_colours,
    save_image,
    scatter_plot,
)
from vqkit.train.trainer import LossOutput, TrainConfig, Trainer

__all__ = [
    "CLASSIFIER_FILE",
    "RunResult",
    "encode_dataset",
    "load_run_model",
    "model_config",
    "model_registry_name",
    "prior_objective",
    "run_classifier",
    "train_vae_run",
    "train_vqvae_run",
    "write_pictures",
]


@dataclass
class RunResult:
    """What a recipe produced: the trained model, its figures and where the files are."""

    out_dir: Path
    model: nn.Module
    metrics: dict[str, Any] = field(default_factory=dict)
    pictures: dict[str, Path] = field(default_factory=dict)
    model_dir: Path | None = None


def prior_objective(prior: Any, codes: torch.Tensor) -> LossOutput:
    """The prior stage's objective on a batch of codes: the prior's own ``loss`` (its contract,
    [`vqkit.contracts.Prior`][vqkit.contracts.Prior]).

    For a likelihood prior that is the NLL in nats per latent position with ``"nll"`` and
    ``"bits_per_latent"`` among its terms (``vqkit.contracts.likelihood_loss``); priors
    without an exact likelihood (MaskGIT) train on their own objective in the same stage.

    Shape:
        - codes: ``(B, h, w)`` integer code grids (a ``"codes"`` prior) or ``(B, ...)`` latents;
          a tuple of grids, one per level, for a multi-level model (VQ-VAE-2)
    """
    if prior.domain == "codes":
        if isinstance(codes, (tuple, list)):  # one grid per level (VQ-VAE-2)
            return prior.loss(tuple(c.long() for c in codes))
        codes = codes.long()
    return prior.loss(codes)


def model_registry_name(model: nn.Module) -> str:
    """The name ``type(model)`` is registered under (kind ``"model"``)."""
    for name in list_registered("model"):
        if get("model", name) is type(model):
            return name
    raise ValueError(f"{type(model).__name__} is not a registered model class")


def model_config(model: nn.Module) -> dict[str, Any]:
    """The constructor arguments of a vqkit model (what its ``config.json`` holds), as JSON."""
    return json.loads(json.dumps(model.hub_config, default=str))


def load_run_model(run: str | Path, *, device: str | None = None) -> nn.Module:
    """The trained model of a run folder (``run/model`` with the class named in ``config.json``)."""
    run = Path(run)
    config_file = run / "config.json"
    if not config_file.is_file():
        raise FileNotFoundError(f"{str(run)!r} is not a vqkit run folder: no config.json")
    try:
        record = json.loads(config_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{config_file} is not valid JSON ({exc})") from None
    model_entry = record.get("model") if isinstance(record, dict) else None
    name = model_entry.get("class") if isinstance(model_entry, dict) else None
    if not isinstance(name, str):
        raise ValueError(f"{config_file} is not a run's config.json: it names no model class")
    if not (run / "model").is_dir():
        raise FileNotFoundError(f"{str(run)!r} has no trained model yet (no model/ folder)")
    model = cast(Any, get("model", name)).from_pretrained(str(run / "model"))
    return model.to(device or "cpu").eval()


@torch.no_grad()
def encode_dataset(
    model: Any, data: Dataset, batch_size: int = 256, *, latents: bool = False
) -> Dataset:
    """Code grids ``(N, h, w)`` of the frozen discrete model for every image of ``data``
    (a tuple of grids per image for a multi-level model such as VQ-VAE-2); with
    ``latents=True`` its pre-quantisation latents ``(N, D, h, w)`` (``model.encode_latents``).

    A multi-level model (``encode_indices`` returns a tuple of grids, VQ-VAE-2) gives a
    ``TensorDataset`` whose items are tuples of grids, one per level.

    ``data`` is any map-style dataset of images: an ``ArrayDataset`` or one read
    on access ([`ImageFolderDataset`][vqkit.data.ImageFolderDataset], ``MemmapArrayDataset``,
    [`HFImageDataset`][vqkit.data.HFImageDataset]), read in order by
    ``vqkit.data.loader.sequential_batches``.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    encode = model.encode_latents if latents else model.encode_indices
    codes = [encode(x.to(device)) for x in sequential_batches(data, batch_size)]
    model.train(was_training)
    if isinstance(codes[0], tuple):  # one grid per level (VQ-VAE-2)
        return TensorDataset(
            *(torch.cat([c[i] for c in codes]).cpu() for i in range(len(codes[0])))
        )
    codes = [c.cpu() for c in codes]
    return ArrayDataset(
        torch.cat(codes), getattr(data, "labels", None), name=f"{_name(data)}-codes"
    )


def _name(data: Dataset) -> str:
    return getattr(data, "name", type(data).__name__)


def _head(data: Dataset, n: int) -> torch.Tensor:
    """The first ``min(n, len(data))`` samples of any map-style dataset, as one tensor."""
    return fetch(data, torch.arange(min(n, len(cast(Sized, data)))))


#: The run folder's cached feature extractor of the sample-quality figures.
CLASSIFIER_FILE = "dataset_classifier.safetensors"
#: At most this many training images train the classifier (the first ones of the split).
_CLASSIFIER_IMAGES = 20000


def run_classifier(run: str | Path, train: Dataset, *, seed: int = 0):
    """The run's ``DatasetClassifier``, trained once and cached.

    Loaded from ``run/dataset_classifier.safetensors`` when it is there; otherwise trained on
    (the first 20,000 images of) the training split ``train`` with its labels and saved there
    (atomically). Returns None when the data cannot train one: not images, no labels, or fewer
    than two classes.
    """
    from vqkit.train.frechet import DatasetClassifier, load_or_train_classifier

    labels = getattr(train, "labels", None)
    shape = tuple(getattr(train, "sample_shape", ()))
    if labels is None or len(shape) != 3 or min(shape[1:]) < 2 or len(cast(Sized, train)) < 2:
        return None
    labels = labels[:_CLASSIFIER_IMAGES].long()
    if int(labels.max()) < 1 or int(labels.min()) < 0:
        return None
    path = Path(run) / CLASSIFIER_FILE
    if path.is_file():
        return DatasetClassifier.load(path)
    images = _head(train, _CLASSIFIER_IMAGES).float()
    return load_or_train_classifier(path, images, labels, seed=seed)


def _history(stage_dir: Path) -> list[dict]:
    file = stage_dir / "metrics.jsonl"
    if not file.is_file():
        return []
    return [json.loads(line) for line in file.read_text().splitlines() if line.strip()]


def _curves(stages: dict[str, Path]):
    """One loss-curve panel per stage, side by side."""
    from PIL import Image

    panels = []
    for title, stage_dir in stages.items():
        history = _history(stage_dir)
        series = {}
        for key in ("train/loss", "val/loss"):
            values = [(r["step"], r[key]) for r in history if key in r]
            if values:
                series[key] = values
        panels.append(
            loss_curves(series, title=f"{title}: loss per epoch", xlabel="step", ylabel="loss")
        )
    width = sum(p.width for p in panels)
    canvas = Image.new("RGB", (width, max(p.height for p in panels)), "white")
    x = 0
    for p in panels:
        canvas.paste(p, (x, 0))
        x += p.width
    return canvas


def _scale_for(h: int, target: int = 64) -> int:
    return max(1, target // h)


def _pairs(x: torch.Tensor, x_hat: torch.Tensor, per_row: int = 8) -> torch.Tensor:
    """Rows of up to ``per_row`` originals, each above a row of their reconstructions; a short
    last row is padded with blank (white) tiles so that every image sits above its own."""
    n = x.shape[0]
    rows = -(-n // per_row)
    pad = rows * per_row - n
    blank = torch.ones(pad, *x.shape[1:], dtype=x.dtype, device=x.device)
    top = torch.cat([x, blank]).view(rows, per_row, *x.shape[1:])  # (R, 8, C, H, W)
    bottom = torch.cat([x_hat, blank]).view(rows, per_row, *x.shape[1:])
    return torch.stack([top, bottom], 1).reshape(-1, *x.shape[1:])  # (2·R·8, C, H, W)


@torch.no_grad()
def write_pictures(
    model: Any,
    data: Dataset,
    out_dir: Path,
    *,
    stages: dict[str, Path] | None = None,
    seed: int = 0,
    num: int = 32,
) -> dict[str, Path]:
    """Write the PNGs that apply to ``model`` into ``out_dir``; returns ``{name: path}``.

    What is drawn follows the model's declared contract (``vqkit.contracts``): every model
    gets reconstructions (images) or a data-against-samples scatter (2-D points); a discrete
    model gets latent index maps, interpolations through its codes, and samples only when it
    has a prior; a continuous model gets samples and latent interpolations. Works for any
    number of images in ``data`` (at least one).
    """
    out_dir = Path(out_dir)
    if len(cast(Sized, data)) == 0:
        raise ValueError(f"write_pictures needs at least one sample, {_name(data)} is empty")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    pictures: dict[str, Path] = {}
    x = _head(data, num).to(device)
    generator = torch.Generator(device=device).manual_seed(seed)
    discrete = model.family == "discrete"
    # A multi-level model (VQ-VAE-2) declares one codebook size per level: its codes are a
    # tuple of grids, which the interpolation and latent-map pictures do not draw (yet).
    one_grid = not (discrete and isinstance(model.codebook_size, tuple))
    if x.ndim == 2:  # 2-D points: data against samples
        n = min(len(cast(Sized, data)), 2000)
        series = {"data": _head(data, n).cpu()}
        if not discrete:
            # Points are drawn with the decoder's noise: its means alone lie on a curve.
            drawn = model.sample(n, generator=generator, decoder_noise=True)
            series["samples"] = drawn.cpu()
        pictures["samples"] = save_image(scatter_plot(series), out_dir / "samples.png")
    else:
        scale = _scale_for(x.shape[-2])
        row = (x.shape[-2] + 2) * scale  # one row of tiles with its padding
        x_hat = reconstruct(model, x).clamp(0, 1)
        grid = image_grid(_pairs(x, x_hat), nrow=8, scale=scale)
        rows = ["input", "reconstruction"] * -(-x.shape[0] // 8)
        grid = labelled(
            grid,
            title=f"{_name(data)}: inputs and reconstructions",
            row_labels=rows,
            row_height=row,
        )
        pictures["reconstructions"] = save_image(grid, out_dir / "reconstructions.png")
        samples = None
        if discrete and model.prior is not None:
            latent = model.latent_size or tuple(model.encode_indices(x[:1]).shape[-2:])
            samples = model.generate(64, generator=generator, latent_size=latent)
        elif not discrete:
            samples = model.sample(64, generator=generator)
        if samples is not None:
            grid = image_grid(samples.clamp(0, 1), nrow=8, scale=scale)
            title = "samples: prior codes, decoded" if discrete else "samples from the model"
            pictures["samples"] = save_image(labelled(grid, title=title), out_dir / "samples.png")
        half = min(8, x.shape[0] // 2)
        if half and one_grid:
            frames = _interpolations(model, x[:half], x[half : 2 * half], steps=10)
            grid = image_grid(frames.reshape(-1, *x.shape[1:]).clamp(0, 1), nrow=10, scale=scale)
            title = "interpolations between two encodings, left to right"
            grid = labelled(grid, title=title + (" (snapped to codes)" if discrete else ""))
            pictures["interpolations"] = save_image(grid, out_dir / "interpolations.png")
        if discrete and one_grid:
            pictures["latent_maps"] = save_image(
                _latent_maps(model, x[:16]), out_dir / "latent_maps.png"
            )
    if stages:
        pictures["loss_curves"] = save_image(_curves(stages), out_dir / "loss_curves.png")
    model.train(was_training)
    return pictures


def _interpolations(model: Any, x1: torch.Tensor, x2: torch.Tensor, steps: int):
    """``(B, steps, C, H, W)``: decodes along the line between two encodings."""
    from vqkit.models.dvae import DVAE  # dvae branch: its decoder emits likelihood parameters

    if model.family == "continuous" or isinstance(model, DVAE):
        return model.interpolate(x1, x2, steps=steps)
    z1, z2 = model.encoder(x1), model.encoder(x2)  # (B, D, h, w)
    t = torch.linspace(0, 1, steps, device=z1.device).view(1, steps, 1, 1, 1)
    z = z1[:, None] * (1 - t) + z2[:, None] * t  # (B, steps, D, h, w)
    b = z.shape[0]
    # Each point is snapped to its codes, so the path is what the discrete model can express.
    quantized = model.quantizer(z.flatten(0, 1)).quantized
    return model.decoder(quantized).view(b, steps, *x1.shape[1:])


def _latent_maps(model: Any, x: torch.Tensor):
    """Images (top rows) above their code index maps (bottom rows), each map stretched to the
    size of its image so that every tile lines up with the image it encodes."""
    from PIL import Image

    indices = model.encode_indices(x)  # (B, h, w)
    colours = palette_colours(indices, model.codebook_size)  # (B, 3, h, w)
    colours = F.interpolate(colours, size=x.shape[-2:], mode="nearest")  # (B, 3, H, W)
    scale = _scale_for(x.shape[-2])
    rows = -(-x.shape[0] // 8)
    row = (x.shape[-2] + 2) * scale
    images = image_grid(x.clamp(0, 1), nrow=8, scale=scale).convert("RGB")
    images = labelled(
        images,
        title="inputs above their code index maps",
        row_labels=["input"] * rows,
        row_height=row,
    )
    maps = labelled(
        image_grid(colours, nrow=8, scale=scale), row_labels=["codes"] * rows, row_height=row
    )
    counts = torch.bincount(indices.flatten().cpu(), minlength=model.codebook_size)
    used = [int(c) for c in counts.argsort(descending=True)[:16] if counts[c] > 0]
    legend = code_legend(used, model.codebook_size, width=max(images.width, 300))
    width = max(images.width, legend.width)
    canvas = Image.new("RGB", (width, images.height + maps.height + legend.height), "white")
    canvas.paste(images, (0, 0))
    canvas.paste(maps, (0, images.height))
    canvas.paste(legend, (0, images.height + maps.height))
    return canvas


def _save_run_files(
    model: Any,
    eval_data: Dataset,
    out_dir: Path,
    config: dict,
    stages: dict[str, Path],
    seed: int,
    train: Dataset | None = None,
) -> RunResult:
    from vqkit.train.evaluate import SAMPLE_QUALITY_KEYS

    model_dir = out_dir / "model"
    model.save_pretrained(str(model_dir))
    classifier = run_classifier(out_dir, train, seed=seed) if train is not None else None
    metrics: dict[str, Any] = evaluate_model(model, eval_data, seed=seed, classifier=classifier)
    for key in SAMPLE_QUALITY_KEYS:  # the same keys for every model
        metrics.setdefault(key, None)
    metrics["eval_split"] = _name(eval_data)
    write_json_atomic(out_dir / "metrics.json", metrics)
    pictures = write_pictures(model, eval_data, out_dir, stages=stages, seed=seed)
    from vqkit.train.report import write_report  # the viewer branch: report.html of the run

    write_report(out_dir)
    return RunResult(out_dir, model, metrics, pictures, model_dir)


def train_vqvae_run(
    model: Any,
    train: ArrayDataset,
    val: ArrayDataset | None,
    out_dir: str | Path,
    *,
    config: TrainConfig,
    prior_config: TrainConfig | None = None,
    test: ArrayDataset | None = None,
    run_config: dict | None = None,
    disc_lr: float | None = None,
    perceptual: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> RunResult:
    """Train a VQ-VAE (stage 1) then its prior on the frozen codes (stage 2) into ``out_dir``.

    Resumable: calling it again with the same ``out_dir`` continues each stage from its newest
    checkpoint (finished stages are not repeated). Under torchrun every process trains; the main
    process evaluates, draws and saves.

    Args:
        model: a model of family ``"discrete"`` (a [`VQVAE`][vqkit.VQVAE]), with a ``prior``
            for stage 2 (over codes, or a ``"continuous"`` one over the pre-quantisation
            latents) or ``prior=None``.
        train, val: training and validation images.
        out_dir: the run folder.
        config: stage-1 training settings.
        prior_config: stage-2 settings; required when the model has a prior (an untrained
            prior is never saved), None otherwise.
        test: evaluation images (default: ``val``, else ``train``).
        run_config: extra entries for ``config.json`` (e.g. the data source).
        disc_lr: a VQ-GAN's discriminator learning rate (default: ``config.lr``); refused for
            other models (as by ``vqkit.train.Trainer``).
        perceptual: a VQ-GAN's perceptual distance (``vqkit.losses.LPIPS``), required when its
            ``perceptual_weight > 0``; refused for other models.
    """
    out_dir = Path(out_dir)
    if model.family != "discrete":
        raise TypeError(
            f"train_vqvae_run trains discrete models; {type(model).__name__} is "
            f"{model.family!r} (use train_vae_run)"
        )
    prior = model.prior
    if prior is not None and prior_config is None:
        raise ValueError(
            "the model has a prior but prior_config is None: the run would save an untrained "
            "prior; pass prior_config, or build the model with prior=None"
        )
    stages = {"vq-vae": out_dir / "vqvae"}
    if prior is not None:
        prior.requires_grad_(False)  # stage 1 leaves the prior alone
    gan: dict[str, Any] = {
        k: v for k, v in (("disc_lr", disc_lr), ("perceptual", perceptual)) if v is not None
    }
    Trainer(model, train, val, config=config, out_dir=stages["vq-vae"], name="vq-vae", **gan).fit()
    if prior is not None:
        model.eval()
        model.requires_grad_(False)
        prior.requires_grad_(True)
        # A "codes" prior fits the code grids, a "continuous" one (latent diffusion) the
        # pre-quantisation latents z_e.
        latents = prior.domain == "continuous"
        codes_train = encode_dataset(model, train, latents=latents)
        codes_val = encode_dataset(model, val, latents=latents) if val is not None else None
        stages["prior"] = out_dir / "prior"
        Trainer(
            prior,
            codes_train,
            codes_val,
            config=prior_config,
            objective=prior_objective,
            out_dir=stages["prior"],
            name="prior",
        ).fit()
        model.requires_grad_(True)
    model.eval()
    resolved = {
        "recipe": "vqvae",
        "model": {"class": model_registry_name(model), "config": model_config(model)},
        "train": config.to_dict(),
        "prior_train": prior_config.to_dict() if prior_config is not None else None,
        **(run_config or {}),
    }
    return _finish(model, train, val, test, out_dir, resolved, stages, config.seed)


def train_vae_run(
    model: nn.Module,
    train: ArrayDataset,
    val: ArrayDataset | None,
    out_dir: str | Path,
    *,
    config: TrainConfig,
    test: ArrayDataset | None = None,
    run_config: dict | None = None,
) -> RunResult:
    """Train a VAE, β-VAE or VLAE (any ``VAEBase``) into ``out_dir``.

    A capacity-controlled loss advances its capacity once per training forward on its own
    (``CapacityKL(auto_step=True)``); validation runs in eval mode under ``no_grad``, which
    leaves it alone.
    """
    out_dir = Path(out_dir)
    if model.family != "continuous":
        raise TypeError(
            f"train_vae_run trains continuous models; {type(model).__name__} is "
            f"{model.family!r} (use train_vqvae_run)"
        )
    stages = {"vae": out_dir / "vae"}
    Trainer(model, train, val, config=config, out_dir=stages["vae"], name="vae").fit()
    model.eval()
    resolved = {
        "recipe": "vae",
        "model": {"class": model_registry_name(model), "config": model_config(model)},
        "train": config.to_dict(),
        **(run_config or {}),
    }
    return _finish(model, train, val, test, out_dir, resolved, stages, config.seed)


def _finish(model, train, val, test, out_dir, resolved, stages, seed) -> RunResult:
    result = RunResult(out_dir, model)
    if is_main_process():
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out_dir / "config.json", resolved)
        eval_data = test if test is not None else (val if val is not None else train)
        result = _save_run_files(model, eval_data, out_dir, resolved, stages, seed, train)
    barrier()
    return result
