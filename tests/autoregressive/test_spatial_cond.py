"""Spatial conditioning (``cond_channels`` / ``cond_map``) of the grid priors.

Exact dependency sets by autograd in float64 (codes: causal; map: the designed field), fast ==
naive and cached == naive samples with a map, closed forms (zero projection == the unconditioned
model; a constant map == a class embedding), errors, and the Hub round trip.
"""

from __future__ import annotations

import itertools
import json
import re

import pytest
import torch
import torch.nn.functional as F

from vqkit import GatedPixelCNN, PixelCNN
from vqkit.autoregressive import TransformerPrior, grid_dependencies, raster_before
from vqkit.autoregressive.checks import cond_map_dependencies

K, S = 5, 3


def gated(**kw) -> GatedPixelCNN:
    torch.manual_seed(0)
    args = {
        "num_embeddings": K,
        "hidden_channels": 6,
        "num_layers": 3,
        "first_kernel_size": 3,
        "head_channels": 12,
        "cond_channels": S,
    }
    return GatedPixelCNN(**{**args, **kw}).double()


def pixelcnn(**kw) -> PixelCNN:
    torch.manual_seed(0)
    args = {"num_embeddings": K, "hidden_channels": 8, "num_layers": 2, "head_channels": 16}
    return PixelCNN(**{**args, "cond_channels": S, **kw}).double()


def transformer(**kw) -> TransformerPrior:
    torch.manual_seed(0)
    args = {"num_embeddings": K, "embed_dim": 8, "num_layers": 2, "num_heads": 2, "max_size": 8}
    model = TransformerPrior(**{**args, "cond_channels": S, **kw}).double()
    with torch.no_grad():  # GPT-2's N(0, 0.02) init makes every distribution nearly uniform
        model.head.weight.mul_(40.0)
        if model.map_proj is not None:
            model.map_proj.weight.mul_(40.0)
    return model


MAKERS = {"gated_pixelcnn": gated, "pixelcnn": pixelcnn, "transformer": transformer}


