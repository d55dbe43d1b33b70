"""Fixtures of the viewer tests: a tiny random VQ-VAE with a prior and twenty images."""

from __future__ import annotations

import pytest
import torch
from viewer_helpers import tiny_vqvae

import vqkit
from vqkit.data import ArrayDataset


@pytest.fixture
def model() -> vqkit.VQVAE:
    return tiny_vqvae()


@pytest.fixture
def images() -> ArrayDataset:
    g = torch.Generator().manual_seed(3)
    return ArrayDataset(torch.rand(20, 1, 8, 8, generator=g), name="rand20")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A run folder written by ``train_run`` (report.html included)."""
    from viewer_helpers import make_run

    folder = tmp_path_factory.mktemp("viewer-run") / "run"
    make_run(folder)
    return folder
