"""Toy 2-D Gaussian datasets for VAEs on points: correlated Gaussian, Gaussian ring and grid.

A 2-D VAE with a learned diagonal decoder covariance (Kingma & Welling, "Auto-Encoding
Variational Bayes", arXiv:1312.6114) must reproduce the correlation of a full-covariance
Gaussian through its latent, which makes these sets a quick check of the whole pipeline.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, cast

import torch

from vqkit._checks import check_int, check_number, check_positive_int
from vqkit.data.dataset import ArrayDataset, LoadReport

__all__ = ["TOY_DATASETS", "correlated_gaussian", "gaussian_grid", "gaussian_ring", "load_toy"]


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _check_n(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ValueError(f"n must be a positive int, got {n!r}")


def _check_common(owner: str, seed: Any, **numbers: Any) -> None:
    """Seeds are ints; every other named value a finite number (positive where it must be)."""
    check_int(owner, "seed", seed)
    for name, value in numbers.items():
        positive = name in ("radius", "std", "spacing")
        check_number(owner, name, value, low=0 if positive else None, low_open=positive)


def _pair(owner: str, name: str, value: Any, *, positive: bool) -> tuple[float, float]:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or len(value) != 2:
        raise ValueError(f"{owner}: {name} must be a pair of numbers, got {value!r}")
    return cast(  # len(value) == 2, checked above
        tuple[float, float],
        tuple(
            check_number(owner, name, v, low=0 if positive else None, low_open=positive)
            for v in value
        ),
    )


def correlated_gaussian(
    n: int = 10_000,
    *,
    mean: tuple[float, float] = (0.0, 0.0),
    std: tuple[float, float] = (1.0, 0.5),
    correlation: float = 0.8,
    seed: int = 0,
) -> ArrayDataset:
    """Samples of a 2-D Gaussian with full covariance
    ``[[s0², ρ s0 s1], [ρ s0 s1, s1²]]``.

    Args:
        n: number of points.
        mean: the mean ``(m0, m1)``.
        std: the marginal standard deviations ``(s0, s1)``.
        correlation: ρ in ``(-1, 1)``.
        seed: seed of the draw.

    Shape:
        - data: ``(n, 2)``
    """
    _check_n(n)
    check_int("correlated_gaussian", "seed", seed)
    mean = _pair("correlated_gaussian", "mean", mean, positive=False)
    s0, s1 = _pair("correlated_gaussian", "std", std, positive=True)
    check_number(
        "correlated_gaussian",
        "correlation",
        correlation,
        low=-1,
        high=1,
        low_open=True,
        high_open=True,
    )
    cov = torch.tensor(
        [[s0 * s0, correlation * s0 * s1], [correlation * s0 * s1, s1 * s1]], dtype=torch.float64
    )
    chol = torch.linalg.cholesky(cov)  # (2, 2), cov = L Lᵀ
    eps = torch.randn(n, 2, generator=_generator(seed), dtype=torch.float64)
    points = eps @ chol.T + torch.tensor(mean, dtype=torch.float64)  # (n, 2)
    name = "correlated_gaussian"
    return ArrayDataset(points.float(), name=name, report=LoadReport(name, kept=n))


def gaussian_ring(
    n: int = 10_000, *, num_modes: int = 8, radius: float = 2.0, std: float = 0.1, seed: int = 0
) -> ArrayDataset:
    """Equal mixture of ``num_modes`` isotropic Gaussians on a circle; labels are the modes."""
    _check_n(n)
    check_positive_int("gaussian_ring", "num_modes", num_modes)
    _check_common("gaussian_ring", seed, radius=radius, std=std)
    g = _generator(seed)
    modes = torch.randint(num_modes, (n,), generator=g)
    angle = 2 * math.pi * modes.double() / num_modes
    centres = radius * torch.stack([angle.cos(), angle.sin()], dim=1)  # (n, 2)
    points = centres + std * torch.randn(n, 2, generator=g, dtype=torch.float64)
    return ArrayDataset(
        points.float(), modes, name="gaussian_ring", report=LoadReport("gaussian_ring", n)
    )


def gaussian_grid(
    n: int = 10_000, *, side: int = 5, spacing: float = 1.0, std: float = 0.05, seed: int = 0
) -> ArrayDataset:
    """Equal mixture of ``side × side`` isotropic Gaussians on a centred square grid."""
    _check_n(n)
    check_positive_int("gaussian_grid", "side", side)
    _check_common("gaussian_grid", seed, spacing=spacing, std=std)
    g = _generator(seed)
    modes = torch.randint(side * side, (n,), generator=g)
    offset = (side - 1) / 2
    centres = torch.stack([modes // side, modes % side], dim=1).double()  # (n, 2)
    centres = (centres - offset) * spacing
    points = centres + std * torch.randn(n, 2, generator=g, dtype=torch.float64)
    return ArrayDataset(
        points.float(), modes, name="gaussian_grid", report=LoadReport("gaussian_grid", n)
    )


TOY_DATASETS: dict[str, Callable[..., ArrayDataset]] = {
    "correlated_gaussian": correlated_gaussian,
    "gaussian_ring": gaussian_ring,
    "gaussian_grid": gaussian_grid,
}


def load_toy(name: str, n: int = 10_000, *, seed: int = 0, **kwargs) -> ArrayDataset:
    """A toy dataset by name: one of ``TOY_DATASETS``."""
    if not isinstance(name, str) or name not in TOY_DATASETS:
        raise ValueError(f"unknown toy dataset {name!r}; expected one of {sorted(TOY_DATASETS)}")
    return TOY_DATASETS[name](n, seed=seed, **kwargs)
