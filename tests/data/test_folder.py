"""Image folders: values, resizing, colour modes, labels, and the bad-folder errors and reports."""

import numpy as np
import pytest
import torch
from PIL import Image

from vqkit.data import load_dataset, load_image_folder


def _gray(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8), mode="L").save(path)


def _random(shape, seed):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def test_grayscale_values_order_and_labels(tmp_path):
    arrays = {
        f"{c}/{i}.png": _random((6, 5), seed=i + 10 * k)
        for k, c in enumerate("ab")
        for i in range(2)
    }
    for name, array in arrays.items():
        _gray(tmp_path / name, array)
    ds = load_image_folder(tmp_path)
    assert ds.data.shape == (4, 1, 6, 5)
    expected = np.stack([arrays[n] for n in sorted(arrays)])[:, None] / 255.0
    torch.testing.assert_close(ds.data, torch.from_numpy(expected).float())
    assert ds.labels.tolist() == [0, 0, 1, 1]
    assert ds.report.kept == 4
    assert not ds.report.skipped


def test_rgb_mode_and_auto_detection(tmp_path):
    rgb = _random((4, 4, 3), seed=1)
    Image.fromarray(rgb, mode="RGB").save(tmp_path / "c.png")
    _gray(tmp_path / "g.png", _random((4, 4), seed=2))
    ds = load_image_folder(tmp_path)  # one colour image: everything is read as RGB
    assert ds.data.shape == (2, 3, 4, 4)
    torch.testing.assert_close(ds.data[0], torch.from_numpy(rgb.transpose(2, 0, 1) / 255.0).float())
    gray = load_image_folder(tmp_path, mode="L")
    assert gray.data.shape == (2, 1, 4, 4)


def test_resize_crop_and_stretch(tmp_path):
    # A 20x10 (H x W) image whose top and bottom quarters are black and the middle white.
    array = np.zeros((20, 10), dtype=np.uint8)
    array[5:15] = 255
    _gray(tmp_path / "x.png", array)
    crop = load_image_folder(tmp_path, image_size=10, fit="crop")
    assert crop.data.shape == (1, 1, 10, 10)
    assert crop.data.min() > 0.95  # the centre crop keeps only the white band
    stretch = load_image_folder(tmp_path, image_size=(10, 10), fit="stretch")
    assert stretch.data[0, 0, 0].max() < 0.05
    assert stretch.data[0, 0, 5].min() > 0.95


def test_sixteen_bit_grayscale_keeps_precision(tmp_path):
    array = np.array([[0, 1000], [40000, 65535]], dtype=np.uint16)
    Image.fromarray(array).save(tmp_path / "deep.png")
    ds = load_image_folder(tmp_path)
    torch.testing.assert_close(ds.data[0, 0], torch.from_numpy(array / 65535.0).float())


def test_mismatched_sizes_are_skipped_with_a_report(tmp_path):
    for i in range(3):
        _gray(tmp_path / f"ok{i}.png", _random((8, 6), seed=i))
    _gray(tmp_path / "odd.png", _random((9, 6), seed=5))
    with pytest.warns(UserWarning, match=r"odd\.png.*9x6 differs from the common size 8x6"):
        ds = load_image_folder(tmp_path)
    assert len(ds) == 3
    assert ds.report.kept == 3
    assert list(ds.report.skipped) == [str(tmp_path / "odd.png")]
    with pytest.raises(ValueError, match=r"1 of 4 differ from the common 8x6.*odd\.png 9x6"):
        load_image_folder(tmp_path, on_mismatch="error")
    assert load_image_folder(tmp_path, image_size=(8, 6)).data.shape == (4, 1, 8, 6)


def test_empty_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match="no image files"):
        load_image_folder(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_image_folder(tmp_path / "missing")


def test_unreadable_file(tmp_path):
    _gray(tmp_path / "good.png", _random((4, 4), seed=0))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(ValueError, match=r"cannot read image file .*broken\.png"):
        load_image_folder(tmp_path)
    with pytest.warns(UserWarning, match="unreadable"):
        ds = load_image_folder(tmp_path, on_unreadable="skip")
    assert len(ds) == 1
    assert "unreadable" in ds.report.skipped[str(tmp_path / "broken.png")]


def test_bad_arguments(tmp_path):
    _gray(tmp_path / "a.png", _random((4, 4), seed=0))
    with pytest.raises(ValueError, match="mode must be"):
        load_image_folder(tmp_path, mode="CMYK")
    with pytest.raises(ValueError, match="image_size must be"):
        load_image_folder(tmp_path, image_size=(0, 4))


def test_load_dataset_reads_a_folder(tmp_path):
    _gray(tmp_path / "a.png", _random((4, 4), seed=0))
    assert load_dataset(str(tmp_path), image_size=2).data.shape == (1, 1, 2, 2)
