"""Named model configurations from the literature: ``vqkit.create_model(name, **overrides)``.

Every preset is a ``VQVAE`` config (its constructor arguments) plus the source of its
numbers. Presets are registered under kind ``"model"``, so ``vqkit.build("model", name)`` and
``vqkit.list_models("vqvae-*")`` see them next to the model classes themselves.

Sources: *Neural Discrete Representation Learning*, van den Oord et al. 2017 (arXiv:1711.00937),
§4.1 (architecture, β = 0.25 "in all our experiments"); DeepMind Sonnet's VQ-VAE example
(examples/vqvae_example.ipynb: 128 hidden, 32 residual hidden, 2 residual layers, K = 512,
D = 64); the other sizes are those the vqkit issue (#6) specifies for its seed projects.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from vqkit._registry import build, list_registered, register
from vqkit.models.vqvae import VQVAE

__all__ = ["PRESETS", "Preset", "create_model", "list_models", "preset_config"]


@dataclass(frozen=True)
class Preset:
    """A named VQVAE config and where its numbers come from."""

    name: str
    description: str
    source: str
    config: dict[str, Any]


def _resnet(
    channels: int,
    hidden: int,
    residual_layers: int,
    residual_hidden: int,
    downsamples: int,
) -> tuple[dict[str, Any], dict[str, Any]]:
    common = {
        "type": "resnet",
        "hidden_channels": hidden,
        "num_residual_layers": residual_layers,
        "residual_hidden_channels": residual_hidden,
    }
    encoder = {**common, "in_channels": channels, "num_downsamples": downsamples}
    # No decoder out_channels: the model wires it from the encoder's in_channels (times the
    # likelihood's parameters per channel for a DVAE), so a run can change the channels alone.
    decoder = {**common, "num_upsamples": downsamples}
    return encoder, decoder


def _vq(dim: int, codebook_size: int, **extra: Any) -> dict[str, Any]:
    # β = 0.25: van den Oord et al. 2017, §4.1 ("We use β = 0.25 in all our experiments").
    return {
        "type": "vq",
        "dim": dim,
        "codebook_size": codebook_size,
        "commitment_weight": 0.25,
        **extra,
    }


def _prior(hidden: int, layers: int) -> dict[str, Any]:
    return {"type": "gated_pixelcnn", "hidden_channels": hidden, "num_layers": layers}


def _preset(
    name: str,
    description: str,
    source: str,
    *,
    image_size: list[int],
    encoder_decoder: tuple[dict[str, Any], dict[str, Any]],
    quantizer: dict[str, Any],
    prior: dict[str, Any],
) -> Preset:
    encoder, decoder = encoder_decoder
    config = {
        "encoder": encoder,
        "quantizer": quantizer,
        "decoder": decoder,
        "prior": prior,
        "image_size": image_size,
    }
    return Preset(name=name, description=description, source=source, config=config)


_CIFAR_K128: dict[str, Any] = {
    "image_size": [32, 32],
    "encoder_decoder": _resnet(3, 128, 2, 32, 2),
    # Codebook drawn uniformly in [-1/K, 1/K], as in the original implementations.
    "quantizer": _vq(256, 128, codebook_init="uniform"),
    "prior": _prior(64, 12),
}

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        _preset(
            "vqvae-celeba64",
            "CelebA 64×64 RGB, 16×16 latents, K=512, D=64, β=0.25",
            "K, D, β: vqkit issue #6 (CelebA seed); β=0.25 and the residual design: van den "
            "Oord et al. 2017 §4.1; widths 128/32 and 2 residual layers: Sonnet VQ-VAE example",
            image_size=[64, 64],
            encoder_decoder=_resnet(3, 128, 2, 32, 2),
            quantizer=_vq(64, 512),
            prior=_prior(64, 15),
        ),
        _preset(
            "vqvae-hipmri",
            "hip MRI slices 256×128 grayscale, 64×32 latents, K=128, D=128",
            "hidden 128, 2 residual layers, residual hidden 32, K=128, D=128: vqkit issue #6 "
            "(hip-MRI seed); residual design and β=0.25: van den Oord et al. 2017 §4.1",
            image_size=[256, 128],
            encoder_decoder=_resnet(1, 128, 2, 32, 2),
            quantizer=_vq(128, 128),
            prior=_prior(64, 15),
        ),
        _preset(
            "vqvae-cifar10",
            "CIFAR-10 32×32 RGB, 8×8 latents, K=128, D=256, codebook uniform in ±1/K",
            "K=128, D=256, uniform ±1/K codebook init: vqkit issue #6 (CIFAR-10/SVHN seed); "
            "residual design and β=0.25: van den Oord et al. 2017 §4.1",
            **_CIFAR_K128,
        ),
        _preset(
            "vqvae-svhn",
            "SVHN 32×32 RGB: the same model as vqvae-cifar10",
            "as vqvae-cifar10 (the seed uses one configuration for CIFAR-10 and SVHN)",
            **copy.deepcopy(_CIFAR_K128),
        ),
        _preset(
            "vqvae-paper-cifar10",
            "the paper's CIFAR-10 model: 256 hidden units everywhere, 8×8 latents",
            "van den Oord et al. 2017 §4.1: 2 stride-2 4×4 convs, 2 residual 3×3 blocks, "
            "'all having 256 hidden units', 8×8 latents on 32×32 images, β=0.25. K=512 is the "
            "paper's ImageNet codebook size and D=64 Sonnet's; the paper does not state them "
            "for CIFAR-10",
            image_size=[32, 32],
            encoder_decoder=_resnet(3, 256, 2, 256, 2),
            quantizer=_vq(64, 512),
            prior=_prior(128, 15),
        ),
        _preset(
            "vqvae-digits",
            "tiny: 8×8 grayscale digits (scikit-learn / UCI), 4×4 latents, K=32, D=16; "
            "trains in seconds on a CPU",
            "vqkit's own small default for `vqkit train`; the design follows van den Oord et "
            "al. 2017 at a reduced width",
            image_size=[8, 8],
            encoder_decoder=_resnet(1, 32, 1, 16, 1),
            quantizer=_vq(16, 32),
            prior=_prior(32, 4),
        ),
    ]
}


def _merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``overrides`` into a copy of ``base``; a part with a new ``type`` is replaced."""
    merged = copy.deepcopy(dict(base))
    for key, value in overrides.items():
        old: Any = merged.get(key)  # a part spec (Mapping) or any JSON value
        same_part = isinstance(old, Mapping) and isinstance(value, Mapping)
        if same_part and value.get("type", old.get("type")) == old.get("type"):
            merged[key] = _merge(old, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _table_config(
    table: Mapping[str, Preset], label: str, name: str, overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """Preset ``name`` of ``table`` with ``overrides`` deep-merged (KeyError listing them)."""
    if name not in table:
        raise KeyError(f"unknown {label}preset {name!r}; presets: {', '.join(sorted(table))}")
    return _merge(table[name].config, overrides)


def _register_presets(
    table: Mapping[str, Preset],
    config_of: Callable[..., dict[str, Any]],
    model_class: Callable[[], Callable[..., Any]],
) -> None:
    """Register every preset of ``table`` under kind ``"model"``: a factory that builds
    ``model_class()`` (imported on first use) from ``config_of(name, **overrides)``."""
    for preset in table.values():
        register("model", preset.name)(_preset_factory(preset, config_of, model_class))


def _preset_factory(
    preset: Preset,
    config_of: Callable[..., dict[str, Any]],
    model_class: Callable[[], Callable[..., Any]],
) -> Callable[..., Any]:
    def create(**overrides: Any) -> Any:
        return model_class()(**config_of(preset.name, **overrides))

    create.__name__ = create.__qualname__ = preset.name.replace("-", "_")
    create.__doc__ = f"{preset.description}.\n\nSource: {preset.source}."
    return create


def preset_config(name: str, **overrides: Any) -> dict[str, Any]:
    """The VQVAE constructor arguments of preset ``name``, with ``overrides`` deep-merged.

    Raises:
        KeyError: ``name`` is not a preset (the message lists the presets).
    """
    return _table_config(PRESETS, "", name, overrides)


_register_presets(PRESETS, preset_config, lambda: VQVAE)


def create_model(name: str, **overrides: Any) -> Any:
    """Build a registered model or preset by name.

    Overrides are deep-merged into a preset's config, so a part can be shrunk without
    restating it: ``create_model("vqvae-celeba64", encoder={"hidden_channels": 32})``.

    Args:
        name: a preset (``"vqvae-celeba64"``) or a model class name (``"vqvae"``, which then
            needs its constructor arguments as overrides); see ``list_models``.
        **overrides: constructor arguments replacing or merging into the preset's.

    Raises:
        KeyError: unknown name (the message lists close matches and every registered model).
    """
    return build("model", name, **overrides)


def list_models(pattern: str = "*") -> list[str]:
    """Sorted names of registered models and presets matching a shell wildcard ``pattern``."""
    return list_registered("model", pattern)


# ----------------------------------------------------------------------------- VQ-GAN presets
# Kept out of PRESETS (which holds VQVAE configs); registered under kind "model" the same way.
# Sources: taming-transformers configs/vqgan_imagenet_f16_1024.yaml (Esser et al. 2021,
# arXiv:2012.09841): embed_dim 256, n_embed 1024, z_channels 256, ch 128, ch_mult [1,1,2,2,4],
# num_res_blocks 2, attn_resolutions [16] at resolution 256, dropout 0; disc_start 250001,
# disc_weight 0.8, codebook_weight 1.0, NLayerDiscriminator (3 layers, ndf 64, BatchNorm),
# LPIPS weight 1.0, hinge loss, β = 0.25 (VQModel's default; applied to the commitment term
# here, see vqkit.models.vqgan).


def _taming(channels: int, ch: int, ch_mult: list[int], blocks: int, attention: list[int],
            groups: int, z_channels: int | None = None) -> tuple[dict, dict]:  # fmt: skip
    common = {
        "type": "taming",
        "ch": ch,
        "ch_mult": ch_mult,
        "num_res_blocks": blocks,
        "attention_factors": attention,
        "norm_groups": groups,
    }
    if z_channels is not None:
        common["z_channels"] = z_channels
    return {**common, "in_channels": channels}, dict(common)  # decoder out_channels is wired


def _gan_preset(name: str, description: str, source: str, **config: Any) -> Preset:
    encoder, decoder = config.pop("encoder_decoder")
    return Preset(name, description, source, {"encoder": encoder, "decoder": decoder, **config})


GAN_PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        _gan_preset(
            "vqgan-imagenet-f16-1024",
            "taming's ImageNet VQ-GAN: 256×256 RGB, f=16 (16×16 codes), K=1024, D=256",
            "CompVis/taming-transformers configs/vqgan_imagenet_f16_1024.yaml (Esser et al. "
            "2021, arXiv:2012.09841); no pretrained weights",
            encoder_decoder=_taming(3, 128, [1, 1, 2, 2, 4], 2, [16], 32, z_channels=256),
            quantizer=_vq(256, 1024, ema=False),
            image_size=[256, 256],
            reconstruction_loss="l1",
            discriminator={"type": "patchgan", "ndf": 64, "n_layers": 3, "norm": "batch"},
            perceptual_weight=1.0,
            disc_weight=0.8,
            gan_loss="hinge",
            disc_start=250001,
        ),
        _gan_preset(
            "vqgan-digits",
            "tiny: 8×8 grayscale digits, 4×4 latents, K=32, D=16 (the vqvae-digits grid); "
            "trains on a CPU in minutes; no perceptual loss (LPIPS needs ≥ 16×16)",
            "vqkit's own small configuration; architecture and losses after Esser et al. 2021 "
            "(arXiv:2012.09841) at a reduced width",
            encoder_decoder=_taming(1, 16, [1, 2], 1, [], 8),
            quantizer=_vq(16, 32, ema=False),
            prior=_prior(32, 4),
            image_size=[8, 8],
            reconstruction_loss="l1",
            discriminator={
                "type": "patchgan",
                "ndf": 16,
                "n_layers": 1,
                "norm": "group",
                "norm_groups": 8,
            },
            perceptual_weight=0.0,
            disc_weight=0.8,
            gan_loss="hinge",
            disc_start=1000,
        ),
        _gan_preset(
            "vqgan-fashion-mnist",
            "Fashion-MNIST 28×28 grayscale, 7×7 latents, K=512, D=32 (the grid and codebook of "
            "the docs' 7×7 VQ-VAE run); set perceptual_weight with LPIPS weights",
            "vqkit's own small configuration; architecture and losses after Esser et al. 2021 "
            "(arXiv:2012.09841) at a reduced width",
            encoder_decoder=_taming(1, 32, [1, 2, 2], 1, [4], 8),
            quantizer=_vq(32, 512, ema=False),
            prior=_prior(64, 8),
            image_size=[28, 28],
            reconstruction_loss="l1",
            discriminator={
                "type": "patchgan",
                "ndf": 32,
                "n_layers": 2,
                "norm": "group",
                "norm_groups": 8,
            },
            perceptual_weight=0.0,
            disc_weight=0.8,
            gan_loss="hinge",
            disc_start=2000,
        ),
    ]
}


