"""VectorQuantizer: EMA closed forms, estimators' gradients, reseeding, metrics, state, dtypes."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

import vqkit
from vqkit import VectorQuantizer
from vqkit.functional import laplace_smooth


def brute_force_argmin(rows: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    return (rows.double()[:, None] - codebook.double()[None]).square().sum(-1).argmin(1)


def rows_of(x: torch.Tensor) -> torch.Tensor:
    """(B, D, H, W) → (B·H·W, D) in the quantizer's row order."""
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


def test_forward_shapes_dtypes_and_eval_decode_round_trip():
    torch.manual_seed(0)
    vq = VectorQuantizer(dim=8, codebook_size=32)
    x = torch.randn(2, 8, 5, 3)
    out = vq(x)
    assert isinstance(out, vqkit.QuantizerOutput)
    assert out.quantized.shape == x.shape
    assert out.quantized.dtype == x.dtype
    assert out.indices.shape == (2, 5, 3)
    assert out.indices.dtype == torch.int64
    assert out.loss.shape == ()
    assert out.perplexity.shape == ()
    assert vq.codebook.shape == (32, 8)
    vq.eval()
    out = vq(x)
    assert torch.equal(vq.decode(out.indices), out.quantized)
    assert torch.equal(out.indices.reshape(-1), brute_force_argmin(rows_of(x), vq.codebook))


def test_channel_last_matches_channel_first():
    torch.manual_seed(0)
    first = VectorQuantizer(6, 16).eval()
    last = VectorQuantizer(6, 16, channel_last=True).eval()
    last.load_state_dict(first.state_dict())
    x = torch.randn(3, 6, 4, 4)
    a, b = first(x), last(x.permute(0, 2, 3, 1))
    assert torch.equal(a.indices, b.indices)
    assert torch.equal(a.quantized.permute(0, 2, 3, 1), b.quantized)
    assert b.quantized.shape == (3, 4, 4, 6)
    assert torch.equal(last.decode(b.indices), b.quantized)


def test_decay_zero_makes_each_used_code_the_mean_of_its_vectors():
    torch.manual_seed(1)
    vq = VectorQuantizer(4, 64, decay=0.0, reseed=None)
    before = vq.codebook.clone()
    x = torch.randn(4, 4, 6, 6)
    rows = rows_of(x)
    out = vq(x)
    idx = out.indices.reshape(-1)
    assert torch.equal(idx, brute_force_argmin(rows, before))
    used = idx.unique()
    assert 1 < len(used) < 64  # the test covers used and unused codes
    for k in range(64):
        if k in used:
            mean = rows[idx == k].mean(0)
            torch.testing.assert_close(vq.codebook[k], mean, rtol=1e-4, atol=1e-5)
        else:
            assert torch.equal(vq.codebook[k], before[k])  # no statistics: unchanged


