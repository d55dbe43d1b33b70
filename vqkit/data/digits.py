"""scikit-learn's handwritten digits: 1,797 images of 8×8 pixels, shipped inside scikit-learn.

The optical-recognition digits of the UCI repository (Alpaydin & Kaynak, 1998), 17 grey levels
(0..16). It needs no download, which makes it vqkit's default dataset.
"""

from __future__ import annotations

import torch

from vqkit.data.dataset import ArrayDataset, LoadReport

__all__ = ["load_digits"]


def load_digits() -> ArrayDataset:
    """The 1,797 digits as ``(1797, 1, 8, 8)`` floats in ``[0, 1]`` (grey level / 16).

    Labels (0..9) are in ``dataset.labels``.
    """
    import numpy as np

    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError as exc:  # pragma: no cover - scikit-learn is in the `data` extra
        raise ImportError(
            "the digits dataset needs scikit-learn: pip install 'vqkit[data]'"
        ) from exc
    bunch = sk_load_digits()
    images = (bunch.images.astype(np.float32) / 16.0)[:, None]  # (N, 1, 8, 8)
    data = torch.from_numpy(np.ascontiguousarray(images))
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    return ArrayDataset(data, labels, name="digits", report=LoadReport("sklearn digits", len(data)))
