"""Fréchet distance and KID against closed forms and brute force; the dataset classifier's
determinism, caching and sense; hostile input."""

from __future__ import annotations

import itertools

import pytest
import torch
from scipy import linalg

from vqkit.data import load_digits
from vqkit.train.frechet import (
    DatasetClassifier,
    dataset_frechet_distance,
    feature_statistics,
    frechet_distance,
    frechet_distance_from_statistics,
    kid,
    load_or_train_classifier,
    train_dataset_classifier,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one thread avoids oversubscription on a shared CPU (it changes no value)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def random_spd(d: int, seed: int) -> torch.Tensor:
    a = torch.randn(d, d, generator=gen(seed), dtype=torch.float64)
    return a @ a.T + 0.1 * torch.eye(d, dtype=torch.float64)


def test_statistics_closed_form_for_commuting_covariances():
    mu1 = torch.tensor([0.0, 1.0, -2.0], dtype=torch.float64)
    mu2 = torch.tensor([1.0, 1.0, 0.0], dtype=torch.float64)
    a = torch.tensor([1.0, 4.0, 0.25], dtype=torch.float64)
    b = torch.tensor([9.0, 1.0, 0.25], dtype=torch.float64)
    value = frechet_distance_from_statistics(mu1, torch.diag(a), mu2, torch.diag(b))
    expected = float(((mu1 - mu2) ** 2).sum() + ((a.sqrt() - b.sqrt()) ** 2).sum())
    assert value == pytest.approx(expected, rel=1e-12)


def test_statistics_match_scipy_sqrtm_for_non_commuting_covariances():
    s1, s2 = random_spd(6, 1), random_spd(6, 2)
    mu1 = torch.randn(6, generator=gen(3), dtype=torch.float64)
    mu2 = torch.randn(6, generator=gen(4), dtype=torch.float64)
    root = linalg.sqrtm(s1.numpy() @ s2.numpy()).real
    expected = float(((mu1 - mu2) ** 2).sum() + s1.trace() + s2.trace() - 2 * root.trace())
    assert frechet_distance_from_statistics(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)
    # symmetric, zero against itself, and fine with a singular (rank-1) covariance
    assert frechet_distance_from_statistics(mu2, s2, mu1, s1) == pytest.approx(expected, rel=1e-9)
    assert frechet_distance_from_statistics(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-9)
    v = torch.randn(6, 1, generator=gen(5), dtype=torch.float64)
    assert frechet_distance_from_statistics(mu1, v @ v.T, mu1, v @ v.T) == pytest.approx(
        0, abs=1e-9
    )


def test_samples_of_two_gaussians_against_the_analytic_value():
    d, n = 4, 40_000
    s1, s2 = random_spd(d, 6) / 4, random_spd(d, 7) / 4
    mu1 = torch.zeros(d, dtype=torch.float64)
    mu2 = torch.full((d,), 0.5, dtype=torch.float64)
    x = mu1 + torch.randn(n, d, generator=gen(8), dtype=torch.float64) @ torch.linalg.cholesky(s1).T
    y = mu2 + torch.randn(n, d, generator=gen(9), dtype=torch.float64) @ torch.linalg.cholesky(s2).T
    analytic = frechet_distance_from_statistics(mu1, s1, mu2, s2)
    assert frechet_distance(x, y) == pytest.approx(analytic, rel=0.03)
    assert frechet_distance(x.float(), y.float()) == pytest.approx(analytic, rel=0.03)
    _, sigma = feature_statistics(x)
    assert torch.allclose(sigma, s1, atol=0.05)


def _kid_brute_force(a: torch.Tensor, b: torch.Tensor) -> float:
    m, d = a.shape
    k = lambda u, v: (float(u @ v) / d + 1) ** 3  # noqa: E731
    xx = sum(k(a[i], a[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    yy = sum(k(b[i], b[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    xy = sum(k(a[i], b[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_equals_the_brute_force_unbiased_mmd():
    a = torch.randn(12, 3, generator=gen(10), dtype=torch.float64)
    b = torch.randn(12, 3, generator=gen(11), dtype=torch.float64) + 0.3
    mean, std = kid(a, b, num_subsets=3, subset_size=12, generator=gen(0))  # every subset = all
    assert mean == pytest.approx(_kid_brute_force(a, b), rel=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_kid_is_unbiased_near_zero_for_one_distribution():
    x = torch.randn(2000, 8, generator=gen(12))
    y = torch.randn(2000, 8, generator=gen(13))
    mean, std = kid(x, y, num_subsets=20, subset_size=500, generator=gen(1))
    assert abs(mean) < 3 * std + 1e-3
    far, _ = kid(x, y + 0.5, num_subsets=20, subset_size=500, generator=gen(1))
    assert far > 10 * abs(mean) + 0.01


BAD_FEATURES = {
    "list": ([[0.0, 1.0]], TypeError),
    "integer": (torch.ones(5, 3, dtype=torch.long), TypeError),
    "one vector": (torch.ones(1, 3), ValueError),
    "1-D": (torch.ones(5), ValueError),
    "nan": (torch.tensor([[0.0, float("nan")], [1.0, 2.0]]), ValueError),
    "inf": (torch.tensor([[0.0, float("inf")], [1.0, 2.0]]), ValueError),
    "meta": (torch.ones(4, 3, device="meta"), ValueError),
}


@pytest.mark.parametrize(("bad", "error"), BAD_FEATURES.values(), ids=BAD_FEATURES.keys())
def test_bad_features(bad, error):
    good = torch.randn(5, 3, generator=gen())
    with pytest.raises(error):
        frechet_distance(good, bad)
    with pytest.raises(error):
        kid(bad, good)


def test_mismatched_feature_sizes_and_bad_options():
    x, y = torch.randn(5, 3), torch.randn(5, 4)
    with pytest.raises(ValueError, match="feature size"):
        frechet_distance(x, y)
    with pytest.raises(ValueError, match="feature size"):
        kid(x, y)
    with pytest.raises(ValueError, match="num_subsets"):
        kid(x, x, num_subsets=0)
    with pytest.raises(ValueError, match="subset_size"):
        kid(x, x, subset_size=1)
    with pytest.raises(TypeError, match="generator"):
        kid(x, x, generator=1)
    with pytest.raises(ValueError, match=r"\(D, D\)"):
        frechet_distance_from_statistics(torch.zeros(3), torch.eye(2), torch.zeros(3), torch.eye(3))


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    return data.data, data.labels


@pytest.fixture(scope="module")
def classifier(digits):
    images, labels = digits
    return train_dataset_classifier(images, labels, epochs=3, seed=0)


def test_classifier_learns_the_dataset(classifier, digits):
    images, labels = digits
    with torch.no_grad():
        accuracy = (classifier(images).argmax(1) == labels).double().mean()
    assert accuracy > 0.85
    assert classifier.features(images[:7]).shape == (7, 128)


def test_classifier_training_is_deterministic_and_leaves_the_global_rng(digits):
    images, labels = digits[0][:300], digits[1][:300]
    state = torch.random.get_rng_state()
    a = train_dataset_classifier(images, labels, epochs=1, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    b = train_dataset_classifier(images, labels, epochs=1, seed=3)
    c = train_dataset_classifier(images, labels, epochs=1, seed=4)
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
    assert not torch.equal(a.fc.weight, c.fc.weight)


def test_save_load_and_cache(classifier, digits, tmp_path):
    images, labels = digits
    path = tmp_path / "cache" / "classifier.safetensors"
    first = load_or_train_classifier(path, images[:200], labels[:200], epochs=1)
    assert path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["classifier.safetensors"]  # no temp left
    again = load_or_train_classifier(path, images[:10], labels[:10], epochs=1)  # loads, no train
    assert torch.equal(first.features(images[:20]), again.features(images[:20]))
    classifier.save(tmp_path / "c.safetensors")
    loaded = DatasetClassifier.load(tmp_path / "c.safetensors")
    assert loaded.config == classifier.config
    assert torch.equal(loaded.features(images[:20]), classifier.features(images[:20]))
    with pytest.raises(FileNotFoundError, match="no file"):
        DatasetClassifier.load(tmp_path / "missing.safetensors")


def test_dataset_frechet_distance_ranks_real_above_noise(classifier, digits):
    images, _ = digits
    perm = torch.randperm(len(images), generator=gen(14))
    half_a, half_b = images[perm[:800]], images[perm[800:1600]]
    same = dataset_frechet_distance(classifier, half_a, half_b)
    noise = torch.rand(800, 1, 8, 8, generator=gen(15))
    blurred = (half_b + torch.roll(half_b, 1, dims=-1)) / 2
    assert same < dataset_frechet_distance(classifier, half_a, blurred)
    assert dataset_frechet_distance(classifier, half_a, blurred) < dataset_frechet_distance(
        classifier, half_a, noise
    )


BAD_IMAGES = {
    "list": [[0.0]],
    "integer": torch.zeros(4, 1, 8, 8, dtype=torch.long),
    "3-D": torch.zeros(4, 8, 8),
    "wrong channels": torch.zeros(4, 3, 8, 8),
    "tiny": torch.zeros(4, 1, 1, 1),
    "nan": torch.full((4, 1, 8, 8), float("nan")),
    "one image": torch.zeros(1, 1, 8, 8),
    "empty": torch.zeros(0, 1, 8, 8),
}


@pytest.mark.parametrize("bad", BAD_IMAGES.values(), ids=BAD_IMAGES.keys())
def test_bad_images(classifier, digits, bad):
    with pytest.raises((TypeError, ValueError)):
        dataset_frechet_distance(classifier, digits[0][:10], bad)


def test_bad_training_input(digits):
    images, labels = digits[0][:20], digits[1][:20]
    with pytest.raises(TypeError):
        train_dataset_classifier(images.long(), labels)
    with pytest.raises(TypeError):
        train_dataset_classifier(images, labels.float())
    with pytest.raises(ValueError, match="shape"):
        train_dataset_classifier(images, labels[:5])
    with pytest.raises(ValueError, match="labels"):
        train_dataset_classifier(images, labels, num_classes=3)
    with pytest.raises(ValueError, match="epochs"):
        train_dataset_classifier(images, labels, epochs=0)
    with pytest.raises(ValueError, match="lr"):
        train_dataset_classifier(images, labels, lr=-1.0)
    with pytest.raises(ValueError):
        DatasetClassifier(num_classes=1)
    with pytest.raises(TypeError):
        dataset_frechet_distance(torch.nn.Linear(2, 2), images, images)