@pytest.mark.parametrize("bias_correction", [False, True])
def test_ema_matches_sonnet_closed_form_over_steps(bias_correction):
    torch.manual_seed(2)
    decay, eps, k = 0.9, 1e-3, 6
    vq = VectorQuantizer(3, k, decay=decay, eps=eps, bias_correction=bias_correction, reseed=None)
    code = vq.codebook.double().clone()
    hidden_size = torch.zeros(k, dtype=torch.float64)
    hidden_sum = torch.zeros(k, 3, dtype=torch.float64)
    if not bias_correction:
        hidden_size += 1
        hidden_sum += code
    for t in range(1, 4):
        x = torch.randn(2, 3, 4, 4) + t
        out = vq(x)
        rows = rows_of(x).double()
        idx = out.indices.reshape(-1)
        assert torch.equal(idx, brute_force_argmin(rows, code.float()))
        counts = torch.bincount(idx, minlength=k).double()
        sums = torch.zeros(k, 3, dtype=torch.float64).index_add_(0, idx, rows)
        hidden_size = decay * hidden_size + (1 - decay) * counts
        hidden_sum = decay * hidden_sum + (1 - decay) * sums
        debias = 1 - decay**t if bias_correction else 1.0
        size = laplace_smooth(hidden_size / debias, eps)
        new = (hidden_sum / debias) / size[:, None]
        code = torch.where((hidden_size > 0)[:, None], new, code)
        torch.testing.assert_close(vq.codebook.double(), code, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(vq.cluster_size.double(), hidden_size, rtol=1e-5, atol=1e-6)


def test_straight_through_gradient_is_upstream_plus_commitment_gradient():
    torch.manual_seed(3)
    beta = 0.7
    vq = VectorQuantizer(5, 16, commitment_weight=beta)
    x = torch.randn(2, 5, 3, 3, requires_grad=True)
    out = vq(x)
    upstream = torch.randn_like(x)
    ((out.quantized * upstream).sum() + out.loss).backward()
    q = out.quantized.detach()
    expected = upstream + beta * 2 * (x.detach() - q) / x.numel()
    torch.testing.assert_close(x.grad, expected)
    torch.testing.assert_close(out.loss, beta * F.mse_loss(x.detach(), q))


def test_learnable_codebook_gradients_match_hand_computation():
    torch.manual_seed(4)
    beta = 0.25
    vq = VectorQuantizer(4, 8, ema=False, commitment_weight=beta, reseed=None)
    assert isinstance(vq.embed, torch.nn.Parameter)
    x = torch.randn(3, 4, 2, 2, requires_grad=True)
    codebook = vq.codebook.detach().clone()
    out = vq(x)
    upstream = torch.randn_like(x)
    ((out.quantized * upstream).sum() + out.loss).backward()

    z = rows_of(x.detach())  # (N, D)
    idx = out.indices.reshape(-1)
    q = codebook[idx]
    numel = z.numel()
    # loss = ‖sg(z) − e‖²/numel + β‖z − sg(e)‖²/numel
    grad_z = rows_of(upstream) + beta * 2 * (z - q) / numel
    grad_e = torch.zeros_like(codebook).index_add_(0, idx, 2 * (q - z) / numel)
    torch.testing.assert_close(rows_of(x.grad), grad_z)
    torch.testing.assert_close(vq.embed.grad, grad_e)
    expected_loss = F.mse_loss(q, z) * (1 + beta)
    torch.testing.assert_close(out.loss, expected_loss)
    # The decoder's gradient does not reach the codebook (straight-through skips it).
    vq.embed.grad = None
    out = vq(x)
    (out.quantized * upstream).sum().backward()
    assert vq.embed.grad is None or torch.count_nonzero(vq.embed.grad) == 0


def test_rotation_trick_keeps_value_and_rotates_gradient():
    torch.manual_seed(5)
    vq = VectorQuantizer(6, 16, gradient="rotation", commitment_weight=0.0).eval()
    x = torch.randn(4, 6, requires_grad=True)
    out = vq(x)  # eval mode still carries gradients
    assert torch.equal(out.quantized, vq.decode(out.indices))
    upstream = torch.randn_like(x)
    (out.quantized * upstream).sum().backward()
    q = out.quantized.detach()
    # an orthogonal map scaled by ‖q‖/‖z‖: gradient norms scale by that factor
    scale = q.norm(dim=1) / x.detach().norm(dim=1)
    torch.testing.assert_close(x.grad.norm(dim=1), scale * upstream.norm(dim=1))
    assert not torch.allclose(x.grad, upstream)


def make_two_cluster_quantizer(**kwargs) -> tuple[VectorQuantizer, torch.Tensor]:
    """Codes 0 and 1 sit on the data; codes 2..15 are far away and never chosen."""
    vq = VectorQuantizer(2, 16, channel_last=True, **kwargs)
    codes = 100 + torch.randn(16, 2)
    codes[0] = torch.tensor([0.0, 0.0])
    codes[1] = torch.tensor([5.0, 5.0])
    vq.set_codebook(codes)
    x = torch.cat([0.1 * torch.randn(32, 2), 5 + 0.1 * torch.randn(32, 2)])  # (64, 2)
    return vq, x[None]


@pytest.mark.parametrize("ema", [True, False])
def test_reseeding_replaces_dead_codes_by_batch_vectors_with_consistent_state(ema):
    torch.manual_seed(6)
    vq, x = make_two_cluster_quantizer(ema=ema, dead_code_threshold=0.5)
    out = vq(x)
    assert set(out.indices.unique().tolist()) == {0, 1}
    assert out.metrics["dead_codes"].item() == 14
    assert out.metrics["reseeded"].item() == 14
    rows = x[0]
    codes = vq.codebook.detach()
    for k in range(2, 16):  # each reseeded code is one of the batch's vectors
        assert (codes[k] == rows).all(1).any(), k
    # EMA state reset to match: usage = threshold · n / K, sums = code · size
    level = 0.5 * 64 / 16
    debiased_usage = vq.usage / (1 - vq.decay ** vq.steps.float())
    torch.testing.assert_close(debiased_usage[2:], torch.full((14,), level))
    if ema:
        torch.testing.assert_close(vq.cluster_size[2:], torch.full((14,), level))
        torch.testing.assert_close(vq.embed_sum[2:], codes[2:] * level)
    # live codes untouched by the reseeding
    assert not (codes[:2] == 100).any()
    assert codes[0].norm() < 1
    assert (codes[1] - 5).norm() < 1


def test_reseeded_code_survives_the_next_ema_step():
    """The encodec bug: resetting only the code lets the next EMA step overwrite it."""
    torch.manual_seed(7)
    vq, x = make_two_cluster_quantizer(dead_code_threshold=0.5, decay=0.9)
    vq(x)
    reseeded = vq.codebook[2:].clone()
    vq.reseed = None  # observe a plain EMA step
    out = vq(torch.zeros(1, 1, 2))  # uses code 0 only
    assert out.indices.item() == 0
    torch.testing.assert_close(vq.codebook[2:], reseeded, rtol=1e-4, atol=1e-4)


def test_dead_code_threshold_does_not_depend_on_batch_size():
    """Codes used at 20% of the uniform rate are alive at threshold 0.1, at any batch size."""
    for n_per_code in (1, 10, 100):
        vq = VectorQuantizer(1, 10, channel_last=True, dead_code_threshold=0.1, reseed=None)
        vq.set_codebook(torch.arange(10.0)[:, None])
        # code 0 gets 20% of a uniform share, the rest share the remainder equally
        share = [0.2 * n_per_code] + [n_per_code * (10 - 0.2) / 9] * 9
        counts = [max(1, round(s * 5)) for s in share]  # 5 uniform shares per code
        x = torch.cat([torch.full((c, 1), float(k)) for k, c in enumerate(counts)])[None]
        for _ in range(3):
            out = vq(x)
        assert out.metrics["dead_codes"].item() == 0, n_per_code
        vq.dead_code.threshold = 0.3  # now below the threshold
        assert vq(x).metrics["dead_codes"].item() == 1, n_per_code


@pytest.mark.parametrize("anchor", ["random", "closest"])
def test_cvq_reinitialises_unused_codes_toward_anchors(anchor):
    torch.manual_seed(8)
    vq, x = make_two_cluster_quantizer(reseed="cvq", anchor=anchor)
    out = vq(x)
    rows = x[0]
    codes = vq.codebook
    # unused codes get α = exp(−1e−3): almost entirely the anchor
    alpha = torch.exp(torch.tensor(-1e-3))
    moved = codes[2:]
    dist_to_data = (moved[:, None] - rows[None]).norm(dim=-1).min(1).values
    assert (dist_to_data < (1 - alpha) * 200).all()
    if anchor == "closest":  # each anchor is that code's nearest batch vector
        # all far codes are near (100, 100): their nearest rows are in the (5, 5) cluster
        assert ((moved - 5).norm(dim=1) < 1).all()
    # used codes (share ½ each ≫ 1/K) are not moved toward anchors
    assert codes[0].norm() < 1
    assert (codes[1] - 5).norm() < 1
    assert out.metrics["reseeded"].item() == pytest.approx(14 * alpha.item(), rel=1e-3)


def test_kmeans_init_from_first_training_batch():
    torch.manual_seed(9)
    centres = torch.tensor([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0], [8.0, 8.0]])
    x = (centres.repeat_interleave(50, 0) + 0.05 * torch.randn(200, 2))[None]
    vq = VectorQuantizer(2, 4, channel_last=True, kmeans_init=True, kmeans_iters=20, reseed=None)
    assert vq.initialized.item() is False
    out = vq(x)
    assert vq.initialized.item() is True
    found = vq.codebook[vq.codebook.sum(1).argsort()]
    order = centres.sum(1).argsort()
    assert torch.allclose(found[[0, 3]], centres[order][[0, 3]], atol=0.1)
    assert out.perplexity.item() == pytest.approx(4.0, rel=1e-3)
    # the flag survives a state_dict round trip, so a reload does not re-initialise
    fresh = VectorQuantizer(2, 4, channel_last=True, kmeans_init=True, reseed=None)
    fresh.load_state_dict(vq.state_dict())
    assert fresh._initialized
    fresh.eval()
    assert torch.equal(fresh(x).indices, vq.eval()(x).indices)


