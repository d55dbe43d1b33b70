"""One entry point for every data source, used by the CLI: ``load_dataset("digits")``.

Accepted specs:

- ``"digits"``: scikit-learn's 8×8 digits (no download; the default);
- ``"fashion-mnist"`` or ``"fashion-mnist:/folder"``; ``"mnist:/folder"``: IDX files;
- ``"toy:correlated_gaussian"``, ``"toy:gaussian_ring"``, ``"toy:gaussian_grid"``: 2-D points;
- ``"hf:NAME"`` or ``"hf:NAME:split"``: a Hugging Face dataset (a Hub name, a ``save_to_disk``
  folder, a ``.parquet`` file or a local folder; needs ``pip install 'vqkit[hf]'``);
- a path to a folder of images, a ``.npy``/``.npz`` file, or an IDX file.

``lazy=True`` reads folders, ``.npy`` and uncompressed IDX files on access instead of into memory
(see ``vqkit.data.lazy``); ``cache=True`` adds a uint8 in-memory cache to a lazy folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from vqkit.data.arrays import load_array
from vqkit.data.digits import load_digits
from vqkit.data.folder import load_image_folder
from vqkit.data.idx import load_fashion_mnist, load_idx_images, load_mnist
from vqkit.data.toy import load_toy

__all__ = ["NAMED_DATASETS", "load_dataset"]

NAMED_DATASETS = ("digits", "fashion-mnist", "mnist:PATH", "toy:NAME", "hf:NAME[:split]")


def load_dataset(spec: str, *, split: str = "train", seed: int = 0, **options: Any) -> Dataset:
    """Load a dataset from a name or a path.

    Args:
        spec: see the module docstring.
        split: ``"train"`` or ``"test"`` for the IDX sources; other sources have one split and
            ignore it (make a validation split with ``train_val_split``).
        seed: seed of the toy datasets' draw.
        **options: passed to the loader: ``image_size``, ``mode``, ``fit``, ``on_mismatch``,
            ``on_unreadable``, ``lazy``, ``cache`` for folders; ``key``, ``label_key``,
            ``layout``, ``lazy`` for arrays; ``lazy`` for IDX sources; ``image_size``, ``mode``,
            ``fit``, ``image_column``, ``label_column``, ``cache_dir`` for ``hf:``; ``n`` and
            the shape parameters for toy sets.

    Returns:
        An [`ArrayDataset`][vqkit.data.ArrayDataset], or a dataset read on access
        ([`ImageFolderDataset`][vqkit.data.ImageFolderDataset], ``MemmapArrayDataset``,
        [`HFImageDataset`][vqkit.data.HFImageDataset]).
    """
    if not isinstance(spec, str) or not spec:
        raise TypeError(f"a dataset spec must be a non-empty string, got {spec!r}")
    name, _, arg = spec.partition(":")
    if name == "digits" and not arg:
        _no_options(spec, options)
        return load_digits()
    if name == "fashion-mnist":
        _no_options(spec, options, allowed=("lazy",))
        return load_fashion_mnist(arg or None, split, **options)
    if name == "mnist":
        _no_options(spec, options, allowed=("lazy",))
        if not arg:
            raise ValueError("mnist needs the folder holding its IDX files: 'mnist:/path/to/mnist'")
        return load_mnist(arg, split, **options)
    if name == "toy":
        return load_toy(arg, seed=seed, **options)
    if name == "hf":
        from vqkit.data.hf import load_hf_dataset

        source, colon, hf_split = arg.rpartition(":")
        if not colon or "/" in hf_split or not source:
            source, hf_split = arg, split
        if not source:
            raise ValueError("hf: needs a dataset: 'hf:NAME', 'hf:NAME:split' or 'hf:/path'")
        return load_hf_dataset(source, hf_split, **options)
    path = Path(spec)
    if path.is_dir():
        return load_image_folder(path, **options)
    if path.suffix in (".npy", ".npz"):
        return load_array(path, **options)
    if path.is_file() and ("idx" in path.name or path.suffix == ".gz"):
        _no_options(spec, options, allowed=("lazy",))
        return load_idx_images(path, name=path.name.split("-")[0], **options)
    if not path.exists():
        raise FileNotFoundError(
            f"dataset {spec!r} is neither a known name ({', '.join(NAMED_DATASETS)}) nor an "
            "existing folder or file"
        )
    raise ValueError(
        f"cannot tell how to read {spec!r}: expected a folder of images, a .npy/.npz file or an "
        "IDX file (name containing 'idx')"
    )


def _no_options(spec: str, options: dict, allowed: tuple[str, ...] = ()) -> None:
    extra = sorted(set(options) - set(allowed))
    if extra:
        takes = f"only {list(allowed)}" if allowed else "no options"
        raise TypeError(f"dataset {spec!r} takes {takes}, got {extra}")
