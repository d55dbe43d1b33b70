"""Sample-quality metrics: the Fréchet distance and KID between feature sets, and a dataset
classifier to compute the features with.

- Fréchet distance between Gaussians fitted to two feature sets ("GANs Trained by a Two Time-Scale
  Update Rule Converge to a Local Nash Equilibrium", Heusel et al. 2017, arXiv:1706.08500):
  ``‖μ₁ - μ₂‖² + tr(Σ₁ + Σ₂ - 2 (Σ₁^½ Σ₂ Σ₁^½)^½)``, in float64. The square root is taken of the
  symmetric positive semi-definite ``Σ₁^½ Σ₂ Σ₁^½`` by an eigendecomposition (its trace equals
  ``tr((Σ₁Σ₂)^½)``), so no complex parts or ill-conditioned Newton iterations appear.
- KID, the unbiased squared MMD with the cubic polynomial kernel ``(x·y / d + 1)³``, averaged over
  random subsets ("Demystifying MMD GANs", Bińkowski et al. 2018, arXiv:1801.01401).
- ``DatasetClassifier``: a small CNN trained on the dataset itself (seconds on a CPU,
  deterministic for a seed), whose penultimate features give a *dataset* Fréchet distance. It is
  not FID: FID means Inception-v3 features of ImageNet-trained weights, which vqkit does not
  build (it would need torchvision's Inception-v3 and the published FID weights); figures from
  this classifier compare models on one dataset only.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vqkit._checks import check_generator, check_int, check_number, check_positive_int

__all__ = [
    "DatasetClassifier",
    "dataset_frechet_distance",
    "feature_statistics",
    "frechet_distance",
    "frechet_distance_from_statistics",
    "kid",
    "load_or_train_classifier",
    "train_dataset_classifier",
]


def _check_features(owner: str, name: str, x: object, minimum: int = 2) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{owner}: {name} must be a torch.Tensor (N, D), got {type(x).__name__}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"{owner}: {name} must be floating point, got dtype {x.dtype}")
    if x.dim() != 2:
        raise ValueError(f"{owner}: {name} must have shape (N, D), got {tuple(x.shape)}")
    if x.shape[0] < minimum or x.shape[1] < 1:
        raise ValueError(
            f"{owner}: {name} needs at least {minimum} feature vectors of size ≥ 1, got shape "
            f"{tuple(x.shape)}"
        )
    if x.device.type == "meta" or not bool(torch.isfinite(x).all()):
        raise ValueError(f"{owner}: {name} must hold finite values on a real device")
    return x.detach().double()


def feature_statistics(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (D,) and unbiased covariance (D, D) of features (N, D), in float64."""
    x = _check_features("feature_statistics", "features", features)
    mu = x.mean(dim=0)  # (D,)
    centred = x - mu  # (N, D)
    return mu, centred.T @ centred / (x.shape[0] - 1)


def _psd_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T


def frechet_distance_from_statistics(
    mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor
) -> float:
    """Fréchet distance between N(μ₁, Σ₁) and N(μ₂, Σ₂) (float64).

    Shape:
        - mu1, mu2: (D,); sigma1, sigma2: (D, D) symmetric positive semi-definite.
    """
    owner = "frechet_distance_from_statistics"
    tensors = {"mu1": mu1, "sigma1": sigma1, "mu2": mu2, "sigma2": sigma2}
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor) or not t.dtype.is_floating_point:
            raise TypeError(f"{owner}: {name} must be a floating-point tensor, got {t!r:.60}")
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{owner}: {name} must be finite")
    d = mu1.shape[-1] if mu1.dim() == 1 else -1
    expected = {"mu1": (d,), "mu2": (d,), "sigma1": (d, d), "sigma2": (d, d)}
    for name, t in tensors.items():
        if d < 1 or tuple(t.shape) != expected[name]:
            raise ValueError(
                f"{owner}: expected mu (D,) and sigma (D, D) with one D, got "
                + ", ".join(f"{k} {tuple(v.shape)}" for k, v in tensors.items())
            )
    mu1, sigma1, mu2, sigma2 = (t.double() for t in (mu1, sigma1, mu2, sigma2))
    root1 = _psd_sqrt(sigma1)
    middle = root1 @ sigma2 @ root1  # (D, D), symmetric PSD
    trace_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    diff = mu1 - mu2
    value = diff @ diff + sigma1.trace() + sigma2.trace() - 2 * trace_sqrt
    return max(float(value), 0.0)