def test_perplexity_is_one_for_one_code_and_k_for_uniform_use():
    vq = VectorQuantizer(1, 8, channel_last=True).eval()
    vq.set_codebook(torch.arange(8.0)[:, None])
    one = vq(torch.full((1, 20, 1), 3.0))
    assert one.perplexity.item() == pytest.approx(1.0)
    uniform = vq(torch.arange(8.0).repeat(3)[None, :, None])
    assert uniform.perplexity.item() == pytest.approx(8.0, rel=1e-5)
    assert uniform.metrics["batch_usage"].item() == 1.0
    assert one.metrics["batch_usage"].item() == 1 / 8


def test_window_usage_counts_codes_used_in_recent_steps():
    vq = VectorQuantizer(1, 4, channel_last=True, usage_window=2, reseed=None, decay=0.0)
    vq.set_codebook(torch.arange(4.0)[:, None])
    fractions = []
    for k in (0, 1, 2):
        fractions.append(vq(torch.full((1, 3, 1), float(k))).metrics["window_usage"].item())
    assert fractions == [0.25, 0.5, 0.5]  # codes {0}, {0,1}, {1,2}


def test_state_dict_round_trip_including_ema_buffers():
    torch.manual_seed(10)
    kwargs = {"codebook_dim": 4, "reseed": "cvq", "bias_correction": True}
    vq = VectorQuantizer(8, 16, **kwargs)
    for _ in range(3):
        vq(torch.randn(2, 8, 4, 4))
    state = vq.state_dict()
    for key in ("embed", "cluster_size", "embed_sum", "usage", "steps", "last_used"):
        assert key in state, key
    assert "reinit.usage_prob" in state
    fresh = VectorQuantizer(8, 16, **kwargs)
    fresh.load_state_dict(state)
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, state[key]), key
    # identical continued training (same random draws)
    x = torch.randn(2, 8, 4, 4)
    torch.manual_seed(11)
    a = vq(x)
    torch.manual_seed(11)
    b = fresh(x)
    assert torch.equal(a.quantized, b.quantized)
    assert torch.equal(vq.embed, fresh.embed)


