"""Toy 2-D Gaussians (moments against their closed forms) and seeded splits and subsets."""

import math

import pytest
import torch

from vqkit.data import (
    ArrayDataset,
    correlated_gaussian,
    gaussian_grid,
    gaussian_ring,
    load_dataset,
    subset,
    train_val_split,
)


def test_correlated_gaussian_moments():
    ds = correlated_gaussian(40_000, mean=(1.0, -2.0), std=(2.0, 0.5), correlation=-0.7, seed=3)
    x = ds.data.double()
    torch.testing.assert_close(
        x.mean(0), torch.tensor([1.0, -2.0], dtype=torch.float64), atol=0.03, rtol=0
    )
    cov = torch.cov(x.T)
    expected = torch.tensor([[4.0, -0.7], [-0.7, 0.25]], dtype=torch.float64)
    torch.testing.assert_close(cov, expected, atol=0.05, rtol=0)
    assert torch.equal(
        ds.data,
        correlated_gaussian(
            40_000, mean=(1.0, -2.0), std=(2.0, 0.5), correlation=-0.7, seed=3
        ).data,
    )
    assert not torch.equal(ds.data, correlated_gaussian(40_000, seed=4).data)
    with pytest.raises(ValueError, match="correlation must be in"):
        correlated_gaussian(10, correlation=1.0)


def test_mixtures():
    ring = gaussian_ring(4000, num_modes=4, radius=3.0, std=0.01, seed=0)
    radius = ring.data.norm(dim=1)
    assert torch.allclose(radius, torch.full_like(radius, 3.0), atol=0.05)
    assert set(ring.labels.tolist()) == {0, 1, 2, 3}
    angle = torch.atan2(ring.data[:, 1], ring.data[:, 0])
    expected = ring.labels.double() * (math.pi / 2)
    assert torch.allclose(
        torch.remainder(angle.double() - expected + 0.1, 2 * math.pi),
        torch.tensor(0.1, dtype=torch.float64),
        atol=0.05,
    )
    grid = gaussian_grid(2000, side=3, spacing=2.0, std=0.01, seed=0)
    assert torch.allclose(grid.data.round(), grid.data, atol=0.05)
    assert set(grid.data.round().unique().tolist()) == {-2.0, 0.0, 2.0}
    assert load_dataset("toy:gaussian_ring", n=10).data.shape == (10, 2)
    with pytest.raises(ValueError, match="unknown toy dataset"):
        load_dataset("toy:moons")


def test_train_val_split_is_seeded_disjoint_and_complete():
    ds = ArrayDataset(torch.arange(100).float().view(100, 1), torch.arange(100))
    train, val = train_val_split(ds, 0.2, seed=1)
    assert len(train) == 80
    assert len(val) == 20
    ids = torch.cat([train.labels, val.labels]).sort().values
    assert torch.equal(ids, torch.arange(100))
    assert torch.equal(train.data[:, 0].long(), train.labels)  # labels follow their samples
    again, _ = train_val_split(ds, 0.2, seed=1)
    other, _ = train_val_split(ds, 0.2, seed=2)
    assert torch.equal(again.labels, train.labels)
    assert not torch.equal(other.labels, train.labels)
    assert train_val_split(ds, 0.0)[1] is None
    with pytest.raises(ValueError, match="val_fraction must be"):
        train_val_split(ds, 1.5)
    with pytest.raises(ValueError, match="empty train or validation"):
        train_val_split(ArrayDataset(torch.zeros(3, 1)), 0.01)


def test_subset():
    ds = ArrayDataset(torch.arange(50).float().view(50, 1))
    part = subset(ds, 0.1, seed=0)
    assert len(part) == 5
    assert torch.equal(part.data, part.data.sort(0).values)
    assert subset(ds, 1.0) is ds
    assert len(subset(ds, 0.001)) == 1
    with pytest.raises(ValueError, match="fraction must be"):
        subset(ds, 0)


def test_array_dataset_validation():
    with pytest.raises(ValueError, match="N > 0"):
        ArrayDataset(torch.zeros(0, 3))
    with pytest.raises(ValueError, match="labels must be"):
        ArrayDataset(torch.zeros(4, 3), torch.zeros(3))
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        ArrayDataset([1, 2, 3])
