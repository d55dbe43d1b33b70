"""The transformer prior: exact causality, KV-cache sampler = naive sampler, a normalised
log_prob, sampling frequencies against log_prob, top-k / top-p closed forms, completion, hostile
input."""

from __future__ import annotations

import itertools

import pytest
import torch
from scipy.stats import chi2

import vqkit
from vqkit.autoregressive import grid_dependencies, raster_before
from vqkit.autoregressive.transformer import TransformerPrior, filter_logits
from vqkit.contracts import contract_problems


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one thread avoids oversubscription on a shared CPU (it changes no value)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make(k=5, classes=None, dtype=None, **kw) -> TransformerPrior:
    torch.manual_seed(0)
    options = {"embed_dim": 16, "num_layers": 2, "num_heads": 2, "max_size": 6} | kw
    prior = TransformerPrior(num_embeddings=k, num_classes=classes, dtype=dtype, **options)
    # a sharper, input-dependent distribution than the N(0, 0.02) initialisation gives
    with torch.no_grad():
        for p in prior.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return prior.eval()


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_contract():
    prior = make()
    assert contract_problems("prior", prior) == []
    assert prior.domain == "codes"
    assert prior.exact_likelihood is True


@pytest.mark.parametrize("classes", [None, 3])
def test_causality_is_exact_by_jacobian(classes):
    prior = make(classes=classes, dropout=0.1)
    size = (3, 4)
    cond = None if classes is None else torch.tensor([2])
    deps = grid_dependencies(prior, size, cond=cond)  # (H, W, H, W), float64 autograd
    for i, j in itertools.product(range(3), range(4)):
        assert torch.equal(deps[i, j], raster_before(size, (i, j))), (i, j)


def test_logits_do_not_change_when_later_codes_change():
    prior = make()
    codes = torch.randint(0, 5, (2, 3, 4), generator=gen())
    changed = codes.clone()
    changed[:, 1, 2:] = (changed[:, 1, 2:] + 1) % 5
    changed[:, 2] = (changed[:, 2] + 2) % 5
    a, b = prior(codes), prior(changed)
    flat_a, flat_b = a.flatten(2), b.flatten(2)  # (B, K, L)
    assert torch.equal(flat_a[:, :, : 1 * 4 + 3], flat_b[:, :, : 1 * 4 + 3])
    assert not torch.allclose(flat_a[:, :, 1 * 4 + 3 :], flat_b[:, :, 1 * 4 + 3 :])


@pytest.mark.parametrize("classes", [None, 2])
def test_log_prob_sums_to_one_over_all_grids(classes):
    prior = make(k=2, classes=classes, dtype=torch.float64)
    grids = torch.tensor(list(itertools.product([0, 1], repeat=4))).view(16, 2, 2)
    for label in [None] if classes is None else range(classes):
        log_prob = prior.log_prob(grids, None if label is None else label)  # (16,)
        assert torch.logsumexp(log_prob, 0).abs() < 1e-12


def test_sample_frequencies_match_log_prob_chi_square():
    prior = make(k=2, dtype=torch.float64)
    grids = torch.tensor(list(itertools.product([0, 1], repeat=4))).view(16, 2, 2)
    probs = prior.log_prob(grids).exp()  # (16,)
    samples = prior.sample(4000, (2, 2), generator=gen(1))
    index = (samples.view(4000, 4) * torch.tensor([8, 4, 2, 1])).sum(1)
    observed = torch.bincount(index, minlength=16).double()
    expected = 4000 * probs
    stat = ((observed - expected) ** 2 / expected).sum().item()
    assert chi2.sf(stat, df=15) > 1e-3, stat


CASES = {
    "plain": {},
    "temperature": {"temperature": 0.6},
    "top_k": {"top_k": 2},
    "top_p": {"top_p": 0.7, "temperature": 1.3},
    "top_k_top_p": {"top_k": 3, "top_p": 0.9},
}


@pytest.mark.parametrize("options", CASES.values(), ids=CASES.keys())
@pytest.mark.parametrize("classes", [None, 3])
def test_cached_sampler_equals_naive_code_for_code(options, classes):
    prior = make(classes=classes)
    cond = None if classes is None else torch.tensor([0, 1, 2, 0, 1, 2])
    a = prior.sample(6, (4, 5), cond=cond, generator=gen(3), method="naive", **options)
    b = prior.sample(6, (4, 5), cond=cond, generator=gen(3), method="cached", **options)
    assert a.dtype == torch.int64
    assert a.shape == (6, 4, 5)
    assert torch.equal(a, b)
    c = prior.sample(6, (4, 5), cond=cond, generator=gen(4), **options)  # default: cached
    assert not torch.equal(b, c)


