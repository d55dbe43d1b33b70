"""The one table of contract-test cases: a tiny instance and inputs for every registered part.

``tests/contracts/test_contracts.py`` runs the same checks on every case of every kind
(forward/backward shapes, state_dict and Hub round trips, determinism under a seed, bad-input
errors). A registered ``(kind, name)`` without a case here fails
``test_every_registered_part_has_a_case``.

How to add a part (one entry, in the table of its kind below)::

    QUANTIZER_CASES["my_vq"] = Case(
        build=lambda: vqkit.build("quantizer", {"type": "my_vq", "dim": 4, "codebook_size": 8}),
        inputs=_randn(2, 4, 3, 3),  # a valid input, from a fixed generator
        bad={"wrong channels": _randn(2, 5, 3, 3), "integer": _codes(8, 2, 4, 3, 3)},
    )

- ``build``: a *tiny* instance (a few hundred parameters; the suite runs every case several
  times). Build through ``vqkit.build`` or ``vqkit.create_model`` so the contract check runs.
- ``inputs``: a valid input for the kind's forward: images ``(B, C, H, W)`` for an encoder,
  a model or a discriminator; latents for a decoder or a quantizer; codes (or latent vectors
  for a ``"continuous"`` prior) for a prior; a ``(recon_nll, kl)`` tuple for a loss.
- ``bad``: named inputs that must raise ``ValueError`` or ``TypeError`` (wrong shape, dtype,
  device, values); at least one. ``META`` turns the valid input into a ``meta``-device one.
- ``score`` (optional): a deterministic tensor for the round-trip checks; the kind's default is
  the forward output (``loss`` for models, ``log_prob`` — or ``loss`` without an exact
  likelihood — for priors).
- ``sample`` (optional): draws from the part with a ``torch.Generator``; compared after the
  round trips.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

import vqkit
from vqkit.models.presets import GAN_PRESETS, PRESETS

Input = Callable[[], Any]

META = "meta"  # marks a bad input: the valid input moved to the meta device


@dataclass
class Case:
    build: Callable[[], nn.Module]
    inputs: Input
    bad: dict[str, Input | str] = field(default_factory=dict)
    score: Callable[[nn.Module, Any], torch.Tensor] | None = None
    sample: Callable[[nn.Module, torch.Generator], torch.Tensor] | None = None


def _randn(*shape: int) -> Input:
    return lambda: torch.randn(*shape, generator=torch.Generator().manual_seed(0))


def _rand(*shape: int) -> Input:
    return lambda: torch.rand(*shape, generator=torch.Generator().manual_seed(0))


def _codes(k: int, *shape: int) -> Input:
    return lambda: torch.randint(0, k, shape, generator=torch.Generator().manual_seed(0))


def _nan(*shape: int) -> Input:
    def make() -> torch.Tensor:
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
        x.view(-1)[0] = float("nan")
        return x

    return make


def _not_a_tensor() -> Any:
    return [[0.0, 1.0]]


# ----------------------------------------------------------------------------------- quantizers
QUANTIZER_CASES: dict[str, Case] = {
    "vq": Case(
        build=lambda: vqkit.build("quantizer", {"type": "vq", "dim": 4, "codebook_size": 8}),
        inputs=_randn(2, 4, 3, 3),
        bad={"wrong channels": _randn(2, 5, 3, 3), "integer": _codes(8, 2, 4, 3, 3)},
    ),
    "rvq": Case(
        build=lambda: vqkit.build(
            "quantizer", {"type": "rvq", "dim": 4, "codebook_size": 8, "num_quantizers": 2}
        ),
        inputs=_randn(2, 4, 3, 3),
        bad={"wrong channels": _randn(2, 3, 3, 3), "integer": _codes(8, 2, 4, 3, 3)},
    ),
    "fsq": Case(
        build=lambda: vqkit.build("quantizer", {"type": "fsq", "levels": [3, 4], "dim": 4}),
        inputs=_randn(2, 4, 3, 3),
        bad={"wrong channels": _randn(2, 5, 3, 3), "integer": _codes(8, 2, 4, 3, 3)},
    ),
}

# ----------------------------------------------------------------------------- encoders/decoders
_IMAGE_BAD = {
    "wrong channels": _randn(2, 2, 8, 8),
    "no batch dim": _randn(3, 8, 8),
    "not a tensor": _not_a_tensor,
    "meta device": META,
}

ENCODER_CASES: dict[str, Case] = {
    "resnet": Case(
        build=lambda: vqkit.build(
            "encoder",
            {
                "type": "resnet",
                "in_channels": 3,
                "out_channels": 4,
                "hidden_channels": 8,
                "num_residual_layers": 1,
                "residual_hidden_channels": 4,
                "num_downsamples": 2,
            },
        ),
        inputs=_randn(2, 3, 8, 12),
        bad={**_IMAGE_BAD, "not divisible": _randn(2, 3, 10, 8)},
    ),
    "conv": Case(
        build=lambda: vqkit.build(
            "encoder",
            {
                "type": "conv",
                "in_channels": 3,
                "out_channels": 4,
                "hidden_channels": [4, 6],
                "num_downsamples": 2,
            },
        ),
        inputs=_randn(2, 3, 8, 4),
        bad={**_IMAGE_BAD, "not divisible": _randn(2, 3, 6, 8)},
    ),
    "mlp": Case(
        build=lambda: vqkit.build(
            "encoder", {"type": "mlp", "in_features": 3, "out_features": 4, "hidden_dims": [5]}
        ),
        inputs=_randn(4, 3),
        bad={
            "wrong features": _randn(4, 2),
            "images": _randn(4, 3, 2, 2),
            "integer": _codes(3, 4, 3),
            "not a tensor": _not_a_tensor,
            "meta device": META,
        },
    ),
    "vector_conv": Case(
        build=lambda: vqkit.build(
            "encoder",
            {
                "type": "vector_conv",
                "in_channels": 3,
                "out_features": 4,
                "image_size": 8,
                "hidden_dims": [4, 4],
                "batch_norm": True,
            },
        ),
        inputs=_randn(2, 3, 8, 8),
        bad={**_IMAGE_BAD, "wrong size": _randn(2, 3, 4, 4), "integer": _codes(3, 2, 3, 8, 8)},
    ),
}

_TAMING_TINY = {
    "ch": 8,
    "ch_mult": [1, 2],
    "num_res_blocks": 1,
    "attention_factors": [2],
    "norm_groups": 4,
}
ENCODER_CASES["taming"] = Case(
    build=lambda: vqkit.build(
        "encoder", {"type": "taming", "in_channels": 3, "out_channels": 4, **_TAMING_TINY}
    ),
    inputs=_randn(2, 3, 8, 4),
    bad={**_IMAGE_BAD, "not divisible": _randn(2, 3, 7, 4)},
)

DECODER_CASES: dict[str, Case] = {
    "resnet": Case(
        build=lambda: vqkit.build(
            "decoder",
            {
                "type": "resnet",
                "in_channels": 4,
                "out_channels": 3,
                "hidden_channels": 8,
                "num_residual_layers": 1,
                "residual_hidden_channels": 4,
                "num_upsamples": 2,
            },
        ),
        inputs=_randn(2, 4, 2, 3),
        bad={
            "wrong channels": _randn(2, 3, 2, 3),
            "no batch dim": _randn(4, 2, 3),
            "not a tensor": _not_a_tensor,
            "meta device": META,
        },
    ),
    "conv": Case(
        build=lambda: vqkit.build(
            "decoder",
            {
                "type": "conv",
                "in_channels": 4,
                "out_channels": 3,
                "hidden_channels": [6, 4],
                "num_upsamples": 2,
            },
        ),
        inputs=_randn(2, 4, 2, 1),
        bad={
            "wrong channels": _randn(2, 5, 2, 1),
            "no batch dim": _randn(4, 2, 1),
            "not a tensor": _not_a_tensor,
            "meta device": META,
        },
    ),
    "mlp": Case(
        build=lambda: vqkit.build(
            "decoder", {"type": "mlp", "in_features": 2, "out_features": 6, "hidden_dims": [5]}
        ),
        inputs=_randn(4, 2),
        bad={
            "wrong features": _randn(4, 3),
            "integer": _codes(3, 4, 2),
            "not a tensor": _not_a_tensor,
            "meta device": META,
        },
    ),
    "vector_conv": Case(
        build=lambda: vqkit.build(
            "decoder",
            {
                "type": "vector_conv",
                "in_features": 2,
                "out_channels": 3,
                "image_size": 8,
                "hidden_dims": [4, 4],
                "batch_norm": True,
            },
        ),
        inputs=_randn(2, 2),
        bad={
            "wrong features": _randn(2, 3),
            "images": _randn(2, 2, 1, 1),
            "not a tensor": _not_a_tensor,
            "meta device": META,
        },
    ),
}

# ---------------------------------------------------------------------------------------- priors
DECODER_CASES["taming"] = Case(
    build=lambda: vqkit.build(
        "decoder", {"type": "taming", "in_channels": 4, "out_channels": 3, **_TAMING_TINY}
    ),
    inputs=_randn(2, 4, 4, 2),
    bad={
        "wrong channels": _randn(2, 5, 4, 2),
        "no batch dim": _randn(4, 4, 2),
        "not a tensor": _not_a_tensor,
        "meta device": META,
    },
)

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
        bad={"floats": _randn(2, 3, 4), "out of range": _codes(9, 2, 3, 4)},
        sample=lambda m, g: m.sample(2, (3, 4), generator=g),
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
        bad={"flat codes": _codes(5, 2, 12), "floats": _randn(2, 3, 4)},
        sample=lambda m, g: m.sample(2, (3, 4), generator=g),
    ),
    "transformer": Case(
        build=lambda: vqkit.build(
            "prior",
            {
                "type": "transformer",
                "num_embeddings": 5,
                "embed_dim": 8,
                "num_layers": 1,
                "num_heads": 2,
                "max_size": 4,
            },
        ),
        inputs=_codes(5, 2, 3, 4),
        bad={"grid above max_size": _codes(5, 2, 5, 4), "floats": _randn(2, 3, 4)},
        sample=lambda m, g: m.sample(2, (3, 4), generator=g),
    ),
    "maskgit": Case(
        build=lambda: vqkit.build(
            "prior",
            {
                "type": "maskgit",
                "num_embeddings": 5,
                "embed_dim": 8,
                "num_layers": 1,
                "num_heads": 2,
                "max_size": 4,
            },
        ),
        inputs=_codes(5, 2, 3, 4),
        bad={"floats": _randn(2, 3, 4), "out of range": _codes(9, 2, 3, 4)},
        score=lambda m, x: m.loss(x).loss,
        sample=lambda m, g: m.sample(2, (3, 4), steps=3, generator=g),
    ),
    "made": Case(
        build=lambda: vqkit.build(
            "prior",
            {"type": "made", "num_features": 6, "num_embeddings": 3, "hidden_features": [8]},
        ),
        inputs=_codes(3, 2, 6),
        bad={"wrong length": _codes(3, 2, 5), "floats": _randn(2, 6)},
        sample=lambda m, g: m.sample(2, generator=g),
    ),
    "made_flow": Case(
        build=lambda: vqkit.build("prior", {"type": "made_flow", "dim": 3, "hidden_features": [8]}),
        inputs=_randn(2, 3),
        bad={"wrong dim": _randn(2, 4)},
        sample=lambda m, g: m.sample(2, generator=g),
    ),
}


# ---------------------------------------------------------------------------------------- losses
def _nll_kl(b: int = 3) -> Input:
    def make() -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(0)
        return torch.rand(b, generator=g) * 10, torch.rand(b, generator=g)

    return make


_LOSS_BAD = {
    "mismatched": lambda: (torch.rand(3), torch.rand(4)),
    "not per example": lambda: (torch.rand(3, 2), torch.rand(3, 2)),
    "integer": lambda: (torch.ones(3, dtype=torch.long), torch.ones(3, dtype=torch.long)),
    "not tensors": lambda: ([1.0, 2.0], [0.5, 0.5]),
    "meta device": lambda: (torch.rand(3, device="meta"), torch.rand(3, device="meta")),
}

LOSS_CASES: dict[str, Case] = {
    "kl": Case(build=lambda: vqkit.build("loss", "kl"), inputs=_nll_kl(), bad=_LOSS_BAD),
    "beta_kl": Case(
        build=lambda: vqkit.build("loss", {"type": "beta_kl", "beta": 4.0}),
        inputs=_nll_kl(),
        bad=_LOSS_BAD,
    ),
    "capacity_kl": Case(
        build=lambda: vqkit.build("loss", {"type": "capacity_kl", "capacity_steps": 10}),
        inputs=_nll_kl(),
        bad=_LOSS_BAD,
    ),
}


def _image_pair(*shape: int) -> Input:
    def make() -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(0)
        return torch.rand(*shape, generator=g) * 2 - 1, torch.rand(*shape, generator=g) * 2 - 1

    return make


LOSS_CASES["lpips"] = Case(
    build=lambda: vqkit.LPIPS(random_init=True),
    inputs=_image_pair(2, 3, 16, 16),
    bad={
        "mismatched": lambda: (torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 12)),
        "two channels": lambda: (torch.rand(2, 2, 16, 16), torch.rand(2, 2, 16, 16)),
        "too small": lambda: (torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)),
        "integer": lambda: (
            torch.ones(2, 3, 16, 16, dtype=torch.long),
            torch.ones(2, 3, 16, 16, dtype=torch.long),
        ),
        "not tensors": lambda: ([1.0], [1.0]),
        "meta device": lambda: (
            torch.rand(2, 3, 16, 16, device="meta"),
            torch.rand(2, 3, 16, 16, device="meta"),
        ),
    },
)

# ---------------------------------------------------------------------------------------- models
TINY_VQVAE = {
    "encoder": {
        "type": "resnet",
        "in_channels": 1,
        "hidden_channels": 8,
        "num_residual_layers": 1,
        "residual_hidden_channels": 4,
        "num_downsamples": 1,
    },
    "quantizer": {"type": "vq", "dim": 4, "codebook_size": 8},
    "decoder": {
        "type": "resnet",
        "hidden_channels": 8,
        "num_residual_layers": 1,
        "residual_hidden_channels": 4,
    },
    "prior": {"type": "gated_pixelcnn", "hidden_channels": 8, "num_layers": 2, "head_channels": 16},
    "image_size": [8, 4],
}

SHRINK = {
    "encoder": {"hidden_channels": 8, "residual_hidden_channels": 4},
    "decoder": {"hidden_channels": 8, "residual_hidden_channels": 4},
    "quantizer": {"dim": 4, "codebook_size": 8},
    "prior": {"hidden_channels": 8, "num_layers": 1, "head_channels": 8},
    "image_size": [8, 8],
}


def _loss(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model(x).loss


def _vqvae_preset(name: str) -> Case:
    channels = PRESETS[name].config["encoder"]["in_channels"]
    return Case(
        build=lambda: vqkit.create_model(name, **SHRINK),
        inputs=_randn(2, channels, 8, 8),
        bad={
            "wrong channels": _randn(2, channels + 1, 8, 8),
            "not divisible": _randn(2, channels, 7, 8),
        },
        sample=lambda m, g: m.generate(2, generator=g),
    )


def _vae_bad(shape: tuple[int, ...], wrong: tuple[int, ...]) -> dict[str, Input | str]:
    return {
        "wrong shape": _randn(*wrong),
        "no batch dim": _randn(*shape[1:]),
        "integer": lambda: torch.zeros(shape, dtype=torch.uint8),
        "NaN": _nan(*shape),
        "not a tensor": _not_a_tensor,
        "meta device": META,
    }


def _vqgan_preset(name: str) -> Case:
    config = GAN_PRESETS[name].config
    channels = config["encoder"]["in_channels"]
    size = max(8, 2 ** (len(config["encoder"]["ch_mult"]) - 1))
    net = {"ch": 8, "num_res_blocks": 1, "norm_groups": 4, "z_channels": 8}
    shrink: dict[str, Any] = {
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
        bad={
            "wrong channels": _randn(2, channels + 1, size, size),
            "not divisible": _randn(2, channels, size - 1, size),
        },
        sample=(lambda m, g: m.generate(2, generator=g)) if "prior" in config else None,
    )


MODEL_CASES: dict[str, Case] = {
    "vqvae": Case(
        build=lambda: vqkit.VQVAE(**TINY_VQVAE),
        inputs=_randn(2, 1, 8, 4),
        bad={"not divisible": _randn(2, 1, 7, 4), "wrong channels": _randn(2, 2, 8, 4)},
        sample=lambda m, g: m.generate(2, generator=g),
    ),
    "vae": Case(
        build=lambda: vqkit.build("model", {"type": "vae", "hidden_dims": [8]}),
        inputs=_randn(4, 2),
        bad=_vae_bad((4, 2), (4, 3)),
        sample=lambda m, g: m.sample(3, generator=g),
    ),
    "image_vae": Case(
        build=lambda: vqkit.build(
            "model", {"type": "image_vae", "image_size": 8, "latent_dim": 2, "hidden_dims": [4]}
        ),
        inputs=_randn(2, 1, 8, 8),
        bad=_vae_bad((2, 1, 8, 8), (2, 1, 6, 6)),
        sample=lambda m, g: m.sample(3, generator=g),
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
        inputs=_rand(2, 1, 8, 8),
        bad={**_vae_bad((2, 1, 8, 8), (2, 3, 8, 8)), "outside [0, 1]": _randn(2, 1, 8, 8)},
        sample=lambda m, g: m.sample(3, generator=g),
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
        inputs=_rand(2, 1, 8, 8),
        bad={**_vae_bad((2, 1, 8, 8), (2, 2, 8, 8)), "outside [0, 1]": _randn(2, 1, 8, 8)},
        sample=lambda m, g: m.sample(3, generator=g),
    ),
    **{name: _vqvae_preset(name) for name in PRESETS},
    "vqgan": Case(
        build=lambda: vqkit.VQGAN(
            encoder={"type": "taming", "in_channels": 1, **_TAMING_TINY},
            quantizer={"type": "vq", "dim": 4, "codebook_size": 8, "ema": False},
            decoder={"type": "taming"},
            prior=TINY_VQVAE["prior"],
            image_size=[8, 4],
            discriminator={"type": "patchgan", "ndf": 4, "n_layers": 1},
            perceptual_weight=0.0,
        ),
        inputs=_randn(2, 1, 8, 4),
        bad={"not divisible": _randn(2, 1, 7, 4), "wrong channels": _randn(2, 2, 8, 4)},
        sample=lambda m, g: m.generate(2, generator=g),
    ),
    **{name: _vqgan_preset(name) for name in GAN_PRESETS},
}

# ------------------------------------------------------------------------------- discriminators
DISCRIMINATOR_CASES: dict[str, Case] = {
    "patchgan": Case(
        build=lambda: vqkit.build(
            "discriminator", {"type": "patchgan", "in_channels": 3, "ndf": 4, "n_layers": 1}
        ),
        inputs=_randn(2, 3, 12, 8),
        bad={**_IMAGE_BAD, "too small": _randn(2, 3, 2, 2)},
    ),
}

CASES: dict[str, dict[str, Case]] = {
    "quantizer": QUANTIZER_CASES,
    "encoder": ENCODER_CASES,
    "decoder": DECODER_CASES,
    "prior": PRIOR_CASES,
    "loss": LOSS_CASES,
    "discriminator": DISCRIMINATOR_CASES,
    "model": MODEL_CASES,
}

# --------------------------------------------------- dvae branch: Gumbel, logit-Laplace, DVAE
QUANTIZER_CASES["gumbel"] = Case(
    build=lambda: vqkit.build(
        "quantizer", {"type": "gumbel", "dim": 4, "codebook_size": 8, "temperature": 0.5}
    ),
    inputs=_randn(2, 4, 3, 3),
    bad={
        "wrong channels": _randn(2, 5, 3, 3),
        "integer": _codes(8, 2, 4, 3, 3),
        "NaN": _nan(2, 4, 3, 3),
        "meta device": META,
    },
)


def _pixels_and_stats(b: int, c: int, h: int, w: int) -> Input:
    def make() -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(0)
        return torch.rand(b, c, h, w, generator=g), torch.randn(b, 2 * c, h, w, generator=g)

    return make


LOSS_CASES["logit_laplace"] = Case(
    build=lambda: vqkit.build("loss", "logit_laplace"),
    inputs=_pixels_and_stats(2, 3, 4, 4),
    bad={
        "one map per channel": lambda: (torch.rand(2, 3, 4, 4), torch.randn(2, 3, 4, 4)),
        "out of range": lambda: (torch.rand(2, 1, 4, 4) + 1, torch.randn(2, 2, 4, 4)),
        "integer": lambda: (torch.ones(2, 1, 4, 4, dtype=torch.long), torch.randn(2, 2, 4, 4)),
        "not tensors": lambda: ([0.5], [0.0, 0.0]),
        "meta device": lambda: (
            torch.rand(2, 1, 4, 4, device="meta"),
            torch.rand(2, 2, 4, 4, device="meta"),
        ),
    },
)

_DVAE_BAD = {
    "not divisible": _rand(2, 1, 7, 4),
    "wrong channels": _rand(2, 2, 8, 4),
    "out of range": lambda: torch.rand(2, 1, 8, 4) + 1,
}
MODEL_CASES["dvae"] = Case(
    build=lambda: vqkit.DVAE(
        encoder=TINY_VQVAE["encoder"],
        quantizer={"type": "gumbel", "dim": 4, "codebook_size": 8},
        decoder=TINY_VQVAE["decoder"],
        prior=TINY_VQVAE["prior"],
        image_size=[8, 4],
    ),
    inputs=_rand(2, 1, 8, 4),
    bad=_DVAE_BAD,
    sample=lambda m, g: m.generate(2, generator=g),
)


def _dvae_preset(name: str) -> Case:
    from vqkit.models.presets import DVAE_PRESETS

    config = DVAE_PRESETS[name].config
    channels = config["encoder"]["in_channels"]
    size = 2 ** config["encoder"]["num_downsamples"] * 2
    shrink: dict[str, Any] = {
        "encoder": SHRINK["encoder"],
        "decoder": SHRINK["decoder"],
        "quantizer": {"dim": 4, "codebook_size": 8},
        "image_size": [size, size],
    }
    if "prior" in config:
        shrink["prior"] = SHRINK["prior"]
    return Case(
        build=lambda: vqkit.create_model(name, **shrink),
        inputs=_rand(2, channels, size, size),
        bad={
            "wrong channels": _rand(2, channels + 1, size, size),
            "not divisible": _rand(2, channels, size - 1, size),
        },
        sample=(lambda m, g: m.generate(2, generator=g)) if "prior" in config else None,
    )


MODEL_CASES.update(
    {name: _dvae_preset(name) for name in ("dvae-dalle", "dvae-digits", "dvae-fashion-mnist")}
)
# ------------------------------------------------------------------------------ vqvae2 branch
# VQ-VAE-2 and its hierarchical prior. Until the spatial branch gives GatedPixelCNN its
# cond_channels / cond_map interface, the bottom prior is the test double `spatial_stand_in`
# (tests/autoregressive/spatial_double.py, registered on import; it gets its own case here).
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "autoregressive"))
from spatial_double import NAME as _STAND_IN  # noqa: E402
from spatial_double import gated_takes_cond_map  # noqa: E402

from vqkit.models.presets import VQVAE2_PRESETS  # noqa: E402

_TWO_LEVEL_CODES = lambda: (_codes(5, 2, 2, 3)(), _codes(4, 2, 4, 6)())  # noqa: E731
_BOTTOM = (
    {"type": "gated_pixelcnn", "hidden_channels": 8, "num_layers": 1, "head_channels": 8}
    if gated_takes_cond_map()
    else {"type": _STAND_IN, "hidden_channels": 8}
)
PRIOR_CASES[_STAND_IN] = Case(
    build=lambda: vqkit.build("prior", {"type": _STAND_IN, "num_embeddings": 4}),
    inputs=_codes(4, 2, 3, 4),
    bad={"floats": _randn(2, 3, 4), "out of range": _codes(9, 2, 3, 4)},
    sample=lambda m, g: m.sample(2, (3, 4), generator=g),
)
PRIOR_CASES["hierarchical"] = Case(
    build=lambda: vqkit.build(
        "prior",
        {
            "type": "hierarchical",
            "top": {
                "type": "gated_pixelcnn",
                "hidden_channels": 8,
                "num_layers": 1,
                "head_channels": 8,
            },
            "bottom": dict(_BOTTOM),
            "num_embeddings": [5, 4],
            "cond_channels": 2,
            "embed_dim": 4,
            "hidden_channels": 4,
        },
    ),
    inputs=_TWO_LEVEL_CODES,
    bad={
        "one grid": _codes(5, 2, 3, 4),
        "floats": lambda: (_randn(2, 3, 4)(), _codes(4, 2, 6, 8)()),
        "wrong ratio": lambda: (_codes(5, 2, 3, 4)(), _codes(4, 2, 3, 4)()),
        "out of range": lambda: (_codes(9, 2, 3, 4)(), _codes(4, 2, 6, 8)()),
    },
    sample=lambda m, g: torch.cat([c.flatten() for c in m.sample(2, (2, 3), generator=g)]),
)

_TINY_NET = {"hidden_channels": 8, "num_residual_layers": 1, "residual_hidden_channels": 4}
TINY_VQVAE2 = {
    "encoder": {
        "type": "resnet",
        "in_channels": 1,
        "out_channels": 8,
        "num_downsamples": 1,
        **_TINY_NET,
    },
    "top_encoder": {"type": "resnet", "num_downsamples": 1, **_TINY_NET},
    "top_quantizer": {"type": "vq", "dim": 4, "codebook_size": 5},
    "bottom_quantizer": {"type": "vq", "dim": 4, "codebook_size": 4},
    "top_to_bottom": {"type": "resnet", **_TINY_NET},
    "decoder": {"type": "resnet", **_TINY_NET},
    "top_decoder": {"type": "resnet", **_TINY_NET},
    "image_size": [8, 12],
}


def _vqvae2_case(build: Callable[[], nn.Module], channels: int = 1) -> Case:
    return Case(
        build=build,
        inputs=_randn(2, channels, 8, 12),
        score=lambda m, x: m(x).loss,
        bad={
            "not divisible": _randn(2, channels, 6, 12),
            "wrong channels": _randn(2, channels + 1, 8, 12),
            "integer": lambda: torch.zeros(2, channels, 8, 12, dtype=torch.uint8),
            "meta device": META,
        },
    )


MODEL_CASES["vqvae2"] = _vqvae2_case(
    lambda: vqkit.build("model", {"type": "vqvae2", **TINY_VQVAE2})
)
for _name, _preset in VQVAE2_PRESETS.items():
    _channels = _preset.config["encoder"]["in_channels"]
    _shrink = {
        key: {k: v for k, v in TINY_VQVAE2[key].items() if k not in ("type", "in_channels")}
        for key in (
            "encoder",
            "top_encoder",
            "top_quantizer",
            "bottom_quantizer",
            "top_to_bottom",
            "decoder",
        )
    }
    _shrink["encoder"]["num_downsamples"] = 1
    MODEL_CASES[_name] = _vqvae2_case(
        lambda n=_name, s=_shrink: vqkit.create_model(n, **s, prior=None, image_size=[8, 12]),
        _channels,
    )


# ------------------------------------------------------- branch ldm: the latent diffusion prior
def _latent_diffusion() -> nn.Module:
    import pytest

    pytest.importorskip("diffusers")  # the optional extra vqkit[diffusion]
    spec = {
        "type": "latent_diffusion",
        "channels": 3,
        "block_out_channels": [8, 16],
        "layers_per_block": 1,
        "norm_num_groups": 4,
        "attention_head_dim": 4,
        "scale_factor": 0.5,
    }
    return vqkit.build("prior", spec)


PRIOR_CASES["latent_diffusion"] = Case(
    build=_latent_diffusion,
    inputs=_randn(2, 3, 5, 3),  # pre-quantisation latents (B, D, h, w); odd sizes are padded
    bad={
        "codes": _codes(5, 2, 5, 3),
        "wrong channels": _randn(2, 4, 5, 3),
        "NaN": _nan(2, 3, 5, 3),
        "meta device": META,
    },
    sample=lambda m, g: m.sample(2, (5, 3), steps=3, generator=g),
)
