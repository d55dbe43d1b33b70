"""The hf: source on local datasets the tests build (no network): save_to_disk folders, parquet."""

import numpy as np
import pytest
import torch

from vqkit.data import HFImageDataset, load_dataset, load_hf_dataset, train_val_split
from vqkit.data.loader import batch_indices, iterate_batches

datasets = pytest.importorskip("datasets")
Image = pytest.importorskip("PIL.Image")


def _arrays(n=10, shape=(6, 5), seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8)


def _hf(arrays, labels=None):
    columns = {"image": [Image.fromarray(a) for a in arrays]}
    features = {"image": datasets.Image()}
    if labels is not None:
        columns["label"] = labels
        features["label"] = datasets.ClassLabel(names=["a", "b", "c"])
    return datasets.Dataset.from_dict(columns, features=datasets.Features(features))


def _expected(arrays):
    x = torch.from_numpy(arrays.astype(np.float32) / np.float32(255))
    return x[:, None] if x.ndim == 3 else x.permute(0, 3, 1, 2)


def _items(ds):
    return torch.stack([ds[i] for i in range(len(ds))])


def test_save_to_disk_folder_values_labels_and_splits(tmp_path):
    train, test = _arrays(10, seed=0), _arrays(4, seed=1)
    labels = [i % 3 for i in range(10)]
    dd = datasets.DatasetDict({"train": _hf(train, labels), "test": _hf(test, [0, 1, 2, 0])})
    dd.save_to_disk(str(tmp_path / "saved"))
    ds = load_dataset(f"hf:{tmp_path / 'saved'}")
    assert isinstance(ds, HFImageDataset)
    assert ds.sample_shape == (1, 6, 5)
    assert torch.equal(_items(ds), _expected(train))
    assert ds.labels.tolist() == labels
    assert torch.equal(_items(load_dataset(f"hf:{tmp_path / 'saved'}:test")), _expected(test))
    assert len(load_dataset(f"hf:{tmp_path / 'saved'}", split="test")) == 4
    with pytest.raises(KeyError, match=r"no split 'val'; it has \['test', 'train'\]"):
        load_dataset(f"hf:{tmp_path / 'saved'}:val")
    tr, va = train_val_split(ds, 0.2, seed=0)
    assert len(tr) == 8
    assert len(va) == 2
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(0))  # the split's draw
    assert torch.equal(_items(tr), _expected(train)[perm[2:].sort().values])
    assert torch.equal(va.labels, torch.tensor(labels)[perm[:2].sort().values])


def test_parquet_rgb_resize_and_workers(tmp_path):
    rgb = _arrays(8, shape=(9, 7, 3), seed=2)
    _hf(rgb).to_parquet(str(tmp_path / "x.parquet"))
    ds = load_hf_dataset(str(tmp_path / "x.parquet"), cache_dir=str(tmp_path / "cache"))
    assert ds.mode == "RGB"
    assert ds.labels is None
    assert torch.equal(_items(ds), _expected(rgb))
    small = load_hf_dataset(
        str(tmp_path / "x.parquet"), image_size=4, mode="L", cache_dir=str(tmp_path / "cache")
    )
    assert small.sample_shape == (1, 4, 4)
    batches = batch_indices(torch.arange(8).flip(0), 4)
    serial = list(iterate_batches(small, batches))
    parallel = list(iterate_batches(small, batches, num_workers=2))
    assert all(torch.equal(a, b) for a, b in zip(serial, parallel, strict=True))
    assert torch.equal(serial[0][0], small[7])


def test_hf_source_errors(tmp_path, monkeypatch):
    arrays = _arrays(3)
    hf = _hf(arrays)
    odd = datasets.concatenate_datasets([hf, _hf(_arrays(1, shape=(4, 4)))])
    odd.save_to_disk(str(tmp_path / "odd"))
    ds = load_hf_dataset(str(tmp_path / "odd"))
    assert torch.equal(ds[2], _expected(arrays)[2])
    with pytest.raises(
        ValueError, match=r"odd row 3: image is 4x4, the dataset's first image is 6x5"
    ):
        ds[3]
    with pytest.raises(KeyError, match="no column 'pixels'"):
        load_hf_dataset(str(tmp_path / "odd"), image_column="pixels")
    datasets.Dataset.from_dict({"x": [1.5, 2.5]}).save_to_disk(str(tmp_path / "floats"))
    with pytest.raises(ValueError, match="cannot tell which column holds the images"):
        load_hf_dataset(str(tmp_path / "floats"))
    with pytest.raises(TypeError, match=r"row 0: expected an image"):
        load_hf_dataset(str(tmp_path / "floats"), image_column="x")
    labelled = datasets.Dataset.from_dict(
        {"image": [Image.fromarray(a) for a in arrays], "label": [0.5, 1.0, 2.0]}
    )
    labelled.save_to_disk(str(tmp_path / "float-labels"))
    with pytest.raises(TypeError, match="labels must be integers"):
        load_hf_dataset(str(tmp_path / "float-labels"))
    hf.select([]).save_to_disk(str(tmp_path / "empty"))  # `datasets` cannot read it back
    with pytest.raises(RuntimeError, match=r"cannot load Hugging Face dataset .*empty"):
        load_hf_dataset(str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset(f"hf:{tmp_path / 'missing'}")
    with pytest.raises(ValueError, match="image_size must be"):
        load_hf_dataset(str(tmp_path / "odd"), image_size=2.5)
    with pytest.raises(ValueError, match="mode must be"):
        load_hf_dataset(str(tmp_path / "odd"), mode=3)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match=r"expected a \.parquet file or a folder"):
        load_hf_dataset(str(tmp_path / "notes.txt"))


def test_missing_datasets_package_names_the_install(monkeypatch, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "datasets", None)  # `import datasets` raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'vqkit\[hf\]'"):
        load_dataset(f"hf:{tmp_path}")