def gan_preset_config(name: str, **overrides: Any) -> dict[str, Any]:
    """The VQGAN constructor arguments of VQ-GAN preset ``name``, with ``overrides`` merged.

    Raises:
        KeyError: ``name`` is not a VQ-GAN preset (the message lists them).
    """
    return _table_config(GAN_PRESETS, "VQ-GAN ", name, overrides)


def _vqgan_class() -> Callable[..., Any]:
    from vqkit.models.vqgan import VQGAN

    return VQGAN


_register_presets(GAN_PRESETS, gan_preset_config, _vqgan_class)


# ---- dvae branch: DALL-E dVAE presets (DVAE configs; registered under kind "model") -----------
def _gumbel(dim: int, codebook_size: int, kl_weight: float) -> dict[str, Any]:
    return {
        "type": "gumbel",
        "dim": dim,
        "codebook_size": codebook_size,
        "temperature": 1.0,
        "kl_weight": kl_weight,
    }


#: dVAE presets. ``kl_weight`` is per latent position against a per-pixel-value mean
#: reconstruction NLL: ELBO-equivalent weight β·h·w/(H·W·C) (see ``GumbelQuantizer``).
DVAE_PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset(
            "dvae-dalle",
            "DALL-E-shaped dVAE: 256×256×3 images, 32×32 grid of K=8192 Gumbel-softmax codes, "
            "logit-Laplace likelihood, KL weight 6.6·1024/196608 (β = 6.6 on the ELBO's scale); "
            "build only on CPU (no weights)",
            "Ramesh et al. 2021 (arXiv:2102.12092) §2.1 and Appendix A (K = 8192, 32×32 grid, "
            "β = 6.6, the 1×1 convs around the relaxation, ε = 0.1); the encoder and decoder are "
            "vqkit's resnet stacks at DALL-E's hidden width 256, not its exact block groups",
            {
                "encoder": _resnet(3, 256, 2, 64, 3)[0],
                "quantizer": _gumbel(128, 8192, 6.6 * 1024 / (256 * 256 * 3)),
                "decoder": _resnet(3, 256, 2, 64, 3)[1],
                "image_size": [256, 256],
                "reconstruction_loss": "logit_laplace",
            },
        ),
        Preset(
            "dvae-digits",
            "8×8 digits, 4×4 grid of K=64 Gumbel-softmax codes, logit-Laplace likelihood; trains "
            "on CPU in seconds",
            "vqkit's own small configuration after Ramesh et al. 2021 (arXiv:2102.12092)",
            {
                "encoder": _resnet(1, 32, 1, 16, 1)[0],
                "quantizer": _gumbel(16, 64, 16 / 64),
                "decoder": _resnet(1, 32, 1, 16, 1)[1],
                "prior": _prior(32, 4),
                "image_size": [8, 8],
                "reconstruction_loss": "logit_laplace",
            },
        ),
        Preset(
            "dvae-fashion-mnist",
            "Fashion-MNIST 28×28, 7×7 grid of K=512 Gumbel-softmax codes, logit-Laplace "
            "likelihood, KL weight 49/784 (β = 1 on the ELBO's scale); trains on CPU in minutes",
            "vqkit's own small configuration after Ramesh et al. 2021 (arXiv:2102.12092); the "
            "grid and codebook of the docs' 7×7 VQ-VAE",
            {
                "encoder": _resnet(1, 64, 2, 32, 2)[0],
                "quantizer": _gumbel(32, 512, 49 / 784),
                "decoder": _resnet(1, 64, 2, 32, 2)[1],
                "prior": _prior(64, 8),
                "image_size": [28, 28],
                "reconstruction_loss": "logit_laplace",
            },
        ),
    ]
}


