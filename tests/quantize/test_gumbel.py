"""The "gumbel" quantizer: sample frequencies, KL, straight-through, eval determinism, checks."""

import math

import pytest
import torch

import vqkit
from vqkit.quantize.gumbel import (
    GumbelQuantizer,
    categorical_kl_to_uniform,
    gumbel_softmax_sample,
)

# χ² critical values at p = 0.001 (df = K − 1): a correct sampler fails once in a thousand seeds.
CHI2_999 = {4: 18.467, 7: 24.322}


def _chi2(counts: torch.Tensor, probs: torch.Tensor) -> float:
    expected = probs.double() * counts.sum()
    return float(((counts.double() - expected) ** 2 / expected).sum())


def _quantizer(k=5, dim=3, **kw):
    torch.manual_seed(0)
    return GumbelQuantizer(dim, k, **kw)


def test_hard_sample_frequencies_equal_softmax_chi_square():
    logits = torch.tensor([[1.5, -0.5, 0.0, 0.7, -2.0]])
    n = 20_000
    g = torch.Generator().manual_seed(3)
    _, idx = gumbel_softmax_sample(logits.expand(n, 5), 0.5, hard=True, generator=g)
    counts = torch.bincount(idx, minlength=5)
    assert _chi2(counts, torch.softmax(logits[0].double(), 0)) < CHI2_999[4]


def test_quantizer_training_codes_follow_the_posterior_chi_square():
    q = _quantizer(k=8, dim=4, straight_through=True).train()
    x = torch.randn(1, 4, 1, 1).expand(1, 4, 100, 100).contiguous()  # one vector, 10⁴ draws
    probs = torch.softmax(q.logits(x)[0, 0, 0].detach().double(), 0)
    torch.manual_seed(11)
    out = q(x)
    counts = torch.bincount(out.indices.flatten(), minlength=8)
    assert _chi2(counts, probs) < CHI2_999[7]
    # and a wrong posterior is rejected by the same test (the test can fail)
    assert _chi2(counts, torch.full((8,), 1 / 8, dtype=torch.float64)) > CHI2_999[7]


def test_kl_is_zero_for_uniform_logits():
    q = _quantizer()
    with torch.no_grad():
        q.to_logits.weight.zero_()
        q.to_logits.bias.fill_(0.3)
    out = q.train()(torch.randn(2, 3, 4, 4))
    assert out.metrics["kl"].abs() < 1e-6
    assert out.loss.abs() < 1e-6


def test_kl_matches_torch_distributions_and_float64():
    logits = torch.randn(64, 7) * 3
    kl = categorical_kl_to_uniform(logits)
    uniform = torch.distributions.Categorical(probs=torch.full((64, 7), 1 / 7))
    reference = torch.distributions.kl_divergence(
        torch.distributions.Categorical(logits=logits), uniform
    )
    torch.testing.assert_close(kl, reference, atol=1e-5, rtol=1e-5)
    p = torch.softmax(logits.double(), -1)
    brute = (p * (p.log() - math.log(1 / 7))).sum(-1)
    torch.testing.assert_close(kl.double(), brute, atol=1e-5, rtol=1e-5)


def test_quantizer_loss_is_kl_weight_times_mean_kl():
    q = _quantizer(k=6, dim=3, kl_weight=0.25)
    x = torch.randn(2, 3, 4, 5)
    logits = q.logits(x)  # (2, 4, 5, 6)
    expected = categorical_kl_to_uniform(logits.reshape(-1, 6)).mean()
    out = q.train()(x)
    torch.testing.assert_close(out.metrics["kl"], expected)
    torch.testing.assert_close(out.loss, 0.25 * expected)
    q.kl_weight = 0.0  # settable (what a schedule does)
    assert q.train()(x).loss == 0


def test_straight_through_forward_is_exactly_one_hot_with_the_soft_gradient():
    logits = torch.randn(32, 6, requires_grad=True)
    c = torch.randn(32, 6)
    w_hard, i_hard = gumbel_softmax_sample(
        logits, 0.7, hard=True, generator=torch.Generator().manual_seed(5)
    )
    assert torch.equal(w_hard, torch.nn.functional.one_hot(i_hard, 6).float())
    (g_hard,) = torch.autograd.grad((w_hard * c).sum(), logits)
    w_soft, i_soft = gumbel_softmax_sample(
        logits, 0.7, hard=False, generator=torch.Generator().manual_seed(5)
    )
    assert torch.equal(i_soft, i_hard)
    assert not torch.equal(w_soft, w_hard)
    (g_soft,) = torch.autograd.grad((w_soft * c).sum(), logits)
    torch.testing.assert_close(g_hard, g_soft, atol=0, rtol=0)
    assert g_hard.abs().sum() > 0


