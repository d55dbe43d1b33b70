"""A small, deterministic, resumable trainer for vqkit models, single-process or under torchrun.

The trainer knows one thing about a model: calling the *objective* (by default ``model(x)``)
returns an object with a scalar ``loss`` and a dict ``losses`` of named scalar terms, plus an
optional ``quantizer`` output whose ``perplexity`` is shown live. Everything else (VQ-VAE, priors
over codes, VAEs) plugs in through that contract.

A VQ-GAN (a model with ``generator_loss``, ``discriminator_loss`` and ``build_discriminator``,
i.e. ``vqkit.models.VQGAN``) trained with the default objective is trained adversarially, as
in *Taming Transformers for High-Resolution Image Synthesis* (Esser et al. 2021,
arXiv:2012.09841; taming's ``VQModel.training_step``): every step is a generator update followed,
from ``disc_start`` on, by a discriminator update. The two updates have their own Adam parameter
groups (their own learning rates, ``disc_lr``; taming's β = (0.5, 0.9) by default). Adam's state
is per parameter and a parameter without a gradient is skipped, so one optimizer holding the
two disjoint groups is exactly two optimizers, and it goes into the checkpoint format unchanged;
the discriminator goes into the checkpoint's ``model.safetensors`` beside the generator (keys
``generator.*`` and ``discriminator.*``). The model itself (``Trainer.model``) stays the
generator only.

What it does: Adam/AdamW, a number of epochs or of optimizer steps, validation after each epoch
with early stopping, gradient clipping, optional bf16 autocast, a tqdm bar with the loss and the
codebook perplexity, one JSON line of metrics per epoch (``metrics.jsonl``), atomic checkpoints
(see ``vqkit.train.checkpoint``) from which a killed run resumes and reproduces the
uninterrupted run's weights exactly, and DistributedDataParallel when started by ``torchrun``.

Determinism: the model's random draws use the global torch RNG, seeded with ``seed`` when training
starts and saved in every checkpoint; the data order of epoch ``e`` is a permutation drawn from a
private generator seeded with ``(seed, e)``. Lazy datasets are decoded by ``num_workers``
DataLoader workers that are handed that order batch by batch (see ``vqkit.data.loader``), so
neither the order nor the weights depend on the number of workers.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence, Sized
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, cast

import torch
from torch import nn
from torch.utils.data import Dataset

from vqkit.data.loader import batch_indices, iterate_batches
from vqkit.train.checkpoint import (
    load_latest_checkpoint,
    run_folder_lock,
    save_checkpoint,
)
from vqkit.train.config import LossOutput, TrainConfig, TrainResult
from vqkit.train.distributed import (
    all_reduce_mean,
    all_reduce_sum,
    setup_distributed,
    sync_batchnorm,
)
from vqkit.train.schedules import Schedules

__all__ = ["LossOutput", "TrainConfig", "TrainResult", "Trainer", "default_objective"]

Objective = Callable[[nn.Module, Any], Any]
StepCallback = Callable[["Trainer", int, dict], None]


def default_objective(model: nn.Module, batch: Any) -> Any:
    """``model(x)`` where ``x`` is the batch (or its first element for tuples/lists)."""
    x = batch[0] if isinstance(batch, (tuple, list)) else batch
    return model(x)


def _logs_of(output: Any) -> dict[str, torch.Tensor]:
    """Detached scalar terms of a model output: its ``losses``, ``loss`` and ``perplexity``."""
    loss: Any  # checked below
    losses: dict[str, Any]
    if isinstance(output, torch.Tensor):
        loss, losses, quantizer = output, {}, None
    else:
        loss = getattr(output, "loss", None)
        losses = getattr(output, "losses", None) or {}
        quantizer = getattr(output, "quantizer", None)
    if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
        raise TypeError(
            "the objective must return a scalar tensor or an object with a scalar `loss` (and a "
            f"dict `losses`), got {type(output).__name__} with loss={loss!r}"
        )
    logs = {k: v.detach().float() for k, v in losses.items() if isinstance(v, torch.Tensor)}
    logs = {k: v for k, v in logs.items() if v.ndim == 0}
    logs["loss"] = loss.detach().float()
    perplexity = getattr(quantizer, "perplexity", None)
    if isinstance(perplexity, torch.Tensor) and perplexity.numel() == 1:
        logs["perplexity"] = perplexity.detach().float().reshape(())
    return logs


_GAN_BETAS = (0.5, 0.9)


def is_gan_model(model: nn.Module) -> bool:
    """Whether ``model`` is trained adversarially by the default objective (a ``VQGAN``): what the
    discrete-model contract's ``adversarial`` declares (``vqkit.contracts.DiscreteModel``)."""
    # Any nn.Module can be trained; only registered discrete models declare a family.
    return getattr(model, "family", None) == "discrete" and cast(bool, model.adversarial)


