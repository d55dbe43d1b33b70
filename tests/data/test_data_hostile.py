"""Hostile input to every public loader: each bad input gets an error naming what was expected.

Folders, arrays, IDX files, the MNIST layout, toy sets and ``load_dataset``: wrong-typed options,
broken and looping symlinks, empty, zero-byte, truncated and non-image files, IDX headers that
declare more than the file holds, float labels, object and structured arrays, NaN samples.
"""

import gzip
import os
import struct
import tracemalloc

import numpy as np
import pytest
from PIL import Image

from vqkit.data import (
    load_array,
    load_dataset,
    load_fashion_mnist,
    load_idx_images,
    load_image_folder,
    load_mnist,
    load_toy,
    read_idx,
)


def _png(path, size=(4, 4), seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def _idx(path, code, dims, payload=b"", gz=False):
    raw = bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + payload
    path.write_bytes(gzip.compress(raw) if gz else raw)
    return path


# ---- image folders ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"image_size": 8.5}, ValueError, r"image_size must be a positive int .* got 8\.5"),
        ({"image_size": True}, ValueError, "image_size must be .* got True"),
        ({"image_size": "64"}, ValueError, "image_size must be .* got '64'"),
        ({"image_size": (4, 0)}, ValueError, r"image_size must be .* got \(4, 0\)"),
        ({"mode": 3}, ValueError, "mode must be 'L', 'RGB' or None, got 3"),
        ({"fit": "zoom"}, ValueError, "fit must be 'crop' or 'stretch', got 'zoom'"),
        ({"on_mismatch": 1}, ValueError, "on_mismatch must be 'skip' or 'error', got 1"),
        ({"on_unreadable": None}, ValueError, "on_unreadable must be"),
        ({"extensions": ".png"}, ValueError, "extensions must be a non-empty tuple"),
        ({"extensions": ("png",)}, ValueError, "extensions must be"),
        ({"lazy": "yes"}, TypeError, "lazy must be True or False, got 'yes'"),
        ({"lazy": True, "cache": 1}, TypeError, "cache must be True or False, got 1"),
    ],
)
def test_folder_wrong_typed_options(tmp_path, options, error, message):
    _png(tmp_path / "a.png")
    with pytest.raises(error, match=message):
        load_image_folder(tmp_path, **options)