def test_straight_through_quantizer_output_is_the_code_row_with_the_soft_gradient():
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    c = torch.randn(2, 3, 4, 4)
    grads = {}
    for st in (True, False):
        q = _quantizer(k=5, dim=3, straight_through=st, temperature=0.5).train()
        torch.manual_seed(9)
        out = q(x)
        if st:
            rows = q.embed[out.indices]  # (2, 4, 4, 3)
            assert torch.equal(out.quantized, rows.permute(0, 3, 1, 2))
        (grads[st],) = torch.autograd.grad((out.quantized * c).sum(), x)
    torch.testing.assert_close(grads[True], grads[False])


def test_eval_is_deterministic_argmax_and_decode_inverts_it():
    q = _quantizer(k=9, dim=3).eval()
    x = torch.randn(2, 3, 5, 4)
    state = torch.get_rng_state()
    a, b = q(x), q(x)
    assert torch.equal(torch.get_rng_state(), state)  # eval draws no random numbers
    assert torch.equal(a.quantized, b.quantized)
    assert torch.equal(a.indices, q.logits(x).argmax(-1))
    assert torch.equal(q.decode(a.indices), a.quantized)


def test_training_samples_vary_and_soft_rows_sum_to_one():
    q = _quantizer(k=16, dim=3).train()
    x = torch.randn(4, 3, 4, 4)
    torch.manual_seed(0)
    a = q(x)
    b = q(x)
    assert not torch.equal(a.indices, b.indices)
    weights, _ = gumbel_softmax_sample(torch.randn(10, 16), 0.3)
    torch.testing.assert_close(weights.sum(-1), torch.ones(10))


def test_low_temperature_soft_sample_approaches_one_hot():
    logits = torch.randn(200, 10)
    soft, idx = gumbel_softmax_sample(logits, 1e-3, generator=torch.Generator().manual_seed(0))
    hard = torch.nn.functional.one_hot(idx, 10).float()
    assert (soft - hard).abs().max() < 1e-3


def test_usage_metrics():
    q = _quantizer(k=4, dim=2).eval()
    with torch.no_grad():
        q.to_logits.weight.zero_()
        q.to_logits.bias.copy_(torch.tensor([5.0, 0.0, 0.0, 0.0]))
    out = q(torch.randn(3, 2, 2, 2))
    assert out.metrics["perplexity"] == 1
    assert out.metrics["batch_usage"] == 0.25
    assert out.metrics["mean_perplexity"] > 1  # the posterior itself is not a point mass


def test_channel_last_and_registry():
    q = vqkit.build("quantizer", {"type": "gumbel", "dim": 3, "codebook_size": 5})
    assert isinstance(q, GumbelQuantizer)
    torch.manual_seed(0)
    cl = GumbelQuantizer(3, 5, channel_last=True).eval()
    torch.manual_seed(0)
    cf = GumbelQuantizer(3, 5).eval()
    x = torch.randn(2, 3, 4, 4)
    assert torch.equal(cl(x.permute(0, 2, 3, 1)).indices, cf(x).indices)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"temperature": 0.0}, r"temperature must be in \(0"),
        ({"temperature": float("nan")}, "temperature must be a finite number"),
        ({"kl_weight": -1.0}, r"kl_weight must be in \[0"),
        ({"straight_through": 1}, "straight_through must be True or False"),
        ({"codebook_size": 0}, "codebook_size must be a positive integer"),
    ],
)
def test_constructor_validation(kwargs, match):
    args = {"dim": 3, "codebook_size": 5} | kwargs
    with pytest.raises((TypeError, ValueError), match=match):
        GumbelQuantizer(**args)


def test_setters_validate():
    q = _quantizer()
    with pytest.raises(ValueError, match="temperature"):
        q.temperature = -0.1
    with pytest.raises(ValueError, match="kl_weight"):
        q.kl_weight = "1"
    q.temperature = 1 / 16
    assert q.temperature == 0.0625


def test_input_validation():
    q = _quantizer()
    with pytest.raises(ValueError, match="expects 3 channels"):
        q(torch.randn(2, 4, 3, 3))
    with pytest.raises(TypeError, match="floating-point"):
        q(torch.ones(2, 3, 3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="non-finite"):
        q(torch.full((1, 3, 2, 2), float("nan")))
    with pytest.raises(ValueError, match=r"indices in \[0, 5\)"):
        q.decode(torch.tensor([[5]]))
    with pytest.raises(ValueError, match="temperature"):
        gumbel_softmax_sample(torch.randn(2, 3), 0.0)
    with pytest.raises(ValueError, match=r"\(N, K\)"):
        gumbel_softmax_sample(torch.randn(3), 1.0)
