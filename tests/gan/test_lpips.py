"""LPIPS with a random backbone: metric properties, parity with a float64 re-derivation, the
converter round trip on fake published files, and the missing-weights error."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import vqkit
from vqkit.losses import lpips as lpips_module
from vqkit.losses.lpips import CHANNELS, LPIPS, convert_lpips_weights, main

CONV_INDICES = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]  # torchvision vgg16().features
WIDTHS = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
          (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]  # fmt: skip


@pytest.fixture(scope="module")
def metric() -> LPIPS:
    torch.manual_seed(0)
    return LPIPS(random_init=True)


def _images(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_identity_symmetry_non_negativity(metric):
    x, y = _images(3, 3, 16, 24, seed=1), _images(3, 3, 16, 24, seed=2)
    assert torch.equal(metric(x, x), torch.zeros(3))
    d = metric(x, y)
    assert d.shape == (3,)
    assert torch.equal(d, metric(y, x))
    assert (d > 0).all()


def test_grayscale_is_the_repeated_rgb(metric):
    x, y = _images(2, 1, 16, 16, seed=3), _images(2, 1, 16, 16, seed=4)
    torch.testing.assert_close(metric(x, y), metric(x.repeat(1, 3, 1, 1), y.repeat(1, 3, 1, 1)))


def test_frozen_but_differentiable_in_the_images(metric):
    metric.train()
    assert not metric.training  # a fixed metric stays in eval mode
    assert not any(p.requires_grad for p in metric.parameters())
    x = _images(1, 3, 16, 16, seed=5).requires_grad_()
    metric(x, _images(1, 3, 16, 16, seed=6)).sum().backward()
    assert x.grad is not None
    assert x.grad.abs().sum() > 0


def test_matches_a_float64_re_derivation(metric):
    x, y = _images(2, 3, 16, 20, seed=7), _images(2, 3, 16, 20, seed=8)
    state = {k: v.double() for k, v in metric.state_dict().items()}
    shift = torch.tensor([-0.030, -0.088, -0.188], dtype=torch.float64).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450], dtype=torch.float64).view(1, 3, 1, 1)
    names = [f"conv{b}_{i}" for b, n in ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3))
             for i in range(1, n + 1)]  # fmt: skip
    taps = {"conv1_2", "conv2_2", "conv3_3", "conv4_3", "conv5_3"}

    def features(img):
        h, out = (img.double() - shift) / scale, []
        for name in names:
            if name.endswith("_1") and name != "conv1_1":
                h = F.max_pool2d(h, 2)
            h = F.relu(F.conv2d(h, state[f"backbone.convs.{name}.weight"],
                                state[f"backbone.convs.{name}.bias"], padding=1))  # fmt: skip
            if name in taps:
                out.append(h / (h.pow(2).sum(1, keepdim=True).sqrt() + 1e-10))
        return out

    expected = sum(
        F.conv2d((a - b) ** 2, state[f"heads.{j}"]).mean((1, 2, 3))
        for j, (a, b) in enumerate(zip(features(x), features(y), strict=True))
    )
    torch.testing.assert_close(metric(x, y).double(), expected, rtol=1e-4, atol=1e-7)


def _fake_published_files(tmp_path, layout: str):
    g = torch.Generator().manual_seed(0)
    vgg = {}
    for index, (c_in, c_out) in zip(CONV_INDICES, WIDTHS, strict=True):
        prefix = f"features.{index}" if layout == "torchvision" else None
        if layout == "taming":
            slice_id = 1 + sum(index >= start for start in (4, 9, 16, 23))
            prefix = f"net.slice{slice_id}.{index}"
        vgg[f"{prefix}.weight"] = torch.randn(c_out, c_in, 3, 3, generator=g)
        vgg[f"{prefix}.bias"] = torch.randn(c_out, generator=g)
    heads = {f"lin{j}.model.1.weight": torch.rand(1, c, 1, 1, generator=g)
             for j, c in enumerate(CHANNELS)}  # fmt: skip
    if layout == "torchvision":
        vgg["classifier.0.weight"] = torch.randn(4, 4, generator=g)  # ignored
        torch.save(vgg, tmp_path / "vgg16.pth")
        torch.save(heads, tmp_path / "heads.pth")
        return tmp_path / "vgg16.pth", tmp_path / "heads.pth", vgg, heads
    torch.save({**vgg, **heads}, tmp_path / "taming_vgg.pth")
    return tmp_path / "taming_vgg.pth", None, vgg, heads


@pytest.mark.parametrize("layout", ["torchvision", "taming"])
def test_converter_round_trip(tmp_path, layout):
    vgg_path, heads_path, vgg, heads = _fake_published_files(tmp_path, layout)
    out = convert_lpips_weights(vgg_path, heads_path, tmp_path / "sub" / "lpips.safetensors")
    assert out.is_file()
    assert not list(out.parent.glob("*.partial"))
    state = LPIPS(weights=out).state_dict()
    first = next(k for k in vgg if k.endswith("0.weight"))
    assert torch.equal(state["backbone.convs.conv1_1.weight"], vgg[first])
    key28 = next(k for k in vgg if ".28.bias" in k)
    assert torch.equal(state["backbone.convs.conv5_3.bias"], vgg[key28])
    for j in range(5):
        assert torch.equal(state[f"heads.{j}"], heads[f"lin{j}.model.1.weight"])


def test_converter_command_line(tmp_path, capsys):
    vgg_path, heads_path, *_ = _fake_published_files(tmp_path, "torchvision")
    out = tmp_path / "cli.safetensors"
    assert main(["--vgg", str(vgg_path), "--heads", str(heads_path), "--out", str(out)]) == 0
    assert out.is_file()
    assert "wrote" in capsys.readouterr().out
    assert main(["--vgg", str(tmp_path / "nope.pth"), "--out", str(tmp_path / "x.st")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "x.st").exists()


def test_converter_rejects_wrong_files(tmp_path):
    vgg_path, heads_path, vgg, _heads = _fake_published_files(tmp_path, "torchvision")
    with pytest.raises(ValueError, match=r"lin0\.model\.1\.weight"):
        convert_lpips_weights(vgg_path, vgg_path, tmp_path / "a.safetensors")  # no heads
    with pytest.raises(ValueError, match=r"features\.0\.weight"):
        convert_lpips_weights(heads_path, heads_path, tmp_path / "b.safetensors")
    torch.save({**vgg, "features.0.weight": torch.zeros(8, 3, 3, 3)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="shape"):
        convert_lpips_weights(tmp_path / "bad.pth", heads_path, tmp_path / "c.safetensors")
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="not a state dict"):
        convert_lpips_weights(tmp_path / "list.pth", heads_path, tmp_path / "d.safetensors")
    assert not list(tmp_path.glob("*.safetensors*"))  # nothing half-written


def test_missing_weights_say_what_to_get(tmp_path, monkeypatch):
    monkeypatch.setattr(lpips_module, "DEFAULT_WEIGHTS", tmp_path / "absent.safetensors")
    with pytest.raises(FileNotFoundError, match=r"vgg16-397923af\.pth") as info:
        LPIPS()
    message = str(info.value)
    assert "weights/v0.1/vgg.pth" in message
    assert "python -m vqkit.losses.lpips" in message
    with pytest.raises(FileNotFoundError, match=r"nothing\.safetensors"):
        LPIPS(weights=tmp_path / "nothing.safetensors")


def test_load_rejects_a_foreign_safetensors_file(tmp_path):
    from safetensors.torch import save_file

    save_file({"weight": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not an LPIPS VGG16 file"):
        LPIPS(weights=tmp_path / "other.safetensors")


def test_registered_as_a_loss():
    assert vqkit.get("loss", "lpips") is LPIPS


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"weights": "a.safetensors", "random_init": True}, ValueError, "at most one"),
        ({"weights": 3}, TypeError, "file path"),
        ({"repo_id": ""}, TypeError, "non-empty string"),
        ({"random_init": "yes"}, TypeError, "random_init must be True or False"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        LPIPS(**kwargs)


@pytest.mark.parametrize(
    ("x", "y", "error", "match"),
    [
        ("img", None, TypeError, "x must be a tensor"),
        (torch.zeros(1, 3, 16, 16, dtype=torch.uint8), None, TypeError, "floating point"),
        (torch.zeros(1, 2, 16, 16), None, ValueError, r"\(B, 3, H, W\)"),
        (torch.zeros(3, 16, 16), None, ValueError, r"\(B, 3, H, W\)"),
        (torch.zeros(0, 3, 16, 16), None, ValueError, "empty batch"),
        (torch.zeros(1, 3, 15, 32), None, ValueError, "at least 16×16"),
        (torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 24), ValueError, "same shape"),
        (torch.zeros(1, 3, 16, 16, device="meta"), None, ValueError, "meta"),
    ],
)
def test_bad_input(metric, x, y, error, match):
    other = torch.zeros(1, 3, 16, 16) if y is None else y
    with pytest.raises(error, match=match):
        metric(x, other)