def frechet_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (float64).

    Shape:
        - x: (N, D), y: (M, D); N, M ≥ 2.
    """
    x = _check_features("frechet_distance", "x", x)
    y = _check_features("frechet_distance", "y", y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"frechet_distance: x and y must have the same feature size, got {x.shape[1]} "
            f"and {y.shape[1]}"
        )
    return frechet_distance_from_statistics(*feature_statistics(x), *feature_statistics(y))


def kid(
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    num_subsets: int = 100,
    subset_size: int = 1000,
    generator: torch.Generator | None = None,
) -> tuple[float, float]:
    """KID: unbiased MMD² with the kernel ``(a·b / D + 1)³``, mean and std over random subsets.

    Each subset draws ``min(subset_size, N, M)`` vectors of each set without replacement.

    Shape:
        - x: (N, D), y: (M, D); N, M ≥ 2.
    """
    owner = "kid"
    x = _check_features(owner, "x", x)
    y = _check_features(owner, "y", y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"{owner}: x and y must have the same feature size")
    check_positive_int(owner, "num_subsets", num_subsets)
    check_int(owner, "subset_size", subset_size, low=2)
    check_generator(owner, generator)
    m = min(subset_size, x.shape[0], y.shape[0])
    d = x.shape[1]
    values = []
    for _ in range(num_subsets):
        a = x[torch.randperm(x.shape[0], generator=generator)[:m]]  # (m, D)
        b = y[torch.randperm(y.shape[0], generator=generator)[:m]]  # (m, D)
        k_aa = (a @ a.T / d + 1) ** 3  # (m, m)
        k_bb = (b @ b.T / d + 1) ** 3
        k_ab = (a @ b.T / d + 1) ** 3
        off = m * (m - 1)
        mmd = (
            (k_aa.sum() - k_aa.diagonal().sum()) / off
            + (k_bb.sum() - k_bb.diagonal().sum()) / off
            - 2 * k_ab.sum() / (m * m)
        )
        values.append(float(mmd))
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
    return mean, std


class DatasetClassifier(nn.Module):
    """A small CNN classifier whose penultimate features measure sample quality on one dataset.

    conv3×3(32) → ReLU → max-pool 2 → conv3×3(64) → ReLU → adaptive avg-pool 4×4 → Linear
    (feature_dim) → ReLU [features] → Linear(num_classes). Any image size ≥ 2×2.

    Args:
        in_channels: image channels C.
        num_classes: number of classes.
        feature_dim: size of the feature vector.

    Shape:
        - Input: (B, C, H, W) floats in [0, 1].
        - Output of ``forward``: logits (B, num_classes); of ``features``: (B, feature_dim).
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, feature_dim: int = 128):
        super().__init__()
        owner = type(self).__name__
        self.in_channels = check_positive_int(owner, "in_channels", in_channels)
        self.num_classes = check_int(owner, "num_classes", num_classes, low=2)
        self.feature_dim = check_positive_int(owner, "feature_dim", feature_dim)
        self.conv_1 = nn.Conv2d(in_channels, 32, 3, padding=1)
        self.conv_2 = nn.Conv2d(32, 64, 3, padding=1)
        self.fc = nn.Linear(64 * 16, feature_dim)
        self.out = nn.Linear(feature_dim, num_classes)

    @property
    def config(self) -> dict[str, int]:
        """The constructor arguments."""
        return {
            "in_channels": self.in_channels,
            "num_classes": self.num_classes,
            "feature_dim": self.feature_dim,
        }

    def _check(self, x: object) -> torch.Tensor:
        owner = type(self).__name__
        if not isinstance(x, torch.Tensor) or not x.dtype.is_floating_point:
            raise TypeError(f"{owner}: images must be a floating-point tensor, got {x!r:.60}")
        if x.dim() != 4 or x.shape[1] != self.in_channels or min(x.shape[2:]) < 2:
            raise ValueError(
                f"{owner}: images must have shape (B, {self.in_channels}, H, W) with H, W ≥ 2, "
                f"got {tuple(x.shape)}"
            )
        if x.device.type == "meta" or not bool(torch.isfinite(x).all()):
            raise ValueError(f"{owner}: images must hold finite values on a real device")
        return x.to(self.fc.weight.dtype)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) → (B, feature_dim)."""
        x = self._check(x)
        h = F.max_pool2d(F.relu(self.conv_1(x)), 2)  # (B, 32, H/2, W/2)
        h = F.adaptive_avg_pool2d(F.relu(self.conv_2(h)), 4)  # (B, 64, 4, 4)
        return F.relu(self.fc(h.flatten(1)))  # (B, feature_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.features(x))  # (B, num_classes)

    def save(self, path: str | os.PathLike) -> None:
        """Write the weights and config to one safetensors file (atomically)."""
        from safetensors.torch import save_file

        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(tmp), metadata={"config": json.dumps(self.config)})
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> DatasetClassifier:
        """Load a classifier written by ``save``, in eval mode (strict)."""
        from safetensors import safe_open
        from safetensors.torch import load_file

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"DatasetClassifier.load: no file {str(path)!r}")
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        if "config" not in metadata:
            raise ValueError(f"{str(path)!r} is not a DatasetClassifier file (no config metadata)")
        model = cls(**json.loads(metadata["config"]))
        model.load_state_dict(load_file(str(path)), strict=True)
        return model.eval()


def train_dataset_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    num_classes: int | None = None,
    feature_dim: int = 128,
    epochs: int = 2,
    batch_size: int = 128,
    lr: float = 2e-3,
    seed: int = 0,
) -> DatasetClassifier:
    """Train a ``DatasetClassifier`` with Adam; deterministic for a seed on one device.

    The global random state is left untouched (the run's own seed is used in a forked state).

    Args:
        images: (N, C, H, W) floats in [0, 1].
        labels: (N,) integer labels in [0, num_classes).
        num_classes: default: ``labels.max() + 1``.
        feature_dim: size of the feature vector.
        epochs: passes over the data.
        batch_size: minibatch size.
        lr: Adam learning rate.
        seed: seed of the initialisation and of the minibatch order.

    Returns:
        The classifier in eval mode.
    """
    owner = "train_dataset_classifier"
    if not isinstance(images, torch.Tensor) or not images.dtype.is_floating_point:
        raise TypeError(f"{owner}: images must be a floating-point tensor (N, C, H, W)")
    if images.dim() != 4 or images.shape[0] < 2:
        raise ValueError(f"{owner}: images must be (N, C, H, W) with N ≥ 2, got {images.shape}")
    if not isinstance(labels, torch.Tensor) or labels.dtype.is_floating_point:
        raise TypeError(f"{owner}: labels must be an integer tensor (N,)")
    if tuple(labels.shape) != (images.shape[0],):
        raise ValueError(
            f"{owner}: labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}"
        )
    if not bool(torch.isfinite(images).all()):
        raise ValueError(f"{owner}: images must be finite")
    if num_classes is None:
        num_classes = int(labels.max()) + 1
    check_int(owner, "num_classes", num_classes, low=2)
    if int(labels.min()) < 0 or int(labels.max()) >= num_classes:
        raise ValueError(f"{owner}: labels must lie in [0, {num_classes})")
    check_positive_int(owner, "epochs", epochs)
    check_positive_int(owner, "batch_size", batch_size)
    check_number(owner, "lr", lr, low=0.0, low_open=True)
    check_int(owner, "seed", seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DatasetClassifier(images.shape[1], num_classes, feature_dim)
    gen = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    labels = labels.long()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(images.shape[0], generator=gen)
        for start in range(0, images.shape[0], batch_size):
            batch = order[start : start + batch_size]
            loss = F.cross_entropy(model(images[batch]), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return model.eval()


def load_or_train_classifier(
    path: str | os.PathLike, images: torch.Tensor, labels: torch.Tensor, **options
) -> DatasetClassifier:
    """The classifier cached at ``path``; trained with ``options`` and saved there if absent."""
    path = Path(path)
    if path.is_file():
        return DatasetClassifier.load(path)
    model = train_dataset_classifier(images, labels, **options)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return model


@torch.no_grad()
def _features(classifier: DatasetClassifier, images: torch.Tensor, batch_size: int):
    chunks = [
        classifier.features(images[i : i + batch_size]) for i in range(0, len(images), batch_size)
    ]
    return torch.cat(chunks)


def dataset_frechet_distance(
    classifier: DatasetClassifier,
    real: torch.Tensor,
    fake: torch.Tensor,
    *,
    batch_size: int = 256,
) -> float:
    """The dataset Fréchet distance: Fréchet distance in ``classifier`` features (not FID).

    Shape:
        - real: (N, C, H, W), fake: (M, C, H, W) floats in [0, 1]; N, M ≥ 2.
    """
    if not isinstance(classifier, DatasetClassifier):
        raise TypeError(
            f"dataset_frechet_distance: classifier must be a DatasetClassifier, got "
            f"{type(classifier).__name__}"
        )
    check_positive_int("dataset_frechet_distance", "batch_size", batch_size)
    for name, images in (("real", real), ("fake", fake)):
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[0] < 2:
            raise ValueError(
                f"dataset_frechet_distance: {name} must be images (N, C, H, W) with N ≥ 2, got "
                f"{getattr(images, 'shape', type(images).__name__)}"
            )
    was_training = classifier.training
    classifier.eval()
    try:
        a = _features(classifier, real, batch_size)
        b = _features(classifier, fake, batch_size)
    finally:
        classifier.train(was_training)
    return frechet_distance(a, b)
