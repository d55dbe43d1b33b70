"""Runs as data: a ``RunSpec`` says everything a training run needs; ``train_run`` runs it.

A run is the two-stage recipe of *Neural Discrete Representation Learning* (van den Oord et al.,
arXiv:1711.00937, §3.2: the VQ-VAE, then a prior fitted to its frozen codes) or the one stage of
a VAE (Kingma & Welling, arXiv:1312.6114). The run folder's ``config.json`` *is* the resolved
spec, so a finished run is replayed exactly by reading it back::

    spec = RunSpec(data=DataSpec("digits", subset_fraction=0.25), model="vqvae-digits",
                   train=TrainConfig(epochs=2, progress=False), prior_train=None,
                   model_config={"prior": None})
    result = train_run(spec, "runs/a")
    again = train_run(read_run_spec("runs/a"), "runs/b")  # the same metrics.json figures

``vqkit train``, ``vqkit train --config RUN/config.json``, ``vqkit eval`` and ``vqkit sample``
read and write the same object; config.json files written before the spec existed (vqkit 0.1.0)
are read too.
"""

from __future__ import annotations

import contextlib
import copy
import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vqkit._checks import check_bool, check_choice, check_number
from vqkit._registry import build, get
from vqkit.contracts import contract_problems
from vqkit.data.dataset import ArrayDataset
from vqkit.train.checkpoint import write_json_atomic
from vqkit.train.config import TrainConfig
from vqkit.train.distributed import is_main_process
from vqkit.train.recipes import (
    RunResult,
    model_config,
    model_registry_name,
    train_vae_run,
    train_vqvae_run,
)

__all__ = [
    "SPEC_VERSION",
    "DataSpec",
    "GANSpec",
    "RunSpec",
    "RunSpecError",
    "build_run_model",
    "held_out",
    "load_run_data",
    "read_run_spec",
    "resolve_model_config",
    "train_run",
]

#: Layout version of the ``config.json`` ``RunSpec.to_dict`` writes (0.1.0 wrote none: 1).
SPEC_VERSION = 2
_OWNER = "RunSpec"
#: TrainConfig fields that place a run without changing its results (a resume may change them;
#: data-loading workers are among them once TrainConfig has them).
_PLACEMENT = ("device", "progress", "num_workers", "pin_memory")


class RunSpecError(ValueError):
    """A run spec that cannot be run as given: its data cannot be loaded, its model cannot be
    built for that data, or its settings contradict each other (the user's input, not a
    failure while training)."""


@dataclass
class DataSpec:
    """Where a run's data comes from and how it is split.

    Args:
        spec: a ``vqkit.data.load_dataset`` spec: ``"digits"``, ``"fashion-mnist[:FOLDER]"``,
            ``"mnist:FOLDER"``, ``"toy:NAME"``, a folder of images, a ``.npy``/``.npz`` or IDX file.
        image_size: ``[H, W]`` to resize images to (image folders are decoded at that size;
            tensors from other sources are resized, bilinear with antialiasing); None keeps it.
        color: image folders only: ``"auto"``, ``"gray"`` or ``"rgb"``.
        fit: with ``image_size``: ``"crop"`` keeps the aspect ratio and centre-crops,
            ``"stretch"`` does not.
        val_fraction: share of the training data held out for validation, in ``[0, 1)``.
        subset_fraction: train (and test) on this seeded fraction only, in ``(0, 1]``.
        seed: seed of the subset, the split and of toy data draws.
        lazy: read samples on access instead of into memory (image folders, ``.npy`` arrays,
            uncompressed IDX files; ``hf:`` sources are always read on access). A placement
            option: the values, and so the run, are the same either way.
        cache: with ``lazy`` on an image folder: keep a uint8 copy of every decoded image in
            memory once it fits (a placement option too).
    """

    spec: str = "digits"
    image_size: list[int] | None = None
    color: str = "auto"
    fit: str = "crop"
    val_fraction: float = 0.1
    subset_fraction: float = 1.0
    seed: int = 0
    lazy: bool = False
    cache: bool = False

    def __post_init__(self) -> None:
        owner = "DataSpec"
        if not isinstance(self.spec, str) or not self.spec:
            raise TypeError(f"{owner}: spec must be a non-empty string, got {self.spec!r}")
        if self.image_size is not None:
            size = self.image_size
            if isinstance(size, int) and not isinstance(size, bool):
                size = [size, size]
            if (
                not isinstance(size, (list, tuple))
                or len(size) != 2
                or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size)
            ):
                raise ValueError(
                    f"{owner}: image_size must be a positive int or [H, W], got {self.image_size!r}"
                )
            self.image_size = [int(size[0]), int(size[1])]
        check_choice(owner, "color", self.color, ("auto", "gray", "rgb"))
        check_choice(owner, "fit", self.fit, ("crop", "stretch"))
        self.val_fraction = check_number(
            owner, "val_fraction", self.val_fraction, low=0.0, high=1.0, high_open=True
        )
        self.subset_fraction = check_number(
            owner, "subset_fraction", self.subset_fraction, low=0.0, high=1.0, low_open=True
        )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise TypeError(f"{owner}: seed must be an integer, got {self.seed!r}")
        check_bool(owner, "lazy", self.lazy)
        check_bool(owner, "cache", self.cache)
        if self.cache and not self.lazy:
            raise ValueError(f"{owner}: cache=True applies to lazy data; set lazy=True too")


