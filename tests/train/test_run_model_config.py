"""The run fills in the data's channels for every preset of every family.

A run on data with a different channel count than a preset's sets only the encoder's in_channels;
each model wires its decoders' out_channels from it (a DVAE's logit-Laplace decoder emits two maps
per channel, a VQ-VAE-2 with a top decoder wires both). This used to be a DVAE special case in
``run.py`` and broke ``vqvae2-fashion-mnist`` on RGB data.
"""

from __future__ import annotations

import pytest
import torch

from vqkit.models.presets import DVAE_PRESETS, GAN_PRESETS, PRESETS, VQVAE2_PRESETS
from vqkit.train.run import RunSpec, build_run_model, resolve_model_config

ALL_PRESETS = [*PRESETS, *GAN_PRESETS, *DVAE_PRESETS, *VQVAE2_PRESETS]


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", ALL_PRESETS)
def test_every_preset_takes_the_data_channels(name: str, channels: int) -> None:
    with torch.device("meta"):  # sizes only: no memory, no initialisation cost
        model = build_run_model(RunSpec(model=name), (channels, 32, 32))
    per_channel = 2 if name in DVAE_PRESETS else 1
    assert model.encoder.in_channels == channels
    assert model.decoder.out_channels == per_channel * channels
    top_decoder = getattr(model, "top_decoder", None)
    if top_decoder is not None:
        assert top_decoder.out_channels == channels


def test_the_run_records_only_the_encoder_channels() -> None:
    config = resolve_model_config(RunSpec(model="vqvae2-fashion-mnist"), (3, 28, 28))
    assert config["encoder"] == {"in_channels": 3}
    assert "decoder" not in config
    assert "top_decoder" not in config


def test_an_explicit_decoder_width_that_contradicts_the_data_is_refused() -> None:
    spec = RunSpec(model="vqvae-digits", model_config={"decoder": {"out_channels": 3}})
    with torch.device("meta"), pytest.raises(ValueError, match="out_channels=3"):
        build_run_model(spec, (1, 8, 8))
