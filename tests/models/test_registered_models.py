"""The generic tester: every registered model and prior gets the same Hub and determinism checks.

Each registry name under kinds ``"model"`` and ``"prior"`` needs a tiny case below (how to build
it, an input, how to score and sample it). A newly registered name without one fails
``test_every_registered_name_has_a_case``, so nothing escapes the checks.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from models_helpers import TINY

import vqkit
from vqkit._hub import HubMixin
from vqkit.models.presets import GAN_PRESETS, PRESETS

SHRINK = {
    "encoder": {"hidden_channels": 8, "residual_hidden_channels": 4},
    "decoder": {"hidden_channels": 8, "residual_hidden_channels": 4},
    "quantizer": {"dim": 4, "codebook_size": 8},
    "prior": {"hidden_channels": 8, "num_layers": 1, "head_channels": 8},
    "image_size": [8, 8],
}


@dataclass
class Case:
    build: Callable[[], torch.nn.Module]
    inputs: Callable[[], torch.Tensor]  # a valid input
    score: Callable[[torch.nn.Module, torch.Tensor], torch.Tensor]  # deterministic given a seed
    sample: Callable[[torch.nn.Module, torch.Generator], torch.Tensor] | None
    bad: Callable[[], torch.Tensor]  # an input of the wrong shape or dtype


def _randn(*shape: int) -> Callable[[], torch.Tensor]:
    return lambda: torch.randn(*shape, generator=torch.Generator().manual_seed(0))


def _codes(k: int, *shape: int) -> Callable[[], torch.Tensor]:
    return lambda: torch.randint(0, k, shape, generator=torch.Generator().manual_seed(0))


def _loss(model, x):
    return model(x).loss


def _log_prob(model, x):
    return model.log_prob(x)


def _vqvae_preset(name: str) -> Case:
    channels = PRESETS[name].config["encoder"]["in_channels"]
    return Case(
        build=lambda: vqkit.create_model(name, **SHRINK),
        inputs=_randn(2, channels, 8, 8),
        score=_loss,
        sample=lambda m, g: m.generate(2, generator=g),
        bad=_randn(2, channels + 1, 8, 8),
    )


def _vqgan_preset(name: str) -> Case:
    config = GAN_PRESETS[name].config
    channels = config["encoder"]["in_channels"]
    size = max(8, 2 ** (len(config["encoder"]["ch_mult"]) - 1))
    net = {"ch": 8, "num_res_blocks": 1, "norm_groups": 4, "z_channels": 8}
    shrink = {
        "encoder": net,
        "decoder": net,
        "quantizer": {"dim": 4, "codebook_size": 8},
        "discriminator": {"ndf": 4, "n_layers": 1},
        "image_size": [size, size],
    }
    if "prior" in config:
        shrink["prior"] = SHRINK["prior"]
    return Case(
        build=lambda: vqkit.create_model(name, **shrink),
        inputs=_randn(2, channels, size, size),
        score=_loss,
        sample=(lambda m, g: m.generate(2, generator=g)) if "prior" in config else None,
        bad=_randn(2, channels + 1, size, size),
    )


_TAMING_TINY = {
    "type": "taming",
    "ch": 8,
    "ch_mult": [1, 2],
    "num_res_blocks": 1,
    "attention_factors": [2],
    "norm_groups": 4,
}


MODEL_CASES: dict[str, Case] = {
    "vqvae": Case(
        build=lambda: vqkit.VQVAE(**TINY),
        inputs=_randn(2, 1, 8, 4),
        score=_loss,
        sample=lambda m, g: m.generate(2, generator=g),
        bad=_randn(2, 1, 7, 4),
    ),
    "vae": Case(
        build=lambda: vqkit.build("model", {"type": "vae", "hidden_dims": [8]}),
        inputs=_randn(4, 2),
        score=_loss,
        sample=lambda m, g: m.sample(3, generator=g),
        bad=_randn(4, 3),
    ),
    "image_vae": Case(
        build=lambda: vqkit.build(
            "model", {"type": "image_vae", "image_size": 8, "latent_dim": 2, "hidden_dims": [4]}
        ),
        inputs=_randn(2, 1, 8, 8),
        score=_loss,
        sample=lambda m, g: m.sample(3, generator=g),
        bad=_randn(2, 1, 6, 6),
    ),
    "beta_vae": Case(
        build=lambda: vqkit.build(
            "model",
            {
                "type": "beta_vae",
                "in_channels": 1,
                "image_size": 8,
                "latent_dim": 2,
                "hidden_dims": [4],
            },
        ),
        inputs=lambda: torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0)),
        score=_loss,
        sample=lambda m, g: m.sample(3, generator=g),
        bad=_randn(2, 3, 8, 8),
    ),
    "vlae": Case(
        build=lambda: vqkit.build(
            "model",
            {
                "type": "vlae",
                "image_size": 8,
                "latent_dim": 2,
                "hidden_dims": [4],
                "prior_hidden_features": [8],
            },
        ),
        inputs=lambda: torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0)),
        score=_loss,
        sample=lambda m, g: m.sample(3, generator=g),
        bad=_randn(2, 2, 8, 8),
    ),
    **{name: _vqvae_preset(name) for name in PRESETS},
    "vqgan": Case(
        build=lambda: vqkit.VQGAN(
            encoder={**_TAMING_TINY, "in_channels": 1},
            quantizer={"type": "vq", "dim": 4, "codebook_size": 8, "ema": False},
            decoder={"type": "taming"},
            prior=TINY["prior"],
            image_size=[8, 4],
            discriminator={"type": "patchgan", "ndf": 4, "n_layers": 1},
            perceptual_weight=0.0,
        ),
        inputs=_randn(2, 1, 8, 4),
        score=_loss,
        sample=lambda m, g: m.generate(2, generator=g),
        bad=_randn(2, 1, 7, 4),
    ),
    **{name: _vqgan_preset(name) for name in GAN_PRESETS},
}

PRIOR_CASES: dict[str, Case] = {
    "gated_pixelcnn": Case(
        build=lambda: vqkit.build(
            "prior",
            {
                "type": "gated_pixelcnn",
                "num_embeddings": 5,
                "hidden_channels": 8,
                "num_layers": 2,
                "head_channels": 8,
            },
        ),
        inputs=_codes(5, 2, 3, 4),
        score=_log_prob,
        sample=lambda m, g: m.sample(2, (3, 4), generator=g),
        bad=_randn(2, 3, 4),
    ),
    "pixelcnn": Case(
        build=lambda: vqkit.build(
            "prior",
            {
                "type": "pixelcnn",
                "num_embeddings": 5,
                "hidden_channels": 8,
                "num_layers": 1,
                "head_channels": 8,
            },
        ),
        inputs=_codes(5, 2, 3, 4),
        score=_log_prob,
        sample=lambda m, g: m.sample(2, (3, 4), generator=g),
        bad=_codes(5, 2, 12),
    ),
    "made": Case(
        build=lambda: vqkit.build(
            "prior",
            {"type": "made", "num_features": 6, "num_embeddings": 3, "hidden_features": [8]},
        ),
        inputs=_codes(3, 2, 6),
        score=_log_prob,
        sample=lambda m, g: m.sample(2, generator=g),
        bad=_codes(3, 2, 5),
    ),
    "made_flow": Case(
        build=lambda: vqkit.build("prior", {"type": "made_flow", "dim": 3, "hidden_features": [8]}),
        inputs=_randn(2, 3),
        score=_log_prob,
        sample=lambda m, g: m.sample(2, generator=g),
        bad=_randn(2, 4),
    ),
}

CASES = {("model", n): c for n, c in MODEL_CASES.items()} | {
    ("prior", n): c for n, c in PRIOR_CASES.items()
}
REGISTERED = [(kind, name) for kind in ("model", "prior") for name in vqkit.list_registered(kind)]


def test_every_registered_name_has_a_case():
    missing = [f"{kind}/{name}" for kind, name in REGISTERED if (kind, name) not in CASES]
    assert not missing, (
        f"registered without a generic-tester case: {missing}; add a tiny Case to "
        "tests/models/test_registered_models.py"
    )


def _case(kind: str, name: str) -> Case:
    if (kind, name) not in CASES:
        pytest.fail(f"no generic-tester case for {kind}/{name}")
    return CASES[(kind, name)]


def _seeded(fn, *args):
    torch.manual_seed(1234)
    return fn(*args)


@pytest.mark.parametrize(("kind", "name"), REGISTERED, ids=lambda v: v)
def test_save_load_round_trip_and_determinism(kind, name, tmp_path):
    case = _case(kind, name)
    torch.manual_seed(0)
    model = case.build()
    assert isinstance(model, HubMixin), f"{kind}/{name} must inherit vqkit._hub.HubMixin"
    model.eval()
    x = case.inputs()

    first, second = _seeded(case.score, model, x), _seeded(case.score, model, x)
    assert torch.equal(first, second), "not deterministic under a fixed seed"

    model.save_pretrained(tmp_path)
    assert not list(tmp_path.glob("*.bin")), "weights must be safetensors only"
    assert json.loads((tmp_path / "config.json").read_text()) == model.hub_config
    loaded = type(model).from_pretrained(tmp_path)
    assert not loaded.training
    assert loaded.hub_config == model.hub_config
    state, loaded_state = model.state_dict(), loaded.state_dict()
    assert state.keys() == loaded_state.keys()
    for key in state:
        assert torch.equal(state[key], loaded_state[key]), key
    assert torch.equal(_seeded(case.score, loaded, x), first)

    if case.sample is not None:
        a = case.sample(model, torch.Generator().manual_seed(7))
        b = case.sample(loaded, torch.Generator().manual_seed(7))
        assert torch.equal(a, b), "samples differ after a save/load round trip"


@pytest.mark.parametrize(("kind", "name"), REGISTERED, ids=lambda v: v)
def test_bad_input_raises_a_clear_error(kind, name):
    case = _case(kind, name)
    model = case.build().eval()
    with pytest.raises((ValueError, TypeError)):
        case.score(model, case.bad())
