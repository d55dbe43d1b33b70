"""One GAN update: the public ``GANStep`` and the Trainer's step (both ``gan_update``) give the
same parameters, discriminator and logs from the same start, before and after disc_start."""

import copy

import pytest
import torch

from vqkit.data import ArrayDataset
from vqkit.models.presets import gan_preset_config
from vqkit.models.vqgan import VQGAN
from vqkit.train import Trainer
from vqkit.train.gan import GANStep, gan_update

SEED, STEPS, N = 0, 4, 8  # one batch per epoch: epoch e is the trainer's order of epoch e


def test_gan_step_and_trainer_step_agree_exactly():
    torch.manual_seed(3)
    model = VQGAN(**gan_preset_config("vqgan-digits", prior=None, disc_start=2))
    disc = model.build_discriminator()
    data = torch.rand(N, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    models = [model, copy.deepcopy(model)]
    discs = [disc, copy.deepcopy(disc)]
    initial = copy.deepcopy(model.state_dict())

    seen: list[dict] = []
    trainer = Trainer(
        models[0],
        ArrayDataset(data),
        epochs=STEPS,
        batch_size=N,
        lr=2e-3,
        disc_lr=5e-3,
        seed=SEED,
        progress=False,
        discriminator=discs[0],
        callbacks=[lambda t, s, logs: seen.append(dict(logs))],
    )
    trainer.fit()

    step = GANStep(models[1], discriminator=discs[1], lr=2e-3, disc_lr=5e-3)
    torch.manual_seed(SEED)  # what the trainer does when it starts
    logs = []
    for epoch in range(STEPS):
        order = torch.randperm(N, generator=torch.Generator().manual_seed(SEED * 100_003 + epoch))
        logs.append(step(data[order]))

    assert [float(s["disc_active"]) for s in seen] == [0.0, 0.0, 1.0, 1.0]
    for key in ("rec", "quantizer", "g_loss", "lambda", "total", "d_loss", "logits_real"):
        assert [float(s[key]) for s in seen] == [float(g[key]) for g in logs], key
    assert float(logs[-1]["lambda"]) > 0
    for a, b in ((models[0], models[1]), (trainer.discriminator, step.discriminator)):
        for (key, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
            assert torch.equal(x, y), key
    # The run moved the weights: the agreement is not that of two untouched copies.
    moved = [not torch.equal(v, models[0].state_dict()[k]) for k, v in initial.items()]
    assert sum(moved) > len(moved) // 2


def test_gan_update_checks_its_arguments():
    torch.manual_seed(0)
    model = VQGAN(**gan_preset_config("vqgan-digits", prior=None))
    disc = model.build_discriminator()
    opt = torch.optim.Adam([*model.parameters(), *disc.parameters()])
    x = torch.rand(2, 1, 8, 8)
    good = {"opt_g": opt, "opt_d": opt}
    cases = [
        ((torch.nn.Linear(2, 2), disc, x, 0), good, TypeError, "adversarial vqkit model"),
        ((model, "disc", x, 0), good, TypeError, "discriminator must be an nn.Module"),
        ((model, disc, x[:0], 0), good, ValueError, "empty batch"),
        ((model, disc, x[0], 0), good, ValueError, r"images \(B, C, H, W\)"),
        ((model, disc, x, -1), good, ValueError, "step"),
        ((model, disc, x, 0), {"opt_g": opt, "opt_d": None}, TypeError, "opt_d must be"),
        ((model, disc, x, 0), {**good, "grad_clip": 0.0}, ValueError, "grad_clip"),
    ]
    for args, kwargs, error, match in cases:
        with pytest.raises(error, match=match):
            gan_update(*args, **kwargs)
