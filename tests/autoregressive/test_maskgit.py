"""MaskGIT: the decoder's mask counts against the schedule's closed form, no mask tokens out,
revealed and given codes never change, per-position marginals by chi-square, bidirectional
dependence by Jacobian, the masked-token losses, guidance, hostile input."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from scipy.stats import chi2

import vqkit
from vqkit.autoregressive import grid_dependencies
from vqkit.autoregressive.maskgit import SCHEDULES, MaskGIT, mask_ratio, masked_counts
from vqkit.contracts import contract_problems


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one thread avoids oversubscription on a shared CPU (it changes no value)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make(k=5, classes=None, **kw) -> MaskGIT:
    torch.manual_seed(0)
    options = {"embed_dim": 16, "num_layers": 2, "num_heads": 2, "max_size": 8} | kw
    prior = MaskGIT(num_embeddings=k, num_classes=classes, **options)
    with torch.no_grad():
        for p in prior.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return prior.eval()


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


class FixedLogits(MaskGIT):
    """A MaskGIT whose logits are a fixed (K, H, W) table, whatever the input."""

    def __init__(self, table: torch.Tensor) -> None:
        k = table.shape[0]
        super().__init__(num_embeddings=k, embed_dim=4, num_layers=1, num_heads=1, max_size=8)
        self.table = table

    def logits_from_embeddings(self, x, cond=None):
        return self.table.expand(x.shape[0], -1, -1, -1).to(x.dtype)


def test_contract():
    prior = make()
    assert contract_problems("prior", prior) == []
    assert prior.domain == "codes"
    assert prior.exact_likelihood is False
    with pytest.raises(NotImplementedError, match="masked_nll_r50"):
        prior.log_prob(torch.zeros(1, 2, 2, dtype=torch.long))


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedules_go_from_one_to_zero(name):
    assert mask_ratio(name, 0.0) == 1.0
    assert mask_ratio(name, 1.0) == 1e-6  # clipped as in the official code
    r = torch.linspace(0, 1, 11, dtype=torch.float64)
    values = mask_ratio(name, r)
    assert torch.all(values[1:] <= values[:-1])
    assert torch.allclose(values, torch.tensor([mask_ratio(name, float(x)) for x in r]).double())


def test_masked_counts_closed_form():
    # N₀ = 64, T = 8, cosine: no clamp binds, so the counts are ⌊64·cos(π/2·t/8)⌋, then 0
    expected = [math.floor(64 * math.cos(math.pi / 2 * t / 8)) for t in range(1, 8)] + [0]
    assert masked_counts(64, 8, "cosine") == expected
    assert masked_counts(64, 4, "linear") == [48, 32, 16, 0]
    # clamps: at least one revealed per step, at least one kept masked until the last step
    assert masked_counts(3, 6, "cosine") == [2, 1, 1, 1, 1, 0]
    assert masked_counts(0, 3) == [0, 0, 0]
    assert masked_counts(5, 1) == [0]


@pytest.mark.parametrize(("steps", "schedule"), [(8, "cosine"), (4, "linear"), (12, "square")])
def test_sampler_masks_as_many_as_the_schedule_says(steps, schedule):
    prior = make()
    codes, history = prior.sample(
        3, (5, 6), steps=steps, schedule=schedule, generator=gen(1), return_history=True
    )
    assert history.shape == (steps, 3, 5, 6)
    counts = (history == -1).flatten(2).sum(-1)  # (steps, n)
    expected = torch.tensor(masked_counts(30, steps, schedule))
    assert torch.equal(counts, expected[:, None].expand(-1, 3))
    assert torch.equal(history[-1], codes)


def test_counts_with_given_codes_differ_per_sample_and_given_codes_are_kept():
    prior = make()
    given = torch.randint(0, 5, (3, 4, 4), generator=gen(2))
    mask = torch.zeros(3, 4, 4, dtype=torch.bool)
    mask[0, :2] = True  # outpainting: the top half given
    mask[1, 1:3, 1:3] = True  # inpainting from a centre
    mask[2] = True  # all given
    codes, history = prior.sample(
        3, given=given, given_mask=mask, steps=6, generator=gen(3), return_history=True
    )
    counts = (history == -1).flatten(2).sum(-1)  # (steps, n)
    for i, unknown in enumerate([8, 12, 0]):
        assert counts[:, i].tolist() == masked_counts(unknown, 6), i
    for step in history:
        assert torch.equal(step[mask], given[mask])
    assert torch.equal(codes[mask], given[mask])


@pytest.mark.parametrize("order", ["confidence", "random"])
def test_no_mask_tokens_and_revealed_codes_never_change(order):
    prior = make(classes=2)
    codes, history = prior.sample(
        4, (4, 5), cond=1, steps=7, order=order, generator=gen(4), return_history=True
    )
    assert codes.dtype == torch.int64
    assert int(codes.min()) >= 0
    assert int(codes.max()) < prior.num_embeddings
    for t in range(1, len(history)):
        revealed = history[t - 1] != -1
        assert torch.equal(history[t][revealed], history[t - 1][revealed])


def _chi_square(codes: torch.Tensor, probs: torch.Tensor) -> float:
    """Sum over positions of the chi-square statistics of the codes against probs (K, H, W)."""
    n = codes.shape[0]
    k = probs.shape[0]
    observed = F.one_hot(codes, k).sum(0).permute(2, 0, 1).double()  # (K, H, W)
    expected = n * probs
    return float(((observed - expected) ** 2 / expected).sum())


TABLE = torch.log(
    torch.tensor(
        [
            [[0.6, 0.2, 0.1], [0.3, 0.5, 0.25]],
            [[0.3, 0.2, 0.6], [0.3, 0.25, 0.25]],
            [[0.1, 0.6, 0.3], [0.4, 0.25, 0.5]],
        ]
    )
)  # (K=3, H=2, W=3)


@pytest.mark.parametrize("steps", [1, 2, 4, 8])
def test_fixed_logits_give_their_marginals_with_random_order(steps):
    prior = FixedLogits(TABLE).eval()
    codes = prior.sample(3000, (2, 3), steps=steps, order="random", generator=gen(steps))
    stat = _chi_square(codes, TABLE.softmax(0).double())
    assert chi2.sf(stat, df=6 * 2) > 1e-3, stat


def test_fixed_logits_with_the_official_confidence_order():
    """One step draws the marginals; more steps keep confident codes and so sharpen them."""
    prior = FixedLogits(TABLE).eval()
    probs = TABLE.softmax(0).double()
    one = prior.sample(3000, (2, 3), steps=1, generator=gen(5))
    assert chi2.sf(_chi_square(one, probs), df=12) > 1e-3
    many = prior.sample(3000, (2, 3), steps=6, choice_temperature=0.0, generator=gen(6))
    mode_freq = (many == probs.argmax(0)).double().mean(0)  # (H, W)
    # positions compete for being kept: on average the modes are strongly over-represented
    assert mode_freq.mean() > probs.max(0).values.mean() + 0.15


def test_bidirectional_dependence_by_jacobian():
    deps = grid_dependencies(make(), (3, 4))  # (H, W, H, W)
    assert bool(deps.all())
    deps = grid_dependencies(make(classes=2), (2, 3), cond=torch.tensor([1]))
    assert bool(deps.all())


def test_eval_loss_is_deterministic_masked_nll():
    prior = make()
    codes = torch.randint(0, 5, (4, 4, 4), generator=gen(7))
    a, b = prior.loss(codes), prior.loss(codes)
    assert set(a.losses) == {"masked_nll_r25", "masked_nll_r50", "masked_nll_r75"}
    assert torch.equal(a.loss, b.loss)
    assert torch.allclose(a.loss, torch.stack(list(a.losses.values())).mean())


def test_training_loss_is_label_smoothed_cross_entropy_on_masked_codes():
    table = TABLE
    prior = FixedLogits(table).train()
    prior.label_smoothing = 0.2
    codes = torch.randint(0, 3, (6, 2, 3), generator=gen(8))
    log_p = table.log_softmax(0)  # (K, H, W)
    torch.manual_seed(9)
    out = prior.loss(codes)
    # the same random mask, drawn again from the same seed as loss() does
    torch.manual_seed(9)
    ratio = mask_ratio("cosine", torch.rand(6))
    num_masked = (ratio * 6).ceil().clamp(1, 6)
    ranks = torch.rand(6, 6).argsort(1).argsort(1)
    masked = (ranks < num_masked[:, None]).view(6, 2, 3)
    nll = -log_p.expand(6, -1, -1, -1).gather(1, codes[:, None])[:, 0]  # (B, H, W)
    uniform = -log_p.mean(0)  # (H, W)
    per = 0.8 * nll + 0.2 * uniform
    expected = per[masked].mean()
    assert torch.allclose(out.loss, expected.float(), atol=1e-6)
    assert out.losses["mask_ratio"] == masked.float().mean()


def test_training_reduces_the_masked_nll():
    prior = make()
    prior.train()
    codes = torch.randint(0, 5, (8, 3, 3), generator=gen(10))
    optimizer = torch.optim.Adam(prior.parameters(), lr=1e-2)
    first = prior.eval().loss(codes).loss.item()
    prior.train()
    for _ in range(6):
        optimizer.zero_grad()
        prior.loss(codes).loss.backward()
        optimizer.step()
    assert prior.eval().loss(codes).loss.item() < first


def test_classifier_free_guidance():
    prior = make(classes=3)
    tokens = torch.full((2, 3, 3), prior.mask_id)
    cond = torch.tensor([0, 2])
    plain = prior._guided_logits(tokens, cond, 1.0)
    assert torch.equal(plain, prior(tokens, cond))
    guided = prior._guided_logits(tokens, cond, 3.0)
    unconditional = prior._logits(tokens, torch.full_like(cond, 3))
    assert torch.allclose(guided, unconditional + 3.0 * (plain - unconditional), atol=1e-5)
    a = prior.sample(2, (3, 3), cond=cond, guidance_scale=3.0, generator=gen(11))
    b = prior.sample(2, (3, 3), cond=cond, generator=gen(11))
    assert a.shape == b.shape == (2, 3, 3)
    assert not torch.equal(a, b)


def test_seeded_sampling_is_reproducible_and_odd_sizes_work():
    prior = make()
    assert torch.equal(
        prior.sample(3, (5, 7), generator=gen(1)), prior.sample(3, (5, 7), generator=gen(1))
    )
    assert prior.sample(1, (1, 1), steps=3, generator=gen()).shape == (1, 1, 1)
    assert prior.sample(2, (2, 2), steps=16, generator=gen()).shape == (2, 2, 2)


def test_vqvae_builds_with_a_maskgit_prior():
    model = vqkit.VQVAE(
        encoder={"type": "conv", "in_channels": 1, "hidden_channels": 8, "num_downsamples": 1},
        quantizer={"type": "vq", "dim": 4, "codebook_size": 8},
        decoder={"type": "conv", "out_channels": 1, "hidden_channels": 8, "num_upsamples": 1},
        prior={"type": "maskgit", "embed_dim": 8, "num_layers": 1, "num_heads": 2},
        image_size=[8, 8],
    ).eval()
    assert model.prior.num_embeddings == 8
    assert model.generate(2, generator=gen()).shape == (2, 1, 8, 8)
    codes = model.encode_indices(torch.rand(2, 1, 8, 8))
    assert torch.isfinite(model.prior.loss(codes).loss)


def test_bad_input_to_the_schedule_functions():
    with pytest.raises(ValueError, match="schedule"):
        mask_ratio("exp", 0.5)
    with pytest.raises(ValueError, match="r must"):
        mask_ratio("cosine", 1.5)
    with pytest.raises(ValueError, match="r must"):
        mask_ratio("cosine", float("nan"))
    with pytest.raises(ValueError, match="r must"):
        mask_ratio("cosine", torch.tensor([0.5, -0.1]))
    with pytest.raises(ValueError, match="r must"):
        mask_ratio("cosine", torch.tensor([1, 0]))
    with pytest.raises(ValueError, match="steps"):
        masked_counts(10, 0)
    with pytest.raises(ValueError, match="num_unknown"):
        masked_counts(-1, 4)
    with pytest.raises(TypeError, match="num_unknown"):
        masked_counts(2.5, 4)
    with pytest.raises(ValueError, match="schedule"):
        masked_counts(10, 4, "log")


BAD_BUILD = {
    "one code": {"num_embeddings": 1},
    "heads do not divide": {"embed_dim": 10, "num_heads": 3},
    "zero layers": {"num_layers": 0},
    "label smoothing 1": {"label_smoothing": 1.0},
    "unknown schedule": {"schedule": "exp"},
    "cond drop 2": {"cond_drop_prob": 2.0},
    "max_size zero": {"max_size": 0},
    "zero classes": {"num_classes": 0},
}


@pytest.mark.parametrize("kw", BAD_BUILD.values(), ids=BAD_BUILD.keys())
def test_bad_constructor_arguments(kw):
    options = {"num_embeddings": 4, "embed_dim": 8, "num_heads": 2, "num_layers": 1} | kw
    with pytest.raises(ValueError):
        MaskGIT(**options)


BAD_LOSS = {
    "float codes": (lambda: torch.zeros(2, 3, 3), None, TypeError, "integer"),
    "mask token as a code": (lambda: torch.full((2, 3, 3), 5), None, ValueError, r"\[0, 5\)"),
    "wrong rank": (lambda: torch.zeros(2, 9, dtype=torch.long), None, ValueError, "shape"),
    "too large": (lambda: torch.zeros(1, 9, 3, dtype=torch.long), None, ValueError, "max_size"),
    "empty grid": (lambda: torch.zeros(1, 3, 0, dtype=torch.long), None, ValueError, "empty"),
    "empty batch": (lambda: torch.zeros(0, 3, 3, dtype=torch.long), None, ValueError, "empty"),
    "cond unconditional": (lambda: torch.zeros(1, 2, 2, dtype=torch.long), 0, ValueError, "cond"),
    "numpy-like list": (lambda: [[1, 2]], None, TypeError, "Tensor"),
}


@pytest.mark.parametrize(("codes", "cond", "error", "match"), BAD_LOSS.values(), ids=BAD_LOSS)
def test_bad_input_to_loss(codes, cond, error, match):
    prior = make()
    with pytest.raises(error, match=match):
        prior.loss(codes(), cond)


def test_bad_input_to_forward():
    prior = make(classes=2)
    with pytest.raises(ValueError, match=r"\[0, 6\)"):
        prior(torch.full((1, 2, 2), 6), 0)  # the mask token (5) is allowed, 6 is not
    with pytest.raises(ValueError, match="class-conditional"):
        prior(torch.zeros(1, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        prior(torch.zeros(1, 2, 2, dtype=torch.long), 2)  # the null class is internal


BAD_SAMPLE = {
    "n zero": ({"n": 0}, ValueError, "positive"),
    "size bad": ({"size": (3, -1)}, ValueError, "size"),
    "size too large": ({"size": (9, 9)}, ValueError, "max_size"),
    "temperature negative": ({"temperature": -1.0}, ValueError, "temperature"),
    "steps zero": ({"steps": 0}, ValueError, "steps"),
    "steps float": ({"steps": 2.0}, ValueError, "steps"),
    "choice temperature nan": ({"choice_temperature": float("nan")}, ValueError, "choice"),
    "schedule": ({"schedule": "exp"}, ValueError, "schedule"),
    "order": ({"order": "raster"}, ValueError, "order"),
    "guidance unconditional": ({"guidance_scale": 2.0}, ValueError, "guidance"),
    "guidance negative": ({"guidance_scale": -1.0}, ValueError, "guidance"),
    "generator": ({"generator": "seed"}, TypeError, "generator"),
    "given out of range": ({"given": torch.full((3, 3), 7), "size": None}, ValueError, "given"),
    "given_mask not bool": (
        {"given": torch.zeros(3, 3, dtype=torch.long), "given_mask": torch.ones(3, 3)},
        TypeError,
        "given_mask",
    ),
    "history not bool": ({"return_history": 1}, TypeError, "return_history"),
}


@pytest.mark.parametrize(("kw", "error", "match"), BAD_SAMPLE.values(), ids=BAD_SAMPLE.keys())
def test_bad_input_to_sample(kw, error, match):
    prior = make()
    options = {"n": 2, "size": (3, 3)} | kw
    with pytest.raises(error, match=match):
        prior.sample(**options)
