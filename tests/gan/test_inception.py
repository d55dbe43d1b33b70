"""FIDInceptionV3: the FID variant's blocks, the input path, the converter and its errors.

Random weights throughout (the published file is never downloaded). The 299×299 forward is
exercised with the resize target patched to 75 pixels (the smallest input the network takes), so
the whole file stays fast.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vqkit.train import inception as inc
from vqkit.train.inception import (
    FEATURE_DIM,
    PTH_URL,
    FIDInceptionV3,
    InceptionA,
    InceptionE,
    convert_inception_weights,
    inception_features,
)


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return FIDInceptionV3(random_init=True, resize=False)


@pytest.fixture(scope="module")
def images():
    return torch.rand(3, 3, 75, 75, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def published(tmp_path_factory, net):
    """A ``.pth`` laid out like pytorch-fid's file: torchvision names, the 1008-way ``fc``."""
    state = dict(net.state_dict())
    state["fc.weight"] = torch.zeros(1008, FEATURE_DIM)
    state["fc.bias"] = torch.zeros(1008)
    path = tmp_path_factory.mktemp("pth") / "pt_inception.pth"
    torch.save(state, path)
    return path


def test_features_are_2048_wide_and_grayscale_is_repeated_rgb(net, images):
    with torch.no_grad():
        f = net(images)
        gray = net(images[:, :1])
        rgb = net(images[:, :1].expand(-1, 3, -1, -1))
    assert f.shape == (3, FEATURE_DIM)
    assert f.dtype == torch.float32
    assert torch.isfinite(f).all()
    assert f.std() > 0
    assert torch.equal(gray, rgb)
    assert not any(p.requires_grad for p in net.parameters())
    net.train()
    assert not net.training  # BatchNorm keeps its running statistics


def test_names_are_torchvisions():
    shapes = FIDInceptionV3.expected_shapes()
    assert shapes["Conv2d_1a_3x3.conv.weight"] == (32, 3, 3, 3)
    assert shapes["Mixed_5b.branch_pool.conv.weight"] == (32, 192, 1, 1)
    assert shapes["Mixed_6e.branch7x7dbl_5.conv.weight"] == (192, 192, 1, 7)
    assert shapes["Mixed_7c.branch3x3dbl_3b.bn.running_var"] == (384,)
    assert not any(k.startswith(("fc.", "AuxLogits.")) for k in shapes)
    conv = [k for k in shapes if k.endswith("conv.weight")]
    assert len(conv) == 94  # Inception-v3's 94 conv + BatchNorm units


def _bilinear_f64(x: torch.Tensor, size: int) -> torch.Tensor:
    """Half-pixel bilinear resize (align_corners=False, edges clamped), by the definition."""
    x = x.double()
    h, w = x.shape[-2:]

    def taps(n_in: int):
        rows = []
        for i in range(size):
            src = max((i + 0.5) * n_in / size - 0.5, 0.0)
            i0 = min(math.floor(src), n_in - 1)
            i1 = min(i0 + 1, n_in - 1)
            rows.append((i0, i1, src - i0))
        return rows

    m_h = torch.zeros(size, h, dtype=torch.float64)
    for i, (a, b, t) in enumerate(taps(h)):
        m_h[i, a] += 1 - t
        m_h[i, b] += t
    m_w = torch.zeros(size, w, dtype=torch.float64)
    for i, (a, b, t) in enumerate(taps(w)):
        m_w[i, a] += 1 - t
        m_w[i, b] += t
    return m_h @ x @ m_w.T


def test_preprocess_resizes_to_299_bilinear_and_scales_to_minus_one_one():
    net = FIDInceptionV3.__new__(FIDInceptionV3)
    torch.nn.Module.__init__(net)
    net.resize = True
    x = torch.rand(2, 1, 28, 25, generator=torch.Generator().manual_seed(2))
    y = net.preprocess(x)
    assert y.shape == (2, 3, 299, 299)
    expected = 2 * _bilinear_f64(x, 299) - 1
    assert torch.allclose(y.double(), expected.expand(-1, 3, -1, -1), atol=1e-5)
    assert torch.equal(net.preprocess(torch.zeros(1, 3, 9, 9)), -torch.ones(1, 3, 299, 299))
    ones = net.preprocess(torch.ones(1, 3, 9, 9))
    assert torch.allclose(ones, torch.ones(1, 3, 299, 299), atol=1e-6)


