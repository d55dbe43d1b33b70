"""Models saved by the 0.1.0 release (committed under tests/fixtures/release_0_1_0) still load
and give the outputs they gave when they were saved."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from vqkit import VQVAE, PixelCNN

ROOT = Path(__file__).parent / "fixtures" / "release_0_1_0"
EXPECTED = json.loads((ROOT / "expected.json").read_text())


def test_vqvae_with_prior_saved_by_0_1_0_loads_and_matches() -> None:
    model = VQVAE.from_pretrained(str(ROOT / "vqvae_digits")).eval()
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(EXPECTED["input_seed"]))
    with torch.no_grad():
        codes = model.encode_indices(x)
        rec = model(x).reconstruction
        log_prob = model.prior.log_prob(codes)
    assert codes.tolist() == EXPECTED["indices"]
    assert abs(rec.double().sum().item() - EXPECTED["reconstruction_sum"]) < 1e-4
    torch.testing.assert_close(log_prob, torch.tensor(EXPECTED["prior_log_prob"]))


def test_prior_saved_by_0_1_0_loads_and_matches() -> None:
    prior = PixelCNN.from_pretrained(str(ROOT / "pixelcnn")).eval()
    codes = torch.tensor(EXPECTED["pixelcnn_codes"])
    with torch.no_grad():
        log_prob = prior.log_prob(codes)
    torch.testing.assert_close(log_prob, torch.tensor(EXPECTED["pixelcnn_log_prob"]))
