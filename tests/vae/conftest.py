"""Fixtures for the VAE tests."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """Run each test on one intra-op thread: these tiny models train several times faster on one
    thread than on two busy ones, and the thread count is restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