def test_forward_resizes_then_runs_the_network(net, monkeypatch):
    monkeypatch.setattr(inc, "INPUT_SIZE", 75)  # the 299 path at the smallest size it takes
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    net.resize = True
    try:
        with torch.no_grad():
            resized = net(x)
    finally:
        net.resize = False
    small = F.interpolate(x.expand(-1, 3, -1, -1), size=(75, 75), mode="bilinear")
    with torch.no_grad():
        assert torch.allclose(resized, net(small), atol=1e-6)


def _branch_pool_input(block, x):
    seen = []
    handle = block.branch_pool.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    with torch.no_grad():
        block(x)
    handle.remove()
    return seen[0].double()


def _window(x: torch.Tensor, reduce: str) -> torch.Tensor:
    """3×3 stride-1 pool over the pixels inside the image only (float64 loops)."""
    x = x.double()
    out = torch.empty_like(x)
    h, w = x.shape[-2:]
    for i in range(h):
        for j in range(w):
            patch = x[..., max(i - 1, 0) : i + 2, max(j - 1, 0) : j + 2]
            flat = patch.flatten(-2)
            out[..., i, j] = flat.mean(-1) if reduce == "mean" else flat.amax(-1)
    return out


def test_fid_blocks_pool_like_the_tf_graph():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 6, 7)
    # A, C and Mixed_7b: the average excludes the zero padding (TF's avg_pool).
    a = InceptionA(5, 4).eval()
    assert torch.allclose(_branch_pool_input(a, x), _window(x, "mean"), atol=1e-6)
    assert torch.equal(inc._tf_avg_pool(torch.ones(1, 1, 4, 4)), torch.ones(1, 1, 4, 4))
    # Mixed_7c: a max pool in the FID graph.
    e_max, e_avg = InceptionE(5, "max").eval(), InceptionE(5, "avg").eval()
    assert torch.equal(_branch_pool_input(e_max, x), _window(x, "max"))
    assert torch.allclose(_branch_pool_input(e_avg, x), _window(x, "mean"), atol=1e-6)
    net = FIDInceptionV3.__new__(FIDInceptionV3)
    torch.nn.Module.__init__(net)
    with torch.device("meta"):
        net._build()
    assert net.Mixed_7b.pool == "avg"
    assert net.Mixed_7c.pool == "max"
    with pytest.raises(ValueError, match="pool must be 'avg' or 'max'"):
        InceptionE(5, "min")


def test_converter_round_trip(tmp_path, net, published, images):
    out = convert_inception_weights(published, tmp_path / "sub" / "fid.safetensors")
    from safetensors.torch import load_file

    keys = set(load_file(str(out)))
    assert keys == set(FIDInceptionV3.expected_shapes())
    loaded = FIDInceptionV3(weights=out, resize=False)
    with torch.no_grad():
        assert torch.equal(loaded(images), net(images))
    assert not list(tmp_path.glob("**/*.partial"))


