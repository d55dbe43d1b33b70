"""Shared fixtures for the model and Hub tests: a tiny VQ-VAE config and an offline Hub cache."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
import torch
from huggingface_hub import constants
from models_helpers import TINY

import vqkit
import vqkit.autoregressive
import vqkit.quantize


@pytest.fixture
def tiny_config() -> dict:
    """Constructor arguments of a tiny VQVAE for 1×8×4 images (4×2 latents, K=8, D=4)."""
    return copy.deepcopy(TINY)


@pytest.fixture
def tiny_model(tiny_config) -> vqkit.VQVAE:
    torch.manual_seed(0)
    return vqkit.VQVAE(**tiny_config)


@pytest.fixture
def images() -> torch.Tensor:
    return torch.randn(6, 1, 8, 4, generator=torch.Generator().manual_seed(1))


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """An empty, offline Hugging Face cache; returns ``put(repo_id, folder, revision, sha)``.

    The Hub constants are read at import time, so they are patched, not the environment.
    """
    cache = tmp_path / "hf-cache"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)

    def put(repo_id: str, folder: Path, revision: str = "main", sha: str = "0" * 40) -> Path:
        repo = cache / f"models--{repo_id.replace('/', '--')}"
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / revision).write_text(sha)
        snapshot = repo / "snapshots" / sha
        shutil.copytree(folder, snapshot, dirs_exist_ok=True)
        return snapshot

    return put
