"""Hostile input to every public quantizer entry point: each kind of bad argument is refused with
a message naming what was expected and what came (never a raw internal error, never garbage)."""

from __future__ import annotations

import pytest
import torch

from vqkit import FSQ, ResidualVQ, VectorQuantizer
from vqkit.functional import rotate_to

NAN, INF = float("nan"), float("inf")


def cases(*rows):
    return pytest.mark.parametrize(("kwargs", "error", "message"), rows)


@cases(
    ({"ema": "no"}, TypeError, r"ema must be True or False, got 'no'"),
    ({"cosine": 1}, TypeError, r"cosine must be True or False, got 1"),
    ({"channel_last": None}, TypeError, r"channel_last must be True or False, got None"),
    ({"check_finite": "false"}, TypeError, r"check_finite must be True or False"),
    ({"bias_correction": 0}, TypeError, r"bias_correction must be True or False"),
    ({"kmeans_init": "yes"}, TypeError, r"kmeans_init must be True or False"),
    ({"sync_distributed": 1.0}, TypeError, r"sync_distributed must be True or False"),
    ({"dim": True}, ValueError, r"dim must be a positive integer, got True"),
    ({"codebook_size": 8.0}, ValueError, r"codebook_size must be a positive integer, got 8.0"),
    ({"codebook_dim": -2}, ValueError, r"codebook_dim must be a positive integer, got -2"),
    ({"kmeans_iters": 0}, ValueError, r"kmeans_iters must be a positive integer, got 0"),
    ({"usage_window": 2.5}, ValueError, r"usage_window must be a positive integer, got 2.5"),
    ({"chunk_size": "big"}, ValueError, r"chunk_size must be a positive integer, got 'big'"),
    ({"decay": NAN}, ValueError, r"decay must be a finite number, got nan"),
    ({"decay": -0.1}, ValueError, r"decay must be in \[0.0, 1.0\), got -0.1"),
    ({"eps": INF}, ValueError, r"eps must be a finite number, got inf"),
    ({"commitment_weight": -1.0}, ValueError, r"commitment_weight must be in \[0.0, ∞\)"),
    ({"dead_code_threshold": "0.1"}, ValueError, r"dead_code_threshold must be a finite number"),
    ({"dtype": torch.int64}, TypeError, r"dtype must be a floating torch.dtype or None"),
    ({"reseed": ["dead_code"]}, TypeError, r"reseed must be None, a policy name"),
)
def test_vector_quantizer_constructor(kwargs, error, message):
    with pytest.raises(error, match=message):
        VectorQuantizer(**{"dim": 4, "codebook_size": 8, **kwargs})


@cases(
    ({"shared_codebook": "yes"}, TypeError, r"shared_codebook must be True or False"),
    ({"channel_last": 1}, TypeError, r"channel_last must be True or False"),
    ({"check_finite": None}, TypeError, r"check_finite must be True or False"),
    ({"num_quantizers": 0}, ValueError, r"num_quantizers must be a positive integer, got 0"),
    ({"codebook_size": 2.0}, ValueError, r"codebook_size must be a positive integer"),
    ({"gradient": "gumbel"}, ValueError, r"gradient must be one of \['ste', 'rotation'\]"),
    ({"cosine": True}, ValueError, r"cosine codes cannot quantize residuals"),
    ({"dtype": "float32"}, TypeError, r"dtype must be a floating torch.dtype"),
    ({"ema": "no"}, TypeError, r"ema must be True or False"),  # reaches every stage
    ({"decay": INF}, ValueError, r"decay must be a finite number"),
)
def test_residual_vq_constructor(kwargs, error, message):
    with pytest.raises(error, match=message):
        ResidualVQ(**{"dim": 4, "codebook_size": 8, **kwargs})


@cases(
    (
        {"levels": [1, 5]},
        ValueError,
        r"levels must be a non-empty list of integers ≥ 2, got \[1, 5\]",
    ),
    ({"levels": []}, ValueError, r"non-empty list of integers ≥ 2"),
    ({"levels": [8.0, 5]}, ValueError, r"integers ≥ 2, got \[8.0, 5\]"),
    ({"levels": "85"}, TypeError, r"levels must be a list of integers, got '85'"),
    ({"levels": 8}, TypeError, r"levels must be a list of integers, got 8"),
    ({"levels": [True, 5]}, ValueError, r"integers ≥ 2"),
    ({"dim": 0}, ValueError, r"dim must be a positive integer, got 0"),
    ({"eps": 1.0}, ValueError, r"eps must be in \[0.0, 1.0\)"),
    ({"eps": NAN}, ValueError, r"eps must be a finite number"),
    ({"channel_last": "no"}, TypeError, r"channel_last must be True or False"),
    ({"check_finite": 1}, TypeError, r"check_finite must be True or False"),
    ({"dtype": torch.int32}, TypeError, r"dtype must be a floating torch.dtype"),
)
def test_fsq_constructor(kwargs, error, message):
    with pytest.raises(error, match=message):
        FSQ(**{"levels": [8, 5], **kwargs})


