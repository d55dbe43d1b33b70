"""Reseeding as a policy chosen by a JSON spec: the spec and the legacy arguments build the same
policy and give bit-identical training, new policies register as a class, bad specs are refused,
and the EMA debiasing stays exact for a decay next to 1."""

from __future__ import annotations

import json

import pytest
import torch
import torch._dynamo

import vqkit
from vqkit import VectorQuantizer
from vqkit.quantize.reseed import (
    RESEED_POLICIES,
    ClusteredReinit,
    DeadCodeReseed,
    ReseedPolicy,
    register_reseed_policy,
)

FIXTURE_KEYS = {"embed", "cluster_size", "embed_sum", "usage", "steps", "last_used"}


def train(vq: VectorQuantizer, steps: int = 3) -> dict:
    torch.manual_seed(1)
    for _ in range(steps):
        out = vq((torch.randn(2, 4, 6) + 2).requires_grad_())
        (out.quantized.square().sum() + out.loss).backward()
    return {k: v.clone() for k, v in vq.state_dict().items()}


@pytest.mark.parametrize(
    ("legacy", "spec"),
    [
        (
            {"reseed": "dead_code", "dead_code_threshold": 0.5},
            {"type": "dead_code", "threshold": 0.5},
        ),
        ({"reseed": "cvq", "anchor": "closest"}, {"type": "cvq", "anchor": "closest"}),
        ({"reseed": "cvq"}, {"type": "cvq", "anchor": "random", "decay": 0.99}),
        ({"reseed": None}, None),
    ],
)
def test_spec_and_legacy_arguments_train_identically(legacy, spec):
    torch.manual_seed(0)
    a = VectorQuantizer(4, 16, **legacy)
    torch.manual_seed(0)
    b = VectorQuantizer(4, 16, reseed=spec)
    assert type(a.reinit) is type(b.reinit)
    state_a, state_b = train(a), train(b)
    assert state_a.keys() == state_b.keys()
    for key in state_a:
        assert torch.equal(state_a[key], state_b[key]), key
    if spec is not None:
        assert a.reinit.spec() == b.reinit.spec()
        assert a.reseed == b.reseed == spec["type"]


def test_policy_objects_and_state_dict_keys():
    dead = VectorQuantizer(4, 8)
    assert isinstance(dead.reinit, DeadCodeReseed)
    assert dead.reinit is dead.dead_code
    assert set(dead.state_dict()) == FIXTURE_KEYS  # what release 0.1.0 saved
    cvq = VectorQuantizer(4, 8, reseed={"type": "cvq", "anchor": "closest"})
    assert isinstance(cvq.reinit, ClusteredReinit)
    assert cvq.reinit.needs_closest_rows
    assert set(cvq.state_dict()) == FIXTURE_KEYS | {"reinit.usage_prob"}
    none = VectorQuantizer(4, 8, reseed=None)
    assert none.reinit is None
    assert none.reseed is None
    none.reseed = {"type": "dead_code", "threshold": 0.2}  # assigning a spec swaps the policy
    assert none.reseed == "dead_code"
    assert none.dead_code.threshold == 0.2


def test_dict_spec_builds_from_json_and_traces_without_graph_breaks():
    config = {
        "type": "vq",
        "dim": 8,
        "codebook_size": 32,
        "reseed": {"type": "cvq", "anchor": "closest"},
    }
    vq = vqkit.build("quantizer", json.loads(json.dumps(config))).train()
    assert isinstance(vq.reinit, ClusteredReinit)
    assert vq.reinit.anchor == "closest"

    def step(x):
        out = vq(x)
        return out.loss + out.quantized.square().mean(), out.metrics["reseeded"]

    torch._dynamo.reset()
    explanation = torch._dynamo.explain(step)(torch.randn(2, 8, 4, 4, requires_grad=True))
    assert explanation.graph_break_count == 0, explanation.break_reasons


def test_a_new_policy_is_one_registered_class():
    @register_reseed_policy("test_zero_dead")
    class ZeroDead(ReseedPolicy):
        """Dead codes become the zero vector (a toy policy)."""

        def __init__(self, scale: float = 0.0) -> None:
            super().__init__()
            self.scale = scale

        def update(self, quantizer, batch):
            vectors = torch.full_like(quantizer.embed, self.scale)
            quantizer.replace_codes(batch.dead, vectors, batch.level)
            return batch.dead.sum().float()

    try:
        vq = VectorQuantizer(2, 16, channel_last=True, dead_code_threshold=0.5)
        vq.reseed = {"type": "test_zero_dead", "scale": 0.0}
        codes = 100 + torch.randn(16, 2)
        codes[0] = 0.0
        vq.set_codebook(codes)
        out = vq(0.1 * torch.randn(1, 32, 2))  # only code 0 is used: 15 dead codes
        assert out.metrics["reseeded"].item() == 15
        assert torch.equal(vq.codebook[1:], torch.zeros(15, 2))
        # the quantizer reset their statistics: size = level = threshold · n / K = 0.5 · 32 / 16
        torch.testing.assert_close(vq.cluster_size[1:], torch.full((15,), 1.0))
    finally:
        RESEED_POLICIES.pop("test_zero_dead", None)
    with pytest.raises(ValueError, match="reseed must be one of"):
        VectorQuantizer(2, 16, reseed="test_zero_dead")


