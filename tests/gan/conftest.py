"""VQ-GAN tests run single-threaded: on a shared 2-core machine, intra-op threads of several
test processes fight over the cores and make small convolutions many times slower."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
