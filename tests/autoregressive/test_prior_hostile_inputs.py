"""Hostile and careless input to every public entry point of the priors and samplers: each is
refused with an error naming what was expected and what came (never garbage, never code 0)."""

from __future__ import annotations

import pytest
import torch

from vqkit import MADE, GatedPixelCNN, MADEFlowPrior, MaskedConv2d, MaskedLinear, PixelCNN
from vqkit.autoregressive import GatedLayer, grid_dependencies
from vqkit.autoregressive.sampling import draw_codes

K = 4
TINY = {"num_embeddings": K, "hidden_channels": 4, "num_layers": 1, "head_channels": 6}
GRID_PRIORS = {
    "pixelcnn": lambda **kw: PixelCNN(**{**TINY, **kw}),
    "gated_pixelcnn": lambda **kw: GatedPixelCNN(**{**TINY, "first_kernel_size": 3, **kw}),
}
LONG = torch.long


def codes(*shape, device="cpu"):
    return torch.zeros(*shape, dtype=LONG, device=device)


BAD_GRID_CONSTRUCTOR = [
    ({"num_embeddings": 1}, ValueError, r"num_embeddings must be an int >= 2 .*got 1"),
    ({"num_embeddings": 4.0}, ValueError, r"num_embeddings must be an int >= 2 .*got 4\.0"),
    ({"num_embeddings": True}, ValueError, r"num_embeddings must be an int >= 2 .*got True"),
    ({"hidden_channels": 0}, ValueError, r"hidden_channels must be a positive integer, got 0"),
    ({"hidden_channels": "8"}, ValueError, r"hidden_channels must be a positive integer, got '8'"),
    ({"num_layers": -1}, ValueError, r"num_layers must be"),
    ({"num_layers": 1.5}, TypeError, r"num_layers must be an integer|positive integer"),
    ({"kernel_size": 4}, ValueError, r"kernel_size must be an odd int >= 1, got 4"),
    ({"kernel_size": None}, ValueError, r"kernel_size must be an odd int"),
    ({"first_kernel_size": 1}, ValueError, r"first_kernel_size must be an odd int >= 3, got 1"),
    ({"head_channels": 0}, ValueError, r"head_channels must be a positive integer, got 0"),
    ({"num_classes": 0}, ValueError, r"num_classes must be a positive integer, got 0"),
    ({"num_classes": True}, ValueError, r"num_classes must be a positive integer, got True"),
    ({"dtype": torch.int64}, TypeError, r"dtype must be a floating torch.dtype or None"),
    ({"dtype": "float32"}, TypeError, r"dtype must be a floating torch.dtype or None"),
    ({"device": 3.5}, TypeError, r"device must be a torch.device, a str or None, got float"),
]


@pytest.mark.parametrize("name", GRID_PRIORS)
@pytest.mark.parametrize(("kw", "error", "message"), BAD_GRID_CONSTRUCTOR)
def test_grid_prior_constructor_refuses(name, kw, error, message):
    if name == "pixelcnn" and kw.get("num_layers") == 1.5:
        error = TypeError  # PixelCNN allows 0 blocks: an integer check, not a positive one
    elif kw.get("num_layers") == 1.5:
        error = ValueError
    owner = {"pixelcnn": "PixelCNN", "gated_pixelcnn": "GatedPixelCNN"}[name]
    with pytest.raises(error, match=message) as info:
        GRID_PRIORS[name](**kw)
    assert str(info.value).startswith(owner)


def test_gated_layer_constructor_refuses():
    with pytest.raises(ValueError, match="GatedLayer: channels must be a positive integer"):
        GatedLayer(0, 3, first=False)
    with pytest.raises(TypeError, match="GatedLayer: first must be True or False, got 'yes'"):
        GatedLayer(4, 3, first="yes")
    with pytest.raises(ValueError, match=r"kernel_size \(of the first layer\) must be an odd"):
        GatedLayer(4, 1, first=True)
    with pytest.raises(ValueError, match="kernel_size must be an odd int >= 1, got 2"):
        GatedLayer(4, 2, first=False)
    with pytest.raises(ValueError, match="num_classes must be a positive integer"):
        GatedLayer(4, 3, first=False, num_classes=-2)
    with pytest.raises(TypeError, match="dtype must be a floating"):
        GatedLayer(4, 3, first=False, dtype=torch.bool)