class _GANModules(nn.Module):
    """The generator and its discriminator as one module: what a GAN checkpoint holds."""

    def __init__(self, generator: nn.Module, discriminator: nn.Module) -> None:
        super().__init__()
        self.generator = generator
        self.discriminator = discriminator
        config = getattr(generator, "_hub_mixin_config", None)
        if isinstance(config, dict):  # so a resume with another model config is refused
            self._hub_mixin_config = dict(config)


class _ObjectiveModule(nn.Module):
    """Runs the objective inside ``forward`` so DistributedDataParallel sees the whole step."""

    def __init__(self, model: nn.Module, objective: Objective) -> None:
        super().__init__()
        self.model = model
        self.objective = objective

    def forward(self, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        output = self.objective(self.model, batch)
        logs = _logs_of(output)
        loss = output if isinstance(output, torch.Tensor) else output.loss
        return loss, logs


def _fingerprint(perceptual: Any) -> str | None:
    """What a GAN checkpoint records of its perceptual network, compared on resume: the class
    and a SHA-256 of its parameters and buffers (a module), or the callable's qualified name."""
    if perceptual is None:
        return None
    if not isinstance(perceptual, nn.Module):
        return getattr(perceptual, "__qualname__", type(perceptual).__qualname__)
    import hashlib

    digest = hashlib.sha256()
    for key, value in sorted(perceptual.state_dict().items()):
        digest.update(key.encode())
        digest.update(
            value.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        )
    return f"{type(perceptual).__name__}:sha256:{digest.hexdigest()[:16]}"


def _move(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (tuple, list)):
        return type(batch)(_move(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: _move(v, device) for k, v in batch.items()}
    return batch


class Trainer:
    """Train ``model`` on ``train_data``, validating on ``val_data``, into ``out_dir``.

    Args:
        model: the module to train (its parameters with ``requires_grad`` are optimized).
        train_data: an [`ArrayDataset`][vqkit.data.ArrayDataset] or any map-style dataset.
        val_data: optional validation data; evaluated after every epoch.
        config: a ``TrainConfig``; keyword ``overrides`` replace its fields.
        objective: ``objective(model, batch)`` returning the output contract (``loss``,
            ``losses``); defaults to ``model(batch)``.
        out_dir: run folder for ``metrics.jsonl`` and ``checkpoints/``; None keeps nothing on
            disk (no checkpoints, no resume).
        resume: continue from the newest checkpoint in ``out_dir`` if there is one.
        callbacks: functions ``f(trainer, step, logs)`` called after every optimizer step (on
            every process).
        name: prefix of the progress bar.
        discriminator: GAN only: the discriminator to train (default: a fresh
            ``model.build_discriminator()``). After ``fit`` it is ``trainer.discriminator``.
        perceptual: GAN only: the perceptual distance (e.g. ``vqkit.losses.LPIPS``), required
            when ``model.perceptual_weight > 0``; it is not trained.
        disc_lr: GAN only: the discriminator's learning rate (default: ``config.lr``); it
            follows the same warmup and schedule as ``lr`` (scaled by ``disc_lr / lr``).
        gan_betas: GAN only: Adam's (β1, β2) of both updates (taming: (0.5, 0.9));
            ``config.betas`` must be left at its default for a GAN.

    A GAN's logged terms (per step, averaged per epoch in ``metrics.jsonl`` as ``train/...``):
    ``rec``, ``perceptual``, ``quantizer``, ``nll``, ``g_loss``, ``lambda``, ``total``,
    ``d_loss``, ``logits_real``, ``logits_fake``, ``r1``, ``disc_active``, ``loss`` (the
    generator's total) and ``perplexity``. Validation is the model's plain forward (the VQ-VAE
    objective).

    Under torchrun a GAN's generator objective and its discriminator objective are each wrapped
    in DistributedDataParallel (gradients averaged over processes for both updates); the
    adaptive weight λ is computed from the all-reduced mean of the two last-layer gradients, so
    it is the whole global batch's λ and the same on every process; a BatchNorm discriminator's
    ``BatchNorm2d`` layers become ``vqkit.train.distributed.SyncBatchNorm2d`` (statistics of
    the global batch; same state dict). The run then equals one process on the whole batch up
    to float rounding; checkpoints are written by rank 0.

    Example::

        trainer = Trainer(model, train, val, out_dir="runs/x", epochs=5, batch_size=64)
        result = trainer.fit()
    """

    def __init__(
        self,
        model: nn.Module,
        train_data: Dataset,
        val_data: Dataset | None = None,
        *,
        config: TrainConfig | None = None,
        objective: Objective | None = None,
        out_dir: str | Path | None = None,
        resume: bool = True,
        callbacks: Sequence[StepCallback] = (),
        name: str = "train",
        discriminator: nn.Module | None = None,
        perceptual: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        disc_lr: float | None = None,
        gan_betas: tuple[float, float] = _GAN_BETAS,
        **overrides: Any,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        known = {f.name for f in fields(TrainConfig)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(
                f"unknown training option(s) {unknown}; TrainConfig has {sorted(known)}"
            )
        self.config = replace(config or TrainConfig(), **overrides)
        if len(cast(Sized, train_data)) == 0:  # map-style datasets define __len__
            raise ValueError("train_data is empty")
        if self.config.patience is not None and val_data is None:
            raise ValueError("patience (early stopping) needs val_data")
        self.model = model
        self.schedules = Schedules(self.config.schedules, model)  # names checked on the model
        self.train_data = train_data
        self.val_data = val_data
        self.objective = objective or default_objective
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.resume = resume
        self.callbacks = list(callbacks)
        self.name = name
        self.step = 0
        self.gan = objective is None and is_gan_model(model)
        self._setup_gan(discriminator, perceptual, disc_lr, gan_betas)

    def _setup_gan(self, discriminator, perceptual, disc_lr, gan_betas) -> None:
        from vqkit._checks import check_number

        owner = "Trainer"
        given = {
            "discriminator": discriminator is not None,
            "perceptual": perceptual is not None,
            "disc_lr": disc_lr is not None,
            "gan_betas": tuple(gan_betas) != _GAN_BETAS
            if isinstance(gan_betas, (tuple, list))
            else True,
        }
        self.discriminator: nn.Module | None = None
        self.perceptual = perceptual
        if not self.gan:
            if any(given.values()):
                names = sorted(k for k, v in given.items() if v)
                custom = self.objective is not default_objective
                how = "a custom objective" if custom else "its objective"
                raise ValueError(
                    f"{owner}: {names} apply to adversarial (VQ-GAN) training only; "
                    f"{type(self.model).__name__} with "
                    f"{how} is not trained adversarially"
                )
            return
        if discriminator is not None and not isinstance(discriminator, nn.Module):
            raise TypeError(
                f"{owner}: discriminator must be an nn.Module or None, got "
                f"{type(discriminator).__name__}"
            )
        if perceptual is not None and not callable(perceptual):
            raise TypeError(f"{owner}: perceptual must be callable, got {perceptual!r}")
        if getattr(self.model, "perceptual_weight", 0) > 0 and perceptual is None:
            raise ValueError(
                f"{owner}: the model has perceptual_weight={self.model.perceptual_weight} but no "
                "perceptual network was given: pass perceptual=vqkit.losses.LPIPS(weights=...) "
                "(docs/vqgan.md says which weights) or build the model with perceptual_weight=0"
            )
        if not isinstance(gan_betas, (tuple, list)) or len(gan_betas) != 2:
            raise ValueError(f"{owner}: gan_betas must be a pair (beta1, beta2), got {gan_betas!r}")
        self.gan_betas = cast(  # a pair: len(gan_betas) == 2, checked above
            tuple[float, float],
            tuple(
                check_number(owner, "gan_betas", b, low=0.0, high=1.0, high_open=True)
                for b in gan_betas
            ),
        )
        if tuple(self.config.betas) != TrainConfig().betas:
            raise ValueError(
                f"{owner}: a VQ-GAN is trained with gan_betas={self.gan_betas} (taming's Adam "
                f"betas); config.betas={tuple(self.config.betas)} would be ignored: leave it at "
                "its default and pass gan_betas=... instead"
            )
        self.disc_lr = (
            self.config.lr
            if disc_lr is None
            else check_number(owner, "disc_lr", disc_lr, low=0.0, low_open=True)
        )
        self._given_discriminator = discriminator

    # ---- public -------------------------------------------------------------------------------
    @property
    def checkpoint_dir(self) -> Path | None:
        return self.out_dir / "checkpoints" if self.out_dir is not None else None

    def fit(self) -> TrainResult:
        """Run (or resume) training; returns the history. Leaves the model in eval mode.

        The run folder is locked meanwhile: another process training into it is refused with
        ``vqkit.train.checkpoint.RunFolderInUseError``.
        """
        with run_folder_lock(self.out_dir):
            return self._fit()

    def _fit(self) -> TrainResult:
        cfg = self.config
        self.dist = dist_info = setup_distributed(cfg.device)
        device = dist_info.device
        self.model.to(device)
        params = [p for p in self.model.parameters() if p.requires_grad]
        if not params:
            raise ValueError("the model has no parameters with requires_grad=True to train")
        self._saved: nn.Module = self.model
        self._lr_scales = [1.0]
        if self.gan:
            disc = self._given_discriminator
            if disc is None:  # its own seed: the global RNG stream stays the VQ-VAE's
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(cfg.seed + 1)
                    disc = cast(Any, self.model).build_discriminator()  # a VQGAN here
            disc = disc.to(device)
            if dist_info.distributed:  # BatchNorm statistics of the whole global batch
                disc = sync_batchnorm(disc)
            self.discriminator = disc
            if isinstance(self.perceptual, nn.Module):
                self.perceptual.to(device)
            self._saved = _GANModules(self.model, disc)  # disc is self.discriminator
            self.optimizer = self._make_optimizer(
                [{"params": params}, {"params": list(disc.parameters())}]
            )
            self._lr_scales = [1.0, self.disc_lr / self.config.lr]
        else:
            self.optimizer = self._make_optimizer(params)
        self._wrapped = _ObjectiveModule(self.model, self.objective)
        runner: nn.Module = self._wrapped
        ddp_kwargs: dict[str, Any] = {"device_ids": [device.index]} if device.type == "cuda" else {}
        if self.gan:
            from vqkit.train.gan import DiscriminatorObjective, GeneratorObjective

            model: Any = self.model  # a VQGAN
            self._gan_runners: tuple[nn.Module, nn.Module] = (
                GeneratorObjective(model),
                DiscriminatorObjective(cast(nn.Module, self.discriminator), model),
            )
            if dist_info.distributed:
                self._gan_runners = cast(
                    tuple[nn.Module, nn.Module],
                    tuple(
                        nn.parallel.DistributedDataParallel(r, **ddp_kwargs)
                        for r in self._gan_runners
                    ),
                )
        elif dist_info.distributed:
            runner = nn.parallel.DistributedDataParallel(self._wrapped, **ddp_kwargs)

        n = len(cast(Sized, self.train_data))
        world = dist_info.world_size
        batch = min(cfg.batch_size, n) // world * world
        if batch == 0:
            raise ValueError(f"{n} training samples cannot be shared by {world} processes")
        if cfg.batch_size % world:
            raise ValueError(
                f"batch_size {cfg.batch_size} is the global batch and must be divisible by the "
                f"number of processes ({world})"
            )
        self.global_batch = batch
        self.steps_per_epoch = n // batch
        total_steps = self._total_steps()

        state = self._initial_state()
        result = TrainResult(history=state["history"], resumed_from=state.get("resumed_from"))
        self.step = state["step"]
        if state.get("finished"):
            self._load_best_if_any(state)
            self.model.eval()
            return self._result(state, result)

        bar = self._progress_bar(total_steps)
        sums: dict[str, torch.Tensor] = {
            k: torch.tensor(v, dtype=torch.float64, device=device) for k, v in state["sums"].items()
        }
        start_time = time.perf_counter() - state.get("elapsed", 0.0)
        stop = False
        while not stop:
            epoch = state["epoch"]
            if cfg.epochs is not None and epoch >= cfg.epochs:
                break
            order = torch.randperm(
                n, generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
            )
            self.model.train()
            first = state["batch_in_epoch"]
            remaining = self.steps_per_epoch - first
            if cfg.max_steps is not None:
                remaining = max(0, min(remaining, cfg.max_steps - self.step))
            batches = self._batches(
                self.train_data,
                batch_indices(order, batch, rank=dist_info.rank, world_size=world, start=first)[
                    :remaining
                ],
                device,
            )
            for b, data in zip(range(first, first + remaining), batches, strict=True):
                scheduled = self.schedules.apply(self.step, device)  # step t's values, logged
                logs = self._train_step(runner, _move(data, device), total_steps)
                logs.update(scheduled)
                self.step += 1
                state["step"], state["batch_in_epoch"] = self.step, b + 1
                for k, v in logs.items():
                    sums[k] = sums.get(k, torch.zeros((), dtype=torch.float64, device=device)) + v
                sums["_count"] = (
                    sums.get("_count", torch.zeros((), dtype=torch.float64, device=device)) + 1
                )
                if bar is not None:
                    bar.update(1)
                    if self.step % cfg.log_every == 0 or self.step == 1:
                        bar.set_postfix(_postfix(logs), refresh=False)
                for callback in self.callbacks:
                    callback(self, self.step, logs)
                if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                    self._checkpoint(state, sums, start_time)
            reached_max = cfg.max_steps is not None and self.step >= cfg.max_steps
            epoch_done = state["batch_in_epoch"] >= self.steps_per_epoch
            if epoch_done or reached_max:
                stop = self._end_epoch(state, sums, start_time, result, bar) or reached_max
                sums = {}
                if epoch_done:
                    state["epoch"] += 1
                    state["batch_in_epoch"] = 0
                    stop = stop or (cfg.epochs is not None and state["epoch"] >= cfg.epochs)
                if not stop:  # the final checkpoint follows the loop
                    self._checkpoint(state, sums, start_time)
        if bar is not None:
            bar.close()
        state["finished"] = True
        self._load_best_if_any(state)
        self._checkpoint(state, {}, start_time)
        self.model.eval()
        return self._result(state, result)

    @torch.no_grad()
    def evaluate(self, data: Dataset | None = None) -> dict[str, float]:
        """Mean of every logged term over ``data`` (default: the validation data), in eval mode.

        Under torchrun each process evaluates its share and the sums are all-reduced.
        """
        data = data if data is not None else self.val_data
        if data is None:
            raise ValueError("no data to evaluate: pass data or give the trainer val_data")
        dist_info = getattr(self, "dist", None) or setup_distributed(self.config.device)
        device = dist_info.device
        wrapped = getattr(self, "_wrapped", None) or _ObjectiveModule(self.model, self.objective)
        was_training = self.model.training
        self.model.eval()
        indices = torch.arange(len(cast(Sized, data)))[dist_info.rank :: dist_info.world_size]
        sums: dict[str, torch.Tensor] = {}
        count = torch.zeros((), dtype=torch.float64, device=device)
        chunks = [c for c in torch.split(indices, self.config.batch_size) if len(c)]
        for idx, fetched in zip(chunks, self._batches(data, chunks, device), strict=True):
            batch = _move(fetched, device)
            with self._autocast(device):
                _, logs = wrapped(batch)
            weight = float(len(idx))
            for k, v in logs.items():
                sums[k] = (
                    sums.get(k, torch.zeros((), dtype=torch.float64, device=device)) + v * weight
                )
            count += weight
        keys = sorted(sums)
        packed = torch.stack([sums[k] for k in keys] + [count]) if keys else count.view(1)
        all_reduce_sum(packed)
        self.model.train(was_training)
        return {k: float(packed[i] / packed[-1]) for i, k in enumerate(keys)}

    # ---- batches ------------------------------------------------------------------------------
    def _batches(self, data: Dataset, indices: list[torch.Tensor], device: torch.device):
        """The batches at ``indices``, read by ``config.num_workers`` DataLoader workers."""
        cfg = self.config
        pin = cfg.pin_memory if cfg.pin_memory is not None else device.type == "cuda"
        return iterate_batches(data, indices, num_workers=cfg.num_workers, pin_memory=pin)

    # ---- steps --------------------------------------------------------------------------------
    def _make_optimizer(self, params: list) -> torch.optim.Optimizer:
        cfg = self.config
        cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
        betas = self.gan_betas if self.gan else cfg.betas
        return cls(params, lr=cfg.lr, betas=betas, weight_decay=cfg.weight_decay)

    def _total_steps(self) -> int | None:
        cfg = self.config
        by_epochs = cfg.epochs * self.steps_per_epoch if cfg.epochs is not None else None
        candidates = [s for s in (by_epochs, cfg.max_steps) if s is not None]
        return min(candidates) if candidates else None

    def _lr_at(self, step: int, total: int | None) -> float:
        cfg = self.config
        if cfg.warmup_steps and step < cfg.warmup_steps:
            return cfg.lr * (step + 1) / cfg.warmup_steps
        if cfg.lr_schedule == "cosine" and total:
            progress = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
            return cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        return cfg.lr

    def _autocast(self, device: torch.device):
        return torch.autocast(
            device_type=device.type, dtype=torch.bfloat16, enabled=self.config.precision == "bf16"
        )

    def _train_step(
        self, runner: nn.Module, batch: Any, total: int | None
    ) -> dict[str, torch.Tensor]:
        cfg = self.config
        lr = self._lr_at(self.step, total)
        for group, scale in zip(self.optimizer.param_groups, self._lr_scales, strict=True):
            group["lr"] = lr * scale
        if self.gan:
            return self._gan_step(batch)
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast(self.dist.device):
            loss, logs = runner(batch)
        loss.float().backward()
        if cfg.grad_clip is not None:
            params = [p for g in self.optimizer.param_groups for p in g["params"]]
            logs["grad_norm"] = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip).detach()
        self.optimizer.step()
        return logs

    def _gan_step(self, batch: Any) -> dict[str, torch.Tensor]:
        """Generator update, then (from ``disc_start`` on) discriminator update:
        ``vqkit.train.gan.gan_update`` with the one optimizer holding both groups."""
        from vqkit.train.gan import gan_update

        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        generator_runner, discriminator_runner = self._gan_runners
        logs, out, active = gan_update(
            cast(Any, self.model),  # a VQGAN: the adversarial discrete-model contract
            cast(nn.Module, self.discriminator),  # built by fit() for a GAN model
            x,
            self.step,
            opt_g=self.optimizer,
            opt_d=self.optimizer,
            perceptual=self.perceptual,
            generator_runner=generator_runner,
            discriminator_runner=discriminator_runner,
            grad_sync=all_reduce_mean if self.dist.distributed else None,
            grad_clip=self.config.grad_clip,
            autocast=lambda: self._autocast(self.dist.device),
        )
        logs = {k: v.detach().float() for k, v in logs.items()}
        logs["disc_active"] = torch.tensor(float(active), device=x.device)
        logs["loss"] = logs["total"]
        perplexity = getattr(out.quantizer, "perplexity", None)
        if isinstance(perplexity, torch.Tensor) and perplexity.numel() == 1:
            logs["perplexity"] = perplexity.detach().float().reshape(())
        return logs

    # ---- epochs, validation, early stopping ---------------------------------------------------
    def _end_epoch(self, state, sums, start_time, result, bar) -> bool:
        cfg = self.config
        count = sums.pop("_count", None)
        keys = sorted(sums)
        record: dict[str, Any] = {"epoch": state["epoch"] + 1, "step": self.step}
        if count is not None and keys:
            packed = torch.stack([sums[k] for k in keys] + [count])
            all_reduce_sum(packed)
            record.update({f"train/{k}": float(packed[i] / packed[-1]) for i, k in enumerate(keys)})
        record["lr"] = self._lr_at(max(0, self.step - 1), self._total_steps())
        stop = False
        if self.val_data is not None:
            val = self.evaluate(self.val_data)
            record.update({f"val/{k}": v for k, v in val.items()})
            if cfg.monitor not in val:
                raise KeyError(
                    f"monitor {cfg.monitor!r} is not among the validation terms {sorted(val)}"
                )
            value = val[cfg.monitor]
            if state["best"] is None or value < state["best"][f"val/{cfg.monitor}"]:
                state["best"] = dict(record)
                state["bad_epochs"] = 0
                if cfg.restore_best:
                    self._best_weights: dict[str, Any] | None = {
                        k: v.detach().to("cpu").clone() for k, v in self.model.state_dict().items()
                    }
            else:
                state["bad_epochs"] += 1
                stop = cfg.patience is not None and state["bad_epochs"] >= cfg.patience
                state["stopped_early"] = stop
        record["time"] = round(time.perf_counter() - start_time, 3)
        state["history"].append(record)
        result.history = state["history"]
        if self.dist.is_main and self.out_dir is not None:
            with open(self.out_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
        if bar is not None:
            shown = {k.split("/", 1)[1]: v for k, v in record.items() if k.startswith("val/")}
            bar.set_postfix(
                _postfix({f"val_{k}": v for k, v in shown.items()} or record), refresh=True
            )
        return stop

    # ---- state, checkpoints, resume ------------------------------------------------------------
    def _initial_state(self) -> dict:
        cfg = self.config
        state = {
            "step": 0,
            "epoch": 0,
            "batch_in_epoch": 0,
            "sums": {},
            "history": [],
            "best": None,
            "bad_epochs": 0,
            "stopped_early": False,
            "finished": False,
            "elapsed": 0.0,
            "config": self._resume_config(),
        }
        self._best_weights = None
        self._save_index = 0
        torch.manual_seed(cfg.seed)
        if self.out_dir is None:
            return state
        if self.dist.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        found = None
        if self.resume:  # the newest intact checkpoint, refused if the settings changed
            found = load_latest_checkpoint(
                cast(Path, self.checkpoint_dir),  # out_dir is set (checked above)
                model=self._saved,
                optimizer=self.optimizer,
                config=self._resume_config(),
            )
        if found is None:
            if self.dist.is_main:
                (self.out_dir / "metrics.jsonl").write_text("")
            return state
        loaded, best = found
        self._save_index = loaded.pop("index") + 1
        loaded.pop("optimizer")
        loaded.pop("rng")
        self._best_weights = best
        loaded["resumed_from"] = loaded["step"]
        if self.dist.is_main:
            # Epoch lines written after that checkpoint are dropped: they will be written again.
            lines = "".join(json.dumps(r) + "\n" for r in loaded["history"])
            tmp = self.out_dir / ".metrics.jsonl.tmp"
            tmp.write_text(lines)
            tmp.replace(self.out_dir / "metrics.jsonl")
        return loaded

    def _resume_config(self) -> dict[str, Any]:
        """The settings recorded in checkpoints and compared on resume (a GAN's own too)."""
        config = self.config.to_dict()
        if self.gan:
            config["disc_lr"] = self.disc_lr
            config["gan_betas"] = list(self.gan_betas)
            config["perceptual"] = _fingerprint(self.perceptual)
        return config

    def _checkpoint(self, state: dict, sums: dict[str, torch.Tensor], start_time: float) -> None:
        if self.out_dir is None:
            return
        state["sums"] = {k: float(v) for k, v in sums.items()}
        state["elapsed"] = time.perf_counter() - start_time
        if self.dist.is_main:
            save_checkpoint(
                cast(Path, self.checkpoint_dir),  # out_dir is set (checked above)
                self._save_index,
                model=self._saved,
                optimizer=self.optimizer,
                state={k: v for k, v in state.items() if k != "resumed_from"},
                best_model=self._best_weights,
                keep=self.config.keep_checkpoints,
            )
        self._save_index += 1

    def _load_best_if_any(self, state: dict) -> None:
        if self.config.restore_best and self._best_weights is not None:
            self.model.load_state_dict(self._best_weights, strict=True)

    def _result(self, state: dict, result: TrainResult) -> TrainResult:
        result.history = state["history"]
        result.steps = state["step"]
        result.best = state["best"]
        result.stopped_early = bool(state.get("stopped_early"))
        return result

    def _progress_bar(self, total: int | None):
        if not (self.config.progress and self.dist.is_main):
            return None
        from tqdm.auto import tqdm

        return tqdm(total=total, initial=self.step, desc=self.name, unit="step", dynamic_ncols=True)


def _postfix(logs: dict) -> dict[str, str]:
    shown = {}
    for key in ("loss", "perplexity", "val_loss", "val_perplexity"):
        if key in logs:
            shown[key.replace("perplexity", "ppl")] = f"{float(logs[key]):.4g}"
    return shown