# --------------------------------------------------------------- VQ-VAE-2 presets (vqvae2 branch)
# Kept out of PRESETS (VQVAE configs), registered under kind "model" the same way. Sources: Razavi
# et al. 2019 (arXiv:1906.00446) §3.1 and Fig. 2a (256×256 images, 64×64 bottom and 32×32 top
# codes); rosinality/vq-vae-2-pytorch vqvae.py defaults (channel 128, n_res_block 2,
# n_res_channel 32, embed_dim 64, n_embed 512 at both levels; its train_vqvae.py uses
# latent_loss_weight 0.25, here the quantizers' commitment_weight β = 0.25).


def _vqvae2_resnet(hidden: int, blocks: int, res_hidden: int) -> dict[str, Any]:
    return {
        "type": "resnet",
        "hidden_channels": hidden,
        "num_residual_layers": blocks,
        "residual_hidden_channels": res_hidden,
    }


def _vqvae2_config(
    channels: int,
    image_size: list[int],
    bottom_downsamples: int,
    net: tuple[int, int, int],
    dims: tuple[int, int],
    codebooks: tuple[int, int],
    prior: dict[str, Any] | None,
    top_decoder: bool,
) -> dict[str, Any]:
    hidden, blocks, res_hidden = net
    part = _vqvae2_resnet(hidden, blocks, res_hidden)
    config: dict[str, Any] = {
        "encoder": {
            **part,
            "in_channels": channels,
            "out_channels": hidden,
            "num_downsamples": bottom_downsamples,
        },
        "top_encoder": {**part, "num_downsamples": 1},
        "top_quantizer": _vq(dims[0], codebooks[0]),
        "bottom_quantizer": _vq(dims[1], codebooks[1]),
        "top_to_bottom": dict(part),
        "decoder": dict(part),  # out_channels wired from the encoder's in_channels
        "prior": prior,
        "image_size": image_size,
    }
    if top_decoder:
        config["top_decoder"] = dict(part)
        config["top_reconstruction_weight"] = 1.0
    return config


