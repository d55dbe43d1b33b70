"""In-memory datasets, seeded train/validation splits and subsets.

Every loader in ``vqkit.data`` returns an ``ArrayDataset``: one float tensor holding all
samples (images as ``(N, C, H, W)`` in ``[0, 1]``, points as ``(N, D)``), optional integer labels,
and a report of what was read and what was left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import Dataset

__all__ = ["ArrayDataset", "LoadReport", "subset", "train_val_split"]


@dataclass
class LoadReport:
    """What a loader read and what it left out.

    Attributes:
        source: where the data came from (a path or a name).
        kept: how many samples were kept.
        skipped: ``{file: reason}`` for every file left out (inconsistent size, unreadable,
            empty, dangling or looping symlink...).
        ignored: how many files were not considered at all (their suffix is not an image's).
    """

    source: str
    kept: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    ignored: int = 0

    def summary(self) -> str:
        """One line for a log, plus one line per skipped file (the first ten)."""
        lines = [f"{self.source}: kept {self.kept}, skipped {len(self.skipped)}"]
        if self.ignored:
            lines[0] += f", ignored {self.ignored} non-image file(s)"
        for path, reason in list(self.skipped.items())[:10]:
            lines.append(f"  skipped {path}: {reason}")
        if len(self.skipped) > 10:
            lines.append(f"  ... and {len(self.skipped) - 10} more")
        return "\n".join(lines)


class ArrayDataset(Dataset):
    """A dataset held in one tensor; ``dataset[i]`` is ``data[i]``.

    Args:
        data: all samples, ``(N, ...)``; images are ``(N, C, H, W)`` floats in ``[0, 1]``.
        labels: optional ``(N,)`` integer labels (class folders, MNIST labels...).
        name: a short name for logs and run folders.
        report: what the loader read and left out.
    """

    def __init__(
        self,
        data: torch.Tensor,
        labels: torch.Tensor | None = None,
        *,
        name: str = "array",
        report: LoadReport | None = None,
    ) -> None:
        if not isinstance(data, torch.Tensor):
            raise TypeError(f"data must be a torch.Tensor, got {type(data).__name__}")
        if data.ndim < 2 or data.shape[0] == 0:
            raise ValueError(f"data must be (N, ...) with N > 0, got shape {tuple(data.shape)}")
        if labels is not None and (labels.ndim != 1 or labels.shape[0] != data.shape[0]):
            raise ValueError(
                f"labels must be ({data.shape[0]},) to match data, got {tuple(labels.shape)}"
            )
        self.data = data
        self.labels = labels
        self.name = name
        self.report = report if report is not None else LoadReport(name, kept=len(data))

    def __len__(self) -> int:
        return self.data.shape[0]

    def __getitem__(self, index: Any) -> torch.Tensor:
        return self.data[index]

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one sample, e.g. ``(1, 8, 8)`` for the digits."""
        return tuple(self.data.shape[1:])

    def select(self, indices: torch.Tensor, name: str | None = None) -> ArrayDataset:
        """The samples at ``indices`` (a 1-D integer tensor), as a new dataset."""
        labels = self.labels[indices] if self.labels is not None else None
        return ArrayDataset(self.data[indices], labels, name=name or self.name, report=self.report)

    def __repr__(self) -> str:
        return f"ArrayDataset(name={self.name!r}, n={len(self)}, sample_shape={self.sample_shape})"


def _check_fraction(name: str, value: float, *, allow_zero: bool) -> None:
    low_ok = value >= 0 if allow_zero else value > 0
    if not (isinstance(value, (int, float)) and low_ok and value <= 1):
        interval = "[0, 1)" if allow_zero else "(0, 1]"
        raise ValueError(f"{name} must be a number in {interval}, got {value!r}")


def train_val_split(
    dataset: ArrayDataset, val_fraction: float = 0.1, *, seed: int = 0
) -> tuple[ArrayDataset, ArrayDataset | None]:
    """Split a dataset into train and validation parts with a seeded permutation.

    The same ``(len(dataset), val_fraction, seed)`` always gives the same split.

    Args:
        dataset: the data to split.
        val_fraction: share of samples for validation, in ``[0, 1)``; 0 gives no validation set.
        seed: seed of the permutation.

    Returns:
        ``(train, val)``; ``val`` is None when ``val_fraction`` is 0.
    """
    _check_fraction("val_fraction", val_fraction, allow_zero=True)
    if val_fraction >= 1:
        raise ValueError(f"val_fraction must be below 1, got {val_fraction}")
    n = len(dataset)
    n_val = round(n * val_fraction)
    if val_fraction > 0 and (n_val == 0 or n_val == n):
        raise ValueError(
            f"val_fraction={val_fraction} of {n} samples leaves an empty train or validation set"
        )
    if n_val == 0:
        return dataset, None
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    train = dataset.select(perm[n_val:].sort().values, name=dataset.name)
    val = dataset.select(perm[:n_val].sort().values, name=f"{dataset.name}-val")
    return train, val


def subset(dataset: ArrayDataset, fraction: float, *, seed: int = 0) -> ArrayDataset:
    """A seeded random ``fraction`` of the dataset (at least one sample), order preserved.

    Args:
        dataset: the data.
        fraction: share to keep, in ``(0, 1]``; 1 returns the dataset itself.
        seed: seed of the draw.
    """
    _check_fraction("fraction", fraction, allow_zero=False)
    if fraction == 1:
        return dataset
    n = len(dataset)
    keep = max(1, round(n * fraction))
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return dataset.select(perm[:keep].sort().values)