def test_cached_sampler_equals_naive_with_given_codes():
    prior = make(classes=2)
    given = torch.randint(0, 5, (4, 3, 4), generator=gen(5))
    mask = torch.rand(4, 3, 4, generator=gen(6)) < 0.5
    mask[0] = True  # one sample fully given
    kw = {"cond": 1, "given": given, "given_mask": mask, "top_k": 3}
    a = prior.sample(4, generator=gen(7), method="naive", **kw)
    b = prior.sample(4, generator=gen(7), method="cached", **kw)
    assert torch.equal(a, b)
    assert torch.equal(a[mask], given[mask])


def test_completion_conditions_on_the_given_prefix():
    """With the first row given, the first unknown code follows p(x | given row) (chi-square)."""
    prior = make(k=3, dtype=torch.float64)
    given = torch.full((2, 3), -1)
    given[0] = torch.tensor([2, 0, 1])
    samples = prior.sample(3000, given=given, generator=gen(8))
    assert torch.equal(samples[:, 0], torch.tensor([2, 0, 1]).expand(3000, 3))
    logits = prior(samples[:1])[0, :, 1, 0]  # (K,): p(x_10 | first row)
    expected = 3000 * torch.softmax(logits, 0)
    observed = torch.bincount(samples[:, 1, 0], minlength=3).double()
    stat = ((observed - expected) ** 2 / expected).sum().item()
    assert chi2.sf(stat, df=2) > 1e-3


def test_top_k_one_is_greedy_decoding():
    prior = make()
    codes = prior.sample(3, (3, 3), generator=gen(9), top_k=1)
    greedy = torch.zeros(3, 3, 3, dtype=torch.long)
    for t in range(9):
        logits = prior(greedy).flatten(2)[:, :, t]  # (B, K)
        greedy.view(3, 9)[:, t] = logits.argmax(1)
    assert torch.equal(codes, greedy)


def test_filter_logits_closed_forms():
    logits = torch.log(torch.tensor([[0.5, 0.2, 0.2, 0.1], [0.1, 0.6, 0.05, 0.25]]))
    top2 = filter_logits(logits, 1.0, top_k=2)
    assert torch.equal(torch.isfinite(top2), torch.tensor([[1, 1, 1, 0], [0, 1, 0, 1]]).bool())
    # nucleus 0.6: the smallest sets reaching 0.6 are {0, 1 or 2 first in sort} and {1}
    nucleus = filter_logits(logits, 1.0, top_p=0.6)
    assert torch.isfinite(nucleus).sum(1).tolist() == [2, 1]
    assert torch.isfinite(nucleus[1, 1])
    # top_p = 0.5 exactly reached by the first code alone
    assert torch.isfinite(filter_logits(logits, 1.0, top_p=0.5)[0]).sum() == 1
    # temperature flattens the distribution, so the nucleus grows
    assert torch.isfinite(filter_logits(logits, 5.0, top_p=0.6)).sum() > 3
    assert torch.equal(filter_logits(logits, 1.0), logits.double())


def test_bad_input_to_filter_logits():
    logits = torch.zeros(2, 4)
    with pytest.raises(TypeError, match="floating"):
        filter_logits(torch.zeros(2, 4, dtype=torch.long), 1.0)
    with pytest.raises(TypeError, match="floating"):
        filter_logits([[0.0, 1.0]], 1.0)
    with pytest.raises(ValueError, match=r"\(B, K\)"):
        filter_logits(torch.zeros(4), 1.0)
    with pytest.raises(ValueError, match="temperature"):
        filter_logits(logits, 0.0)
    with pytest.raises(ValueError, match="top_k"):
        filter_logits(logits, 1.0, top_k=5)
    with pytest.raises(ValueError, match="top_p"):
        filter_logits(logits, 1.0, top_p=float("nan"))


def test_loss_is_the_likelihood_loss_and_trains():
    prior = make()
    prior.train()
    codes = torch.randint(0, 5, (4, 3, 4), generator=gen(10))
    out = prior.loss(codes)
    nll = -prior.eval().log_prob(codes).mean() / 12
    assert torch.allclose(out.losses["nll"], nll)
    assert set(out.losses) == {"nll", "nll_per_sample", "bits_per_latent"}
    prior.train()
    optimizer = torch.optim.Adam(prior.parameters(), lr=1e-2)
    first = prior.loss(codes).loss.item()
    for _ in range(10):
        optimizer.zero_grad()
        prior.loss(codes).loss.backward()
        optimizer.step()
    assert prior.loss(codes).loss.item() < 0.8 * first


def test_odd_grids_and_empty_batch():
    prior = make()
    assert prior.log_prob(torch.zeros(0, 3, 4, dtype=torch.long)).shape == (0,)
    with pytest.raises(ValueError, match="empty"):
        prior.loss(torch.zeros(0, 3, 4, dtype=torch.long))
    assert prior.sample(2, (1, 1), generator=gen()).shape == (2, 1, 1)
    assert prior.sample(1, (5, 3), generator=gen()).shape == (1, 5, 3)
    assert prior.log_prob(torch.zeros(2, 6, 1, dtype=torch.long)).shape == (2,)