BAD_INDICES = [
    ([[[0, 1]]], TypeError, r"must be a torch\.Tensor"),
    (torch.zeros(1, 2, 2), TypeError, r"integer tensor .*got dtype torch\.float32"),
    (torch.zeros(1, 2, 2, dtype=torch.bool), TypeError, r"integer tensor .*torch\.bool"),
    (codes(2, 2), ValueError, r"shape \(B, H, W\), got \(2, 2\)"),
    (codes(1, 1, 2, 2), ValueError, r"shape \(B, H, W\), got \(1, 1, 2, 2\)"),
    (torch.tensor([[[0, K]]]), ValueError, rf"\[0, {K}\).*got values in \[0, {K}\]"),
    (torch.tensor([[[-3, 0]]]), ValueError, r"got values in \[-3, 0\]"),
    (codes(1, 0, 3), ValueError, r"non-empty grid, got shape \(1, 0, 3\)"),
    (torch.zeros(1, 2, 2, dtype=LONG, device="meta"), ValueError, r"'meta' device"),
]


@pytest.mark.parametrize("name", GRID_PRIORS)
@pytest.mark.parametrize("entry", ["forward", "log_prob", "loss"])
@pytest.mark.parametrize(("indices", "error", "message"), BAD_INDICES)
def test_grid_prior_refuses_bad_indices(name, entry, indices, error, message):
    model = GRID_PRIORS[name]()
    with pytest.raises(error, match=message):
        getattr(model, entry)(indices)


@pytest.mark.parametrize("name", GRID_PRIORS)
def test_grid_prior_empty_batch(name):
    """An empty batch has empty logits and log-likelihoods, and no defined mean loss."""
    model = GRID_PRIORS[name]()
    assert model(codes(0, 3, 4)).shape == (0, K, 3, 4)
    assert model.log_prob(codes(0, 3, 4)).shape == (0,)
    with pytest.raises(ValueError, match=r"loss: the batch is empty .*\(0, 3, 4\)"):
        model.loss(codes(0, 3, 4))


@pytest.mark.parametrize("name", GRID_PRIORS)
def test_grid_prior_refuses_bad_cond(name):
    model = GRID_PRIORS[name](num_classes=3)
    x = codes(2, 2, 2)
    with pytest.raises(ValueError, match="class-conditional"):
        model(x)
    with pytest.raises(TypeError, match="cond must be an int or an int64 tensor"):
        model(x, cond=1.0)
    with pytest.raises(TypeError, match="cond must be an int or an int64 tensor"):
        model(x, cond=True)
    with pytest.raises(TypeError, match=r"integer class labels, got dtype torch\.float32"):
        model(x, cond=torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"cond labels must lie in \[0, 3\), got values in"):
        model(x, cond=torch.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"cond must have shape \(2,\)"):
        model(x, cond=torch.tensor([[0, 1]]))
    with pytest.raises(ValueError, match="'meta' device"):
        model(x, cond=torch.zeros(2, dtype=LONG, device="meta"))


BAD_SAMPLE_ARGS = [
    ({"n": 0}, ValueError, r"n \(the number of samples\) must be a positive integer, got 0"),
    ({"n": True}, ValueError, r"n \(the number of samples\) must be a positive integer, got True"),
    ({"n": 2.0}, ValueError, r"n \(the number of samples\) must be a positive integer, got 2\.0"),
    ({"temperature": 0.0}, ValueError, r"temperature must be > 0, got 0\.0"),
    ({"temperature": -1}, ValueError, r"temperature must be > 0, got -1"),
    ({"temperature": float("nan")}, ValueError, r"temperature must be a finite number, got nan"),
    ({"temperature": float("inf")}, ValueError, r"temperature must be a finite number, got inf"),
    ({"temperature": "1"}, TypeError, r"temperature must be a positive float, got '1'"),
    ({"temperature": True}, TypeError, r"temperature must be a positive float, got True"),
    ({"generator": 0}, TypeError, r"generator must be a torch\.Generator or None, got int"),
    ({"generator": "seed"}, TypeError, r"generator must be a torch\.Generator or None, got str"),
    ({"size": (2, 0)}, ValueError, r"size must be a pair of positive ints \(H, W\), got \(2, 0\)"),
    ({"size": (2.0, 2)}, ValueError, r"size must be a pair of positive ints"),
    ({"size": (True, 2)}, ValueError, r"size must be a pair of positive ints"),
    ({"size": 4}, ValueError, r"size must be a pair of positive ints"),
    ({"method": None}, ValueError, r"unknown method None"),
    ({"given": torch.zeros(2, 2)}, TypeError, r"given must be an integer tensor .*torch\.float32"),
    ({"given": torch.ones(2, 2, dtype=torch.bool)}, TypeError, r"given must be an integer .*bool"),
    ({"given": [[0, 1], [1, 0]]}, TypeError, r"given must be an integer tensor of codes, got list"),
    ({"given": codes(3, 2, 2)}, ValueError, r"given must have shape \(2, H, W\) or \(H, W\)"),
    ({"given": codes(2, 2, 0)}, ValueError, r"given must have a non-empty grid"),
    ({"given": torch.full((2, 2), K)}, ValueError, rf"given codes .* \[0, {K}\), got values in"),
    ({"given": codes(2, 2), "given_mask": torch.ones(2, 2)}, TypeError, r"given_mask must be a"),
    ({"given": codes(2, 2), "given_mask": torch.ones(3, dtype=torch.bool)}, ValueError, r"bro"),
    ({"given_mask": torch.ones(2, 2, dtype=torch.bool)}, ValueError, r"given_mask .* without"),
    ({"given": codes(2, 2, device="meta")}, ValueError, r"given is on the 'meta' device"),
]


