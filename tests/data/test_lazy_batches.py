"""Batched reads of a lazy image folder (issue 18's data speed): one uint8 array per batch.

``ImageFolderDataset.read_batch`` / ``__getitems__`` decode a batch into one uint8 array and
convert it in one operation; DataLoader workers send the uint8 batch and the training process
converts it. Every path must give the in-memory path's float32 values bit for bit.
"""

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from vqkit.data import load_image_folder
from vqkit.data.loader import fetch, iterate_batches


def _folder(root, n=10, size=(5, 7), rgb=True, seed=3):
    rng = np.random.default_rng(seed)
    for i in range(n):
        shape = (*size, 3) if rgb else size
        path = root / f"{i:03d}.png"
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path)
    return root


def _sixteen_bit(root):
    for i, value in enumerate((0, 1000, 40000, 65535)):
        Image.fromarray(np.full((2, 3), value, dtype=np.uint16)).save(root / f"{i}.png")
    return root


@pytest.mark.parametrize("rgb", [False, True])
def test_read_batch_equals_the_in_memory_values_and_the_items(tmp_path, rgb):
    _folder(tmp_path, rgb=rgb)
    eager = load_image_folder(tmp_path)
    lazy = load_image_folder(tmp_path, lazy=True)
    order = [7, 0, 3, 3, -1]  # repeats and a negative index, like dataset[i]
    batch = lazy.read_batch(order)
    assert batch.dtype == torch.float32
    assert torch.equal(batch, eager.data[[7, 0, 3, 3, 9]])
    assert torch.equal(batch, torch.stack([lazy[i] for i in order]))
    raw = lazy.read_batch(order, as_uint8=True)
    assert raw.dtype == torch.uint8
    assert torch.equal(raw.float().div_(255), batch)
    assert torch.equal(torch.stack(lazy.__getitems__(order)), batch)
    assert lazy.read_batch([]).shape == (0, *lazy.sample_shape)


def test_every_uint8_value_converts_to_the_in_memory_float():
    values = np.arange(256, dtype=np.uint8)
    expected = values.astype(np.float32) / np.float32(255)  # the in-memory path's formula
    assert np.array_equal(torch.from_numpy(values).float().div_(255).numpy(), expected)


def test_read_batch_of_sixteen_bit_images_keeps_the_precision(tmp_path):
    lazy = load_image_folder(_sixteen_bit(tmp_path), lazy=True)
    eager = load_image_folder(tmp_path)
    assert lazy.wide
    assert torch.equal(lazy.read_batch([3, 1]), eager.data[[3, 1]])
    with pytest.raises(ValueError, match="16-bit images have no uint8 batch form"):
        lazy.read_batch([0], as_uint8=True)
    assert torch.equal(fetch(lazy, torch.tensor([2, 0])), eager.data[[2, 0]])


def test_read_batch_refuses_bad_indices_like_getitem(tmp_path):
    lazy = load_image_folder(_folder(tmp_path, n=3), lazy=True)
    with pytest.raises(IndexError, match="index 3 is out of range for 3 samples"):
        lazy.read_batch([0, 3])
    with pytest.raises(TypeError, match="index must be an int, got float"):
        lazy.read_batch([0.5])


def test_a_plain_dataloader_with_default_collate_gives_the_same_batch(tmp_path):
    _folder(tmp_path)
    eager = load_image_folder(tmp_path)
    lazy = load_image_folder(tmp_path, lazy=True)
    loader = DataLoader(lazy, batch_size=4, shuffle=False)  # uses __getitems__
    got = torch.cat(list(loader))
    assert torch.equal(got, eager.data)


@pytest.mark.parametrize("sixteen", [False, True])
def test_worker_batches_equal_the_in_process_batches(tmp_path, sixteen):
    if sixteen:
        _sixteen_bit(tmp_path)
    else:
        _folder(tmp_path, n=12)
    eager = load_image_folder(tmp_path)
    lazy = load_image_folder(tmp_path, lazy=True)
    order = torch.randperm(len(lazy), generator=torch.Generator().manual_seed(1))
    chunks = list(order.split(3))
    got = list(iterate_batches(lazy, chunks, num_workers=2))
    assert len(got) == len(chunks)
    for idx, batch in zip(chunks, got, strict=True):
        assert batch.dtype == torch.float32
        assert torch.equal(batch, eager.data[idx])