QUANTIZERS = {
    "vq": lambda: VectorQuantizer(4, 8),
    "rvq": lambda: ResidualVQ(4, 8, num_quantizers=2),
    "fsq": lambda: FSQ([3, 3, 2, 2]),
}
BAD_INPUTS = [
    ("list", [[0.0] * 4], TypeError, r"expects a torch.Tensor, got list"),
    ("int", torch.zeros(2, 4, 3, dtype=torch.long), TypeError, r"floating-point.*torch.int64"),
    ("meta", torch.empty(2, 4, 3, device="meta"), ValueError, r"'meta' device"),
    ("channels", torch.randn(2, 5, 3), ValueError, r"expects 4 channels at dim 1.*\(2, 5, 3\)"),
    ("1-d", torch.randn(4), ValueError, r"shape \(B, D, \*spatial\), got shape \(4,\)"),
    ("nan", torch.full((2, 4, 3), NAN), ValueError, r"24 non-finite values"),
    ("inf", torch.tensor([[[INF], [0.0], [0.0], [0.0]]]), ValueError, r"1 non-finite value"),
    ("empty", torch.randn(0, 4, 3), ValueError, r"empty input of shape \(0, 4, 3\)"),
    ("empty-spatial", torch.randn(2, 4, 0), ValueError, r"empty input of shape \(2, 4, 0\)"),
]


@pytest.mark.parametrize("name", sorted(QUANTIZERS))
@pytest.mark.parametrize(
    ("kind", "x", "error", "message"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS]
)
def test_forward_refuses_bad_input(name, kind, x, error, message):
    quantizer = QUANTIZERS[name]()
    before = {k: v.clone() for k, v in quantizer.state_dict().items()}
    with pytest.raises(error, match=message):
        quantizer(x)
    after = quantizer.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # nothing half-updated


def bad_indices(name: str):
    k = {"vq": 8, "rvq": 8, "fsq": 36}[name]
    trailing = (2,) if name == "rvq" else ()
    return [
        ("list", [[0, 1]], TypeError, r"decode expects a torch.Tensor of indices"),
        (
            "float",
            torch.zeros(1, 3, *trailing),
            TypeError,
            r"integer indices, got dtype torch.float32",
        ),
        ("bool", torch.zeros(1, 3, *trailing, dtype=torch.bool), TypeError, r"integer indices"),
        (
            "high",
            torch.full((1, 3, *trailing), k),
            ValueError,
            rf"indices in \[0, {k}\), got values in \[{k}, {k}\]",
        ),
        ("negative", torch.full((1, 3, *trailing), -1), ValueError, r"got values in \[-1, -1\]"),
        (
            "meta",
            torch.zeros(1, 3, *trailing, dtype=torch.long, device="meta"),
            ValueError,
            r"'meta' device",
        ),
        ("0-d", torch.tensor(0), ValueError, r"0-d tensor|shape \(B, \*spatial, n\)"),
    ]


@pytest.mark.parametrize("name", sorted(QUANTIZERS))
def test_decode_refuses_bad_indices(name):
    quantizer = QUANTIZERS[name]()
    for _kind, indices, error, message in bad_indices(name):
        with pytest.raises(error, match=message):
            quantizer.decode(indices)


def test_residual_decode_refuses_too_many_stages():
    rvq = ResidualVQ(4, 8, num_quantizers=2)
    with pytest.raises(ValueError, match=r"1 ≤ n ≤ 2, got shape \(1, 3, 3\)"):
        rvq.decode(torch.zeros(1, 3, 3, dtype=torch.long))


@pytest.mark.parametrize(
    ("codes", "error", "message"),
    [
        ([[0.0] * 4] * 8, TypeError, r"set_codebook expects a torch.Tensor, got list"),
        (
            torch.zeros(8, 4, dtype=torch.long),
            TypeError,
            r"floating-point tensor, got dtype torch.int64",
        ),
        (torch.zeros(8, 3), ValueError, r"shape \(8, 4\), got \(8, 3\)"),
        (torch.zeros(4), ValueError, r"shape \(8, 4\), got \(4,\)"),
        (torch.full((8, 4), NAN), ValueError, r"32 non-finite values"),
        (torch.tensor([[INF, 0, 0, 0]] + [[0.0] * 4] * 7), ValueError, r"1 non-finite value"),
        (torch.empty(8, 4, device="meta"), ValueError, r"'meta' device"),
    ],
)
def test_set_codebook_refuses_bad_codes(codes, error, message):
    vq = VectorQuantizer(4, 8)
    before = vq.codebook.clone()
    with pytest.raises(error, match=message):
        vq.set_codebook(codes)
    assert torch.equal(vq.codebook, before)


@pytest.mark.parametrize("scale", [0.0, 1e-30, 1e-8])
def test_rotation_trick_is_finite_for_zero_and_tiny_inputs(scale):
    torch.manual_seed(3)
    z = (scale * torch.randn(5, 4)).requires_grad_()
    q = torch.randn(5, 4)
    out = rotate_to(z, q)
    assert torch.equal(out.detach(), q)
    upstream = torch.randn(5, 4)
    out.backward(upstream)
    assert torch.isfinite(z.grad).all()
    if scale < 1e-12:  # no direction to rotate from: straight-through
        torch.testing.assert_close(z.grad, upstream)


def test_rotation_trick_quantizer_step_on_zero_input_is_finite():
    vq = VectorQuantizer(4, 8, gradient="rotation", channel_last=True)
    x = torch.zeros(1, 3, 4, requires_grad=True)
    result = vq(x)
    (result.quantized.sum() + result.loss).backward()
    assert torch.isfinite(x.grad).all()
    assert torch.isfinite(result.loss)