def test_converter_command_line(tmp_path, published, capsys):
    out = tmp_path / "fid.safetensors"
    assert inc.main(["--pth", str(published), "--out", str(out)]) == 0
    assert out.is_file()
    assert "wrote" in capsys.readouterr().out
    assert inc.main(["--pth", str(tmp_path / "none.pth"), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "does not exist" in err
    assert PTH_URL in err


def test_converter_rejects_wrong_files(tmp_path, monkeypatch):
    out = tmp_path / "fid.safetensors"
    torch.save({"Conv2d_1a_3x3.conv.weight": torch.zeros(32, 3, 3, 3)}, tmp_path / "part.pth")
    with pytest.raises(ValueError, match=r"missing \['Conv2d_1a_3x3.bn.bias', .* \.\.\."):
        convert_inception_weights(tmp_path / "part.pth", out)
    # The shape and unexpected-key checks, on a two-tensor layout (a full file is 87 MB).
    layout = {"Mixed_5b.branch1x1.bn.weight": (64,), "Mixed_7c.branch1x1.bn.bias": (320,)}
    monkeypatch.setattr(FIDInceptionV3, "expected_shapes", staticmethod(lambda: layout))
    good = {"Mixed_5b.branch1x1.bn.weight": torch.ones(64), "fc.weight": torch.zeros(2, 2)}
    torch.save({**good, "Mixed_7c.branch1x1.bn.bias": torch.zeros(3)}, tmp_path / "shape.pth")
    with pytest.raises(ValueError, match=r"Mixed_7c.branch1x1.bn.bias has shape \(3,\), expected"):
        convert_inception_weights(tmp_path / "shape.pth", out)
    extra = {**good, "Mixed_7c.branch1x1.bn.bias": torch.zeros(320), "head.w": torch.zeros(1)}
    torch.save(extra, tmp_path / "extra.pth")
    with pytest.raises(ValueError, match=r"unexpected \['head.w'\]"):
        convert_inception_weights(tmp_path / "extra.pth", out)
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="not a state dict"):
        convert_inception_weights(tmp_path / "list.pth", out)
    with pytest.raises(FileNotFoundError, match="pt_inception-2015-12-05"):
        convert_inception_weights(tmp_path / "absent.pth", out)
    assert not out.exists()
    assert not list(tmp_path.glob("*.partial"))
    # fc.* is dropped, the rest is written
    del extra["head.w"]
    torch.save(extra, tmp_path / "ok.pth")
    from safetensors.torch import load_file

    assert set(load_file(str(convert_inception_weights(tmp_path / "ok.pth", out)))) == set(layout)


def test_missing_weights_say_what_to_get(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError) as info:
        FIDInceptionV3(weights=tmp_path / "nope.safetensors")
    message = str(info.value)
    assert PTH_URL in message
    assert "python -m vqkit.train.inception" in message
    assert "nope.safetensors" in message
    assert "Nothing is downloaded" in message
    monkeypatch.setattr(inc, "DEFAULT_WEIGHTS", tmp_path / "default.safetensors")
    with pytest.raises(FileNotFoundError, match=r"default\.safetensors"):
        FIDInceptionV3()


def test_load_rejects_a_foreign_safetensors_file(tmp_path):
    from safetensors.torch import save_file

    save_file({"backbone.convs.conv1_1.weight": torch.zeros(1)}, str(tmp_path / "lpips.st"))
    with pytest.raises(ValueError, match="not an FID Inception file"):
        FIDInceptionV3(weights=tmp_path / "lpips.st")


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"random_init": True, "weights": "x"}, ValueError, "at most one"),
        ({"random_init": 1}, TypeError, "random_init must be True or False"),
        ({"random_init": True, "resize": "yes"}, TypeError, "resize must be True or False"),
        ({"weights": 3}, TypeError, "weights must be a file path"),
        ({"repo_id": ""}, TypeError, "repo_id must be a non-empty string"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        FIDInceptionV3(**kwargs)


@pytest.mark.parametrize(
    ("x", "error", "match"),
    [
        ([[0.0]], TypeError, "images must be a tensor"),
        (torch.zeros(2, 3, 80, 80, dtype=torch.uint8), TypeError, "floating point in"),
        (torch.zeros(3, 80, 80), ValueError, r"got \(3, 80, 80\)"),
        (torch.zeros(2, 2, 80, 80), ValueError, r"\(N, 3, H, W\) or \(N, 1, H, W\)"),
        (torch.zeros(0, 3, 80, 80), ValueError, "empty batch"),
        (torch.zeros(1, 3, 74, 80), ValueError, "at least 75×75, got 74×80"),
        (torch.full((1, 3, 80, 80), math.nan), ValueError, "NaN or infinite"),
        (torch.zeros(1, 3, 80, 80, device="meta"), ValueError, "meta"),
    ],
)
def test_bad_input(net, x, error, match):
    with pytest.raises(error, match=match):
        net(x)


def test_inception_features_batches_and_checks(net, images):
    with torch.no_grad():
        whole = net(images)
    assert torch.allclose(inception_features(net, images, batch_size=2), whole, atol=1e-6)
    with pytest.raises(TypeError, match="net must be FIDInceptionV3"):
        inception_features(torch.nn.Identity(), images)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        inception_features(net, images, batch_size=0)
    with pytest.raises(ValueError, match="empty batch"):
        inception_features(net, images[:0])
