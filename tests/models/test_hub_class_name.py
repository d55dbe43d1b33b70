"""``config.json`` records the class that wrote it (``_class_name``, as diffusers does) and the
vqkit version; loading drops the ``_`` records, and ``vqkit.from_pretrained`` finds the class by
``_class_name``, checked against the weights' ``vqkit_class`` metadata."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import vqkit
from vqkit._hub import InvalidModelError

FIXTURES = Path(__file__).parents[1] / "fixtures" / "release_0_1_0"


@pytest.fixture
def folder(tiny_model, tmp_path) -> Path:
    tiny_model.save_pretrained(tmp_path / "m")
    return tmp_path / "m"


def read(folder: Path) -> dict:
    return json.loads((folder / "config.json").read_text())


def write(folder: Path, config: dict) -> None:
    (folder / "config.json").write_text(json.dumps(config))


def strip_metadata(folder: Path) -> None:
    """Rewrite the weights with no vqkit metadata: only config.json then names the class."""
    weights = load_file(folder / "model.safetensors")
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})


def assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


@pytest.mark.parametrize(
    "make",
    [
        lambda: vqkit.PixelCNN(num_embeddings=8, hidden_channels=8, num_layers=1),
        lambda: vqkit.VAE(data_dim=4, latent_dim=2, hidden_dims=[8]),
    ],
)
def test_config_records_the_class_name_and_version(tiny_model, folder, make, tmp_path):
    config = read(folder)
    assert config["_class_name"] == "VQVAE"
    assert config["_vqkit_version"] == vqkit.__version__
    assert {k: v for k, v in config.items() if not k.startswith("_")} == tiny_model.hub_config
    other = make()
    other.save_pretrained(tmp_path / "other")
    config = read(tmp_path / "other")
    assert config["_class_name"] == type(other).__name__
    assert sorted(config) == sorted([*other.hub_config, "_class_name", "_vqkit_version"])


def test_class_name_alone_finds_the_class(tiny_model, folder, hf_cache):
    strip_metadata(folder)
    loaded = vqkit.from_pretrained(folder)
    assert type(loaded) is vqkit.VQVAE
    assert_same_state(tiny_model, loaded)
    hf_cache("user/tiny", folder)
    assert type(vqkit.from_pretrained("user/tiny")) is vqkit.VQVAE


def test_folder_without_class_name_falls_back_to_the_metadata(tiny_model, folder):
    config = read(folder)
    del config["_class_name"], config["_vqkit_version"]
    write(folder, config)
    loaded = vqkit.from_pretrained(folder)
    assert type(loaded) is vqkit.VQVAE
    assert_same_state(tiny_model, loaded)


def test_release_0_1_0_folder_still_loads_with_its_class(tmp_path):
    shutil.copytree(FIXTURES / "vqvae_digits", tmp_path / "old")
    assert "_class_name" not in read(tmp_path / "old")
    assert type(vqkit.VQVAE.from_pretrained(tmp_path / "old")) is vqkit.VQVAE
    with pytest.raises(InvalidModelError, match="does not record which vqkit class"):
        vqkit.from_pretrained(tmp_path / "old")


def test_underscore_records_never_reach_the_constructor(tiny_model, folder):
    write(folder, {**read(folder), "_saved_by": "a future vqkit", "_commit": [1, 2]})
    assert_same_state(tiny_model, vqkit.VQVAE.from_pretrained(folder))  # strict by default
    assert_same_state(tiny_model, vqkit.from_pretrained(folder))


@pytest.mark.parametrize("class_name", ["PixelCNN", "VQGAN"])
def test_class_name_that_contradicts_the_weights_is_an_error(folder, class_name):
    write(folder, {**read(folder), "_class_name": class_name})
    with pytest.raises(InvalidModelError, match="contradicts itself") as info:
        vqkit.from_pretrained(folder)
    message = str(info.value)
    assert f"names class {class_name!r}" in message
    assert "model 'vqvae' (VQVAE)" in message
    assert str(folder / "model.safetensors") in message


@pytest.mark.parametrize("strip", [False, True])
def test_unknown_class_name_is_a_clear_error(folder, strip):
    if strip:
        strip_metadata(folder)
    write(folder, {**read(folder), "_class_name": "VQVea"})
    with pytest.raises(KeyError, match=r"names class 'VQVea' \(_class_name\)") as info:
        vqkit.from_pretrained(folder)
    message = str(info.value)
    assert "Did you mean 'VQVAE'" in message
    assert "PixelCNN" in message.split("Known classes:")[1]


@pytest.mark.parametrize(
    ("key", "value", "kind"),
    [
        ("_class_name", 5, "number"),
        ("_class_name", "", "string"),
        ("_class_name", None, "null"),
        ("_vqkit_version", ["0.2"], "array"),
    ],
)
def test_class_name_and_version_must_be_strings(folder, key, value, kind):
    write(folder, {**read(folder), key: value})
    for load in (vqkit.from_pretrained, vqkit.VQVAE.from_pretrained):
        with pytest.raises(InvalidModelError, match=f"{key} must be a non-empty string") as info:
            load(folder)
        assert f"got a JSON {kind}" in str(info.value)
        assert str(folder / "config.json") in str(info.value)
