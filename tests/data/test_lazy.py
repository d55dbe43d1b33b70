"""Lazy datasets: every item equals the in-memory path's, caches, memory maps, splits, workers."""

import gzip
import pickle
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from vqkit.data import (
    ArrayDataset,
    ImageFolderDataset,
    MemmapArrayDataset,
    load_array,
    load_dataset,
    load_idx_images,
    load_image_folder,
    subset,
    train_val_split,
)
from vqkit.data.loader import batch_indices, fetch, iterate_batches, sequential_batches


def _folder(root, n=12, size=(6, 5), rgb=False, seed=0):
    rng = np.random.default_rng(seed)
    for i in range(n):
        shape = (*size, 3) if rgb else size
        path = root / f"c{i % 3}" / f"{i:03d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path)
    return root


def _items(ds):
    return torch.stack([ds[i] for i in range(len(ds))])


@pytest.mark.parametrize("rgb", [False, True])
@pytest.mark.parametrize("image_size", [None, (4, 3)])
def test_lazy_folder_equals_in_memory_bit_for_bit(tmp_path, rgb, image_size):
    _folder(tmp_path, rgb=rgb)
    eager = load_image_folder(tmp_path, image_size=image_size)
    lazy = load_image_folder(tmp_path, image_size=image_size, lazy=True)
    assert isinstance(eager, ArrayDataset)
    assert isinstance(lazy, ImageFolderDataset)
    assert len(lazy) == len(eager) == 12
    assert lazy.sample_shape == eager.sample_shape
    assert torch.equal(_items(lazy), eager.data)
    assert torch.equal(lazy.labels, eager.labels)
    cached = load_image_folder(tmp_path, image_size=image_size, lazy=True, cache=True)
    assert cached.cache.dtype == torch.uint8
    assert cached.cache.shape == (12, *eager.sample_shape)
    assert torch.equal(_items(cached), eager.data)
    order = torch.randperm(12, generator=torch.Generator().manual_seed(0))
    assert torch.equal(fetch(cached, order), eager.data[order])  # one slice of the cache
    assert torch.equal(fetch(lazy, order), eager.data[order])  # collated items


