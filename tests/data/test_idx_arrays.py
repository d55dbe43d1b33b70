"""IDX files (plain and gzipped, MNIST layout, Debian's Fashion-MNIST), .npy/.npz arrays, digits."""

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from vqkit.data import (
    FASHION_MNIST_PATH,
    load_array,
    load_dataset,
    load_digits,
    load_fashion_mnist,
    load_mnist,
    read_idx,
)


def _idx_bytes(array: np.ndarray) -> bytes:
    code = {np.uint8: 0x08, np.int16: 0x0B, np.float32: 0x0D}[array.dtype.type]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def _write(path: Path, array: np.ndarray, gz: bool) -> Path:
    raw = _idx_bytes(array)
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.float32])
def test_read_idx_round_trip(tmp_path, gz, dtype):
    array = (np.arange(2 * 3 * 4) * 7 % 251).astype(dtype).reshape(2, 3, 4)
    # The gzip test file has no .gz suffix: detection is by content.
    out = read_idx(_write(tmp_path / "x-idx3", array, gz))
    assert out.dtype == array.dtype
    assert np.array_equal(out, array)


def test_read_idx_errors(tmp_path):
    bad = tmp_path / "bad"
    bad.write_bytes(b"\x01\x02\x08\x01" + b"\x00" * 8)
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(bad)
    full = _idx_bytes(np.zeros((4, 2, 2), np.uint8))
    (tmp_path / "short").write_bytes(full[:-3])
    with pytest.raises(ValueError, match="truncated or padded: shape \\(4, 2, 2\\)"):
        read_idx(tmp_path / "short")
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "missing")


def test_load_mnist_layout_gz_and_plain(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    _write(tmp_path / "train-images-idx3-ubyte.gz", images, gz=True)
    _write(tmp_path / "train-labels-idx1-ubyte", labels, gz=False)
    ds = load_mnist(tmp_path, "train")
    assert ds.data.shape == (5, 1, 28, 28)
    assert ds.data.dtype == torch.float32
    torch.testing.assert_close(ds.data[:, 0], torch.from_numpy(images / 255.0).float())
    assert ds.labels.tolist() == [3, 1, 4, 1, 5]
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        load_mnist(tmp_path, "test")
    with pytest.raises(ValueError, match="split must be"):
        load_mnist(tmp_path, "val")
    assert load_dataset(f"mnist:{tmp_path}").data.shape == (5, 1, 28, 28)


def test_mismatched_labels(tmp_path):
    _write(tmp_path / "train-images-idx3-ubyte", np.zeros((3, 2, 2), np.uint8), gz=False)
    _write(tmp_path / "train-labels-idx1-ubyte", np.zeros(4, np.uint8), gz=False)
    with pytest.raises(ValueError, match=r"expected \(3,\)"):
        load_mnist(tmp_path)


@pytest.mark.skipif(not Path(FASHION_MNIST_PATH).exists(), reason="dataset-fashion-mnist absent")
def test_debian_fashion_mnist():
    test = load_fashion_mnist(split="test")
    assert test.data.shape == (10000, 1, 28, 28)
    assert test.labels[:5].tolist() == [9, 2, 1, 1, 6]  # the published first test labels
    assert 0.25 < float(test.data.mean()) < 0.32


def test_fashion_mnist_missing_folder_message(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path / "nowhere")


def test_npy_layouts_and_scaling(tmp_path):
    nhwc = np.random.default_rng(0).integers(0, 256, (4, 5, 6, 3), dtype=np.uint8)
    np.save(tmp_path / "rgb.npy", nhwc)
    ds = load_array(tmp_path / "rgb.npy")
    torch.testing.assert_close(
        ds.data, torch.from_numpy(nhwc.transpose(0, 3, 1, 2) / 255.0).float()
    )
    np.save(tmp_path / "gray.npy", nhwc[..., 0])
    assert load_array(tmp_path / "gray.npy").data.shape == (4, 1, 5, 6)
    points = np.random.default_rng(1).normal(size=(10, 2)).astype(np.float64)
    np.save(tmp_path / "points.npy", points)
    torch.testing.assert_close(
        load_dataset(str(tmp_path / "points.npy")).data, torch.from_numpy(points).float()
    )


def test_npz_keys_labels_and_errors(tmp_path):
    x = np.random.default_rng(0).random((3, 1, 4, 4)).astype(np.float32)
    np.savez(tmp_path / "a.npz", images=x, labels=np.array([2, 0, 1]))
    ds = load_array(tmp_path / "a.npz", key="images", label_key="labels")
    assert torch.equal(ds.data, torch.from_numpy(x))
    assert ds.labels.tolist() == [2, 0, 1]
    assert torch.equal(load_array(tmp_path / "a.npz", label_key="labels").data, torch.from_numpy(x))
    with pytest.raises(ValueError, match="several arrays"):
        load_array(tmp_path / "a.npz")
    with pytest.raises(KeyError, match="no array 'x'"):
        load_array(tmp_path / "a.npz", key="x")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="without unpickling"):
        load_array(tmp_path / "obj.npy")
    np.save(tmp_path / "signed.npy", np.zeros((2, 3, 3), dtype=np.int32))
    with pytest.raises(TypeError, match="signed integer"):
        load_array(tmp_path / "signed.npy")
    np.save(tmp_path / "five.npy", np.zeros((1, 2, 3, 4, 5), dtype=np.float32))
    with pytest.raises(ValueError, match="expected \\(N, D\\)"):
        load_array(tmp_path / "five.npy")


def test_digits_match_scikit_learn():
    from sklearn.datasets import load_digits as sk

    ds = load_digits()
    bunch = sk()
    assert ds.data.shape == (1797, 1, 8, 8)
    torch.testing.assert_close(ds.data[:, 0], torch.from_numpy(bunch.images / 16.0).float())
    assert torch.equal(ds.labels, torch.from_numpy(bunch.target))
    assert load_dataset("digits").data.shape == (1797, 1, 8, 8)


def test_load_dataset_unknown(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a known name"):
        load_dataset(str(tmp_path / "nothing-here"))
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ValueError, match="cannot tell how to read"):
        load_dataset(str(tmp_path / "file.txt"))
    with pytest.raises(TypeError, match="takes no options"):
        load_dataset("digits", image_size=4)