def a_map(n: int, size: tuple[int, int], seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return 2 * torch.randn(n, S, *size, generator=gen, dtype=torch.float64)


def draw(model, n, size, seed=0, **kw):
    return model.sample(n, size, generator=torch.Generator().manual_seed(seed), **kw)


# ------------------------------------------------------------------------- dependency sets
@pytest.mark.parametrize("name", MAKERS)
@pytest.mark.parametrize("size", [(4, 5), (3, 2)])
def test_causal_in_the_codes_with_a_map(name, size):
    model = MAKERS[name]()
    dep = grid_dependencies(model, size)  # (H, W, H, W), a random map present
    for i, j in itertools.product(range(size[0]), range(size[1])):
        before = raster_before(size, (i, j))
        if name == "gated_pixelcnn":
            assert torch.equal(dep[i, j], model.receptive_field(size, (i, j))), (i, j)
        elif name == "transformer":
            assert torch.equal(dep[i, j], before), (i, j)
        else:
            assert not (dep[i, j] & ~before).any(), (i, j)


@pytest.mark.parametrize(
    ("size", "first", "k", "layers"),
    [((4, 6), 3, 3, 3), ((3, 7), 5, 3, 2), ((5, 4), 3, 5, 2), ((3, 3), 3, 3, 1)],
)
def test_gated_sees_the_map_exactly_in_its_field(size, first, k, layers):
    """The map at the own position and around it matters (box of half-width Q, rows <= i)."""
    model = gated(first_kernel_size=first, kernel_size=k, num_layers=layers)
    dep = cond_map_dependencies(model, size)  # (H, W, H, W)
    for i, j in itertools.product(range(size[0]), range(size[1])):
        field = model.cond_map_field(size, (i, j))
        assert field[i, j]
        assert torch.equal(dep[i, j], field), (i, j)
    if layers > 1:  # beyond the own position: rows above and columns to the right too
        q = model.reach - model.layers[0].pad
        assert q > 0
        assert dep[size[0] - 1, 0, size[0] - 2, 1]


def test_transformer_sees_the_map_up_to_its_own_position():
    size = (3, 4)
    model = transformer()
    dep = cond_map_dependencies(model, size)
    for i, j in itertools.product(range(3), range(4)):
        own = torch.zeros(size, dtype=torch.bool)
        own[i, j] = True
        assert torch.equal(dep[i, j], raster_before(size, (i, j)) | own), (i, j)


def test_pixelcnn_sees_the_map_at_its_own_position_and_only_before_it():
    size = (4, 4)
    dep = cond_map_dependencies(pixelcnn(), size)
    for i, j in itertools.product(range(4), range(4)):
        allowed = raster_before(size, (i, j))
        allowed[i, j] = True
        assert dep[i, j, i, j]
        assert not (dep[i, j] & ~allowed).any()
    assert dep[3, 3, 2, 3]  # and the masked convolutions spread it


def test_cond_map_dependencies_needs_a_spatial_prior():
    with pytest.raises(ValueError, match="cond_channels=None"):
        cond_map_dependencies(gated(cond_channels=None), (3, 3))


# ---------------------------------------------------------------------- exact samplers agree
@pytest.mark.parametrize(
    ("model_kw", "sample_kw"),
    [
        ({}, {}),
        ({"first_kernel_size": 5, "num_layers": 4}, {"temperature": 0.6}),
        ({"num_classes": 3}, {"cond": torch.tensor([0, 1, 2, 1])}),
        ({"kernel_size": 5, "num_layers": 1}, {"temperature": 1.7}),
    ],
)
@pytest.mark.parametrize("size", [(3, 4), (2, 5)])
def test_gated_fast_equals_naive_with_a_map(model_kw, sample_kw, size):
    model = gated(**model_kw)
    s = a_map(4, size)
    naive = draw(model, 4, size, method="naive", cond_map=s, **sample_kw)
    fast = draw(model, 4, size, method="fast", cond_map=s, **sample_kw)
    assert torch.equal(naive, fast)
    assert naive.unique().numel() > 1
    # the map matters: another map gives other codes from the same random numbers
    other = draw(model, 4, size, cond_map=a_map(4, size, seed=1), **sample_kw)
    assert not torch.equal(other, fast)


@pytest.mark.parametrize("first", [True, False])
@torch.no_grad()
def test_layer_steps_with_a_map_equal_the_forward_pass(first):
    """step_map + vertical_row + horizontal_step reproduce GatedLayer.forward with a map."""
    layer = gated(num_classes=2, first_kernel_size=5).layers[0 if first else 1]
    n, c, h, w, p = 3, layer.channels, 4, 5, layer.pad
    gen = torch.Generator().manual_seed(0)
    v, hh = torch.randn(2, n, c, h, w, generator=gen, dtype=torch.float64)
    cond, s = torch.tensor([0, 1, 1]), a_map(n, (h, w))
    v_out, h_out, skip = layer(v, hh, cond, s)  # (n, C, H, W) each
    weights, maps = layer.step_weights(), layer.step_map(s)  # maps: (n, H, W, 4C)
    assert maps.shape == (n, h, w, 4 * c)
    v_pad = F.pad(v, (p, p, p, 0)).permute(0, 2, 3, 1)  # (n, H + p, W + 2p, C)
    h_pad = F.pad(hh, (p, 0)).permute(0, 2, 3, 1)  # (n, H, W + p, C)
    gated_row = torch.empty(n, c + 1, dtype=torch.float64)
    buffers = layer.step_buffers(gated_row)
    out = torch.empty(n, c, dtype=torch.float64)
    for i in range(h):
        window = v_pad[:, i : i + layer.vertical_reach]
        v_row, link = layer.vertical_row(weights, window, cond, maps[:, i])
        torch.testing.assert_close(v_row, v_out[:, :, i].transpose(1, 2))
        for j in range(w):
            h_window = h_pad[:, i, j : j + layer.horizontal_reach].reshape(n, -1)
            residual = None if first else hh[:, :, i, j]
            layer.horizontal_step(weights, buffers, h_window, link[:, j], residual, out)
            torch.testing.assert_close(out, h_out[:, :, i, j])
            torch.testing.assert_close(gated_row @ weights.skip, skip[:, :, i, j])
    with pytest.raises(ValueError, match="cond_map"):
        layer(v, hh, cond)


@pytest.mark.parametrize(
    ("model_kw", "n", "size"),
    [({}, 1, (1, 1)), ({}, 2, (1, 6)), ({}, 3, (5, 1)), ({"kernel_size": 1}, 2, (3, 3))],
)
def test_gated_fast_equals_naive_with_a_map_on_odd_grids(model_kw, n, size):
    model = gated(**model_kw)
    s = a_map(n, size)
    naive = draw(model, n, size, method="naive", cond_map=s)
    assert torch.equal(naive, draw(model, n, size, method="fast", cond_map=s))


def test_gated_fast_equals_naive_in_float32_with_completion_and_broadcast():
    model = gated(hidden_channels=8).float()
    n, size = 3, (3, 4)
    s = a_map(1, size).float()  # one map, broadcast over the batch
    given = torch.randint(0, K, (n, *size))
    mask = torch.rand(n, *size) < 0.4
    out = {
        m: draw(model, n, size, seed=3, method=m, cond_map=s, given=given, given_mask=mask)
        for m in ("naive", "fast")
    }
    assert torch.equal(out["naive"], out["fast"])
    assert torch.equal(out["fast"][mask], given[mask])
    full = s.expand(n, -1, -1, -1)
    expanded = draw(model, n, size, seed=3, cond_map=full, given=given, given_mask=mask)
    assert torch.equal(expanded, out["fast"])


@pytest.mark.parametrize("sample_kw", [{}, {"top_k": 3, "temperature": 0.8}, {"top_p": 0.7}])
def test_transformer_cached_equals_naive_with_a_map(sample_kw):
    model = transformer(num_classes=2)
    size, s = (3, 4), a_map(3, (3, 4))
    kw = {"cond": torch.tensor([0, 1, 1]), "cond_map": s, **sample_kw}
    naive = draw(model, 3, size, method="naive", **kw)
    cached = draw(model, 3, size, method="cached", **kw)
    assert torch.equal(naive, cached)
    assert naive.unique().numel() > 1


def test_pixelcnn_samples_follow_its_map_conditional_likelihood():
    model = pixelcnn()
    s = a_map(2, (3, 3))
    codes = draw(model, 2, (3, 3), cond_map=s)
    assert codes.shape == (2, 3, 3)
    assert torch.isfinite(model.log_prob(codes, cond_map=s)).all()


# ----------------------------------------------------------------------------- closed forms
@pytest.mark.parametrize("name", MAKERS)
def test_zero_projection_is_exactly_the_unconditioned_model(name):
    model = MAKERS[name]()
    plain = MAKERS[name](cond_channels=None)
    with torch.no_grad():
        for module in model.modules():
            if getattr(module, "map_proj", None) is not None:
                module.map_proj.weight.zero_()
    missing, unexpected = plain.load_state_dict(model.state_dict(), strict=False)
    assert not missing
    assert unexpected
    assert all("map_proj" in k for k in unexpected)
    size, s = (3, 4), a_map(2, (3, 4))
    x = torch.randint(0, K, (2, *size))
    assert torch.equal(model(x, cond_map=s), plain(x))
    assert torch.equal(draw(model, 2, size, cond_map=s), draw(plain, 2, size))


def test_gated_constant_map_equals_a_class_embedding():
    """A constant map s adds V's at every position: exactly a one-class model's embedding."""
    model = gated()
    classed = gated(cond_channels=None, num_classes=1)
    classed.load_state_dict(model.state_dict(), strict=False)
    c = torch.tensor([0.7, -1.3, 2.0], dtype=torch.float64)
    with torch.no_grad():
        for layer, target in zip(model.layers, classed.layers, strict=True):
            weight = layer.map_proj.weight[:, :, 0, 0]  # (4C, S)
            v, h = (weight @ c).chunk(2)
            target.cond_v.weight.copy_(v[None])
            target.cond_h.weight.copy_(h[None])
    size = (4, 3)
    x = torch.randint(0, K, (2, *size))
    s = c.view(1, S, 1, 1).expand(2, S, *size)
    torch.testing.assert_close(model(x, cond_map=s), classed(x, cond=0), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", MAKERS)
def test_loss_is_the_mean_nll_per_position_and_trains_the_projection(name):
    model = MAKERS[name]()
    x, s = torch.randint(0, K, (3, 3, 4)), a_map(3, (3, 4))
    out = model.loss(x, cond_map=s)
    torch.testing.assert_close(out.loss, -model.log_prob(x, cond_map=s).mean() / 12)
    out.loss.backward()
    grads = [m.map_proj.weight.grad for m in model.modules() if getattr(m, "map_proj", None)]
    assert grads
    assert all(g is not None for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", ["gated_pixelcnn", "transformer"])
def test_class_and_map_combine(name):
    model = MAKERS[name](num_classes=3)
    x, s = torch.randint(0, K, (2, 3, 3)), a_map(2, (3, 3))
    base = model(x, torch.tensor([0, 1]), cond_map=s)
    assert not torch.allclose(base, model(x, torch.tensor([2, 2]), cond_map=s))
    assert not torch.allclose(base, model(x, torch.tensor([0, 1]), cond_map=s + 1))


# ----------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("name", MAKERS)
@pytest.mark.parametrize("method", ["forward", "log_prob", "loss", "sample"])
def test_bad_maps_are_refused_with_the_expected_shape(name, method):
    model = MAKERS[name]()
    x = torch.randint(0, K, (2, 3, 4))

    def call(cond_map):
        if method == "sample":
            return model.sample(2, (3, 4), cond_map=cond_map)
        return getattr(model, method)(x, cond_map=cond_map)

    good = a_map(2, (3, 4))
    with pytest.raises(ValueError, match=r"spatially conditioned \(cond_channels=3\).*\(2"):
        call(None)
    bad_shapes = [good[:, :2], good[..., :3], good[:, :, :2], good[0], torch.cat([good, good])]
    if method != "sample":
        bad_shapes.append(good[:1])  # only sample broadcasts a batch of 1
    for bad in bad_shapes:
        got = re.escape(str(tuple(bad.shape)))
        with pytest.raises(ValueError, match=rf"shape \(2.*, 3, 3, 4\).*got {got}"):
            call(bad)
    for value in (float("nan"), float("inf")):
        bad = good.clone()
        bad[1, 2, 0, 3] = value
        with pytest.raises(ValueError, match="cond_map must be finite, got 1 NaN"):
            call(bad)
    with pytest.raises(TypeError, match=r"floating-point tensor, got dtype torch\.int64"):
        call(torch.zeros(2, S, 3, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="got ndarray"):
        call(good.numpy())
    with pytest.raises(ValueError, match="meta"):
        call(good.to("meta"))
    model = MAKERS[name](cond_channels=None)  # `call` now uses the unconditioned model
    with pytest.raises(ValueError, match=r"no spatial conditioning \(cond_channels=None\)"):
        call(good)


@pytest.mark.parametrize("name", MAKERS)
@pytest.mark.parametrize("value", [0, -2, 1.5, True, "3"])
def test_bad_cond_channels_are_refused(name, value):
    with pytest.raises(ValueError, match="cond_channels must be a positive integer"):
        MAKERS[name](cond_channels=value)


def test_pixelcnn_without_blocks_refuses_a_map():
    with pytest.raises(ValueError, match="num_layers >= 1"):
        pixelcnn(num_layers=0)


def test_a_float32_map_is_cast_to_the_model_dtype():
    model = gated()  # float64
    x, s = torch.randint(0, K, (2, 3, 3)), a_map(2, (3, 3))
    torch.testing.assert_close(model(x, cond_map=s.float()), model(x, cond_map=s.float().double()))


# ------------------------------------------------------------------------------------- Hub
@pytest.mark.parametrize("name", MAKERS)
def test_save_load_round_trip_keeps_the_map(name, tmp_path):
    model = MAKERS[name]().float().eval()
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["cond_channels"] == S
    loaded = type(model).from_pretrained(tmp_path)
    assert loaded.cond_channels == S
    x, s = torch.randint(0, K, (2, 3, 4)), a_map(2, (3, 4)).float()
    assert torch.equal(loaded.log_prob(x, cond_map=s), model.log_prob(x, cond_map=s))


# ------------------------------------------------------------------------------ it learns
@pytest.mark.parametrize("name", ["gated_pixelcnn", "transformer"])
def test_a_map_holding_the_answer_is_learned(name):
    """Uniform random codes cost log K nats per position without the map; a map holding the
    codes' one-hot vectors at their own positions lets the prior copy them."""
    torch.manual_seed(0)
    if name == "gated_pixelcnn":
        model = GatedPixelCNN(4, 8, 2, first_kernel_size=3, head_channels=16, cond_channels=4)
    else:
        model = TransformerPrior(4, 16, 1, 2, max_size=3, cond_channels=4)
    codes = torch.randint(0, 4, (64, 3, 3))
    s = F.one_hot(codes, 4).permute(0, 3, 1, 2).float()  # (64, 4, 3, 3)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-2)
    for _ in range(20):
        optimizer.zero_grad()
        loss = model.loss(codes, cond_map=s).loss
        loss.backward()
        optimizer.step()
    assert float(loss.detach()) < 0.25 * torch.log(torch.tensor(4.0))
