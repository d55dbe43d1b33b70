"""A tampered-repo suite for ``from_pretrained``: every bad file is refused with one error naming
the file (and the key) before anything large is allocated; plus the Hub conventions (class on
record, top-level loader, device / dtype, card metadata, one-line network errors)."""

from __future__ import annotations

import copy
import json
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError
from models_helpers import TINY
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import vqkit
from vqkit import _hub
from vqkit._hub import HubError, InvalidModelError, ModelNotFoundError

FIXTURES = Path(__file__).parents[1] / "fixtures" / "release_0_1_0"


@pytest.fixture
def folder(tiny_model, tmp_path) -> Path:
    tiny_model.save_pretrained(tmp_path / "m")
    return tmp_path / "m"


def write_config(folder: Path, config) -> None:
    (folder / "config.json").write_text(config if isinstance(config, str) else json.dumps(config))


def assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


# ------------------------------------------------------------------------------ config.json
@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "is empty"),
        ("  \n\t", "is empty"),
        ("{not json", r"is not valid JSON: .* at line 1 column 2"),
        ('{"a": 1', "is not valid JSON"),
        ("[1, 2, 3]", "must hold a JSON object of constructor arguments, got a JSON array"),
        ('"vqvae"', "got a JSON string"),
        ("null", "got a JSON null"),
        ('{"data_variance": NaN}', "is not valid JSON: NaN is not JSON"),
        ("[" * 100_000 + "]" * 100_000, "is not valid JSON"),
    ],
)
def test_malformed_config_is_one_error_naming_the_file(folder, text, match):
    write_config(folder, text)
    with pytest.raises(InvalidModelError, match=match) as info:
        vqkit.VQVAE.from_pretrained(folder)
    assert str(folder / "config.json") in str(info.value)


def test_config_that_is_not_utf8_or_too_large(folder):
    (folder / "config.json").write_bytes(b'{"a": "\xff\xfe"}')
    with pytest.raises(InvalidModelError, match=r"config\.json is not UTF-8"):
        vqkit.VQVAE.from_pretrained(folder)
    write_config(folder, json.dumps({"pad": "x" * (2 << 20)}))
    with pytest.raises(InvalidModelError, match=r"config\.json is \d+ bytes; .* at most 1048576"):
        vqkit.VQVAE.from_pretrained(folder)


@pytest.mark.parametrize("key", ["device", "dtype"])
def test_placement_keys_in_a_config_are_refused(folder, key):
    config = json.loads((folder / "config.json").read_text())
    write_config(folder, {**config, key: "cuda" if key == "device" else "float16"})
    with pytest.raises(InvalidModelError, match=rf"has key '{key}': placement is chosen when"):
        vqkit.VQVAE.from_pretrained(folder)


# ----------------------------------------------------------------------- model.safetensors
def header_bytes(header: dict) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda data: b"", r"is empty \(0 bytes\)"),
        (lambda data: data[:5], r"is truncated \(5 bytes\)"),
        (lambda data: data[: len(data) // 2], "is truncated"),
        (lambda data: data[:-1], "is truncated: tensor"),
        (lambda data: b"\x80\x04PK pickle? never" + b"\0" * 64, "header length field says"),
        (lambda data: struct.pack("<Q", 12) + b"not a header", "bad JSON header"),
        (lambda data: header_bytes([1, 2]), "the header is a JSON list"),
        (
            lambda data: (
                header_bytes({"w": {"dtype": "Q7", "shape": [1], "data_offsets": [0, 4]}})
                + b"\0" * 4
            ),
            "tensor 'w' has unknown dtype 'Q7'",
        ),
        (
            lambda data: (
                header_bytes({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}})
                + b"\0" * 4
            ),
            r"tensor 'w': shape \[2\] of F32 needs 8 bytes, its data_offsets span 4",
        ),
        (
            lambda data: header_bytes(
                {"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}
            ),
            r"tensor 'w' has a bad shape \[-1\]",
        ),
        (
            lambda data: (
                header_bytes(
                    {
                        "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                        "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
                    }
                )
                + b"\0" * 12
            ),
            "overlapping or gapped data",
        ),
        (
            lambda data: (
                header_bytes({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})
                + b"\0" * 40
            ),
            "36 trailing bytes",
        ),
    ],
)
def test_bad_weights_file_is_one_error_naming_the_file(folder, make, match):
    weights = folder / "model.safetensors"
    weights.write_bytes(make(weights.read_bytes()))
    with pytest.raises(InvalidModelError, match=match) as info:
        vqkit.VQVAE.from_pretrained(folder)
    assert str(weights) in str(info.value)


