"""Hub integration: config.json, safetensors, model card, strict loading, offline cache, push."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import ClassVar

import huggingface_hub
import pytest
import torch
from huggingface_hub import HfApi, ModelCard
from huggingface_hub.hf_api import RepoUrl
from models_helpers import TINY, train_steps
from safetensors.torch import load_file, save_file

import vqkit
from vqkit import _registry
from vqkit._hub import load_safetensors_strict


def saved(model, path: Path) -> Path:
    model.save_pretrained(path)
    return path


def assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


# ------------------------------------------------------------------------------------ saving
def test_saved_files_and_config_equal_the_constructor_arguments(tiny_model, tmp_path):
    folder = saved(tiny_model, tmp_path / "m")
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    config = json.loads((folder / "config.json").read_text())
    assert config.pop("_class_name") == "VQVAE"
    assert config.pop("_vqkit_version") == vqkit.__version__
    assert config == {**TINY, "reconstruction_loss": "mse", "data_variance": 1.0}
    assert vqkit.VQVAE(**config).hub_config == config  # config.json rebuilds the model
    weights = load_file(folder / "model.safetensors")
    assert weights.keys() == tiny_model.state_dict().keys()


def test_model_card_names_library_tags_loading_and_config(tiny_model, tmp_path):
    folder = saved(tiny_model, tmp_path / "m")
    card = ModelCard.load(folder / "README.md")
    assert card.data.library_name == "vqkit"
    assert {"vqkit", "vq-vae", "image-generation"} <= set(card.data.tags)
    assert "from vqkit import VQVAE" in card.text
    assert 'VQVAE.from_pretrained("path/or/user-repo")' in card.text
    assert json.dumps(tiny_model.hub_config, sort_keys=True, indent=2) in card.text
    assert "https://arxiv.org/abs/1711.00937" in card.text


def test_round_trip_identical_outputs_samples_and_ema_state(tiny_model, images, tmp_path):
    train_steps(tiny_model, images)
    assert int(tiny_model.quantizer.steps) == 3  # EMA and usage buffers have moved
    loaded = vqkit.VQVAE.from_pretrained(saved(tiny_model, tmp_path / "m"))
    assert not loaded.training
    assert_same_state(tiny_model, loaded)
    for name in ("embed", "cluster_size", "embed_sum", "steps", "last_used"):
        assert torch.equal(getattr(loaded.quantizer, name), getattr(tiny_model.quantizer, name))
    tiny_model.eval()
    a, b = tiny_model(images), loaded(images)
    assert torch.equal(a.reconstruction, b.reconstruction)
    assert torch.equal(a.quantizer.indices, b.quantizer.indices)
    assert torch.equal(a.loss, b.loss)
    sample_a = tiny_model.generate(4, generator=torch.Generator().manual_seed(3))
    sample_b = loaded.generate(4, generator=torch.Generator().manual_seed(3))
    assert torch.equal(sample_a, sample_b)


def test_training_continues_identically_after_reload(tiny_model, images, tmp_path):
    """Every stateful buffer is saved: one more training step agrees bit for bit."""
    train_steps(tiny_model, images, steps=2)
    loaded = vqkit.VQVAE.from_pretrained(saved(tiny_model, tmp_path / "m")).train()
    tiny_model.train()
    torch.manual_seed(9)
    out_a = tiny_model(images)
    torch.manual_seed(9)
    out_b = loaded(images)
    assert torch.equal(out_a.loss, out_b.loss)
    assert_same_state(tiny_model, loaded)


def test_overrides_at_load_time(tiny_model, tmp_path):
    loaded = vqkit.VQVAE.from_pretrained(saved(tiny_model, tmp_path / "m"), image_size=[16, 16])
    assert loaded.latent_size == (8, 8)
    assert_same_state(tiny_model, loaded)


def test_preset_round_trip_through_vqvae(tmp_path):
    model = vqkit.create_model("vqvae-digits")
    loaded = vqkit.VQVAE.from_pretrained(saved(model, tmp_path / "d"))
    assert loaded.hub_config == model.hub_config
    assert_same_state(model, loaded)


def test_saving_a_model_built_from_modules_is_refused(tiny_config, tmp_path):
    tiny_config["encoder"] = vqkit.build("encoder", tiny_config["encoder"], out_channels=4)
    model = vqkit.VQVAE(**tiny_config)
    with pytest.raises(TypeError, match=r"\['encoder'\] were not JSON-serializable"):
        model.save_pretrained(tmp_path / "m")


def test_config_argument_is_refused(tiny_model, tmp_path):
    with pytest.raises(TypeError, match=r"save_pretrained\(config=\.\.\.\) is not supported"):
        tiny_model.save_pretrained(tmp_path / "m", config={"a": 1})


# --------------------------------------------------------------------------- strict loading
def test_missing_key_is_named_with_the_file(tiny_model, tmp_path):
    folder = saved(tiny_model, tmp_path / "m")
    weights = load_file(folder / "model.safetensors")
    del weights["decoder.stem.bias"]
    save_file(weights, folder / "model.safetensors")
    with pytest.raises(
        ValueError, match=r"model\.safetensors.*missing key\(s\) \['decoder\.stem\.bias'\]"
    ):
        vqkit.VQVAE.from_pretrained(folder)


def test_unexpected_key_strict_and_lenient(tiny_model, tmp_path):
    folder = saved(tiny_model, tmp_path / "m")
    weights = load_file(folder / "model.safetensors")
    weights["extra.weight"] = torch.zeros(2)
    save_file(weights, folder / "model.safetensors")
    with pytest.raises(ValueError, match=r"unexpected key\(s\) \['extra\.weight'\]"):
        vqkit.VQVAE.from_pretrained(folder)
    with pytest.warns(UserWarning, match="non-strictly"):
        loaded = vqkit.VQVAE.from_pretrained(folder, strict=False)
    assert_same_state(tiny_model, loaded)


def test_shape_mismatch_names_file_and_key(tiny_model, tmp_path):
    folder = saved(tiny_model, tmp_path / "m")
    with pytest.raises(
        ValueError,
        match=r"shape mismatch loading .*model\.safetensors: .*"
        r"quantizer\.embed: file \(8, 4\) vs model \(16, 4\)",
    ):
        vqkit.VQVAE.from_pretrained(folder, quantizer={"type": "vq", "dim": 4, "codebook_size": 16})
    with pytest.raises(ValueError, match="shape mismatch"):  # shapes are checked even non-strict
        vqkit.VQVAE.from_pretrained(
            folder, strict=False, quantizer={"type": "vq", "dim": 4, "codebook_size": 16}
        )


def test_missing_weights_file_is_named(tiny_model, tmp_path):
    folder = saved(tiny_model, tmp_path / "m")
    (folder / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"model\.safetensors not found in local folder"):
        vqkit.VQVAE.from_pretrained(folder)


def test_missing_config_is_named(tiny_model, tmp_path):
    folder = saved(tiny_model, tmp_path / "m")
    (folder / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"config\.json not found in local folder"):
        vqkit.VQVAE.from_pretrained(folder)


def test_unknown_config_key(tiny_model, tmp_path):
    folder = saved(tiny_model, tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "colour": "red"}))
    with pytest.raises(ValueError, match=r"keys \['colour'\] that VQVAE\(\) does not accept"):
        vqkit.VQVAE.from_pretrained(folder)
    with pytest.warns(UserWarning, match="ignored"):
        vqkit.VQVAE.from_pretrained(folder, strict=False)


def test_config_naming_an_unknown_part(tiny_model, tmp_path):
    folder = saved(tiny_model, tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    config["quantizer"]["type"] = "vqq"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(KeyError, match=r"config\.json: unknown quantizer 'vqq'.*Did you mean 'vq'"):
        vqkit.VQVAE.from_pretrained(folder)


def test_load_safetensors_strict_helper(tiny_model, tmp_path):
    folder = saved(tiny_model, tmp_path / "m")
    other = vqkit.VQVAE(**TINY)
    load_safetensors_strict(other, folder / "model.safetensors")
    assert_same_state(tiny_model, other)


# ------------------------------------------------------------------------- the Hub, offline
def test_from_pretrained_resolves_a_hub_repo_from_the_offline_cache(tiny_model, hf_cache, tmp_path):
    model = vqkit.create_model(
        "vqvae-celeba64",
        encoder={"hidden_channels": 8, "residual_hidden_channels": 4},
        decoder={"hidden_channels": 8, "residual_hidden_channels": 4},
        quantizer={"codebook_size": 16, "dim": 4},
        prior={"hidden_channels": 8, "num_layers": 2, "head_channels": 8},
    )
    sha = "1234567890abcdef1234567890abcdef12345678"
    hf_cache("user/vqvae-celeba", saved(model, tmp_path / "export"), sha=sha)
    loaded = vqkit.VQVAE.from_pretrained("user/vqvae-celeba")
    assert_same_state(model, loaded)
    assert loaded.hub_config == model.hub_config
    pinned = vqkit.VQVAE.from_pretrained("user/vqvae-celeba", revision=sha)
    assert_same_state(model, pinned)
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(model.eval()(x).reconstruction, loaded(x).reconstruction)


def test_uncached_repo_offline_names_config_and_repo(hf_cache):
    with pytest.raises(
        FileNotFoundError, match=r"config\.json not found in Hub repo 'user/absent'"
    ):
        vqkit.VQVAE.from_pretrained("user/absent")


def test_repo_without_safetensors_never_falls_back_to_pickle(
    tiny_model, hf_cache, tmp_path, monkeypatch
):
    folder = saved(tiny_model, tmp_path / "export")
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"not a pickle you should ever open")
    hf_cache("user/old-format", folder)

    def no_unpickling(*args, **kwargs):
        raise AssertionError("torch.load must never be called")

    monkeypatch.setattr(torch, "load", no_unpickling)
    with pytest.raises(
        FileNotFoundError, match=r"model\.safetensors not found in Hub repo 'user/old-format'"
    ):
        vqkit.VQVAE.from_pretrained("user/old-format")


class FakeHfApi(HfApi):
    """The Hub API with its two network calls replaced by recorders (nothing leaves the box)."""

    calls: ClassVar[list[tuple[str, dict]]] = []
    uploaded: ClassVar[dict[str, bytes]] = {}

    def create_repo(self, repo_id, **kwargs):
        FakeHfApi.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        FakeHfApi.calls.append(("upload_folder", {"repo_id": repo_id, **kwargs}))
        for path in Path(folder_path).iterdir():
            FakeHfApi.uploaded[path.name] = path.read_bytes()
        return f"https://huggingface.co/{repo_id}/commit/{'a' * 40}"


def test_push_to_hub_uploads_config_weights_and_card(tiny_model, monkeypatch, hf_cache, tmp_path):
    FakeHfApi.calls, FakeHfApi.uploaded = [], {}
    monkeypatch.setattr(huggingface_hub.hub_mixin, "HfApi", FakeHfApi)
    url = tiny_model.push_to_hub("user/vqvae-celeba", private=True, commit_message="first")
    assert url == f"https://huggingface.co/user/vqvae-celeba/commit/{'a' * 40}"
    (create, create_kwargs), (upload, upload_kwargs) = FakeHfApi.calls
    assert (create, create_kwargs["repo_id"], create_kwargs["private"]) == (
        "create_repo",
        "user/vqvae-celeba",
        True,
    )
    assert (upload, upload_kwargs["repo_id"], upload_kwargs["commit_message"]) == (
        "upload_folder",
        "user/vqvae-celeba",
        "first",
    )
    assert sorted(FakeHfApi.uploaded) == ["README.md", "config.json", "model.safetensors"]
    uploaded_config = json.loads(FakeHfApi.uploaded["config.json"])
    assert uploaded_config["_class_name"] == "VQVAE"
    assert {k: v for k, v in uploaded_config.items() if not k.startswith("_")} == (
        tiny_model.hub_config
    )
    card = FakeHfApi.uploaded["README.md"].decode()
    assert 'VQVAE.from_pretrained("user/vqvae-celeba")' in card
    assert "library_name: vqkit" in card
    # What was uploaded is what a user downloads: load it back through the Hub cache.
    export = tmp_path / "uploaded"
    export.mkdir()
    for name, data in FakeHfApi.uploaded.items():
        (export / name).write_bytes(data)
    hf_cache("user/vqvae-celeba", export)
    assert_same_state(tiny_model, vqkit.VQVAE.from_pretrained("user/vqvae-celeba"))


def test_save_pretrained_with_push(tiny_model, monkeypatch, tmp_path):
    FakeHfApi.calls, FakeHfApi.uploaded = [], {}
    monkeypatch.setattr(huggingface_hub.hub_mixin, "HfApi", FakeHfApi)
    tiny_model.save_pretrained(tmp_path / "vqvae-tiny", push_to_hub=True, repo_id="user/tiny")
    assert [call[1]["repo_id"] for call in FakeHfApi.calls] == ["user/tiny", "user/tiny"]
    assert sorted(FakeHfApi.uploaded) == ["README.md", "config.json", "model.safetensors"]
    assert (tmp_path / "vqvae-tiny" / "model.safetensors").is_file()  # also saved locally


# ------------------------------------------------------------------------- third-party parts
PLUGIN_SOURCE = """
from torch import nn

