"""The hierarchical prior p(top) · p(bottom | top) of VQ-VAE-2 (Razavi et al. 2019,
arXiv:1906.00446): total NLL = the levels' sum, the bottom's dependence on the top codes and its
causality in its own codes, sampling, validation, the Hub, and the two-stage run with tuple codes.

The bottom prior is the ``spatial_stand_in`` test double (``spatial_double.py``) of the spatial
conditioning interface; the real ``GatedPixelCNN(cond_channels=...)`` is tested too once it has
that interface (the ``spatial`` branch).
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from spatial_double import NAME, gated_takes_cond_map

import vqkit
from vqkit.autoregressive import HierarchicalPrior
from vqkit.models.vqvae2 import VQVAE2

BOTTOMS = [{"type": NAME, "hidden_channels": 8}]
if gated_takes_cond_map():
    BOTTOMS.append(
        {"type": "gated_pixelcnn", "hidden_channels": 8, "num_layers": 2, "head_channels": 8}
    )
TOP = {"type": "gated_pixelcnn", "hidden_channels": 8, "num_layers": 2, "head_channels": 8}


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _prior(bottom=BOTTOMS[0], **overrides) -> HierarchicalPrior:
    torch.manual_seed(0)
    kwargs = {
        "top": copy.deepcopy(TOP),
        "bottom": copy.deepcopy(bottom),
        "num_embeddings": [5, 4],
        "cond_channels": 3,
        "embed_dim": 4,
        "hidden_channels": 6,
        **overrides,
    }
    return HierarchicalPrior(**kwargs)


def _codes(b: int = 3, h: int = 2, w: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randint(0, 5, (b, h, w), generator=g),
        torch.randint(0, 4, (b, 2 * h, 2 * w), generator=g),
    )


@pytest.fixture(params=range(len(BOTTOMS)), ids=[b["type"] for b in BOTTOMS])
def prior(request) -> HierarchicalPrior:
    return _prior(BOTTOMS[request.param]).eval()


def test_total_nll_is_the_sum_of_the_levels(prior):
    codes = _codes()
    top, bottom = codes
    log_prob = prior.log_prob(codes)
    # brute force in float64 from the logits of each level
    top_logits, bottom_logits = prior(codes)
    by_hand = [
        F.log_softmax(logits.double(), 1).gather(1, c[:, None]).sum(dim=(1, 2, 3))
        for logits, c in ((top_logits, top), (bottom_logits, bottom))
    ]
    torch.testing.assert_close(log_prob.double(), by_hand[0] + by_hand[1])
    torch.testing.assert_close(
        log_prob,
        prior.top.log_prob(top) + prior.bottom.log_prob(bottom, cond_map=prior.condition(top)),
    )
    out = prior.loss(codes)
    losses = out.losses
    torch.testing.assert_close(out.loss, -log_prob.mean() / (6 + 24))
    torch.testing.assert_close(
        losses["nll_per_sample"], losses["top_nll_per_sample"] + losses["bottom_nll_per_sample"]
    )
    torch.testing.assert_close(losses["top_nll_per_sample"], -by_hand[0].mean().float())
    torch.testing.assert_close(losses["bottom_nll"], -by_hand[1].mean().float() / 24)
    torch.testing.assert_close(
        losses["bottom_bits_per_latent"], losses["bottom_nll"] / torch.log(torch.tensor(2.0))
    )


def test_bottom_logits_depend_on_the_top_codes(prior):
    """Jacobian of the bottom logits w.r.t. the top embedding: nonzero, and at every bottom
    position nonzero at its parent top position (i // 2, j // 2)."""
    model = copy.deepcopy(prior).double()
    top, bottom = _codes(b=1)
    embedded = model.top_embedding(top).permute(0, 3, 1, 2).detach().requires_grad_(True)
    cond_map = model.condition_from_embedding(embedded)  # (1, 3, 4, 6)
    logits = model.bottom(bottom, cond_map=cond_map)  # (1, K_b, 4, 6)
    projection = torch.randn(logits.shape[1], generator=torch.Generator().manual_seed(1))
    for i in range(4):
        for j in range(6):
            (grad,) = torch.autograd.grad(
                (logits[0, :, i, j] * projection.double()).sum(), embedded, retain_graph=True
            )
            assert grad[0, :, i // 2, j // 2].abs().sum() > 0, (i, j)


def test_bottom_prior_is_causal_in_its_own_codes(prior):
    """Changing the bottom code at p changes no logits at p or before it (raster order)."""
    top, bottom = _codes(b=1)
    cond_map = prior.condition(top)
    with torch.no_grad():
        base = prior.bottom(bottom, cond_map=cond_map)
        h, w = bottom.shape[1:]
        flat = torch.arange(h * w).reshape(h, w)
        for p in range(h * w):
            i, j = divmod(p, w)
            changed = bottom.clone()
            changed[0, i, j] = (changed[0, i, j] + 1) % 4
            logits = prior.bottom(changed, cond_map=cond_map)
            upto = flat <= p  # (h, w)
            assert torch.equal(logits[..., upto], base[..., upto]), (i, j)
            if p < h * w - 1:
                assert not torch.equal(logits[..., ~upto], base[..., ~upto]), (i, j)


def test_top_logits_ignore_the_bottom_codes(prior):
    top, bottom = _codes()
    with torch.no_grad():
        a, _ = prior((top, bottom))
        b, _ = prior((top, (bottom + 1) % 4))
    assert torch.equal(a, b)


def test_sample_is_top_then_bottom_given_top(prior):
    a = prior.sample(4, (2, 3), generator=torch.Generator().manual_seed(3))
    assert a[0].shape == (4, 2, 3)
    assert a[1].shape == (4, 4, 6)
    assert a[0].dtype == a[1].dtype == torch.int64
    assert int(a[0].max()) < 5
    assert int(a[1].max()) < 4
    g = torch.Generator().manual_seed(3)
    top = prior.top.sample(4, (2, 3), generator=g)
    bottom = prior.bottom.sample(4, (4, 6), generator=g, cond_map=prior.condition(top))
    assert torch.equal(a[0], top)
    assert torch.equal(a[1], bottom)
    b = prior.sample(4, ((2, 3), (4, 6)), generator=torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0])
    assert torch.equal(a[1], b[1])


def test_codes_and_arguments_are_validated():
    prior = _prior()
    top, bottom = _codes()
    with pytest.raises(TypeError, match=r"tuple \(top, bottom\)"):
        prior.log_prob(top)
    with pytest.raises(TypeError, match="integer"):
        prior.log_prob((top.float(), bottom))
    with pytest.raises(ValueError, match=r"2× the top grid"):
        prior.log_prob((top, bottom[:, :3]))
    with pytest.raises(ValueError, match=r"\(B, h, w\)"):
        prior.log_prob((top[0], bottom))
    with pytest.raises(ValueError, match=r"\[0, 5\)"):
        prior.log_prob((top + 5, bottom))
    with pytest.raises(ValueError, match="empty"):
        prior.loss((top[:0], bottom[:0]))
    with pytest.raises(ValueError, match="2× the top grid"):
        prior.sample(2, ((2, 3), (4, 5)))
    with pytest.raises(ValueError, match="grid sizes"):
        prior.sample(2)
    with pytest.raises(ValueError, match="spatial conditioning map"):
        # MADE takes no conditioning map (PixelCNN, Gated PixelCNN and the transformer do)
        _prior(bottom={"type": "made", "num_features": 24, "hidden_features": [8]})
    with pytest.raises(ValueError, match="num_embeddings"):
        _prior(num_embeddings=[5])
    with pytest.raises(ValueError, match="power of two"):
        _prior(upsample_factor=3)
    with pytest.raises(ValueError, match="num_embeddings=7"):
        _prior(top={**TOP, "num_embeddings": 7})


def test_hub_round_trip(tmp_path):
    prior = _prior().eval()
    codes = _codes()
    prior.save_pretrained(tmp_path)
    loaded = HierarchicalPrior.from_pretrained(tmp_path)
    assert torch.equal(loaded.log_prob(codes), prior.log_prob(codes))
    a = prior.sample(2, (2, 2), generator=torch.Generator().manual_seed(0))
    b = loaded.sample(2, (2, 2), generator=torch.Generator().manual_seed(0))
    assert torch.equal(a[0], b[0])
    assert torch.equal(a[1], b[1])


_NET = {"hidden_channels": 8, "num_residual_layers": 1, "residual_hidden_channels": 4}
_PRIOR_SPEC = {
    "type": "hierarchical",
    "top": TOP,
    "bottom": BOTTOMS[0],
    "cond_channels": 3,
    "embed_dim": 4,
    "hidden_channels": 6,
}


def _vqvae2() -> VQVAE2:
    torch.manual_seed(0)
    return VQVAE2(
        encoder={
            "type": "resnet",
            "in_channels": 1,
            "out_channels": 8,
            "num_downsamples": 1,
            **_NET,
        },
        top_encoder={"type": "resnet", "num_downsamples": 1, **_NET},
        top_quantizer={"type": "vq", "dim": 4, "codebook_size": 5},
        bottom_quantizer={"type": "vq", "dim": 4, "codebook_size": 4},
        decoder={"type": "resnet", **_NET},
        top_decoder={"type": "resnet", **_NET},
        prior=copy.deepcopy(_PRIOR_SPEC),
        image_size=[8, 8],
    )


def test_vqvae2_with_the_hierarchical_prior():
    model = _vqvae2()
    assert model.prior.num_embeddings == (5, 4)  # wired from the codebook sizes
    x = torch.rand(3, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    out = model.prior_loss(x)
    codes = model.encode_indices(x)
    torch.testing.assert_close(out.loss, model.prior.loss(codes).loss)
    torch.testing.assert_close(model.prior_nll(codes), -model.prior.log_prob(codes))
    images = model.generate(2, generator=torch.Generator().manual_seed(1))
    drawn = model.prior.sample(2, (2, 2), generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(images, model.decode_indices(drawn))
    with pytest.raises(ValueError, match="latent_size"):
        model.generate(2, latent_size=(2, 2))


def test_two_stage_run_with_tuple_codes(tmp_path):
    """The prior stage trains on (top, bottom) codes; the metrics have per-level usage."""
    from vqkit.data import ArrayDataset
    from vqkit.train import TrainConfig
    from vqkit.train.recipes import encode_dataset, train_vqvae_run

    model = _vqvae2()
    data = ArrayDataset(torch.rand(20, 1, 8, 8, generator=torch.Generator().manual_seed(0)))
    config = TrainConfig(max_steps=2, epochs=None, batch_size=8, progress=False)
    result = train_vqvae_run(model, data, None, tmp_path, config=config, prior_config=config)
    metrics = result.metrics
    for level, k in (("top", 5), ("bottom", 4)):
        assert 0 < metrics[f"codebook_usage_{level}"] <= 1
        assert metrics[f"codebook_used_codes_{level}"] + metrics[f"dead_codes_{level}"] == k
    assert metrics["codebook_used_codes"] == (
        metrics["codebook_used_codes_top"] + metrics["codebook_used_codes_bottom"]
    )
    codes = encode_dataset(model, data)
    top, bottom = codes[:][0], codes[:][1]
    with torch.no_grad():
        nll = -model.prior.log_prob((top, bottom)).double().mean()
    assert metrics["prior_nll"] == pytest.approx(float(nll), rel=1e-5)
    assert metrics["bits_per_latent"] == pytest.approx(float(nll) / (4 + 16) / 0.6931471805599453)
    assert (tmp_path / "prior").is_dir()
    assert (tmp_path / "reconstructions.png").is_file()
    loaded = vqkit.load_run_model(tmp_path)
    assert loaded.hub_config == model.hub_config


def test_run_spec_with_the_fashion_preset(tmp_path):
    """`vqkit train --model vqvae2-fashion-mnist` through its RunSpec, the prior stage included
    (its bottom prior swapped for the stand-in until GatedPixelCNN takes cond_map)."""
    from vqkit.train import DataSpec, RunSpec, TrainConfig, train_run

    small = {"hidden_channels": 8, "num_layers": 1, "head_channels": 8}
    prior = {"top": small, "bottom": {"type": NAME, "hidden_channels": 4}, "hidden_channels": 8}
    config = TrainConfig(max_steps=1, epochs=None, batch_size=16, progress=False)
    spec = RunSpec(
        data=DataSpec("digits", val_fraction=0.0, subset_fraction=0.1),
        model="vqvae2-fashion-mnist",
        model_config={"prior": prior},
        train=config,
        prior_train=config,
    )
    result = train_run(spec, tmp_path)
    assert result.model.latent_size == ((2, 2), (4, 4))  # 8×8 digits: 8 → 4 → 2
    assert result.model.prior.num_embeddings == (256, 16)
    assert {"codebook_usage_top", "codebook_usage_bottom", "bits_per_latent"} <= set(result.metrics)
