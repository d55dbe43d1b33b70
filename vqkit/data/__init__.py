"""Datasets for vqkit: image folders, MNIST-style IDX files, numpy arrays, bundled digits, toy 2-D,
Hugging Face ``datasets``.

Every loader returns an ``ArrayDataset`` (images ``(N, C, H, W)`` in ``[0, 1]``), or with
``lazy=True`` a dataset read on access (``ImageFolderDataset``, ``MemmapArrayDataset``)
whose items are the same ``(C, H, W)`` tensors.
"""

from vqkit.data.arrays import load_array
from vqkit.data.dataset import ArrayDataset, LoadReport, subset, train_val_split
from vqkit.data.digits import load_digits
from vqkit.data.folder import IMAGE_EXTENSIONS, load_image_folder
from vqkit.data.hf import HFImageDataset, load_hf_dataset
from vqkit.data.idx import (
    FASHION_MNIST_PATH,
    load_fashion_mnist,
    load_idx_images,
    load_mnist,
    read_idx,
    read_idx_header,
)
from vqkit.data.lazy import ImageFolderDataset, MemmapArrayDataset
from vqkit.data.sources import NAMED_DATASETS, load_dataset
from vqkit.data.toy import (
    TOY_DATASETS,
    correlated_gaussian,
    gaussian_grid,
    gaussian_ring,
    load_toy,
)

__all__ = [
    "FASHION_MNIST_PATH",
    "IMAGE_EXTENSIONS",
    "NAMED_DATASETS",
    "TOY_DATASETS",
    "ArrayDataset",
    "HFImageDataset",
    "ImageFolderDataset",
    "LoadReport",
    "MemmapArrayDataset",
    "correlated_gaussian",
    "gaussian_grid",
    "gaussian_ring",
    "load_array",
    "load_dataset",
    "load_digits",
    "load_fashion_mnist",
    "load_hf_dataset",
    "load_idx_images",
    "load_image_folder",
    "load_mnist",
    "load_toy",
    "read_idx",
    "read_idx_header",
    "subset",
    "train_val_split",
]
