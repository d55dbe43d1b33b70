"""`vqkit train --prior NAME` and `vqkit sample --steps/--sampler/--eta` for latent diffusion."""

from __future__ import annotations

import pytest

from vqkit.cli import build_parser, main
from vqkit.cli._common import CLIError
from vqkit.cli.sample import SAMPLE_OPTIONS, prior_sample_options
from vqkit.cli.train import spec_from_args


def _spec(*argv: str):
    return spec_from_args(build_parser().parse_args(["train", *argv]))


def test_prior_replaces_the_presets_prior_and_keeps_its_settings():
    spec = _spec("--prior", "latent_diffusion", "--model-config", '{"prior": {"steps": 7}}')
    assert spec.model_config["prior"] == {"steps": 7, "type": "latent_diffusion"}
    assert spec.prior_train is not None  # a prior stage is trained


def test_prior_errors_are_one_line():
    with pytest.raises(CLIError, match=r"--prior: .*latent_difusion"):
        _spec("--prior", "latent_difusion")
    with pytest.raises(CLIError, match="contradict"):
        _spec("--prior", "latent_diffusion", "--no-prior")


def test_sample_declares_the_diffusion_options():
    pytest.importorskip("diffusers")
    from vqkit.diffusion import LatentDiffusion

    prior = LatentDiffusion(channels=1, block_out_channels=[4], norm_num_groups=4, ema_decay=None)
    assert set(prior_sample_options(prior)) == {"steps", "eta", "sampler"}
    assert {SAMPLE_OPTIONS[f] for f in ("--steps", "--eta", "--sampler")} == {
        "steps",
        "eta",
        "sampler",
    }


def test_sample_refuses_an_unknown_sampler(capsys):
    with pytest.raises(SystemExit):
        main(["sample", "somewhere", "--sampler", "euler"])
    assert "invalid choice" in capsys.readouterr().err
