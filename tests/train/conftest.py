"""Fixtures of the training tests: a tiny model and a small dataset."""

import pytest
import torch
from train_helpers import TinyAE

from vqkit.data import ArrayDataset


@pytest.fixture
def tiny_data():
    g = torch.Generator().manual_seed(0)
    train = ArrayDataset(torch.rand(96, 1, 8, 8, generator=g), name="rand")
    val = ArrayDataset(torch.rand(32, 1, 8, 8, generator=g), name="rand-val")
    return train, val


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    return TinyAE()