#: DataSpec fields that say how data is read, not what it is (a resume or replay may change them).
_DATA_PLACEMENT = ("lazy", "cache")


@dataclass
class GANSpec:
    """Adversarial-training settings of a VQ-GAN run that are not model constructor arguments.

    Args:
        disc_lr: the discriminator's learning rate (None: the generator's ``train.lr``); it
            follows the same warmup and schedule (see ``vqkit.train.Trainer``).
        perceptual: the LPIPS weights file (safetensors, from ``python -m vqkit.losses.lpips``)
            of the perceptual loss; required when the model's ``perceptual_weight > 0`` and
            refused when it is 0.
    """

    disc_lr: float | None = None
    perceptual: str | None = None

    def __post_init__(self) -> None:
        owner = "GANSpec"
        if self.disc_lr is not None:
            self.disc_lr = check_number(owner, "disc_lr", self.disc_lr, low=0.0, low_open=True)
        if self.perceptual is not None:
            if isinstance(self.perceptual, Path):
                self.perceptual = str(self.perceptual)
            if not isinstance(self.perceptual, str) or not self.perceptual:
                raise TypeError(
                    f"{owner}: perceptual must be the path of an LPIPS weights file (a non-empty "
                    f"string), got {self.perceptual!r}"
                )


@dataclass
class RunSpec:
    """Everything a training run needs; what the run folder's ``config.json`` stores.

    Args:
        data: the ``DataSpec``.
        model: a preset (``"vqvae-digits"``) or a registered model class (``"vqvae"``,
            ``"vae"``, ``"image_vae"``, ``"beta_vae"``, ``"vlae"``).
        model_config: constructor arguments merged into the preset (or given to the class).
            Sizes the data fixes (``image_size``, channels, ``data_dim``) are filled in from the
            data when left out.
        train: settings of the first stage (the VQ-VAE, or the VAE).
        prior_train: settings of the prior stage of a discrete model with a prior; None for
            models without one (build with ``model_config={"prior": None}`` to drop a preset's).
        seed: seed of the model's initialisation.
        gan: a VQ-GAN's ``GANSpec`` (discriminator learning rate, LPIPS weights); None for
            the defaults (and for every other model).
    """

    data: DataSpec = field(default_factory=DataSpec)
    model: str = "vqvae-digits"
    model_config: dict[str, Any] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    prior_train: TrainConfig | None = None
    seed: int = 0
    gan: GANSpec | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.data, DataSpec):
            raise TypeError(f"{_OWNER}: data must be a DataSpec, got {type(self.data).__name__}")
        if not isinstance(self.model, str) or not self.model:
            raise TypeError(f"{_OWNER}: model must be a registered name, got {self.model!r}")
        if not isinstance(self.model_config, dict):
            raise TypeError(
                f"{_OWNER}: model_config must be a dict, got {type(self.model_config).__name__}"
            )
        if not isinstance(self.train, TrainConfig):
            raise TypeError(f"{_OWNER}: train must be a TrainConfig, got {self.train!r:.60}")
        if self.prior_train is not None and not isinstance(self.prior_train, TrainConfig):
            raise TypeError(
                f"{_OWNER}: prior_train must be a TrainConfig or None, got {self.prior_train!r:.60}"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise TypeError(f"{_OWNER}: seed must be an integer, got {self.seed!r}")
        if self.gan is not None and not isinstance(self.gan, GANSpec):
            raise TypeError(f"{_OWNER}: gan must be a GANSpec or None, got {self.gan!r:.60}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON object ``from_dict`` reads back (placement fields included)."""
        record = {
            "spec_version": SPEC_VERSION,
            "data": asdict(self.data),
            "model": {"name": self.model, "config": copy.deepcopy(self.model_config)},
            "train": self.train.to_dict(),
            "prior_train": self.prior_train.to_dict() if self.prior_train is not None else None,
            "seed": self.seed,
        }
        if self.gan is not None:  # only then: other runs' config.json stay as they were
            record["gan"] = asdict(self.gan)
        return record

    @classmethod
    def from_dict(cls, record: Any) -> RunSpec:
        """A spec from ``to_dict``'s output or from a run folder's ``config.json``.

        A run folder's file (this version's or 0.1.0's) names the model's registered class and
        its resolved constructor arguments; the spec then builds exactly that model.
        """
        if not isinstance(record, dict):
            raise TypeError(f"{_OWNER}: a run spec must be a JSON object, got {record!r:.60}")
        for key in ("data", "model", "train"):
            if key not in record:
                raise ValueError(
                    f"{_OWNER}: a run spec needs a {key!r} entry; it has {sorted(record)}"
                )
        data = _only_fields(DataSpec, "data", record["data"], ignore=("num_",))
        if "subset" in data and "subset_fraction" not in data:  # 0.1.0's examples wrote "subset"
            data["subset_fraction"] = data.pop("subset")
        model_entry = record["model"]
        if not isinstance(model_entry, dict):
            raise ValueError(f"{_OWNER}: 'model' must be a JSON object, got {model_entry!r:.80}")
        if isinstance(model_entry.get("overrides"), dict) and "name" in model_entry:
            # A run folder of this version: the name and overrides the run was given (the
            # resolved class and config beside them are what they build on the same data).
            name, config = model_entry["name"], model_entry["overrides"]
        elif isinstance(model_entry.get("config"), dict):
            # to_dict()'s {"name", "config"}, or 0.1.0's resolved {"class", "config"}.
            name, config = model_entry.get("name", model_entry.get("class")), model_entry["config"]
        else:
            raise ValueError(
                f"{_OWNER}: 'model' must be {{'class' or 'name': ..., 'config': {{...}}}}, "
                f"got {model_entry!r:.80}"
            )
        prior = record.get("prior_train")
        # 0.1.0's runs seeded the model with the data seed (one --seed for everything).
        seed = record.get("seed", record["data"].get("seed", 0))
        gan = record.get("gan")
        return cls(
            data=DataSpec(**data),
            model=name,
            model_config=copy.deepcopy(config),
            train=TrainConfig(**_only_fields(TrainConfig, "train", record["train"])),
            prior_train=None
            if prior is None
            else TrainConfig(**_only_fields(TrainConfig, "prior_train", prior)),
            seed=seed,
            gan=None if gan is None else GANSpec(**_only_fields(GANSpec, "gan", gan)),
        )

    def with_placement(
        self,
        *,
        device: str | None = None,
        progress: bool | None = None,
        num_workers: int | None = None,
        pin_memory: bool | None = None,
        lazy: bool | None = None,
        cache: bool | None = None,
    ) -> RunSpec:
        """The same run placed differently: another device, progress bars, DataLoader workers,
        pinned memory, lazy reading or its cache (none of them changes results on the same kind
        of device). None leaves a setting as it is."""
        changes: dict[str, Any] = {}
        for name, value in (
            ("device", device),
            ("progress", progress),
            ("num_workers", num_workers),
            ("pin_memory", pin_memory),
        ):
            if value is not None:
                changes[name] = value
        data_changes: dict[str, Any] = {
            name: value for name, value in (("lazy", lazy), ("cache", cache)) if value is not None
        }
        if not changes and not data_changes:
            return self
        prior = replace(self.prior_train, **changes) if self.prior_train is not None else None
        data = replace(self.data, **data_changes) if data_changes else self.data
        return replace(self, data=data, train=replace(self.train, **changes), prior_train=prior)


def _only_fields(cls: type, where: str, values: Any, ignore: tuple[str, ...] = ()) -> dict:
    if not isinstance(values, dict):
        raise ValueError(f"{_OWNER}: {where!r} must be a JSON object, got {values!r:.60}")
    known = {f.name for f in fields(cls)} | ({"subset"} if cls is DataSpec else set())
    values = {k: v for k, v in values.items() if not (ignore and k.startswith(ignore))}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(
            f"{_OWNER}: {where!r} has unknown setting(s) {unknown}; {cls.__name__} has "
            f"{sorted(known)}"
        )
    return values


# ---- data ---------------------------------------------------------------------------------------
def _resize(data: ArrayDataset, size: list[int], fit: str) -> ArrayDataset:
    """Images ``(N, C, H, W)`` resized to ``size`` (centre crop to its aspect ratio first)."""
    x = data.data
    if x.ndim != 4:
        raise ValueError(
            f"image_size applies to images; {data.name} has samples of shape {tuple(x.shape[1:])}"
        )
    height, width = size
    if fit == "crop":
        h, w = x.shape[-2:]
        scale = max(height / h, width / w)
        crop_h, crop_w = min(h, round(height / scale)), min(w, round(width / scale))
        top, left = (h - crop_h) // 2, (w - crop_w) // 2
        x = x[..., top : top + crop_h, left : left + crop_w]  # (N, C, h', w'), aspect of size
    if tuple(x.shape[-2:]) != (height, width):
        antialias = x.shape[-2] > height or x.shape[-1] > width
        x = F.interpolate(
            x.float(),
            size=(height, width),
            mode="bilinear",
            align_corners=False,
            antialias=antialias,
        ).clamp(0, 1)  # (N, C, H, W)
    return ArrayDataset(x.contiguous(), data.labels, name=data.name)


def load_run_data(
    data: DataSpec,
) -> tuple[ArrayDataset, ArrayDataset | None, ArrayDataset | None]:
    """``(train, val, test)`` of a run: ``val`` is None when ``val_fraction`` is 0; ``test`` is
    the IDX sources' test split (Fashion-MNIST, MNIST), else None."""
    from vqkit.data import load_dataset, subset, train_val_split

    spec = data.spec
    folder = Path(spec).is_dir()
    hf = spec.startswith("hf:")
    options: dict[str, Any] = {}
    if (folder or hf) and (data.image_size is not None or data.color != "auto"):
        options["image_size"] = tuple(data.image_size) if data.image_size else None
        options["mode"] = {"auto": None, "gray": "L", "rgb": "RGB"}[data.color]
        options["fit"] = data.fit
    elif data.color != "auto":
        raise ValueError(
            f"color={data.color!r} applies to image folders only (and hf: sources), not {spec!r}"
        )
    if data.lazy and not hf:  # hf: sources are always read on access
        if spec.startswith(("digits", "toy:")):
            raise ValueError(f"lazy=True applies to files and folders, not to {spec!r}")
        options["lazy"] = True
    if data.cache:
        if not folder:
            raise ValueError(f"cache=True applies to lazy image folders, not to {spec!r}")
        options["cache"] = True
    if data.lazy and data.image_size is not None and not (folder or hf):
        raise ValueError(
            f"image_size resizes data held in memory; {spec!r} with lazy=True is read as "
            "stored (drop lazy, or resize the files)"
        )
    # an ArrayDataset, or a lazy dataset with the same interface (name, len, subset, split)
    train_all: Any = load_dataset(spec, split="train", seed=data.seed, **options)
    test: Any = None
    if spec.startswith(("fashion-mnist", "mnist")):
        test = load_dataset(spec, split="test", **({"lazy": True} if data.lazy else {}))
        test.name = f"{test.name}-test"
    if data.image_size is not None and not (folder or hf):
        train_all = _resize(train_all, data.image_size, data.fit)
        test = _resize(test, data.image_size, data.fit) if test is not None else None
    if data.subset_fraction < 1:
        train_all = subset(train_all, data.subset_fraction, seed=data.seed)
        test = subset(test, data.subset_fraction, seed=data.seed) if test is not None else None
    if len(train_all) == 0:
        raise ValueError(f"the data {spec!r} has no samples (after subset_fraction)")
    train, val = train_val_split(train_all, data.val_fraction, seed=data.seed)
    return train, val, test


# ---- model --------------------------------------------------------------------------------------
def _family(name: str) -> str:
    from vqkit.models.presets import find_preset

    if find_preset(name) is not None:
        return "discrete"
    cls: Any = get("model", name)  # a registered model class
    problems = contract_problems("model", cls)
    if problems or cls.family not in ("discrete", "continuous"):
        raise ValueError(
            f"model {name!r} does not meet the model contract (vqkit.contracts): "
            f"{', '.join(problems) or 'it declares no family'}; a run cannot tell how to train it"
        )
    return cls.family


def resolve_model_config(spec: RunSpec, sample_shape: tuple[int, ...]) -> dict[str, Any]:
    """``spec.model_config`` with the sizes the data fixes filled in where they are left out."""
    from vqkit.models.presets import any_preset_config, find_preset

    config = copy.deepcopy(spec.model_config)
    name = spec.model
    if _family(name) == "continuous":
        if len(sample_shape) == 1:
            config.setdefault("data_dim", sample_shape[0])
            return config
        if len(sample_shape) != 3:
            raise ValueError(f"{name} models points or images; the data has {sample_shape}")
        c, h, w = sample_shape
        if h != w:
            raise ValueError(f"{name} needs square images, the data is {h}x{w}")
        config.setdefault("in_channels", c)
        config.setdefault("image_size", h)
        return config
    if len(sample_shape) != 3:
        raise ValueError(f"{name} is an image model; the data has samples of shape {sample_shape}")
    c, h, w = sample_shape
    config.setdefault("image_size", [h, w])
    full = any_preset_config(name, **config) if find_preset(name) is not None else config
    encoder = full.get("encoder")
    if isinstance(encoder, dict) and encoder.get("in_channels") != c:
        given = config.get("encoder")
        if isinstance(given, dict) and "in_channels" in given:
            raise ValueError(
                f"{name}: the encoder's in_channels is {given['in_channels']} but the data has "
                f"{c} channel(s); leave in_channels out to take it from the data"
            )
        # Only the encoder's in_channels: every model wires its decoders' out_channels from it
        # (a DVAE's to 2 per channel), and presets leave them out.
        config.setdefault("encoder", {}).setdefault("in_channels", c)
    elif isinstance(encoder, str):
        config["encoder"] = {"type": encoder, "in_channels": c}
    return config


def build_run_model(spec: RunSpec, sample_shape: tuple[int, ...]) -> nn.Module:
    """The run's model for data samples of ``sample_shape``, initialised from ``spec.seed``."""
    config = resolve_model_config(spec, tuple(sample_shape))
    torch.manual_seed(spec.seed)
    return build("model", spec.model, **config)


# ---- the run ------------------------------------------------------------------------------------
def read_run_spec(run: str | Path) -> RunSpec:
    """The ``RunSpec`` of a run folder (its ``config.json``, this version's or 0.1.0's)."""
    run = Path(run)
    file = run / "config.json" if run.is_dir() else run
    if not file.is_file():
        raise FileNotFoundError(f"{str(run)!r} is not a vqkit run folder: no config.json")
    try:
        record = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{file} is not valid JSON ({exc})") from None
    try:
        return RunSpec.from_dict(record)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{file}: {exc}") from None


def _message(exc: BaseException) -> str:
    """An exception's message (a KeyError's without the quotes its str() adds)."""
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    return str(exc)


def _as_dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _record(spec: RunSpec, model: nn.Module, splits: tuple, command: str | None) -> dict:
    train, val, test = splits
    record = spec.to_dict()
    record["recipe"] = "vqvae" if model.family == "discrete" else "vae"
    record["model"] = {
        "class": model_registry_name(model),
        "config": model_config(model),
        "name": spec.model,
        "overrides": copy.deepcopy(spec.model_config),
    }
    record["data"] = {
        **record["data"],
        "num_train": len(train),
        "num_val": len(val) if val is not None else 0,
        "num_test": len(test) if test is not None else 0,
    }
    if command is not None:
        record["command"] = command
    return record


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The entries (data, model, stages, seed) in which two config.json records of a run
    differ; placement (device, progress bars) and the recorded command line do not count."""

    def strip(record: dict[str, Any]) -> dict[str, Any]:
        model = _as_dict(record.get("model"))
        data = _as_dict(record.get("data"))
        out: dict[str, Any] = {
            "data": {k: v for k, v in data.items() if k not in _DATA_PLACEMENT},
            "model": {"class": model.get("class"), "config": model.get("config")},
            # 0.1.0's records have no seed: the model was seeded with the data seed.
            "seed": record.get("seed", data.get("seed")),
        }
        gan = record.get("gan")
        if isinstance(gan, dict):  # where the LPIPS file lies is placement; the trainer
            gan = {k: v for k, v in gan.items() if k != "perceptual"}  # checks its contents
        out["gan"] = gan or None
        for stage in ("train", "prior_train"):
            settings = record.get(stage)
            if isinstance(settings, dict):
                with contextlib.suppress(TypeError, ValueError):  # fill in newer settings
                    settings = TrainConfig(**settings).to_dict()
                settings = {k: v for k, v in settings.items() if k not in _PLACEMENT}
            out[stage] = settings
        return json.loads(json.dumps(out, default=str))

    a, b = strip(old), strip(new)
    return [k for k in a if a[k] != b[k]]


def train_run(spec: RunSpec, out_dir: str | Path, *, command: str | None = None) -> RunResult:
    """Train the run ``spec`` describes into ``out_dir`` and evaluate it.

    Writes ``config.json`` (the resolved spec, before training starts, so that an interrupted
    run can be resumed or replayed), then trains the first stage and, for a discrete model with
    a prior, the prior on the frozen codes (``train_vqvae_run``), or the VAE
    (``train_vae_run``). Calling it again on the same folder resumes each stage
    from its newest checkpoint; a folder holding a *different* run is refused.

    Args:
        spec: the run.
        out_dir: the run folder.
        command: the command line that started the run, recorded in ``config.json``.

    Returns:
        The ``RunResult`` (model, metrics, pictures, paths).

    Raises:
        ValueError: bad settings, data the model cannot take, a prior without ``prior_train``
            (or ``prior_train`` without a prior), or ``out_dir`` holding another run.
    """
    if not isinstance(spec, RunSpec):
        raise TypeError(f"train_run expects a RunSpec, got {type(spec).__name__}")
    out = Path(out_dir)
    try:
        splits = load_run_data(spec.data)
    except (ValueError, TypeError, KeyError, OSError) as exc:
        raise RunSpecError(f"data {spec.data.spec!r}: {_message(exc)}") from exc
    train, val, test = splits
    if val is None:
        for stage, config in (("train", spec.train), ("prior_train", spec.prior_train)):
            if config is not None and config.patience is not None:
                raise RunSpecError(
                    f"{stage}.patience (early stopping) needs validation data; the data spec "
                    "has val_fraction=0"
                )
    try:
        model = build_run_model(spec, train.sample_shape)
    except (ValueError, TypeError, KeyError) as exc:
        raise RunSpecError(_message(exc)) from exc  # the message names the model
    family = model.family
    if family == "discrete":
        if model.prior is not None and spec.prior_train is None:
            raise RunSpecError(
                "the model has a prior but the spec has no prior_train settings: an untrained "
                "prior would be saved; set prior_train or build without one "
                "(model_config={'prior': None})"
            )
        if model.prior is None and spec.prior_train is not None:
            raise RunSpecError("prior_train is set but the model has no prior to train")
    elif spec.prior_train is not None:
        raise RunSpecError(f"prior_train applies to discrete models; {spec.model} is {family}")
    gan = _gan_training(spec, model)
    record = _record(spec, model, splits, command)
    config_file = out / "config.json"
    if is_main_process():
        if out.exists() and not out.is_dir():
            raise NotADirectoryError(f"the run folder {str(out)!r} is a file")
        if config_file.is_file():
            try:
                old = json.loads(config_file.read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise ValueError(f"{config_file} is not valid JSON ({exc})") from None
            differ = _differences(_as_dict(old), record)
            if differ:
                raise RunSpecError(
                    f"{str(out)!r} holds a different run (its config.json differs in "
                    f"{', '.join(differ)}); choose another folder or delete it"
                )
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(config_file, record)
    if family == "discrete":
        return train_vqvae_run(
            model,
            train,
            val,
            out,
            config=spec.train,
            prior_config=spec.prior_train,
            test=test,
            run_config=record,
            **gan,
        )
    return train_vae_run(model, train, val, out, config=spec.train, test=test, run_config=record)


def _gan_training(spec: RunSpec, model: nn.Module) -> dict[str, Any]:
    """The Trainer's GAN arguments (``disc_lr``, ``perceptual``) of ``spec.gan`` for ``model``,
    checked against the model before anything is written."""
    adversarial = getattr(model, "family", None) == "discrete" and bool(
        getattr(model, "adversarial", False)
    )
    gan = spec.gan
    if not adversarial:
        if gan is not None and (gan.disc_lr is not None or gan.perceptual is not None):
            raise RunSpecError(
                f"gan settings (disc_lr, perceptual) apply to VQ-GAN models; {spec.model} "
                f"({type(model).__name__}) is not trained adversarially"
            )
        return {}
    weight = float(getattr(model, "perceptual_weight", 0.0))
    path = gan.perceptual if gan is not None else None
    kwargs: dict[str, Any] = {"disc_lr": gan.disc_lr if gan is not None else None}
    if path is None:
        if weight > 0:
            from vqkit.losses.lpips import _missing_weights_message

            raise RunSpecError(
                f"{spec.model} has perceptual_weight={weight}: name its LPIPS weights with "
                "gan.perceptual (vqkit train --perceptual FILE), or set perceptual_weight=0. "
                + _missing_weights_message("none named")
            )
        return kwargs
    if weight == 0:
        raise RunSpecError(
            f"gan.perceptual={path!r} is given but {spec.model} has perceptual_weight=0: the "
            "perceptual loss would not be used; set perceptual_weight > 0 or leave it out"
        )
    size = getattr(model, "image_size", None)
    if size is not None and min(size) < 16:
        raise RunSpecError(
            f"gan.perceptual: LPIPS needs images of at least 16×16 (VGG16 pools four times); "
            f"{spec.model} is built for {size[0]}×{size[1]} (resize the data: image_size, "
            "vqkit train --image-size 16)"
        )
    from vqkit.losses.lpips import LPIPS

    try:
        kwargs["perceptual"] = LPIPS(weights=path)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise RunSpecError(f"gan.perceptual: {_message(exc)}") from exc
    return kwargs


def held_out(data: DataSpec, split: str = "test") -> ArrayDataset:
    """The data ``vqkit eval`` scores: the test split of ``data`` (IDX sources), else its
    validation split (``split="test"``), or its training split (``split="train"``)."""
    check_choice("held_out", "split", split, ("train", "test"))
    train, val, test = load_run_data(data)
    if split == "train":
        return train
    return test if test is not None else (val if val is not None else train)
