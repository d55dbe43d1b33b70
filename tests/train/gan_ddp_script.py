"""Run by test_gan_ddp.py under torchrun (2 processes, gloo) and once without it.

Trains a tiny VQ-GAN (BatchNorm PatchGAN, adaptive weight, R1 penalty, whose double backward
goes through the synchronised BatchNorm, discriminator from step 2) with the unchanged Trainer.
``ddp`` runs it uninterrupted, then killed at step 3 (a ``BaseException`` from a callback, which
nothing catches inside the trainer) and resumed in the same processes; ``single`` runs it
uninterrupted in one process on the whole batch. Each run's generator, discriminator and λ trace
go to ``<out>/<tag>-<run>-rank<r>.safetensors``.
"""

import contextlib
import os
import sys

import torch
from safetensors.torch import save_file

from vqkit.data import ArrayDataset
from vqkit.models.presets import gan_preset_config
from vqkit.models.vqgan import VQGAN
from vqkit.train import Trainer

# 32 images, global batch 8: 4 steps an epoch; the kill at step 3 is mid-epoch (after the step-2
# checkpoint) and the run ends 2 steps into its second epoch.
SETTINGS = {
    "max_steps": 6,
    "epochs": None,
    "batch_size": 8,
    "progress": False,
    "seed": 0,
    "lr": 3e-3,
    "disc_lr": 1e-2,
    "checkpoint_every": 2,
}


class Killed(BaseException):
    """Stands for SIGKILL: nothing catches it and no cleanup runs."""


def _model() -> VQGAN:
    torch.manual_seed(0)
    config = gan_preset_config(
        "vqgan-digits",
        prior=None,
        disc_start=2,
        r1_weight=1.0,
        discriminator={"type": "patchgan", "ndf": 8, "n_layers": 1, "norm": "batch"},
        quantizer={"codebook_size": 8, "dim": 4, "reseed": None},
    )
    for part in ("encoder", "decoder"):
        # No attention: softmax ignores the key bias, whose zero gradient Adam turns into
        # steps of size lr from rounding noise, which would differ between the two runs.
        config[part] = {**config[part], "ch": 8, "norm_groups": 4, "mid_attention": False}
    return VQGAN(**config)


def _run(out: str, kill_at: int | None = None) -> tuple[VQGAN, Trainer, list[float]]:
    g = torch.Generator().manual_seed(0)
    data = ArrayDataset(torch.rand(32, 1, 8, 8, generator=g) * 2 - 1)
    lambdas: list[float] = []

    def record(trainer, step, logs):
        lambdas.append(float(logs["lambda"]))
        if step == kill_at:
            raise Killed

    model = _model()
    trainer = Trainer(model, data, out_dir=out, callbacks=[record], **SETTINGS)
    trainer.fit()
    return model, trainer, lambdas


def _save(model, trainer, lambdas, path) -> None:
    tensors = {f"g.{k}": v for k, v in model.state_dict().items()}
    tensors |= {f"d.{k}": v for k, v in trainer.discriminator.state_dict().items()}
    tensors["lambda"] = torch.tensor(lambdas, dtype=torch.float64)
    save_file({k: v.contiguous() for k, v in tensors.items()}, path)


def main(out: str, tag: str) -> None:
    rank = int(os.environ.get("RANK", 0))
    _save(*_run(f"{out}/{tag}-full"), f"{out}/{tag}-full-rank{rank}.safetensors")
    if tag == "ddp":
        with contextlib.suppress(Killed):
            _run(f"{out}/{tag}-resumed", kill_at=3)
        model, trainer, lambdas = _run(f"{out}/{tag}-resumed")
        _save(model, trainer, lambdas, f"{out}/{tag}-resumed-rank{rank}.safetensors")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
