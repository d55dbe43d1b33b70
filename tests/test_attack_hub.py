"""Independent re-attack of issue 12, Hub area: a tampered ``from_pretrained`` folder fails before
any allocation, with one error naming the file (and the key where there is one)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import vqkit

FIXTURE = Path(__file__).parent / "fixtures" / "release_0_1_0" / "vqvae_digits"


def _config(edit):
    def mutate(folder: Path) -> None:
        cfg = json.loads((folder / "config.json").read_text())
        edit(cfg)
        (folder / "config.json").write_text(json.dumps(cfg))

    return mutate


def _weights(data):
    return lambda folder: (folder / "model.safetensors").write_bytes(data(folder))


CASES = {
    "huge_codebook": (_config(lambda c: c["quantizer"].update(codebook_size=10**12)), "bytes"),
    "device_key": (_config(lambda c: c.update(device="cpu")), "'device'"),
    "nan_float": (_config(lambda c: c.update(data_variance=float("nan"))), "NaN"),
    "bool_for_int": (_config(lambda c: c["quantizer"].update(dim=True)), "dim"),
    "empty_config": (lambda f: (f / "config.json").write_text(""), "empty"),
    "array_config": (lambda f: (f / "config.json").write_text("[]"), "JSON array"),
    "zero_weights": (_weights(lambda f: b""), "empty"),
    "truncated": (_weights(lambda f: (f / "model.safetensors").read_bytes()[:100]), "truncated"),
    "huge_header": (_weights(lambda f: (2**62).to_bytes(8, "little") + b"{}"), "header length"),
    "zip_not_st": (_weights(lambda f: b"PK\x03\x04garbage" * 10), "not a safetensors"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_tampered_folder_is_refused_naming_the_file(name, tmp_path):
    mutate, needle = CASES[name]
    folder = tmp_path / name
    shutil.copytree(FIXTURE, folder)
    mutate(folder)
    with pytest.raises(Exception) as info:
        vqkit.VQVAE.from_pretrained(str(folder))
    message = str(info.value)
    assert needle in message
    assert name in message  # the folder (and so the file) is named