@pytest.mark.parametrize(
    ("spec", "error", "message"),
    [
        ("lru", ValueError, r"reseed must be one of \['cvq', 'dead_code', None\].*got 'lru'"),
        ({"threshold": 0.5}, ValueError, r"dict with a string 'type'"),
        ({"type": 3}, ValueError, r"dict with a string 'type'"),
        (
            {"type": "dead_code", "thresh": 0.5},
            ValueError,
            r"takes options \['threshold'\], got unknown \['thresh'\]",
        ),
        ({"type": "cvq", "codebook_size": 4}, ValueError, r"got unknown \['codebook_size'\]"),
        (
            {"type": "cvq", "anchor": "far"},
            ValueError,
            r"anchor must be one of \['random', 'closest'\]",
        ),
        ({"type": "cvq", "decay": 1.0}, ValueError, r"decay must be in \[0.0, 1.0\)"),
        (
            {"type": "dead_code", "threshold": float("nan")},
            ValueError,
            "threshold must be a finite number",
        ),
        ({"type": "dead_code", "threshold": 0.0}, ValueError, "needs dead_code_threshold > 0"),
        (5, TypeError, r"reseed must be None, a policy name or a \{'type': ...\} dict, got int"),
    ],
)
def test_bad_reseed_specs_are_refused(spec, error, message):
    with pytest.raises(error, match=message):
        VectorQuantizer(4, 8, reseed=spec)


def test_anchor_argument_and_spec_must_agree():
    with pytest.raises(ValueError, match="contradicts the reseed spec"):
        VectorQuantizer(4, 8, anchor="closest", reseed={"type": "cvq", "anchor": "random"})
    with pytest.raises(ValueError, match="applies to reseed='cvq' only"):
        VectorQuantizer(4, 8, anchor="closest", reseed={"type": "dead_code"})
    vq = VectorQuantizer(4, 8, anchor="closest", reseed={"type": "cvq"})
    assert vq.reinit.anchor == "closest"


@pytest.mark.parametrize("bias_correction", [False, True])
def test_decay_next_to_one_debiases_exactly(bias_correction):
    """γ = 1 − 1e−9 rounds to 1 in fp32, where 1 − γ^t would be 0 and the statistics NaN."""
    decay, eps = 1.0 - 1e-9, 1e-5
    vq = VectorQuantizer(
        2, 4, channel_last=True, decay=decay, eps=eps, reseed=None, bias_correction=bias_correction
    )
    codes = torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0], [9.0, 9.0]])
    vq.set_codebook(codes)
    x = torch.tensor([[0.1, 0.2], [-0.3, 0.1], [4.2, 0.1], [3.9, -0.2], [0.1, 3.8]])
    out = vq(x[None])
    assert out.indices.tolist() == [[0, 0, 1, 1, 2]]
    counts = torch.tensor([2.0, 2.0, 1.0, 0.0], dtype=torch.float64)
    usage = vq.usage.double() / (1 - decay)  # debiased usage after one step = counts
    torch.testing.assert_close(usage, counts, rtol=1e-5, atol=1e-6)
    assert out.metrics["dead_codes"].item() == 1  # only code 3 is unused
    # float64 closed form of the first EMA step (Sonnet, with or without debiasing)
    xd, cd = x.double(), codes.double()
    sums = torch.zeros(4, 2, dtype=torch.float64).index_add_(0, out.indices[0], xd)
    if bias_correction:
        size, total = counts, sums  # (1 − γ)·counts / (1 − γ)
    else:
        size = decay * 1.0 + (1 - decay) * counts
        total = decay * cd + (1 - decay) * sums
    smoothed = (size + eps) / (size.sum() + 4 * eps) * size.sum()
    expected = total / smoothed[:, None]
    if bias_correction:
        expected[3] = cd[3]  # a code with no statistics keeps its vector
    assert torch.isfinite(vq.codebook).all()
    torch.testing.assert_close(vq.codebook.double(), expected, rtol=1e-5, atol=1e-5)
