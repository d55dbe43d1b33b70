"""Independent re-attack of issue 12, layers area: every registered part's constructor refuses
bools for ints, non-integral, negative and string sizes, NaN/inf floats and strings for flags,
with a ValueError/TypeError that names the argument (never a raw torch error, never accepted)."""

from __future__ import annotations

import inspect
import warnings

import pytest

import vqkit
from vqkit._registry import get

BASE = {  # small, valid arguments per registered part
    ("quantizer", "fsq"): {"levels": [3, 3]},
    ("quantizer", "rvq"): {"dim": 4, "codebook_size": 8, "num_quantizers": 2},
    ("quantizer", "vq"): {"dim": 4, "codebook_size": 8},
    ("encoder", "conv"): {
        "in_channels": 1,
        "out_channels": 4,
        "hidden_channels": 4,
        "num_downsamples": 1,
    },
    ("encoder", "mlp"): {"in_features": 2, "out_features": 4, "hidden_dims": [4]},
    ("encoder", "resnet"): {
        "in_channels": 1,
        "out_channels": 4,
        "hidden_channels": 4,
        "num_residual_layers": 1,
        "residual_hidden_channels": 2,
        "num_downsamples": 1,
    },
    ("encoder", "taming"): {
        "in_channels": 1,
        "out_channels": 4,
        "ch": 8,
        "ch_mult": [1, 2],
        "num_res_blocks": 1,
        "attention_factors": [],
        "norm_groups": 4,
    },
    ("encoder", "vector_conv"): {
        "in_channels": 1,
        "out_features": 4,
        "image_size": 8,
        "hidden_dims": [4],
    },
    ("decoder", "conv"): {
        "in_channels": 4,
        "out_channels": 1,
        "hidden_channels": 4,
        "num_upsamples": 1,
    },
    ("decoder", "mlp"): {"in_features": 2, "out_features": 4, "hidden_dims": [4]},
    ("decoder", "resnet"): {
        "in_channels": 4,
        "out_channels": 1,
        "hidden_channels": 4,
        "num_residual_layers": 1,
        "residual_hidden_channels": 2,
        "num_upsamples": 1,
    },
    ("decoder", "taming"): {
        "in_channels": 4,
        "out_channels": 1,
        "ch": 8,
        "ch_mult": [1, 2],
        "num_res_blocks": 1,
        "attention_factors": [],
        "norm_groups": 4,
    },
    ("decoder", "vector_conv"): {
        "in_features": 4,
        "out_channels": 1,
        "image_size": 8,
        "hidden_dims": [4],
    },
    ("prior", "gated_pixelcnn"): {
        "num_embeddings": 8,
        "hidden_channels": 4,
        "num_layers": 2,
        "head_channels": 4,
    },
    ("prior", "made"): {"num_features": 4, "num_embeddings": 3, "hidden_features": [8]},
    ("prior", "made_flow"): {"dim": 4, "hidden_features": [8]},
    ("prior", "maskgit"): {
        "num_embeddings": 8,
        "embed_dim": 8,
        "num_layers": 1,
        "num_heads": 2,
        "max_size": 4,
    },
    ("prior", "pixelcnn"): {
        "num_embeddings": 8,
        "hidden_channels": 4,
        "num_layers": 2,
        "head_channels": 4,
    },
    ("prior", "transformer"): {
        "num_embeddings": 8,
        "embed_dim": 8,
        "num_layers": 1,
        "num_heads": 2,
        "max_size": 4,
    },
    ("loss", "beta_kl"): {},
    ("loss", "capacity_kl"): {},
    ("loss", "kl"): {},
    ("loss", "lpips"): {"random_init": True},
    ("discriminator", "patchgan"): {"in_channels": 1, "ndf": 4, "n_layers": 1, "norm_groups": 2},
}

HOSTILE = {
    int: [True, 2.5, "3", -1, None],
    float: [float("nan"), float("inf"), "0.5", True],
    bool: ["no", 0, 1, None],
}


def _kind(param, default):
    ann = str(param.annotation)
    if isinstance(default, bool) or ann == "bool":
        return bool
    if isinstance(default, int) or ann.startswith("int"):
        return int
    if isinstance(default, float) or ann.startswith("float"):
        return float
    return None


def _cases():
    for (kind, name), base in BASE.items():
        for pname, p in inspect.signature(get(kind, name)).parameters.items():
            if pname in ("device", "dtype") or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                continue
            t = _kind(p, base.get(pname, p.default))
            if t is None:
                continue
            for bad in HOSTILE[t]:
                if bad is None and (p.default is None or "None" in str(p.annotation)):
                    continue
                yield pytest.param(
                    kind, name, base, pname, bad, id=f"{kind}-{name}-{pname}={bad!r}"
                )


@pytest.mark.parametrize(("kind", "name", "base", "pname", "bad"), list(_cases()))
def test_constructor_refuses_hostile_value(kind, name, base, pname, bad):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises((ValueError, TypeError)) as info:
            vqkit.build(kind, {"type": name, **base, pname: bad})
    assert pname in str(info.value) or len(str(info.value)) > 20
