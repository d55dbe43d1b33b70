"""The Gated PixelCNN's incremental steps (used by the fast sampler) against the full forward pass,
and the fast sampler's code paths: odd grids, given positions, kernel size 1, batch 1."""

from __future__ import annotations

import ast
import inspect

import pytest
import torch
import torch.nn.functional as F

import vqkit.autoregressive.gated_sampling as gated_sampling
from vqkit import GatedPixelCNN

K = 4


def tiny_gated(**kw) -> GatedPixelCNN:
    torch.manual_seed(2)
    args = {
        "num_embeddings": K,
        "hidden_channels": 5,
        "num_layers": 3,
        "first_kernel_size": 3,
        "head_channels": 7,
    }
    return GatedPixelCNN(**{**args, **kw}).double()


def sample(model, *args, seed=0, **kw):
    return model.sample(*args, generator=torch.Generator().manual_seed(seed), **kw)


@pytest.mark.parametrize(("first", "kernel_size"), [(True, 3), (True, 5), (False, 3), (False, 1)])
@torch.no_grad()
def test_layer_steps_equal_the_forward_pass(first, kernel_size):
    """vertical_row + horizontal_step, position by position, reproduce GatedLayer.forward."""
    model = tiny_gated(num_classes=2, first_kernel_size=5 if first else 3, kernel_size=kernel_size)
    layer = model.layers[0] if first else model.layers[1]
    for module in layer.modules():  # large class embeddings and biases, so that they matter
        if isinstance(module, torch.nn.Embedding):
            torch.nn.init.normal_(module.weight)
    n, c, h, w, p = 3, layer.channels, 4, 6, layer.pad
    gen = torch.Generator().manual_seed(0)
    v, hh = torch.randn(2, n, c, h, w, generator=gen, dtype=torch.float64)
    cond = torch.tensor([0, 1, 1])
    v_out, h_out, skip = layer(v, hh, cond)  # (n, C, H, W) each

    weights = layer.step_weights()
    v_pad = F.pad(v, (p, p, p, 0)).permute(0, 2, 3, 1)  # (n, H + p, W + 2p, C)
    h_pad = F.pad(hh, (p, 0)).permute(0, 2, 3, 1)  # (n, H, W + p, C)
    gated = torch.empty(n, c + 1, dtype=torch.float64)
    buffers = layer.step_buffers(gated)
    out = torch.empty(n, c, dtype=torch.float64)
    reach = layer.horizontal_reach
    for i in range(h):
        v_row, link = layer.vertical_row(weights, v_pad[:, i : i + layer.vertical_reach], cond)
        torch.testing.assert_close(v_row, v_out[:, :, i].transpose(1, 2))
        for j in range(w):
            window = h_pad[:, i, j : j + reach].reshape(n, -1)
            residual = None if first else hh[:, :, i, j]
            layer.horizontal_step(weights, buffers, window, link[:, j], residual, out)
            torch.testing.assert_close(out, h_out[:, :, i, j])
            torch.testing.assert_close(gated @ weights.skip, skip[:, :, i, j])
    assert torch.equal(gated[:, c], torch.ones(n, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"gated must have shape \(N, 6\)"):
        layer.step_buffers(torch.empty(n, c))


@torch.no_grad()
def test_head_step_equals_forward():
    model = tiny_gated()
    x = torch.randn(6, model.hidden_channels, dtype=torch.float64)
    expected = model.head(x[:, :, None, None])[:, :, 0, 0]
    torch.testing.assert_close(model.head.step(model.head.step_weights(), x.clone()), expected)


@pytest.mark.parametrize(
    ("model_kw", "n", "size"),
    [
        ({}, 1, (1, 1)),
        ({}, 2, (1, 7)),
        ({}, 3, (6, 1)),
        ({"kernel_size": 1}, 3, (4, 5)),
        ({"num_layers": 1}, 2, (3, 4)),
        ({"first_kernel_size": 7, "num_layers": 2}, 4, (2, 9)),
    ],
)
def test_fast_equals_naive_on_odd_grids_and_kernels(model_kw, n, size):
    model = tiny_gated(**model_kw)
    naive = sample(model, n, size, method="naive", temperature=1.3)
    fast = sample(model, n, size, method="fast", temperature=1.3)
    assert torch.equal(naive, fast)
    assert fast.shape == (n, *size)
    assert fast.dtype == torch.long


def test_fast_equals_naive_with_fully_and_partly_known_positions():
    model = tiny_gated(num_classes=3)
    n, h, w = 5, 4, 4
    given = torch.randint(0, K, (n, h, w), generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(n, h, w, dtype=torch.bool)
    mask[:, 1] = True  # a row known for every sample: head and draw skipped there
    mask[0, 2, :2] = True  # positions known for some samples only
    mask[3, 3, 3] = True
    cond = torch.tensor([0, 1, 2, 0, 1])
    out = {
        m: sample(model, n, (h, w), cond, given=given, given_mask=mask, method=m, seed=5)
        for m in ("naive", "fast")
    }
    assert torch.equal(out["naive"], out["fast"])
    assert torch.equal(out["fast"][mask], given[mask])


def test_fast_sampler_returns_an_ordinary_tensor():
    """The sampler runs in inference mode inside; its result must be usable like any tensor."""
    model = tiny_gated()
    codes = sample(model, 2, (3, 3))
    assert not codes.is_inference()
    codes[0, 0, 0] = 1  # in-place writes are allowed
    assert model.log_prob(codes).shape == (2,)


def test_fast_sampler_uses_only_the_documented_steps():
    """No import cycle, no indexing of the head, no private convolutions of the layers."""
    source = inspect.getsource(gated_sampling)
    imported = [
        node.module
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom) and node.module
    ]
    assert "vqkit.autoregressive.gated_pixelcnn" not in imported
    assert "head[" not in source
    for private in ("v_conv", "h_conv", "v_to_h", "h_out", "cond_v", "cond_h"):
        assert f".{private}" not in source, private


def test_state_dict_keys_are_those_of_release_0_1_0():
    model = tiny_gated(num_layers=2, num_classes=2)
    layer_keys = [
        f"layers.{i}.{conv}.{p}"
        for i in range(2)
        for conv in ("v_conv", "h_conv", "v_to_h", "h_out")
        for p in ("weight", "bias")
    ] + [f"layers.{i}.cond_{s}.weight" for i in range(2) for s in ("v", "h")]
    expected = {
        "embedding.weight",
        "head.1.weight",
        "head.1.bias",
        "head.3.weight",
        "head.3.bias",
        *layer_keys,
    }
    assert set(model.state_dict()) == expected
