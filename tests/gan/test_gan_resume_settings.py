"""A GAN run refuses to resume with another discriminator learning rate or other Adam betas."""

import pytest
import torch

from vqkit.data import ArrayDataset
from vqkit.models.presets import gan_preset_config
from vqkit.models.vqgan import VQGAN
from vqkit.train import Trainer
from vqkit.train.checkpoint import ResumeMismatchError, find_latest_checkpoint, verify_checkpoint

SETTINGS = {"max_steps": 4, "batch_size": 8, "checkpoint_every": 2, "progress": False}


def _fit(out, **kwargs):
    torch.manual_seed(7)
    model = VQGAN(**gan_preset_config("vqgan-digits", prior=None, disc_start=1))
    data = ArrayDataset(torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(0)))
    return Trainer(model, data, out_dir=out, **(SETTINGS | kwargs)).fit()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gan") / "run"
    _fit(out, max_steps=2, disc_lr=5e-3, gan_betas=(0.5, 0.9))
    return out


def test_the_checkpoint_records_both_settings(run):
    state = verify_checkpoint(find_latest_checkpoint(run / "checkpoints"))
    assert state["config"]["disc_lr"] == 5e-3
    assert state["config"]["gan_betas"] == [0.5, 0.9]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"disc_lr": 1e-3}, r"disc_lr=0\.005, this run has disc_lr=0\.001"),
        ({}, r"disc_lr=0\.005, this run has disc_lr=0\.0001"),  # default: lr (1e-4 here)
        (
            {"disc_lr": 5e-3, "gan_betas": (0.0, 0.99)},
            r"gan_betas=\[0\.5, 0\.9\], this run has gan_betas=\[0\.0, 0\.99\]",
        ),
    ],
)
def test_resume_with_other_values_is_refused_naming_both(run, kwargs, match):
    with pytest.raises(ResumeMismatchError, match=match):
        _fit(run, lr=1e-4, **kwargs)


def test_resume_with_the_same_values_continues(tmp_path):
    _fit(tmp_path, max_steps=2, disc_lr=5e-3)
    assert _fit(tmp_path, disc_lr=5e-3).resumed_from == 2