@pytest.mark.parametrize("name", GRID_PRIORS)
@pytest.mark.parametrize(("kw", "error", "message"), BAD_SAMPLE_ARGS)
def test_grid_sampler_refuses(name, kw, error, message):
    model = GRID_PRIORS[name]()
    args = {"n": 2, "size": (2, 2), **kw}
    if "given" in kw and "size" not in kw:
        args["size"] = None
    with pytest.raises(error, match=message):
        model.sample(**args)


@pytest.mark.parametrize("name", GRID_PRIORS)
def test_grid_sampler_refuses_a_model_or_generator_on_the_wrong_device(name):
    model = GRID_PRIORS[name]()
    meta = GRID_PRIORS[name](device="meta")
    with pytest.raises(ValueError, match=r"generator is on cpu but the model is on meta"):
        meta.sample(1, (2, 2), generator=torch.Generator())
    with pytest.raises(ValueError, match=r"the model is on the 'meta' device"):
        meta.sample(1, (2, 2))
    assert model.sample(1, (2, 2), generator=torch.Generator(device="cpu")).shape == (1, 2, 2)


@pytest.mark.parametrize("method", ["naive", "fast"])
def test_nan_logits_are_an_error_not_code_zero(method):
    model = GRID_PRIORS["gated_pixelcnn"]()
    with torch.no_grad():
        model.head[3].bias[1] = float("nan")
    with pytest.raises(ValueError, match=r"draw_codes: the logits of rows \[0, 1\] hold NaN"):
        model.sample(2, (2, 2), method=method)


def test_draw_codes_refuses_undefined_distributions_and_keeps_minus_inf():
    u = torch.full((3,), 0.5, dtype=torch.float64)
    ninf = float("-inf")
    ok = torch.tensor([[0.0, ninf, 0.0], [ninf, ninf, 1.0], [1.0, 1.0, ninf]])
    assert draw_codes(ok, u, 1.0).tolist() == [2, 2, 1]  # -inf categories are never drawn
    for bad_row in ([0.0, float("nan"), 0.0], [0.0, float("inf"), 0.0], [ninf, ninf, ninf]):
        logits = torch.tensor([[0.0, 1.0, 2.0], bad_row, [0.0, 0.0, 0.0]])
        with pytest.raises(ValueError, match=r"rows \[1\] hold NaN or \+inf, or are all -inf"):
            draw_codes(logits, u, 1.0)


BAD_MASKED_CONV = [
    ({"in_channels": 0}, ValueError, r"MaskedConv2d: in_channels must be a positive integer"),
    ({"out_channels": 2.0}, ValueError, r"MaskedConv2d: out_channels must be a positive integer"),
    ({"kernel_size": 2}, ValueError, r"kernel_size must be a positive odd int .*got 2"),
    ({"kernel_size": (3, True)}, ValueError, r"kernel_size must be a positive odd int"),
    ({"kernel_size": (3, 3, 3)}, ValueError, r"kernel_size must be a positive odd int"),
    ({"mask_type": "a"}, ValueError, r"mask_type must be one of \['A', 'B'\], got 'a'"),
    ({"data_channels": 0}, ValueError, r"data_channels must be a positive integer, got 0"),
    ({"data_channels": 3}, ValueError, r"multiple of data_channels=3"),
    ({"bias": "no"}, TypeError, r"MaskedConv2d: bias must be True or False, got 'no'"),
]


@pytest.mark.parametrize(("kw", "error", "message"), BAD_MASKED_CONV)
def test_masked_conv_constructor_refuses(kw, error, message):
    args = {"in_channels": 2, "out_channels": 4, "kernel_size": 3, **kw}
    with pytest.raises(error, match=message):
        MaskedConv2d(**args)


