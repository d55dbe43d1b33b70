"""SSIM against scikit-image, PSNR/MSE closed forms, codebook usage and bits per dimension."""

import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from vqkit.train.metrics import CodebookUsage, bits_per_dim, mse, psnr, ssim


def _pair(shape, data_range, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g, dtype=torch.float64) * data_range
    noise = 0.15 * data_range * torch.randn(shape, generator=g, dtype=torch.float64)
    y = (x + noise).clamp(0, data_range)
    return x, y


_SHAPES = [
    ((3, 1, 28, 28), 1.0),
    ((2, 3, 20, 17), 255.0),
    ((2, 1, 8, 8), 1.0),
    ((2, 3, 32, 32), 2.0),
]
_OPTIONS = [
    {},
    {"gaussian_weights": True},
    {"gaussian_weights": True, "use_sample_covariance": False},
    {"win_size": 5},
    {"gaussian_weights": True, "win_size": 7},
    {"win_size": 3, "K1": 0.02, "K2": 0.05},
]
# The 11-tap Gaussian window does not fit 8x8 images: those pairs are left out.
_CASES = [
    (shape, data_range, options)
    for shape, data_range in _SHAPES
    for options in _OPTIONS
    if not (min(shape[-2:]) < 11 and options.get("gaussian_weights") and "win_size" not in options)
]


@pytest.mark.parametrize(("shape", "data_range", "options"), _CASES)
def test_ssim_matches_scikit_image(shape, data_range, options):
    x, y = _pair(shape, data_range, seed=sum(shape))
    ours = ssim(x.float(), y.float(), data_range, **options)
    reference = [
        structural_similarity(
            x[i].numpy(), y[i].numpy(), data_range=data_range, channel_axis=0, **options
        )
        for i in range(shape[0])
    ]
    torch.testing.assert_close(
        ours, torch.tensor(reference, dtype=torch.float64), atol=1e-5, rtol=0
    )


def test_ssim_of_identical_images_is_one_and_3d_input():
    x, _ = _pair((2, 9, 9), 1.0, seed=0)
    torch.testing.assert_close(ssim(x, x), torch.ones(2, dtype=torch.float64))
    reference = structural_similarity(x[0].numpy(), (1 - x[0]).numpy(), data_range=1.0)
    torch.testing.assert_close(ssim(x, 1 - x)[0], torch.tensor(reference, dtype=torch.float64))


def test_ssim_errors():
    x = torch.rand(1, 1, 6, 6)
    with pytest.raises(ValueError, match="win_size 7 exceeds the image extent 6x6"):
        ssim(x, x)
    with pytest.raises(ValueError, match="odd"):
        ssim(x, x, win_size=4)
    with pytest.raises(ValueError, match="equal shapes"):
        ssim(x, torch.rand(1, 1, 6, 5), win_size=3)


def test_mse_and_psnr_closed_form():
    x = torch.zeros(2, 1, 4, 4)
    y = x.clone()
    y[0] += 0.1
    y[1, 0, 0, 0] = 1.0
    torch.testing.assert_close(mse(x, y), torch.tensor([0.01, 1 / 16]))
    torch.testing.assert_close(psnr(x, y), torch.tensor([20.0, 10 * math.log10(16)]))
    torch.testing.assert_close(psnr(x * 255, y * 255, data_range=255.0), psnr(x, y))
    assert torch.isinf(psnr(x, x)).all()


def test_codebook_usage_perplexity():
    usage = CodebookUsage(8)
    usage.update(torch.arange(8).repeat(5).view(5, 8))
    stats = usage.compute()
    assert stats["usage"] == 1.0
    assert stats["dead_codes"] == 0
    assert stats["perplexity"] == pytest.approx(8.0)
    single = CodebookUsage(8)
    single.update(torch.full((3, 2, 2), 5))
    assert single.compute() == {"usage": 1 / 8, "used_codes": 1, "dead_codes": 7, "perplexity": 1.0}
    skewed = CodebookUsage(4)
    skewed.update(torch.tensor([0, 0, 0, 1]))
    p = np.array([0.75, 0.25])
    assert skewed.compute()["perplexity"] == pytest.approx(math.exp(-(p * np.log(p)).sum()))
    with pytest.raises(ValueError, match=r"must lie in \[0, 4\)"):
        skewed.update(torch.tensor([4]))
    with pytest.raises(TypeError, match="integer"):
        skewed.update(torch.tensor([0.5]))
    with pytest.raises(ValueError, match="no indices"):
        CodebookUsage(3).compute()


def test_bits_per_dim():
    # A uniform prior over K = 16 codes on a 4x4 grid costs exactly log2(16) = 4 bits per position.
    nll = 16 * math.log(16)
    assert bits_per_dim(nll, 16) == pytest.approx(4.0)
    torch.testing.assert_close(bits_per_dim(torch.tensor([nll]), 16), torch.tensor([4.0]))
    with pytest.raises(ValueError, match="num_dims"):
        bits_per_dim(1.0, 0)