def test_folder_bad_paths(tmp_path):
    with pytest.raises(TypeError, match="path must be a str or a path, got int"):
        load_image_folder(3)
    with pytest.raises(FileNotFoundError, match="does not exist or is not a folder"):
        load_image_folder(_png(tmp_path / "file.png"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no image files .* found in .*empty"):
        load_image_folder(tmp_path / "empty")


@pytest.mark.parametrize("lazy", [False, True])
def test_folder_broken_files_are_named(tmp_path, lazy):
    _png(tmp_path / "good.png")
    (tmp_path / "zero.png").write_bytes(b"")
    with pytest.raises(ValueError, match=r"zero\.png.*empty file \(0 bytes\)"):
        load_image_folder(tmp_path, lazy=lazy)
    with pytest.warns(UserWarning, match=r"zero\.png: unreadable \(empty file \(0 bytes\)\)"):
        ds = load_image_folder(tmp_path, on_unreadable="skip", lazy=lazy)
    assert len(ds) == 1
    (tmp_path / "zero.png").unlink()
    (tmp_path / "text.jpg").write_text("this is not a jpeg")  # an image suffix, text inside
    with pytest.raises(ValueError, match=r"cannot read image file .*text\.jpg"):
        load_image_folder(tmp_path, lazy=lazy)


def test_folder_truncated_image(tmp_path):
    _png(tmp_path / "good.png")
    whole = _png(tmp_path / "cut.png", size=(32, 32), seed=1).read_bytes()
    (tmp_path / "cut.png").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match=r"cannot read image file .*cut\.png"):
        load_image_folder(tmp_path)
    with pytest.warns(UserWarning, match=r"cut\.png: unreadable"):
        ds = load_image_folder(tmp_path, on_unreadable="skip")
    assert ds.report.kept == 1


def test_non_image_files_are_counted_not_dropped_silently(tmp_path):
    _png(tmp_path / "a.png")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "labels.csv").write_text("a,0")
    ds = load_image_folder(tmp_path)
    assert ds.report.kept == 1
    assert ds.report.ignored == 2
    assert "ignored 2 non-image file(s)" in ds.report.summary()


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks on this platform")
@pytest.mark.parametrize("lazy", [False, True])
def test_dangling_and_looping_symlinks_are_listed_in_the_report(tmp_path, lazy):
    root = tmp_path / "images"
    _png(root / "a" / "one.png", seed=1)
    _png(tmp_path / "outside.png", seed=2)
    (root / "linked.png").symlink_to(tmp_path / "outside.png")  # a good link is read
    (root / "dangling.png").symlink_to(tmp_path / "gone.png")
    (root / "self.png").symlink_to(root / "self.png")  # loops onto itself
    (root / "a" / "up").symlink_to(root, target_is_directory=True)  # a folder loop
    with pytest.warns(UserWarning, match="skipped 3") as caught:
        ds = load_image_folder(root, lazy=lazy)
    assert len(ds) == 2
    skipped = ds.report.skipped
    assert "dangling symlink to" in skipped[str(root / "dangling.png")]
    assert "gone.png" in skipped[str(root / "dangling.png")]
    assert "symlink loop" in skipped[str(root / "self.png")]
    assert "symlink loop" in skipped[str(root / "a" / "up")]
    assert "dangling.png" in str(caught[0].message)
    # A folder holding only broken links says so instead of "no image files".
    only = tmp_path / "only"
    only.mkdir()
    (only / "x.png").symlink_to(tmp_path / "nothing.png")
    with pytest.raises(ValueError, match=r"(?s)no image files .*dangling symlink"):
        load_image_folder(only, lazy=lazy)