def test_masked_conv_forward_refuses():
    conv = MaskedConv2d(2, 2, 3)
    with pytest.raises(TypeError, match=r"MaskedConv2d: input must be a torch\.Tensor, got list"):
        conv([[0.0]])
    with pytest.raises(TypeError, match=r"floating-point tensor, got dtype torch\.int64"):
        conv(torch.zeros(1, 2, 3, 3, dtype=LONG))
    with pytest.raises(ValueError, match=r"expected input \(B, 2, H, W\), got \(2, 3, 3\)"):
        conv(torch.zeros(2, 3, 3))
    with pytest.raises(ValueError, match=r"expected input \(B, 2, H, W\), got \(1, 3, 3, 3\)"):
        conv(torch.zeros(1, 3, 3, 3))
    with pytest.raises(ValueError, match="'meta' device"):
        conv(torch.zeros(1, 2, 3, 3, device="meta"))
    assert conv(torch.zeros(0, 2, 3, 3)).shape == (0, 2, 3, 3)  # an empty batch is fine


def test_masked_linear_refuses():
    with pytest.raises(ValueError, match="MaskedLinear: in_features must be a positive integer"):
        MaskedLinear(0, 3)
    with pytest.raises(ValueError, match="MaskedLinear: out_features must be a positive integer"):
        MaskedLinear(3, True)
    with pytest.raises(TypeError, match="MaskedLinear: bias must be True or False, got 1"):
        MaskedLinear(3, 3, bias=1)
    layer = MaskedLinear(3, 2)
    with pytest.raises(TypeError, match=r"input must be a torch\.Tensor"):
        layer((1.0, 2.0, 3.0))
    with pytest.raises(TypeError, match=r"floating-point tensor, got dtype torch\.int64"):
        layer(torch.zeros(1, 3, dtype=LONG))
    with pytest.raises(ValueError, match=r"expected input \(\*, 3\), got \(\)"):
        layer(torch.tensor(1.0))
    with pytest.raises(ValueError, match="'meta' device"):
        layer(torch.zeros(1, 3, device="meta"))
    with pytest.raises(TypeError, match="mask must be a tensor, got list"):
        layer.set_mask([[1, 0, 0], [1, 1, 0]])
    with pytest.raises(ValueError, match="mask must hold only 0 and 1"):
        layer.set_mask(torch.full((2, 3), 0.5))
    with pytest.raises(ValueError, match="mask must hold only 0 and 1"):
        layer.set_mask(torch.full((2, 3), float("nan")))
    layer.set_mask(torch.tensor([[True, False, False], [True, True, False]]))
    assert layer.mask.dtype == layer.weight.dtype


BAD_MADE = [
    ({"num_features": 0}, ValueError, r"MADE: num_features must be a positive integer, got 0"),
    ({"num_features": 3.0}, ValueError, r"MADE: num_features must be a positive integer"),
    ({"num_embeddings": 2.5}, ValueError, r"num_embeddings must be an int >= 2"),
    ({"hidden_features": 16}, ValueError, r"hidden_features must be a list of positive ints"),
    ({"hidden_features": [16, 0]}, ValueError, r"hidden_features must be a list of positive"),
    ({"hidden_features": [True]}, ValueError, r"hidden_features must be a list of positive"),
    ({"num_masks": 0}, ValueError, r"num_masks must be a positive integer, got 0"),
    ({"ordering": "shuffled"}, ValueError, r"ordering must be one of"),
    ({"order_agnostic": "yes"}, TypeError, r"order_agnostic must be True or False, got 'yes'"),
    ({"seed": -1}, ValueError, r"seed must be in \[0, 2147483647\], got -1"),
    ({"seed": 1.5}, TypeError, r"seed must be an integer, got 1\.5"),
    ({"dtype": torch.int32}, TypeError, r"dtype must be a floating torch.dtype"),
]


@pytest.mark.parametrize(("kw", "error", "message"), BAD_MADE)
def test_made_constructor_refuses(kw, error, message):
    args = {"num_features": 3, "num_embeddings": 3, "hidden_features": [8], **kw}
    with pytest.raises(error, match=message):
        MADE(**args)


