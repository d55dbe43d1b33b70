"""The app's callbacks (vqkit.viewer.app), without a browser: what each button and click returns
for the session's image record (the app module imports gradio only when the app is built)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from vqkit.viewer import ViewerState
from vqkit.viewer.app import _Views, to_array


@pytest.fixture
def views(model, images, tmp_path) -> _Views:
    return _Views(ViewerState(model, images, name="tiny"), tmp_path)


def test_next_paint_undo_and_save(views, model, images, tmp_path):
    record, index, *shown = views.step(views.record(images[0], 0), 1)
    assert index == 1
    assert "image 1 of 20" in shown[4]
    codes = model.encode_indices(images[1][None])[0]
    s = views.scale
    assert np.array_equal(shown[1], to_array(views.state.decode(codes), s))
    code = (int(codes[3, 0]) + 1) % 8
    record, *shown = views.paint(record, code, 1, [1.0, 8 * s - 1.0])  # x = 1, y = bottom
    edited = codes.clone()
    edited[3, 0] = code
    assert torch.equal(record["codes"], edited)
    assert np.array_equal(shown[1], to_array(model.decode_indices(edited[None])[0].clamp(0, 1), s))
    assert "**1** cell edited" in shown[4]
    record, *_ = views.paint(record, 0, 3, [4 * s + 1.0, 4 * s + 1.0])  # a 3×3 brush at (2, 2)
    assert torch.equal(record["codes"][1:4, 1:4], torch.zeros(3, 3, dtype=torch.long))
    path = views.save(record)
    assert path.endswith("tiny-image1-edited.png")
    assert Image.open(path).size[0] > 4 * 8
    record, *shown = views.reset(record)
    assert torch.equal(record["codes"], codes)
    with pytest.raises(ValueError, match="code to paint: expected a whole number"):
        views.paint(record, None, 1, [0.0, 0.0])
    with pytest.raises(ValueError, match="pick a dataset image or upload one first"):
        views.reset(None)


def test_upload_samples_completions_and_patches(views):
    record, index, *shown = views.upload(
        Image.new("L", (20, 20), 128), views.record(views.state.image(3), 3)
    )
    assert record["index"] is None
    assert index == 3
    assert shown[4].startswith("upload")
    assert record["x"].shape == (1, 8, 8)
    assert views.samples(1.0, 2, 4).ndim == 3
    assert views.completions(record, 2, 1.0, 0).ndim == 3
    decoded, patches = views.patches(int(views.state.usage().argmax()))
    assert decoded.ndim == 3
    assert patches is not None
    with pytest.raises(ValueError, match="seed: expected a whole number"):
        views.samples(1.0, 1.5, 4)