def _hierarchical_prior(hidden: int, layers: int, cond: int) -> dict[str, Any]:
    # The bottom prior is the spatially conditioned Gated PixelCNN (cond_channels wired by
    # HierarchicalPrior; needs the `spatial` branch's GatedPixelCNN(cond_channels=...)).
    return {
        "type": "hierarchical",
        "top": {**_prior(hidden, layers), "head_channels": 2 * hidden},
        "bottom": {**_prior(hidden, layers), "head_channels": 2 * hidden},
        "cond_channels": cond,
        "embed_dim": cond,
        "hidden_channels": hidden,
    }


VQVAE2_PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset(
            "vqvae2-imagenet256",
            "the paper's 256×256 RGB shape: 64×64 bottom and 32×32 top codes, K=512 and D=64 "
            "at both levels (build-only: no weights, no prior)",
            "Razavi et al. 2019 (arXiv:1906.00446) §3.1, Fig. 2a (grids); widths and K, D: "
            "rosinality/vq-vae-2-pytorch vqvae.py defaults; β=0.25",
            _vqvae2_config(3, [256, 256], 2, (128, 2, 32), (64, 64), (512, 512), None, False),
        ),
        Preset(
            "vqvae2-fashion-mnist",
            "Fashion-MNIST 28×28: 14×14 bottom codes (K=16) under 7×7 top codes (K=256), "
            "1176 bits per image, with a top-only decoder and a hierarchical Gated PixelCNN "
            "prior; trains on a CPU in minutes",
            "vqkit's own small configuration after Razavi et al. 2019 (arXiv:1906.00446); "
            "28 → 14 → 7 (no padding); the same bits as a one-level 14×14 K=64 VQ-VAE",
            _vqvae2_config(
                1,
                [28, 28],
                1,
                (64, 1, 32),
                (32, 32),
                (256, 16),
                _hierarchical_prior(32, 6, 16),
                True,
            ),
        ),
    ]
}