def test_made_sampler_refuses():
    made = MADE(3, 3, hidden_features=[8], num_masks=2)
    for kw, error, message in [
        ({"n": 0}, ValueError, r"n \(the number of samples\) must be a positive integer"),
        ({"n": True}, ValueError, r"must be a positive integer, got True"),
        ({"temperature": float("nan")}, ValueError, "temperature must be a finite number"),
        ({"temperature": 0}, ValueError, "temperature must be > 0"),
        ({"generator": 1}, TypeError, r"generator must be a torch\.Generator or None"),
        ({"mask_index": 2}, ValueError, r"mask_index must be in \[0, 1\], got 2"),
        ({"mask_index": -1}, ValueError, r"mask_index must be in \[0, 1\], got -1"),
        ({"mask_index": True}, TypeError, r"mask_index must be an integer, got True"),
        ({"size": (4,)}, ValueError, r"must hold num_features=3 values"),
        ({"size": (1.5, 2)}, ValueError, r"size must be a tuple of positive ints"),
        ({"cond": 0}, ValueError, "MADE is unconditional"),
    ]:
        with pytest.raises(error, match=message):
            made.sample(**{"n": 2, **kw})
    with pytest.raises(ValueError, match="the model is on the 'meta' device"):
        MADE(3, 3, hidden_features=[8], device="meta").sample(2)
    with pytest.raises(ValueError, match=r"MADE\.loss: the batch is empty"):
        made.loss(codes(0, 3))
    with pytest.raises(ValueError, match=r"mask_index must be an int in \[0, 2\), got True"):
        made(codes(1, 3), mask_index=True)
    with pytest.raises(ValueError, match="'meta' device"):
        made(codes(1, 3, device="meta"))


def test_made_flow_prior_refuses():
    for kw, error, message in [
        ({"dim": 0}, ValueError, r"MADEFlowPrior: dim must be a positive integer, got 0"),
        ({"dim": True}, ValueError, r"dim must be a positive integer, got True"),
        ({"min_scale": 0.0}, ValueError, r"min_scale must be in \(0, 1\), got 0\.0"),
        ({"min_scale": float("nan")}, ValueError, r"min_scale must be a finite number, got nan"),
        ({"min_scale": "0.1"}, ValueError, r"min_scale must be a finite number"),
        ({"hidden_features": (8, -1)}, ValueError, r"hidden_features must be a list of positive"),
        ({"ordering": 3}, ValueError, r"ordering must be one of"),
        ({"seed": "0"}, TypeError, r"seed must be an integer"),
    ]:
        with pytest.raises(error, match=message):
            MADEFlowPrior(**{"dim": 3, "hidden_features": (8,), **kw})
    flow = MADEFlowPrior(3, hidden_features=(8,))
    for z, error, message in [
        ([[0.0, 0.0, 0.0]], TypeError, "z must be a floating-point tensor"),
        (torch.zeros(2, 3, dtype=LONG), TypeError, "z must be a floating-point tensor"),
        (torch.zeros(3), ValueError, r"z must have shape \(B, 3\), got \(3,\)"),
        (torch.zeros(2, 4), ValueError, r"z must have shape \(B, 3\), got \(2, 4\)"),
        (torch.zeros(2, 3, device="meta"), ValueError, "z is on the 'meta' device"),
    ]:
        with pytest.raises(error, match=message):
            flow.log_prob(z)
    with pytest.raises(ValueError, match="eps must have shape"):
        flow.inverse(torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"MADEFlowPrior\.loss: the batch is empty"):
        flow.loss(torch.zeros(0, 3))
    for n, generator, error, message in [
        (0, None, ValueError, "n must be a positive integer, got 0"),
        (True, None, ValueError, "n must be a positive integer, got True"),
        (2, 5, TypeError, r"generator must be a torch\.Generator or None, got int"),
    ]:
        with pytest.raises(error, match=message):
            flow.sample(n, generator=generator)
    with pytest.raises(ValueError, match="the prior is on the 'meta' device"):
        MADEFlowPrior(3, hidden_features=(8,), device="meta").sample(2)


def test_receptive_field_and_grid_dependencies_refuse_bad_grids():
    model = GRID_PRIORS["gated_pixelcnn"]()
    for size, position, message in [
        ((0, 3), (0, 0), r"size must be a pair of positive ints \(H, W\), got \(0, 3\)"),
        ((3,), (0, 0), r"size must be a pair of positive ints"),
        ((3, 3.0), (0, 0), r"size must be a pair of positive ints"),
        ((3, 3), (3, 0), r"position must be a pair of ints \(i, j\) inside the grid \(3, 3\)"),
        ((3, 3), (-1, 0), r"position must be a pair of ints"),
        ((3, 3), (True, 0), r"position must be a pair of ints"),
        ((3, 3), None, r"position must be a pair of ints"),
    ]:
        with pytest.raises(ValueError, match=message):
            model.receptive_field(size, position)
        if position is not None:
            with pytest.raises(ValueError, match=message):
                grid_dependencies(model, size, position)
    with pytest.raises(TypeError, match=r"prior must be a GridPrior .*got MADE"):
        grid_dependencies(MADE(4, 2, hidden_features=[4]), (2, 2))
