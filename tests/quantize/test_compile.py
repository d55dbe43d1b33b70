"""A training step with EMA and reseeding traces with zero graph breaks and compiles fullgraph."""

from __future__ import annotations

import copy

import pytest
import torch
import torch._dynamo

from vqkit import FSQ, ResidualVQ, VectorQuantizer


def train_step(quantizer, x):
    out = quantizer(x)
    return out.loss + out.quantized.square().mean(), out.indices, out.metrics.get("reseeded")


@pytest.mark.parametrize(
    "make",
    [
        lambda: VectorQuantizer(8, 32, reseed="dead_code", dead_code_threshold=0.5),
        lambda: VectorQuantizer(8, 32, reseed="cvq", anchor="closest", bias_correction=True),
        lambda: VectorQuantizer(8, 32, ema=False, cosine=True, gradient="rotation"),
        lambda: VectorQuantizer(8, 32, codebook_dim=4, kmeans_init=True, kmeans_iters=2),
        lambda: ResidualVQ(8, 16, num_quantizers=3, shared_codebook=True),
        lambda: FSQ([5, 4, 3], dim=8),
    ],
    ids=["vq-ema-reseed", "vq-cvq-closest", "vq-learnable-cosine", "vq-kmeans-proj", "rvq", "fsq"],
)
def test_training_step_has_zero_graph_breaks(make):
    torch.manual_seed(0)
    quantizer = make().train()
    x = torch.randn(2, 8, 4, 4, requires_grad=True)
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(train_step)(quantizer, x)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


def test_fullgraph_compiled_steps_equal_eager_steps_with_reseeding():
    torch.manual_seed(1)
    eager = VectorQuantizer(8, 32, reseed="dead_code", dead_code_threshold=0.5)
    compiled_vq = copy.deepcopy(eager)
    step = torch.compile(train_step, backend="aot_eager", fullgraph=True)
    torch._dynamo.reset()
    reseeded = []
    for i in range(3):
        x = torch.randn(2, 8, 4, 4) + i
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        torch.manual_seed(100 + i)
        loss_a, idx_a, _ = train_step(eager, xa)
        torch.manual_seed(100 + i)
        loss_b, idx_b, count = step(compiled_vq, xb)
        loss_a.backward()
        loss_b.backward()
        assert torch.equal(idx_a, idx_b)
        torch.testing.assert_close(loss_a, loss_b)
        torch.testing.assert_close(xa.grad, xb.grad)
        for key, value in eager.state_dict().items():
            torch.testing.assert_close(compiled_vq.state_dict()[key], value, msg=key)
        reseeded.append(count.item())
    assert eager.steps.item() == compiled_vq.steps.item() == 3
    assert reseeded[0] > 0  # the compiled step did reseed, identically to eager