# ---- arrays ----------------------------------------------------------------------------------
def test_array_hostile_inputs(tmp_path):
    with pytest.raises(TypeError, match="path must be a str or a path, got NoneType"):
        load_array(None)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_array(tmp_path / "missing.npy")
    np.save(tmp_path / "obj.npy", np.array([[{"a": 1}]], dtype=object), allow_pickle=True)
    for lazy in (False, True):
        with pytest.raises(ValueError, match=r"cannot read '.*obj\.npy' without unpickling"):
            load_array(tmp_path / "obj.npy", lazy=lazy)
    np.savez(tmp_path / "obj.npz", x=np.array([[1, {"a": 1}]], dtype=object))
    with pytest.raises(
        ValueError, match=r"cannot read array 'x' of '.*obj\.npz' without unpickling"
    ):
        load_array(tmp_path / "obj.npz")
    x = np.zeros((3, 4, 4), np.uint8)
    np.savez(tmp_path / "float-labels.npz", x=x, y=np.array([0.0, 1.7, 2.2]))
    with pytest.raises(TypeError, match=r"float-labels\.npz: labels must be integers, got dtype"):
        load_array(tmp_path / "float-labels.npz", key="x", label_key="y")
    np.savez(tmp_path / "negative.npz", x=x, y=np.array([0, -1, 2]))
    with pytest.raises(ValueError, match="labels must be >= 0, got -1"):
        load_array(tmp_path / "negative.npz", key="x", label_key="y")
    np.savez(tmp_path / "short-labels.npz", x=x, y=np.array([0, 1]))
    with pytest.raises(ValueError, match=r"labels must have shape \(3,\), got \(2,\)"):
        load_array(tmp_path / "short-labels.npz", key="x", label_key="y")
    nan = np.zeros((2, 3), np.float32)
    nan[1, 2] = np.inf
    np.save(tmp_path / "inf.npy", nan)
    with pytest.raises(ValueError, match=r"inf\.npy: 1 values are NaN or infinite"):
        load_array(tmp_path / "inf.npy")
    np.save(tmp_path / "complex.npy", np.zeros((2, 3), np.complex64))
    with pytest.raises(TypeError, match=r"complex\.npy: expected a numeric array, got dtype"):
        load_array(tmp_path / "complex.npy")
    np.save(tmp_path / "struct.npy", np.zeros((2, 3), dtype=[("a", "u1"), ("b", "f4")]))
    with pytest.raises(TypeError, match=r"struct\.npy: .*structured arrays are refused"):
        load_array(tmp_path / "struct.npy")
    np.save(tmp_path / "empty.npy", np.zeros((0, 4), np.float32))
    with pytest.raises(ValueError, match=r"N > 0 and no empty axis, got shape \(0, 4\)"):
        load_array(tmp_path / "empty.npy", lazy=True)
    whole = (tmp_path / "inf.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(whole[:-5])
    with pytest.raises(ValueError, match=r"cannot read '.*cut\.npy'"):
        load_array(tmp_path / "cut.npy")
    (tmp_path / "zero.npy").write_bytes(b"")
    with pytest.raises(ValueError, match=r"cannot read '.*zero\.npy'"):
        load_array(tmp_path / "zero.npy")
    with pytest.raises(ValueError, match="layout must be 'auto', 'nchw' or 'nhwc', got 3"):
        load_array(tmp_path / "inf.npy", layout=3)
    with pytest.raises(TypeError, match="lazy must be True or False"):
        load_array(tmp_path / "inf.npy", lazy="no")
    with pytest.raises(ValueError, match="cannot be memory-mapped"):
        load_array(tmp_path / "negative.npz", key="x", lazy=True)
    with pytest.raises(TypeError, match="key must be a string or None, got 0"):
        load_array(tmp_path / "negative.npz", key=0)


# ---- IDX -------------------------------------------------------------------------------------
@pytest.mark.parametrize("gz", [False, True])
def test_idx_header_declaring_huge_sizes_is_refused_before_allocating(tmp_path, gz):
    huge = _idx(tmp_path / "huge", 0x08, (2**32 - 1, 2**32 - 1, 2**32 - 1), b"\x00" * 64, gz=gz)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"truncated or padded: shape \(4294967295, "):
            read_idx(huge)
        with pytest.raises(ValueError, match="truncated or padded"):
            load_idx_images(huge, lazy=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20  # megabytes at most, never the 8e28 bytes the header asks for


def test_idx_hostile_inputs(tmp_path):
    with pytest.raises(ValueError, match="not an IDX file: expected magic bytes"):
        read_idx(_idx(tmp_path / "magic", 0x07, (2,), b"\x00\x00"))
    (tmp_path / "short").write_bytes(b"\x00\x00\x08\x03\x00\x00")
    with pytest.raises(ValueError, match="header of 3 dimensions is incomplete"):
        read_idx(tmp_path / "short")
    with pytest.raises(ValueError, match="declares 0 dimensions"):
        read_idx(_idx(tmp_path / "zero-dims", 0x08, ()))
    (tmp_path / "bad.gz").write_bytes(b"\x1f\x8b\x08\x00" + b"garbage" * 10)
    with pytest.raises(ValueError, match="looks gzipped but cannot be decompressed"):
        read_idx(tmp_path / "bad.gz")
    with pytest.raises(ValueError, match=r"truncated or padded.*needs 8 bytes of data, found 9"):
        read_idx(_idx(tmp_path / "padded", 0x08, (2, 2, 2), b"\x00" * 9))
    images = _idx(tmp_path / "images", 0x08, (3, 2, 2), b"\x00" * 12)
    float_labels = _idx(tmp_path / "labels", 0x0D, (3,), struct.pack(">3f", 0.5, 1.5, 2.0))
    with pytest.raises(TypeError, match="labels must be integers, got dtype float32"):
        load_idx_images(images, float_labels)
    signed = _idx(tmp_path / "signed", 0x0B, (2, 2, 2), b"\x00" * 16)
    with pytest.raises(TypeError, match="signed integer arrays"):
        load_idx_images(signed)
    flat = _idx(tmp_path / "flat", 0x08, (3, 4), b"\x00" * 12)
    with pytest.raises(ValueError, match=r"holds shape \(3, 4\); expected \(N, H, W\) images"):
        load_idx_images(flat)
    with pytest.raises(TypeError, match="lazy must be True or False"):
        load_idx_images(images, lazy=1)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_idx(tmp_path / "missing")


def test_mnist_layout_hostile_inputs(tmp_path):
    with pytest.raises(ValueError, match=r"split must be 'train' or 'test', got \['train'\]"):
        load_mnist(tmp_path, ["train"])
    with pytest.raises(ValueError, match="split must be 'train' or 'test', got 'val'"):
        load_mnist(tmp_path, "val")
    with pytest.raises(TypeError, match="path must be a str or a path, got int"):
        load_mnist(5)
    with pytest.raises(FileNotFoundError, match=r"MNIST folder .* does not exist"):
        load_mnist(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        load_mnist(tmp_path)
    _idx(tmp_path / "train-images-idx3-ubyte", 0x08, (2, 2, 2), b"\x00" * 8)
    _idx(tmp_path / "train-labels-idx1-ubyte", 0x0E, (2,), struct.pack(">2d", 0.0, 1.0))
    with pytest.raises(TypeError, match="labels must be integers, got dtype float64"):
        load_mnist(tmp_path)
    with pytest.raises(TypeError, match="path must be a str, a path or None, got int"):
        load_fashion_mnist(3)
    with pytest.raises(ValueError, match="split must be 'train' or 'test', got 'all'"):
        load_fashion_mnist(tmp_path, "all")


# ---- toy sets and load_dataset ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("gaussian_ring", {"n": True}, "n must be a positive int, got True"),
        ("gaussian_ring", {"n": 2.5}, r"n must be a positive int, got 2\.5"),
        ("gaussian_ring", {"num_modes": 0}, "num_modes must be a positive integer, got 0"),
        ("gaussian_ring", {"std": float("nan")}, "std must be a finite number, got nan"),
        ("gaussian_grid", {"side": 2.0}, r"side must be a positive integer, got 2\.0"),
        ("gaussian_grid", {"spacing": -1.0}, "spacing must be in"),
        ("correlated_gaussian", {"correlation": 1.0}, r"correlation must be in \(-1, 1\)"),
        ("correlated_gaussian", {"std": (0.0, 1.0)}, "std must be in"),
        ("correlated_gaussian", {"mean": "00"}, "mean must be a pair of numbers"),
        ("correlated_gaussian", {"seed": 1.5}, r"seed must be an integer, got 1\.5"),
    ],
)
def test_toy_hostile_options(name, options, message):
    with pytest.raises((ValueError, TypeError), match=message):
        load_toy(name, **options)


def test_load_dataset_hostile_specs(tmp_path):
    with pytest.raises(TypeError, match="non-empty string, got 5"):
        load_dataset(5)
    with pytest.raises(TypeError, match="non-empty string, got ''"):
        load_dataset("")
    with pytest.raises(ValueError, match="unknown toy dataset 'spiral'"):
        load_dataset("toy:spiral")
    with pytest.raises(ValueError, match="mnist needs the folder"):
        load_dataset("mnist:")
    with pytest.raises(TypeError, match=r"takes only \['lazy'\], got \['image_size'\]"):
        load_dataset(f"mnist:{tmp_path}", image_size=4)
    with pytest.raises(ValueError, match="hf: needs a dataset"):
        load_dataset("hf:")
    _png(tmp_path / "imgs" / "a.png")
    with pytest.raises(ValueError, match=r"image_size must be .* got 8\.5"):
        load_dataset(str(tmp_path / "imgs"), image_size=8.5)
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        load_dataset(str(tmp_path / "imgs"), colour="RGB")
    (tmp_path / "data.bin").write_bytes(b"\x00")
    with pytest.raises(ValueError, match="cannot tell how to read"):
        load_dataset(str(tmp_path / "data.bin"))
