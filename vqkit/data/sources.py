"""One entry point for every data source, used by the CLI: ``load_dataset("digits")``.

Accepted specs:

- ``"digits"``: scikit-learn's 8×8 digits (no download; the default);
- ``"fashion-mnist"`` or ``"fashion-mnist:/folder"``; ``"mnist:/folder"``: IDX files;
- ``"toy:correlated_gaussian"``, ``"toy:gaussian_ring"``, ``"toy:gaussian_grid"``: 2-D points;
- a path to a folder of images, a ``.npy``/``.npz`` file, or an IDX file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vqkit.data.arrays import load_array
from vqkit.data.dataset import ArrayDataset
from vqkit.data.digits import load_digits
from vqkit.data.folder import load_image_folder
from vqkit.data.idx import load_fashion_mnist, load_idx_images, load_mnist
from vqkit.data.toy import load_toy

__all__ = ["NAMED_DATASETS", "load_dataset"]

NAMED_DATASETS = ("digits", "fashion-mnist", "mnist:PATH", "toy:NAME")


def load_dataset(spec: str, *, split: str = "train", seed: int = 0, **options: Any) -> ArrayDataset:
    """Load a dataset from a name or a path.

    Args:
        spec: see the module docstring.
        split: ``"train"`` or ``"test"`` for the IDX sources; other sources have one split and
            ignore it (make a validation split with :func:`~vqkit.data.train_val_split`).
        seed: seed of the toy datasets' draw.
        **options: passed to the loader: ``image_size``, ``mode``, ``fit``, ``on_mismatch``,
            ``on_unreadable`` for folders; ``key``, ``label_key``, ``layout`` for arrays; ``n``
            and the shape parameters for toy sets.
    """
    if not isinstance(spec, str) or not spec:
        raise TypeError(f"a dataset spec must be a non-empty string, got {spec!r}")
    name, _, arg = spec.partition(":")
    if name == "digits" and not arg:
        _no_options(spec, options)
        return load_digits()
    if name == "fashion-mnist":
        _no_options(spec, options)
        return load_fashion_mnist(arg or None, split)
    if name == "mnist":
        _no_options(spec, options)
        if not arg:
            raise ValueError("mnist needs the folder holding its IDX files: 'mnist:/path/to/mnist'")
        return load_mnist(arg, split)
    if name == "toy":
        return load_toy(arg, seed=seed, **options)
    path = Path(spec)
    if path.is_dir():
        return load_image_folder(path, **options)
    if path.suffix in (".npy", ".npz"):
        return load_array(path, **options)
    if path.is_file() and ("idx" in path.name or path.suffix == ".gz"):
        _no_options(spec, options)
        return load_idx_images(path, name=path.name.split("-")[0])
    if not path.exists():
        raise FileNotFoundError(
            f"dataset {spec!r} is neither a known name ({', '.join(NAMED_DATASETS)}) nor an "
            "existing folder or file"
        )
    raise ValueError(
        f"cannot tell how to read {spec!r}: expected a folder of images, a .npy/.npz file or an "
        "IDX file (name containing 'idx')"
    )


def _no_options(spec: str, options: dict) -> None:
    if options:
        raise TypeError(f"dataset {spec!r} takes no options, got {sorted(options)}")