def test_an_int8_tensor_where_fp32_is_expected_is_never_cast(folder):
    weights = load_file(folder / "model.safetensors")
    weights["quantizer.embed"] = torch.ones_like(weights["quantizer.embed"], dtype=torch.int8)
    save_file(weights, folder / "model.safetensors")
    with pytest.raises(
        InvalidModelError,
        match=r"dtype mismatch loading .*model\.safetensors: quantizer\.embed: file I8 vs model "
        r"F32 \(weights are never cast silently",
    ):
        vqkit.VQVAE.from_pretrained(folder)
    with pytest.raises(InvalidModelError, match="dtype mismatch"):  # even non-strict
        vqkit.VQVAE.from_pretrained(folder, strict=False)


def test_header_lies_about_the_data_are_refused_before_loading(folder):
    """A header whose tensor is too short for its shape, while the file size still adds up."""
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    entry = header["quantizer.embed"]
    entry["shape"] = [entry["shape"][0] * 2, entry["shape"][1]]
    weights.write_bytes(header_bytes(header) + data[8 + length :])
    with pytest.raises(InvalidModelError, match=r"tensor 'quantizer\.embed': shape \[16, 4\]"):
        vqkit.VQVAE.from_pretrained(folder)


# --------------------------------------------------------------------- oversized configs
OVERSIZED = {
    "codes": lambda c: c["quantizer"].update(codebook_size=10**12),
    "width": lambda c: c["encoder"].update(hidden_channels=10**7),
    "layers": lambda c: c["prior"].update(num_layers=10**6),
    "blocks": lambda c: c["encoder"].update(num_residual_layers=10**6),
}


@pytest.mark.parametrize("case", sorted(OVERSIZED))
def test_oversized_config_is_refused_before_allocating(folder, case):
    config = copy.deepcopy(TINY)
    OVERSIZED[case](config)
    write_config(folder, config)
    with pytest.raises(
        InvalidModelError, match=r"config\.json of local folder .* asks for a model"
    ):
        vqkit.VQVAE.from_pretrained(folder)


MEASURE = textwrap.dedent(
    """
    import json, resource, sys, time
    import vqkit
    folders = json.loads(sys.argv[1])
    vqkit.VQVAE.from_pretrained(folders.pop("valid"))  # imports and first-call costs
    out = {}
    for case, folder in folders.items():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        start = time.perf_counter()
        try:
            vqkit.VQVAE.from_pretrained(folder)
            error = None
        except vqkit.InvalidModelError as exc:
            error = str(exc)
        seconds = time.perf_counter() - start
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        out[case] = {"error": error, "seconds": seconds, "peak_rss_growth_kib": grown}
    print(json.dumps(out))
    """
)