def test_lazy_folder_sixteen_bit_and_palette(tmp_path):
    deep = np.array([[0, 1000], [40000, 65535]], dtype=np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    pal = Image.fromarray(np.array([[0, 128], [255, 7]], dtype=np.uint8)).convert("P")
    pal.save(tmp_path / "pal.png")
    eager = load_image_folder(tmp_path)
    lazy = load_image_folder(tmp_path, lazy=True)
    assert lazy.mode == "L"
    assert torch.equal(_items(lazy), eager.data)
    with pytest.raises(ValueError, match="lose the precision of its 16-bit"):
        load_image_folder(tmp_path, lazy=True, cache=True)


def test_lazy_folder_reports_a_truncated_image_when_it_is_read(tmp_path):
    _folder(tmp_path, n=3)
    target = sorted(tmp_path.rglob("*.png"))[1]
    target.write_bytes(target.read_bytes()[:60])  # the header survives, the pixels do not
    ds = load_image_folder(tmp_path, lazy=True)  # headers only: the scan cannot see it
    ds[0]
    with pytest.raises(ValueError, match=rf"cannot read image file .*{target.name}.*item 1"):
        ds[1]
    with pytest.raises(ValueError, match=rf"cannot read image file .*{target.name}"):
        load_image_folder(tmp_path)  # the in-memory path decodes and names it at load time


def test_lazy_index_errors(tmp_path):
    ds = load_image_folder(_folder(tmp_path, n=2), lazy=True)
    assert torch.equal(ds[-1], ds[1])
    assert torch.equal(ds[np.int64(1)], ds[torch.tensor(1)])
    with pytest.raises(IndexError, match="index 2 is out of range for 2"):
        ds[2]
    with pytest.raises(TypeError, match="index must be an int"):
        ds[0.5]


def test_cache_that_does_not_fit_is_refused(tmp_path, monkeypatch):
    import vqkit.data.lazy as lazy_module

    _folder(tmp_path, n=4)
    monkeypatch.setattr(lazy_module, "available_memory", lambda: 100)
    with pytest.raises(MemoryError, match=r"uint8 cache of 4 images of 1x6x5 needs"):
        load_image_folder(tmp_path, lazy=True, cache=True)
    with pytest.raises(ValueError, match="cache=True applies to lazy=True"):
        load_image_folder(tmp_path, cache=True)


def test_lazy_split_subset_and_pickle(tmp_path):
    _folder(tmp_path, n=20)
    eager = load_image_folder(tmp_path)
    lazy = load_image_folder(tmp_path, lazy=True, cache=True)
    for a, b in zip(
        train_val_split(eager, 0.25, seed=3), train_val_split(lazy, 0.25, seed=3), strict=True
    ):
        assert len(a) == len(b)
        assert torch.equal(a.data, _items(b))
        assert torch.equal(a.labels, b.labels)
    assert torch.equal(subset(eager, 0.3, seed=1).data, _items(subset(lazy, 0.3, seed=1)))
    plain = load_image_folder(tmp_path, lazy=True)
    assert len(pickle.dumps(plain)) < 4000  # file names travel to workers, not pixels
    assert torch.equal(_items(pickle.loads(pickle.dumps(plain))), eager.data)


@pytest.mark.parametrize("layout", ["nhwc", "nchw"])
def test_memmapped_npy_equals_in_memory(tmp_path, layout):
    shape = (7, 5, 4, 3) if layout == "nhwc" else (7, 3, 5, 4)
    array = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    np.save(tmp_path / "x.npy", array)
    eager = load_array(tmp_path / "x.npy")
    lazy = load_array(tmp_path / "x.npy", lazy=True)
    assert isinstance(lazy, MemmapArrayDataset)
    assert lazy.sample_shape == eager.sample_shape == (3, 5, 4)
    assert torch.equal(_items(lazy), eager.data)
    part = lazy.select(torch.tensor([5, 1]))
    assert torch.equal(_items(part), eager.data[[5, 1]])
    restored = pickle.loads(pickle.dumps(lazy))
    assert restored._array is None
    assert torch.equal(_items(restored), eager.data)
    assert isinstance(load_dataset(str(tmp_path / "x.npy"), lazy=True), MemmapArrayDataset)


def test_memmapped_float_npy_refuses_nan_when_read(tmp_path):
    array = np.zeros((3, 4), dtype=np.float32)
    array[2, 1] = np.nan
    np.save(tmp_path / "x.npy", array)
    lazy = load_array(tmp_path / "x.npy", lazy=True)
    assert torch.equal(lazy[0], torch.zeros(4))
    with pytest.raises(ValueError, match="sample 2 holds NaN"):
        lazy[2]
    with pytest.raises(ValueError, match="1 values are NaN or infinite"):
        load_array(tmp_path / "x.npy")


def test_memmapped_idx_equals_in_memory(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (6, 4, 5), dtype=np.uint8)
    raw = bytes([0, 0, 8, 3]) + struct.pack(">3I", *images.shape) + images.tobytes()
    (tmp_path / "x-idx3-ubyte").write_bytes(raw)
    (tmp_path / "x-idx3-ubyte.gz").write_bytes(gzip.compress(raw))
    eager = load_idx_images(tmp_path / "x-idx3-ubyte")
    lazy = load_idx_images(tmp_path / "x-idx3-ubyte", lazy=True)
    assert isinstance(lazy, MemmapArrayDataset)
    assert torch.equal(_items(lazy), eager.data)
    gz = load_idx_images(tmp_path / "x-idx3-ubyte.gz", lazy=True)  # cannot map: read whole
    assert isinstance(gz, ArrayDataset)
    assert torch.equal(gz.data, eager.data)


def test_batch_indices_shard_like_a_distributed_sampler():
    order = torch.randperm(23, generator=torch.Generator().manual_seed(0))
    shards = [batch_indices(order, 6, rank=r, world_size=3) for r in range(3)]
    assert [len(s) for s in shards] == [3, 3, 3]  # 23 // 6 steps, the rest is dropped
    for step in range(3):
        together = torch.cat([shards[r][step] for r in range(3)])
        assert torch.equal(together, order[step * 6 : (step + 1) * 6])  # disjoint, complete
    resumed = batch_indices(order, 6, rank=1, world_size=3, start=2)
    assert len(resumed) == 1
    assert torch.equal(resumed[0], shards[1][2])
    with pytest.raises(ValueError, match="not divisible by 4"):
        batch_indices(order, 6, world_size=4)


def test_workers_return_the_same_batches_in_the_same_order(tmp_path):
    lazy = load_image_folder(_folder(tmp_path, n=16), lazy=True)
    order = torch.randperm(16, generator=torch.Generator().manual_seed(1))
    batches = batch_indices(order, 4)
    rng_before = torch.random.get_rng_state()
    serial = list(iterate_batches(lazy, batches, num_workers=0))
    parallel = list(iterate_batches(lazy, batches, num_workers=2))
    assert torch.equal(torch.random.get_rng_state(), rng_before)  # the global RNG is untouched
    assert len(serial) == len(parallel) == 4
    for a, b, idx in zip(serial, parallel, batches, strict=True):
        assert torch.equal(a, b)
        assert torch.equal(a, torch.stack([lazy[int(i)] for i in idx]))


def test_sequential_batches_cover_every_sample_in_order(tmp_path):
    _folder(tmp_path, n=10)
    eager = load_image_folder(tmp_path)
    lazy = load_image_folder(tmp_path, lazy=True)
    for data, workers in ((eager, 0), (lazy, 0), (lazy, 2)):
        batches = list(sequential_batches(data, 4, num_workers=workers))
        assert [len(b) for b in batches] == [4, 4, 2]
        assert torch.equal(torch.cat(batches), eager.data)
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        sequential_batches(lazy, 0)
