"""Recipes: the capacity counter under the trainer, a VAE run folder, prior bits/dim, pictures."""

import json
import math

import pytest
import torch
from PIL import Image
from torch import nn

from vqkit import VAE, BetaVAE
from vqkit.data import ArrayDataset, correlated_gaussian, load_digits, subset, train_val_split
from vqkit.train import Trainer, evaluate_prior, load_run_model, train_vae_run
from vqkit.train.evaluate import evaluate_elbo


def test_capacity_advances_once_per_optimizer_step_only():
    data = ArrayDataset(torch.rand(40, 1, 8, 8, generator=torch.Generator().manual_seed(0)))
    train, val = data.select(torch.arange(32)), data.select(torch.arange(32, 40))
    torch.manual_seed(0)
    model = BetaVAE(
        in_channels=1,
        image_size=8,
        latent_dim=4,
        hidden_dims=[8, 8],
        loss={"type": "capacity_kl", "capacity_steps": 100},
    )
    trainer = Trainer(model, train, val, epochs=3, batch_size=8, progress=False, restore_best=False)
    result = trainer.fit()
    assert result.steps == 12
    # 12 training forwards; the 3 validations (eval mode, no_grad) must not move C.
    assert int(model.loss_fn.iteration) == 12
    # C(t) = 25 · t / 100 is taken before each step's advance: epoch 3 uses t = 8..11.
    assert result.history[-1]["train/capacity"] == pytest.approx(25.0 * 9.5 / 100)
    assert result.history[-1]["val/capacity"] == pytest.approx(25.0 * 12 / 100)


def test_vae_run_folder_round_trip(tmp_path):
    points = correlated_gaussian(600, seed=0)
    train, val = train_val_split(points, 0.2, seed=0)
    torch.manual_seed(0)
    model = VAE(data_dim=2, latent_dim=2, hidden_dims=[16])
    from vqkit.train import TrainConfig

    result = train_vae_run(
        model, train, val, tmp_path, config=TrainConfig(epochs=2, batch_size=60, progress=False)
    )
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["eval_split"] == "correlated_gaussian-val"
    assert metrics["nelbo_bits_per_dim"] == pytest.approx(-metrics["elbo"] / (2 * math.log(2)))
    with Image.open(tmp_path / "samples.png") as image:
        assert image.size == (480, 480)
    loaded = load_run_model(tmp_path)
    assert evaluate_elbo(loaded, val)["elbo"] == pytest.approx(metrics["elbo"], rel=1e-6)
    assert result.model_dir == tmp_path / "model"
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model"] == {"class": "vae", "config": config["model"]["config"]}
    assert config["model"]["config"]["hidden_dims"] == [16]


class _UniformPrior(nn.Module):
    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k
        self.dummy = nn.Parameter(torch.zeros(()))

    def log_prob(self, indices):
        return torch.full((indices.shape[0],), -indices[0].numel() * math.log(self.k))


def test_prior_bits_per_dim_counts_latent_positions():
    codes = torch.randint(0, 32, (10, 4, 4))
    figures = evaluate_prior(_UniformPrior(32), codes)
    assert figures["prior_nll"] == pytest.approx(16 * math.log(32))
    assert figures["prior_bits_per_dim"] == pytest.approx(5.0)  # log2(32) bits per position


def test_digits_subset_is_deterministic():
    a = subset(load_digits(), 0.1, seed=3)
    b = subset(load_digits(), 0.1, seed=3)
    assert torch.equal(a.data, b.data)