def test_oversized_configs_fail_within_a_small_memory_bound(folder, tmp_path):
    """Measured in a fresh process: the peak RSS grows by less than 64 MiB for each case
    (unchecked, 10¹² codes alone would ask for 16 TB). Times are printed, not asserted."""
    folders = {"valid": str(folder)}
    for case, patch in OVERSIZED.items():
        bad = tmp_path / case
        bad.mkdir()
        (bad / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes())
        config = copy.deepcopy(TINY)
        patch(config)
        write_config(bad, config)
        folders[case] = str(bad)
    proc = subprocess.run(
        [sys.executable, "-c", MEASURE, json.dumps(folders)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout.splitlines()[-1])
    for case, result in results.items():
        print(
            f"{case}: {result['seconds'] * 1e3:.1f} ms, "
            f"peak RSS +{result['peak_rss_growth_kib'] / 1024:.1f} MiB"
        )
        assert result["error"] is not None, case
        assert "asks for a model" in result["error"], case
        assert result["peak_rss_growth_kib"] < 64 * 1024, (case, result)


# ------------------------------------------------------------------ class on record, top level
def test_weights_record_the_class_and_version(folder):
    with safe_open(folder / "model.safetensors", framework="pt") as f:
        metadata = f.metadata()
    assert metadata == {
        "format": "pt",
        "vqkit_class": "vqvae",
        "vqkit_kind": "model",
        "vqkit_version": vqkit.__version__,
    }


def test_top_level_loader_needs_no_class(tiny_model, folder, hf_cache):
    loaded = vqkit.from_pretrained(folder)
    assert type(loaded) is vqkit.VQVAE
    assert not loaded.training
    assert_same_state(tiny_model, loaded)
    hf_cache("user/tiny", folder)
    assert_same_state(tiny_model, vqkit.from_pretrained("user/tiny"))


@pytest.mark.parametrize(
    ("make", "cls"),
    [
        (lambda: vqkit.PixelCNN(num_embeddings=8, hidden_channels=8, num_layers=1), vqkit.PixelCNN),
        (lambda: vqkit.MADE(num_features=3, num_embeddings=4, hidden_features=[8]), vqkit.MADE),
        (lambda: vqkit.VAE(data_dim=4, latent_dim=2, hidden_dims=[8]), vqkit.VAE),
        (  # its constructor reads tensor values, so it is checked on the CPU under the budget
            lambda: vqkit.VLAE(
                image_size=8, latent_dim=2, hidden_dims=[4], prior_hidden_features=[8]
            ),
            vqkit.VLAE,
        ),
    ],
)
def test_top_level_loader_finds_priors_and_other_families(make, cls, tmp_path):
    torch.manual_seed(0)
    model = make()
    model.save_pretrained(tmp_path / "x")
    loaded = vqkit.from_pretrained(tmp_path / "x")
    assert type(loaded) is cls
    assert_same_state(model, loaded)


@pytest.mark.parametrize(("name", "hint"), [("vqvae_digits", "VQVAE"), ("pixelcnn", "PixelCNN")])
def test_release_0_1_0_folders_get_a_clear_error_naming_the_class(name, hint):
    with pytest.raises(InvalidModelError, match=r"does not record which vqkit class") as info:
        vqkit.from_pretrained(FIXTURES / name)
    message = str(info.value)
    assert "0.1.0" in message
    assert "vqkit.VQVAE.from_pretrained" in message
    assert hint in message.split("every key of its config.json:")[1]
    getattr(vqkit, hint).from_pretrained(FIXTURES / name)  # the class method still loads them


def test_unknown_recorded_class_names_the_registry(folder):
    weights = load_file(folder / "model.safetensors")
    save_file(
        weights,
        folder / "model.safetensors",
        metadata={"vqkit_kind": "model", "vqkit_class": "vqvea"},
    )
    with pytest.raises(KeyError, match=r"unknown model 'vqvea'.*Did you mean 'vqvae'"):
        vqkit.from_pretrained(folder)


# -------------------------------------------------------------------------- device and dtype
def test_dtype_and_device_at_load_time(tiny_model, folder):
    loaded = vqkit.VQVAE.from_pretrained(folder, device="cpu", dtype=torch.float64)
    assert {p.dtype for p in loaded.parameters()} == {torch.float64}
    assert loaded.quantizer.steps.dtype == tiny_model.quantizer.steps.dtype  # ints stay ints
    expected = {
        k: v.double() if v.is_floating_point() else v for k, v in tiny_model.state_dict().items()
    }
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, expected[key]), key
    half = vqkit.from_pretrained(folder, dtype="bfloat16", map_location="cpu")
    assert {p.dtype for p in half.encoder.parameters()} == {torch.bfloat16}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"dtype": torch.int8}, "dtype must be a floating-point torch.dtype"),
        ({"dtype": "float99"}, "unknown dtype 'float99'"),
        ({"device": "meta"}, "device 'meta' holds no weights"),
        ({"device": "tpu:x"}, "bad device 'tpu:x'"),
        ({"device": "cpu", "map_location": "cuda"}, "device='cpu' and map_location='cuda'"),
        ({"strict": "no"}, "strict must be True or False"),
    ],
)
def test_bad_placement_arguments(folder, kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        vqkit.VQVAE.from_pretrained(folder, **kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_refused_before_loading(folder):
    with pytest.raises(ValueError, match="CUDA is not available"):
        vqkit.VQVAE.from_pretrained(folder, device="cuda")


# ------------------------------------------------------------------------ card and saving
def test_card_has_licence_pipeline_tag_and_both_loaders(folder):
    card = ModelCard.load(folder / "README.md")
    assert card.data.license == "mit"
    assert card.data.pipeline_tag == "unconditional-image-generation"
    assert 'vqkit.from_pretrained("path/or/user-repo"' in card.text
    assert f"Saved with vqkit {vqkit.__version__}" in card.text


def test_saving_again_replaces_every_file_and_leaves_no_temporary(tiny_model, folder):
    (folder / "README.md").write_text("stale card")
    torch.manual_seed(5)
    other = vqkit.VQVAE(**TINY)
    other.save_pretrained(folder)
    assert "stale card" not in (folder / "README.md").read_text()
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    assert_same_state(other, vqkit.VQVAE.from_pretrained(folder))


def test_saving_onto_a_file_is_refused(tiny_model, tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError, match="it is a file"):
        tiny_model.save_pretrained(tmp_path / "f")


# ------------------------------------------------------------------ missing and unreachable
@pytest.mark.parametrize("source", ["./runs/nope", "runs/x/model", "/no/such/folder"])
def test_a_missing_local_path_is_not_called_a_bad_repo_id(source, hf_cache):
    with pytest.raises(ModelNotFoundError, match=rf"local folder '{source}' does not exist"):
        vqkit.from_pretrained(source)


def test_a_file_instead_of_a_folder(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelNotFoundError, match="is a file, not a folder"):
        vqkit.from_pretrained(str(tmp_path / "model.safetensors"))


def test_uncached_repo_offline_says_what_to_do(hf_cache):
    with pytest.raises(ModelNotFoundError, match=r"offline mode is on .* download it once online"):
        vqkit.from_pretrained("user/absent")


def _raising(exc):
    def fake(**kwargs):
        raise exc

    return fake


def test_network_and_not_found_errors_are_one_line(monkeypatch, hf_cache):
    try:  # the HTTP client huggingface_hub uses: httpx2 from 2.x, httpx before
        import httpx2
    except ImportError:
        import httpx as httpx2
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    response = httpx2.Response(404, request=httpx2.Request("GET", "https://huggingface.co/x"))
    cases = [
        (
            RepositoryNotFoundError("404", response=response),
            ModelNotFoundError,
            "not found \\(or it is private",
        ),
        (_offline_miss(), _hub.HubConnectionError, "cannot reach the Hugging Face Hub"),
        (
            httpx2.ConnectError("refused"),
            _hub.HubConnectionError,
            "cannot reach the Hugging Face Hub",
        ),
        (TimeoutError("slow"), _hub.HubConnectionError, "cannot reach the Hugging Face Hub"),
    ]
    for raised, expected, match in cases:
        monkeypatch.setattr(_hub, "hf_hub_download", _raising(raised))
        with pytest.raises(expected, match=match) as info:
            vqkit.from_pretrained("user/repo")
        assert isinstance(info.value, HubError)
        assert "\n" not in str(info.value)


def _offline_miss() -> LocalEntryNotFoundError:
    try:
        raise LocalEntryNotFoundError("cannot find the requested files in the local cache")
    except LocalEntryNotFoundError as exc:
        return exc