def test_eval_mode_changes_no_state():
    torch.manual_seed(12)
    vq = VectorQuantizer(4, 8)
    vq(torch.randn(2, 4, 3, 3))
    before = {k: v.clone() for k, v in vq.state_dict().items()}
    vq.eval()
    vq(torch.randn(2, 4, 3, 3))
    for key, value in vq.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_bf16_autocast_gives_no_nan_and_fp32_indices():
    torch.manual_seed(13)
    vq = VectorQuantizer(16, 64, codebook_dim=8)
    ref = VectorQuantizer(16, 64, codebook_dim=8)
    ref.load_state_dict(vq.state_dict())
    encoder = torch.nn.Conv2d(3, 16, 1)
    images = torch.randn(4, 3, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z = encoder(images)
        assert z.dtype == torch.bfloat16
        out = vq(z)
        projected = ref.project_in(rows_of(z))  # the same bf16 projection
    assert projected.dtype == torch.bfloat16
    # the search itself is fp32: exactly the float64 argmin of the (bf16-valued) projections
    assert torch.equal(out.indices.reshape(-1), brute_force_argmin(projected, ref.codebook))
    (out.quantized.float().sum() + out.loss).backward()
    for tensor in (out.loss, out.perplexity, encoder.weight.grad, vq.codebook):
        assert torch.isfinite(tensor).all()


def test_bf16_input_gives_fp32_indices_and_bf16_output():
    torch.manual_seed(14)
    vq = VectorQuantizer(8, 32).eval()
    x = torch.randn(2, 8, 4, 4).bfloat16()
    out = vq(x)
    assert out.quantized.dtype == torch.bfloat16
    assert torch.equal(out.indices, vq(x.float()).indices)
    assert torch.isfinite(out.loss)


def test_cosine_codes_are_unit_and_decode_round_trips():
    torch.manual_seed(15)
    vq = VectorQuantizer(6, 12, cosine=True)
    x = 3 * torch.randn(2, 6, 5)
    vq(x)
    vq.eval()
    out = vq(x)
    torch.testing.assert_close(vq.codebook.norm(dim=1), torch.ones(12))
    torch.testing.assert_close(out.quantized.norm(dim=1), torch.ones(2, 5))
    assert torch.equal(vq.decode(out.indices), out.quantized)
    rows = F.normalize(x.permute(0, 2, 1).reshape(-1, 6), dim=-1)
    assert torch.equal(out.indices.reshape(-1), (rows @ vq.codebook.t()).argmax(1))


def test_codebook_dim_projection_decode_round_trip():
    torch.manual_seed(16)
    vq = VectorQuantizer(16, 32, codebook_dim=4)
    assert vq.codebook.shape == (32, 4)
    x = torch.randn(2, 16, 3, 3, requires_grad=True)
    out = vq(x)
    (out.quantized.sum() + out.loss).backward()
    assert vq.project_in.weight.grad is not None
    assert vq.project_out.weight.grad is not None
    vq.eval()
    out = vq(x)
    assert out.quantized.shape == x.shape
    assert torch.equal(vq.decode(out.indices), out.quantized)


def test_codebook_init_options():
    torch.manual_seed(17)
    uniform = VectorQuantizer(8, 128, codebook_init="uniform").codebook
    assert uniform.abs().max() <= 1 / 128
    assert uniform.std() > 0
    normal = VectorQuantizer(8, 128, codebook_init="normal").codebook
    assert 0.8 < normal.std() < 1.2
    kaiming = VectorQuantizer(8, 128, codebook_init="kaiming_uniform").codebook
    assert kaiming.abs().max() <= (6 / 8) ** 0.5


def test_registry_build_and_json_config():
    config = {
        "type": "vq",
        "dim": 8,
        "codebook_size": 16,
        "codebook_dim": 4,
        "ema": True,
        "decay": 0.95,
        "reseed": None,
        "codebook_init": "uniform",
        "channel_last": True,
    }
    assert json.loads(json.dumps(config)) == config
    vq = vqkit.build("quantizer", config)
    assert isinstance(vq, VectorQuantizer)
    assert (vq.dim, vq.codebook_size, vq.codebook_dim, vq.decay) == (8, 16, 4, 0.95)
    text = repr(vq)
    assert "codebook_size=16" in text
    assert "codebook_dim=4" in text
    assert "reseed=None" in text


def test_bad_input_raises_clear_errors():
    vq = VectorQuantizer(8, 16)
    with pytest.raises(ValueError, match=r"expects 8 channels at dim 1.*got shape \(2, 4, 3, 3\)"):
        vq(torch.randn(2, 4, 3, 3))
    with pytest.raises(TypeError, match=r"floating-point.*torch.int64"):
        vq(torch.zeros(2, 8, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"non-finite"):
        vq(torch.full((2, 8, 3), float("nan")))
    with pytest.raises(ValueError, match=r"non-finite"):
        vq(torch.tensor([[float("inf")] * 8]))
    with pytest.raises(ValueError, match=r"shape \(B, D, \*spatial\)"):
        vq(torch.randn(8))
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        vq([[0.0] * 8])
    with pytest.raises(ValueError, match=r"indices in \[0, 16\), got values in \[0, 16\]"):
        vq.decode(torch.tensor([[0, 16]]))
    with pytest.raises(ValueError, match=r"indices in \[0, 16\), got values in \[-1, 3\]"):
        vq.decode(torch.tensor([[-1, 3]]))
    with pytest.raises(TypeError, match="integer indices"):
        vq.decode(torch.tensor([[0.0, 1.0]]))
    last = VectorQuantizer(8, 16, channel_last=True)
    with pytest.raises(ValueError, match=r"at dim -1.*\(B, \*, D\)"):
        last(torch.randn(2, 8, 3))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dim": 0}, "dim must be a positive integer"),
        ({"codebook_size": 2.5}, "codebook_size must be a positive integer"),
        ({"decay": 1.0}, r"decay must be in \[0.0, 1.0\)"),
        ({"gradient": "gumbel"}, r"gradient must be one of \['ste', 'rotation'\]"),
        ({"reseed": "lru"}, "reseed must be one of"),
        ({"anchor": "closest"}, "applies to reseed='cvq' only"),
        ({"ema": False, "bias_correction": True}, "bias_correction applies to the EMA"),
        ({"dead_code_threshold": 0.0}, "needs dead_code_threshold > 0"),
        ({"codebook_init": "zeros"}, "codebook_init must be one of"),
        ({"chunk_size": 0}, "chunk_size must be a positive integer"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, message):
    args = {"dim": 4, "codebook_size": 8, **kwargs}
    with pytest.raises(ValueError, match=message):
        VectorQuantizer(**args)


@pytest.mark.parametrize("kwargs", [{}, {"ema": False}, {"codebook_dim": 4, "reseed": "cvq"}])
def test_casting_the_module_keeps_codebook_state_in_fp32(kwargs):
    torch.manual_seed(18)
    vq = VectorQuantizer(8, 16, **kwargs).to(torch.bfloat16)
    for key in ("embed", "usage", "cluster_size", "embed_sum", "reinit.usage_prob"):
        if key in vq.state_dict():
            assert vq.state_dict()[key].dtype == torch.float32, key
    if vq.project_in is not None:
        assert vq.project_in.weight.dtype == torch.bfloat16
    x = torch.randn(2, 8, 5, dtype=torch.bfloat16, requires_grad=True)
    out = vq(x)  # a training step works with bf16 activations and fp32 statistics
    (out.quantized.float().sum() + out.loss).backward()
    assert out.quantized.dtype == torch.bfloat16
    assert torch.isfinite(vq.codebook).all()