def test_vqvae_builds_with_a_transformer_prior():
    model = vqkit.VQVAE(
        encoder={"type": "conv", "in_channels": 1, "hidden_channels": 8, "num_downsamples": 1},
        quantizer={"type": "vq", "dim": 4, "codebook_size": 8},
        decoder={"type": "conv", "out_channels": 1, "hidden_channels": 8, "num_upsamples": 1},
        prior={"type": "transformer", "embed_dim": 8, "num_layers": 1, "num_heads": 2},
        image_size=[8, 8],
    ).eval()
    assert model.prior.num_embeddings == 8
    x = torch.rand(2, 1, 8, 8)
    assert torch.isfinite(model.prior_loss(x).loss)
    assert model.generate(2, generator=gen()).shape == (2, 1, 8, 8)


BAD_BUILD = {
    "one code": ({"num_embeddings": 1}, ValueError),
    "heads do not divide": ({"embed_dim": 10, "num_heads": 3}, ValueError),
    "zero heads": ({"num_heads": 0}, ValueError),
    "zero layers": ({"num_layers": 0}, ValueError),
    "max_size string": ({"max_size": "big"}, ValueError),
    "max_size triple": ({"max_size": [4, 4, 4]}, ValueError),
    "dropout 1.5": ({"dropout": 1.5}, ValueError),
    "zero classes": ({"num_classes": 0}, ValueError),
    "bool width": ({"embed_dim": True}, ValueError),
}


@pytest.mark.parametrize(("kw", "error"), BAD_BUILD.values(), ids=BAD_BUILD.keys())
def test_bad_constructor_arguments(kw, error):
    options = {"num_embeddings": 4, "embed_dim": 8, "num_heads": 2, "num_layers": 1} | kw
    with pytest.raises(error):
        TransformerPrior(**options)


BAD_SCORE = {
    "float codes": (lambda: torch.zeros(2, 3, 3), None, TypeError, "integer"),
    "out of range": (lambda: torch.full((2, 3, 3), 5), None, ValueError, r"\[0, 5\)"),
    "negative": (lambda: torch.full((2, 3, 3), -1), None, ValueError, r"\[0, 5\)"),
    "wrong rank": (lambda: torch.zeros(2, 9, dtype=torch.long), None, ValueError, "shape"),
    "too large grid": (lambda: torch.zeros(1, 7, 3, dtype=torch.long), None, ValueError, "max"),
    "empty grid": (lambda: torch.zeros(1, 0, 3, dtype=torch.long), None, ValueError, "empty"),
    "cond unconditional": (lambda: torch.zeros(1, 2, 2, dtype=torch.long), 1, ValueError, "cond"),
    "list": (lambda: [[0, 1]], None, TypeError, "Tensor"),
}


@pytest.mark.parametrize(("codes", "cond", "error", "match"), BAD_SCORE.values(), ids=BAD_SCORE)
def test_bad_input_to_log_prob_and_loss(codes, cond, error, match):
    prior = make()
    with pytest.raises(error, match=match):
        prior.log_prob(codes(), cond)
    with pytest.raises(error, match=match):
        prior.loss(codes(), cond)


def test_conditional_prior_needs_valid_labels():
    prior = make(classes=3)
    codes = torch.zeros(2, 2, 2, dtype=torch.long)
    with pytest.raises(ValueError, match="class-conditional"):
        prior.log_prob(codes)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        prior.log_prob(codes, torch.tensor([0, 3]))
    with pytest.raises(TypeError, match="integer"):
        prior.log_prob(codes, torch.tensor([0.0, 1.0]))


BAD_SAMPLE = {
    "n zero": ({"n": 0}, ValueError, "positive"),
    "size bad": ({"size": (0, 3)}, ValueError, "size"),
    "size too large": ({"size": (7, 7)}, ValueError, "max_size"),
    "temperature zero": ({"temperature": 0.0}, ValueError, "temperature"),
    "temperature string": ({"temperature": "hot"}, TypeError, "temperature"),
    "top_k zero": ({"top_k": 0}, ValueError, "top_k"),
    "top_k above K": ({"top_k": 6}, ValueError, "top_k"),
    "top_k float": ({"top_k": 2.5}, TypeError, "top_k"),
    "top_p zero": ({"top_p": 0.0}, ValueError, "top_p"),
    "top_p above one": ({"top_p": 1.5}, ValueError, "top_p"),
    "method": ({"method": "beam"}, ValueError, "method"),
    "generator": ({"generator": 3}, TypeError, "generator"),
    "given out of range": ({"given": torch.full((2, 2), 9)}, ValueError, "given"),
    "given float": ({"given": torch.zeros(2, 2)}, TypeError, "given"),
    "no size": ({"size": None}, ValueError, "size"),
}


@pytest.mark.parametrize(("kw", "error", "match"), BAD_SAMPLE.values(), ids=BAD_SAMPLE.keys())
def test_bad_input_to_sample(kw, error, match):
    prior = make()
    options = {"n": 2, "size": (3, 3)} | kw
    if "given" in kw:
        options["size"] = None
    with pytest.raises(error, match=match):
        prior.sample(**options)
