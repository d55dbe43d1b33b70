"""Settings and results of a training run: ``TrainConfig``, ``TrainResult``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, cast

from vqkit._checks import check_bool, check_int
from vqkit.contracts import LossOutput
from vqkit.train.schedules import parse_schedules

__all__ = ["LossOutput", "TrainConfig", "TrainResult"]


@dataclass
class TrainConfig:
    """Settings of a training run (all JSON-serialisable; saved in the run folder).

    Args:
        epochs: passes over the training data; None for no limit (then set ``max_steps``).
        max_steps: stop after this many optimizer steps (whichever of the two comes first).
        batch_size: *global* batch size; under torchrun each of W processes gets
            ``batch_size // W`` samples. The last incomplete batch of an epoch is dropped.
        optimizer: ``"adam"`` or ``"adamw"``.
        lr: learning rate.
        weight_decay: L2 (Adam) or decoupled (AdamW) weight decay.
        betas: Adam's (β1, β2).
        lr_schedule: ``"constant"`` or ``"cosine"`` (decay to 0 at the last step; needs a known
            number of steps), after ``warmup_steps`` of linear warm-up.
        warmup_steps: steps of linear learning-rate warm-up from 0.
        grad_clip: clip the global gradient norm to this value; None for no clipping.
        precision: ``"fp32"`` or ``"bf16"`` (autocast of the forward pass, on CPU or CUDA).
        patience: stop after this many validations without improvement of ``monitor``
            (needs validation data); None never stops early.
        monitor: the validation term watched by early stopping and best-model tracking.
        restore_best: with validation data, end with the weights of the best validation.
        seed: seed of the data order and of the model's random draws.
        checkpoint_every: also checkpoint every this many steps (a checkpoint is always written
            after each epoch and at the end); None for epoch checkpoints only.
        keep_checkpoints: how many checkpoints to keep.
        progress: show a tqdm progress bar (on the main process).
        log_every: refresh the bar's loss and perplexity every this many steps.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; None picks CUDA when available.
        num_workers: DataLoader worker processes decoding batches of lazy datasets
            ([`ImageFolderDataset`][vqkit.data.ImageFolderDataset], ``MemmapArrayDataset``,
            Hugging Face datasets); 0 reads in the training process. In-memory
            [`ArrayDataset`][vqkit.data.ArrayDataset] batches are always sliced in-process. The data
            order, and so every weight, does not depend on it.
        pin_memory: page-locked batches for faster copies to CUDA (with workers); None turns
            it on exactly when training on CUDA.
        schedules: per-step values of named model attributes (``vqkit.train.schedules``),
            e.g. ``[{"name": "quantizer.temperature", "type": "cosine", "start": 1.0, "end":
            0.0625, "steps": 5000}]``; stored normalised. A resume must use the same ones.
    """

    epochs: int | None = 10
    max_steps: int | None = None
    batch_size: int = 64
    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    grad_clip: float | None = None
    precision: str = "fp32"
    patience: int | None = None
    monitor: str = "loss"
    restore_best: bool = True
    seed: int = 0
    checkpoint_every: int | None = None
    keep_checkpoints: int = 1
    progress: bool = True
    log_every: int = 10
    device: str | None = None
    num_workers: int = 0
    pin_memory: bool | None = None
    schedules: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.betas = cast(tuple[float, float], tuple(self.betas))  # a list from JSON too
        if self.epochs is None and self.max_steps is None:
            raise ValueError("set epochs, max_steps, or both; with neither training never ends")
        for name in ("epochs", "max_steps", "patience", "checkpoint_every"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive int or None, got {value!r}")
        for name in ("batch_size", "keep_checkpoints", "log_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.optimizer not in ("adam", "adamw"):
            raise ValueError(f"optimizer must be 'adam' or 'adamw', got {self.optimizer!r}")
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {self.precision!r}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(
                f"lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}"
            )
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be positive or None, got {self.grad_clip}")
        check_int("TrainConfig", "num_workers", self.num_workers, low=0)
        if self.pin_memory is not None:
            check_bool("TrainConfig", "pin_memory", self.pin_memory)
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        self.schedules = parse_schedules(self.schedules)

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass
class TrainResult:
    """What ``Trainer.fit`` returns.

    Attributes:
        history: one record per epoch (the lines of ``metrics.jsonl``).
        steps: optimizer steps taken in total (including those before a resume).
        best: the best validation record, or None without validation.
        stopped_early: whether early stopping ended the run.
        resumed_from: the checkpoint step the run resumed from, or None.
    """

    history: list[dict] = field(default_factory=list)
    steps: int = 0
    best: dict | None = None
    stopped_early: bool = False
    resumed_from: int | None = None