def dvae_preset_config(name: str, **overrides: Any) -> dict[str, Any]:
    """The ``DVAE`` constructor arguments of dVAE preset ``name``, with ``overrides`` merged.

    Raises:
        KeyError: ``name`` is not a dVAE preset (the message lists them).
    """
    return _table_config(DVAE_PRESETS, "dVAE ", name, overrides)


def vqvae2_preset_config(name: str, **overrides: Any) -> dict[str, Any]:
    """The VQVAE2 constructor arguments of VQ-VAE-2 preset ``name``, with ``overrides`` merged.

    Raises:
        KeyError: ``name`` is not a VQ-VAE-2 preset (the message lists them).
    """
    return _table_config(VQVAE2_PRESETS, "VQ-VAE-2 ", name, overrides)


def _dvae_class() -> Callable[..., Any]:
    from vqkit.models.dvae import DVAE

    return DVAE


def _vqvae2_class() -> Callable[..., Any]:
    from vqkit.models.vqvae2 import VQVAE2

    return VQVAE2


_register_presets(DVAE_PRESETS, dvae_preset_config, _dvae_class)
_register_presets(VQVAE2_PRESETS, vqvae2_preset_config, _vqvae2_class)

#: Every preset table with the function that gives a preset's full constructor arguments.
_FAMILY_TABLES: tuple[tuple[dict[str, Preset], Callable[..., dict[str, Any]]], ...] = (
    (PRESETS, preset_config),
    (GAN_PRESETS, gan_preset_config),
    (DVAE_PRESETS, dvae_preset_config),
    (VQVAE2_PRESETS, vqvae2_preset_config),
)


def find_preset(name: str) -> Preset | None:
    """The preset called ``name`` in any family's table (VQ-VAE, VQ-GAN, dVAE, VQ-VAE-2), or
    None when ``name`` is not a preset."""
    for table, _ in _FAMILY_TABLES:
        if name in table:
            return table[name]
    return None


def any_preset_config(name: str, **overrides: Any) -> dict[str, Any]:
    """The constructor arguments of preset ``name`` of any family, with ``overrides`` merged.

    Raises:
        KeyError: ``name`` is not a preset of any family.
    """
    for table, config_of in _FAMILY_TABLES:
        if name in table:
            return config_of(name, **overrides)
    names = sorted(n for table, _ in _FAMILY_TABLES for n in table)
    raise KeyError(f"unknown preset {name!r}; presets: {', '.join(names)}")
