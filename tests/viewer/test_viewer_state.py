"""The viewer's computations (vqkit.viewer.state), checked against the model contract and brute
force: shown codes are encode_indices, an edited grid decodes as decode_indices, usage counts
are counts, completions keep the kept codes, and bad input is refused with a clear message."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image
from viewer_helpers import tiny_vqvae

import vqkit
from vqkit.data import ArrayDataset
from vqkit.train.metrics import ssim
from vqkit.viewer import ViewerState, code_grid_svg, edit_codes, load_viewer_state, save_png
from vqkit.viewer.pictures import atlas_picture, panel, usage_histogram


@pytest.fixture
def state(model, images) -> ViewerState:
    return ViewerState(model, images, name="tiny")


def test_the_viewer_state_imports_no_ui():
    import subprocess
    import sys

    code = "import sys; sys.modules['gradio'] = None; import vqkit.viewer; print('ok')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_shown_indices_are_encode_indices(state, model, images):
    for i in (0, 7, 19):
        x = images[i]
        shown = state.analyse(x)
        assert torch.equal(shown.indices, model.encode_indices(x[None])[0])
        assert shown.edited == 0
    assert state.latent_size == (4, 4)
    assert state.image_shape == (1, 8, 8)


def test_an_edited_grid_decodes_as_decode_indices(state, model, images):
    x = images[2]
    codes = state.encode(x)
    code = (int(codes[1, 2]) + 1) % 8
    edited = edit_codes(codes, 1, 2, code, 8)
    assert edited[1, 2] == code
    assert int((edited != codes).sum()) == 1
    shown = state.analyse(x, edited)
    expected = model.decode_indices(edited[None])[0].clamp(0, 1)
    assert torch.equal(shown.reconstruction, expected)
    assert torch.equal(shown.indices, edited)
    assert shown.edited == 1
    assert not torch.equal(shown.reconstruction, state.analyse(x).reconstruction)
    assert torch.equal(shown.difference, (x - expected).abs())


def test_a_rectangle_edit_is_cut_at_the_border():
    codes = torch.arange(16).view(4, 4) % 8
    out = edit_codes(codes, 2, 3, 5, 8, height=3, width=2)
    expected = codes.clone()
    for i in range(4):
        for j in range(4):
            if 2 <= i < 5 and 3 <= j < 5:
                expected[i, j] = 5
    assert torch.equal(out, expected)
    assert torch.equal(codes, torch.arange(16).view(4, 4) % 8)  # the input is not changed


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((4, 0, 1), "row must be in [0, 3]"),
        ((0, -1, 1), "col must be in [0, 3]"),
        ((0, 0, 8), "code must be in [0, 7]"),
    ],
)
def test_bad_edits_are_refused(args, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        edit_codes(torch.zeros(4, 4, dtype=torch.long), *args, 8)
    with pytest.raises(TypeError, match="integers"):
        edit_codes(torch.zeros(4, 4), 0, 0, 1, 8)


def test_psnr_and_ssim_are_those_of_the_metrics(state, images):
    x = images[5]
    shown = state.analyse(x)
    err = ((x.double() - shown.reconstruction.double()) ** 2).mean()
    assert shown.psnr == pytest.approx(10 * math.log10(1 / float(err)), rel=1e-5)
    expected = ssim(shown.reconstruction[None], x[None], 1.0, win_size=7)[0]
    assert shown.ssim == pytest.approx(float(expected), abs=1e-6)


def test_usage_counts_every_cell_of_the_dataset(state, model, images):
    brute = Counter()
    for i in range(len(images)):
        brute.update(model.encode_indices(images[i][None]).flatten().tolist())
    usage = state.usage()
    assert usage.shape == (8,)
    assert int(usage.sum()) == 20 * 16
    assert usage.tolist() == [brute.get(k, 0) for k in range(8)]
    few = ViewerState(model, images, max_images=3).usage()
    assert int(few.sum()) == 3 * 16


def test_code_images_decode_a_grid_filled_with_one_code(state, model):
    atlas = state.code_images()
    assert atlas.shape == (8, 1, 8, 8)
    for k in (0, 5):
        grid = torch.full((1, 4, 4), k, dtype=torch.long)
        with torch.no_grad():  # one grid alone: equal up to the rounding of another batch size
            expected = model.decode_indices(grid)[0].clamp(0, 1)
        assert torch.allclose(atlas[k], expected, atol=1e-6, rtol=0)
    assert torch.allclose(state.code_images([3, 1]), atlas[[3, 1]], atol=1e-6, rtol=0)
    assert not torch.allclose(atlas[0], atlas[5], atol=1e-3)


def test_top_patches_come_from_the_images_using_the_code_most(state, images):
    codes = state.dataset_codes()
    code = int(torch.bincount(codes.flatten(), minlength=8).argmax())
    found = state.top_patches(code, 4)
    counts = (codes == code).flatten(1).sum(1)
    ranking = sorted(range(20), key=lambda i: (-int(counts[i]), i))[:4]
    assert [p["image"] for p in found] == [i for i in ranking if counts[i] > 0]
    for p in found:
        assert codes[p["image"], p["row"], p["col"]] == code
        assert p["count"] == int(counts[p["image"]])
        top, left = max(0, 2 * p["row"] - 2), max(0, 2 * p["col"] - 2)
        crop = images[p["image"]][:, top : 2 * p["row"] + 4, left : 2 * p["col"] + 4]
        assert torch.equal(p["patch"], crop)


def test_samples_follow_the_seed_and_the_prior(state, model):
    codes, pictures = state.sample(3, temperature=0.7, seed=11)
    again, _ = state.sample(3, temperature=0.7, seed=11)
    assert torch.equal(codes, again)
    g = torch.Generator().manual_seed(11)
    direct = model.prior.sample(3, (4, 4), temperature=0.7, generator=g)
    assert torch.equal(codes, direct)
    assert torch.equal(pictures, model.decode_indices(direct).clamp(0, 1))


def test_completion_keeps_the_top_rows(state, images):
    codes = state.encode(images[4])
    done, pictures = state.complete(codes, 5, keep_rows=2, seed=1)
    assert done.shape == (5, 4, 4)
    assert pictures.shape == (5, 1, 8, 8)
    assert torch.equal(done[:, :2], codes[None, :2].expand(5, -1, -1))
    kept_all, _ = state.complete(codes, 2, keep_rows=4)
    assert torch.equal(kept_all, codes[None].expand(2, -1, -1))
    with pytest.raises(ValueError, match="keep_rows must be in"):
        state.complete(codes, 2, keep_rows=5)


def test_no_prior_is_a_clear_error(images):
    state = ViewerState(tiny_vqvae(prior=None), images)
    with pytest.raises(ValueError, match="needs a prior"):
        state.sample(2)
    with pytest.raises(ValueError, match="needs a prior"):
        state.complete(torch.zeros(4, 4, dtype=torch.long))


def test_an_upload_is_resized_to_the_model(state):
    picture = Image.new("RGB", (30, 20), (255, 0, 0))
    x = state.prepare_upload(picture)
    assert x.shape == (1, 8, 8)
    assert x.dtype == torch.float32
    grey = round(0.299 * 255) / 255  # Pillow's L conversion of pure red
    assert torch.allclose(x, torch.full_like(x, grey), atol=1 / 255)
    array = np.zeros((16, 16), dtype=np.uint8)
    array[:8] = 255  # top half white
    x = state.prepare_upload(array)
    assert float(x[0, 0, 0]) == 1.0
    assert float(x[0, -1, 0]) == 0.0
    with pytest.raises(ValueError, match=r"\(H, W\) or \(H, W, 1/3/4\)"):
        state.prepare_upload(np.zeros((4, 4, 2), dtype=np.uint8))
    with pytest.raises(TypeError, match="Pillow image or a numpy array"):
        state.prepare_upload("picture.png")


def test_cells_under_a_click(state):
    assert state.cell_at(0, 0, (224, 224)) == (0, 0)
    assert state.cell_at(223.9, 223.9, (224, 224)) == (3, 3)
    assert state.cell_at(60, 120, (224, 224)) == (2, 1)  # x = column, y = row
    with pytest.raises(ValueError, match="x must be in"):
        state.cell_at(224, 0, (224, 224))


def test_the_code_grid_svg_tells_each_cell_and_its_usage(state, images):
    codes = state.encode(images[0])
    usage = state.usage()
    svg = ET.fromstring(code_grid_svg(codes, 8, usage))
    ns = "{http://www.w3.org/2000/svg}"
    cells = svg.findall(f"{ns}g")
    assert len(cells) == 16
    for cell in cells:
        i, j, k = int(cell.get("data-row")), int(cell.get("data-col")), int(cell.get("data-code"))
        assert k == int(codes[i, j])
        title = cell.find(f"{ns}title").text
        assert title.startswith(f"row {i}, column {j}: code {k} (used {int(usage[k])} times")
        assert cell.find(f"{ns}text").text == str(k)


def test_pictures_and_an_atomic_png(state, images, tmp_path):
    picture = panel(state, state.analyse(images[0]))
    assert picture.width > 4 * 8 * state.display_scale(160)
    path = save_png(picture, tmp_path / "out" / "panel.png")
    assert Image.open(path).size == picture.size
    assert [p.name for p in path.parent.iterdir()] == ["panel.png"]  # no temporary left
    with pytest.raises(ValueError, match=r"\.png"):
        save_png(picture, tmp_path / "panel.jpg")
    assert usage_histogram(state).width > 300
    assert atlas_picture(state).height > 8


def test_bad_input_is_refused(state, model, images):
    with pytest.raises(
        ValueError, match=r"expected an image of shape \[1, 8, 8\], got \[1, 8, 4\]"
    ):
        state.analyse(torch.rand(1, 8, 4))
    with pytest.raises(ValueError, match=r"finite and in \[0, 1\]"):
        state.analyse(torch.full((1, 8, 8), float("nan")))
    with pytest.raises(ValueError, match=r"expected a code grid of shape \[4, 4\]"):
        state.decode(torch.zeros(3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"codes must be in \[0, 8\)"):
        state.decode(torch.full((4, 4), 8))
    with pytest.raises(ValueError, match=r"index must be in \[0, 19\]"):
        state.image(20)
    with pytest.raises(ValueError, match="family 'discrete'"):
        ViewerState(vqkit.build("model", {"type": "vae", "hidden_dims": [8]}))
    with pytest.raises(ValueError, match="dataset's images are"):
        ViewerState(model, ArrayDataset(torch.rand(3, 1, 16, 16)))
    with pytest.raises(ValueError, match="is empty"):
        ViewerState(model, torch.utils.data.Subset(images, []))


def test_a_twenty_image_split_and_odd_sizes_work(images):
    odd = tiny_vqvae(image_size=[6, 10])  # 3×5 latents
    data = ArrayDataset(torch.rand(20, 1, 6, 10), name="odd")
    state = ViewerState(odd, data, batch_size=7)
    assert state.latent_size == (3, 5)
    assert int(state.usage().sum()) == 20 * 15
    shown = state.analyse(data[19])
    assert shown.reconstruction.shape == (1, 6, 10)


def test_load_a_saved_model_folder(model, tmp_path):
    folder = tmp_path / "saved"
    model.save_pretrained(str(folder))
    state = load_viewer_state(folder, "digits")
    assert len(state) == 1797
    assert state.image_shape == (1, 8, 8)
    with pytest.raises(ValueError, match="pass one with --data SPEC"):
        load_viewer_state(folder)
    with pytest.raises(FileNotFoundError, match="no such run or model folder"):
        load_viewer_state(tmp_path / "missing")
    with pytest.raises(ValueError, match=r"no config\.json"):
        load_viewer_state(tmp_path)


@pytest.mark.parametrize("preset", ["vqvae-digits", "vqgan-digits"])
def test_any_discrete_family_through_the_contract(preset):
    torch.manual_seed(0)
    model = vqkit.create_model(preset).eval()
    data = ArrayDataset(torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(0)))
    state = ViewerState(model, data)
    shown = state.analyse(data[4])
    assert torch.equal(shown.indices, model.encode_indices(data[4][None])[0])
    edited = edit_codes(shown.indices, 0, 0, (int(shown.indices[0, 0]) + 1) % 32, 32)
    with torch.no_grad():
        expected = model.decode_indices(edited[None])[0].clamp(0, 1)
    assert torch.equal(state.analyse(data[4], edited).reconstruction, expected)
    assert int(state.usage().sum()) == 5 * 16