import vqkit


@vqkit.register("encoder", "fake_plugin_encoder")
class FakePluginEncoder(nn.Module):
    def __init__(self, in_channels=1, out_channels=4, hidden_channels=8):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.num_downsamples, self.downsample_factor = 1, 2
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, hidden_channels, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden_channels, out_channels, 1),
        )

    def forward(self, x):
        return self.net(x)
"""


@pytest.fixture
def plugin_site(tmp_path, monkeypatch):
    """A real installed distribution exposing an encoder through the ``vqkit.plugins`` group."""
    site = tmp_path / "site"
    (site / "vqkit_fake_plugin").mkdir(parents=True)
    (site / "vqkit_fake_plugin" / "__init__.py").write_text(PLUGIN_SOURCE)
    dist = site / "vqkit_fake_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: vqkit-fake-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[vqkit.plugins]\nfake = vqkit_fake_plugin\n")
    # Registrations made during the test go to a copy of the registry, dropped afterwards.
    monkeypatch.setattr(
        _registry, "_REGISTRY", {kind: dict(names) for kind, names in _registry._REGISTRY.items()}
    )
    monkeypatch.setattr(_registry, "_plugins_loaded", False)
    yield site
    sys.modules.pop("vqkit_fake_plugin", None)


def _install(site: Path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(site))
    _registry._plugins_loaded = False


def _uninstall(site: Path) -> None:
    while str(site) in sys.path:
        sys.path.remove(str(site))
    sys.modules.pop("vqkit_fake_plugin", None)
    _registry._REGISTRY["encoder"].pop("fake_plugin_encoder", None)
    _registry._plugins_loaded = False


def test_plugin_part_inside_a_model_round_trips(plugin_site, monkeypatch, tmp_path, images):
    config = {**TINY, "encoder": {"type": "fake_plugin_encoder", "in_channels": 1}}
    with pytest.raises(KeyError, match=r"unknown encoder 'fake_plugin_encoder'"):
        vqkit.VQVAE(**config)  # not installed yet

    _install(plugin_site, monkeypatch)
    model = vqkit.VQVAE(**config)  # found through the entry point, loaded lazily
    assert type(model.encoder).__name__ == "FakePluginEncoder"
    assert model.encoder.out_channels == 4  # wired from the quantizer like a built-in part
    folder = saved(model, tmp_path / "m")

    _uninstall(plugin_site)
    with pytest.raises(
        KeyError,
        match=r"cannot build VQVAE from .*config\.json: unknown encoder 'fake_plugin_encoder'.*"
        r"third-party package",
    ):
        vqkit.VQVAE.from_pretrained(folder)

    _install(plugin_site, monkeypatch)
    loaded = vqkit.VQVAE.from_pretrained(folder)
    assert_same_state(model, loaded)
    model.eval()
    assert torch.equal(model(images).reconstruction, loaded(images).reconstruction)


def test_export_folder_can_be_copied_anywhere(tiny_model, tmp_path):
    """Nothing in the saved folder refers to where it was written."""
    folder = saved(tiny_model, tmp_path / "a")
    moved = tmp_path / "b"
    shutil.move(folder, moved)
    assert_same_state(tiny_model, vqkit.VQVAE.from_pretrained(moved))
