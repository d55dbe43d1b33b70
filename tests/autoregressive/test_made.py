"""MADE: autoregressive masks for every mask and ordering, valid ensemble likelihood, sampling."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch
from torch.autograd.functional import jacobian

import vqkit
from vqkit import MADE
from vqkit.autoregressive import MaskedMLP


def _feature_jacobian(net: MaskedMLP, mask_index: int) -> torch.Tensor:
    """(D, D) bool: output feature d depends on input feature e."""
    d, i, p = net.num_features, net.in_per_feature, net.out_per_feature
    x = torch.randn(d * i, dtype=torch.float64)
    jac = jacobian(lambda t: net(t[None], mask_index)[0], x)  # (D·P, D·I)
    return jac.view(d, p, d, i).abs().sum(dim=(1, 3)) > 0


@pytest.mark.parametrize(
    ("ordering", "order_agnostic"), [("natural", False), ("reversed", False), ("random", True)]
)
@pytest.mark.parametrize("hidden", [[32, 32], [48], []])
def test_outputs_depend_only_on_earlier_inputs_for_every_mask(ordering, order_agnostic, hidden):
    torch.manual_seed(0)
    net = MaskedMLP(
        6,
        hidden,
        in_per_feature=2,
        out_per_feature=3,
        num_masks=4,
        ordering=ordering,
        order_agnostic=order_agnostic,
        seed=3,
    ).double()
    orders = []
    for k in range(4):
        order = net.order(k)
        orders.append(tuple(order.tolist()))
        position = torch.empty(6, dtype=torch.long)
        position[order] = torch.arange(6)
        earlier = position[None, :] < position[:, None]  # (out d, in e): e before d
        dep = _feature_jacobian(net, k)
        assert not (dep & ~earlier).any(), k
        # the second feature in the order sees the first (these seeds give degree-1 units)
        assert dep[order[1], order[0]]
    if ordering == "natural":
        assert orders[0] == tuple(range(6))
    if ordering == "reversed":
        assert orders[0] == tuple(range(5, -1, -1))
    if order_agnostic:
        assert len(set(orders)) > 1


def test_masks_are_reproducible_and_differ_between_indices():
    a = MaskedMLP(5, [16, 16], num_masks=3, seed=1)
    b = MaskedMLP(5, [16, 16], num_masks=3, seed=1)
    for m1, m2 in zip(a.masks(2), b.masks(2), strict=True):
        assert torch.equal(m1, m2)
    assert any(not torch.equal(m1, m2) for m1, m2 in zip(a.masks(0), a.masks(1), strict=True))


def tiny_made(num_masks=3, **kw) -> MADE:
    torch.manual_seed(0)
    args = {"num_features": 3, "num_embeddings": 3, "hidden_features": [24, 24]}
    return MADE(**{**args, "num_masks": num_masks, **kw}).double()


def all_sequences(d=3, k=3) -> torch.Tensor:
    return torch.tensor(list(itertools.product(range(k), repeat=d)))


@pytest.mark.parametrize("order_agnostic", [False, True])
def test_each_mask_and_the_ensemble_are_normalised(order_agnostic):
    made = tiny_made(order_agnostic=order_agnostic, ordering="random")
    x = all_sequences()
    for k in range(3):
        total = made.log_prob(x, mask_index=k).exp().sum()
        torch.testing.assert_close(total, torch.tensor(1.0, dtype=torch.float64))
    torch.testing.assert_close(made.log_prob(x).exp().sum(), torch.tensor(1.0, dtype=torch.float64))


def test_ensemble_is_logsumexp_minus_log_n_not_averaged_logits():
    made = tiny_made()
    x = all_sequences()
    per_mask = torch.stack([made.log_prob(x, mask_index=k) for k in range(3)])
    ensemble = made.log_prob(x)
    torch.testing.assert_close(ensemble, torch.logsumexp(per_mask, 0) - math.log(3))
    assert (ensemble >= per_mask.mean(0) - 1e-12).all()  # Jensen
    # with different orderings, the logit-averaging "ensemble" leaks future inputs and is not a
    # distribution: it does not sum to one
    agnostic = tiny_made(ordering="random", order_agnostic=True)
    with torch.no_grad():
        agnostic.net.layers[-1].weight.mul_(20.0)
    logits = torch.stack([agnostic(x, mask_index=k) for k in range(3)]).mean(0)  # (N, K, D)
    averaged = logits.log_softmax(1).gather(1, x[:, None]).sum((1, 2))
    assert (averaged.exp().sum() - 1).abs() > 1e-3
    assert made.net.mask_index == 2  # an explicit mask_index switches; the ensemble restores
    made.log_prob(x)
    assert made.net.mask_index == 2


def test_log_prob_matches_gathered_log_softmax_and_shapes():
    made = tiny_made(num_masks=1, num_features=6)
    x = torch.randint(0, 3, (4, 2, 3))
    logits = made(x)
    assert logits.shape == (4, 3, 2, 3)
    expected = logits.log_softmax(1).gather(1, x[:, None]).sum((1, 2, 3))
    torch.testing.assert_close(made.log_prob(x), expected)
    torch.testing.assert_close(made.log_prob(x.view(4, 6)), expected)


@pytest.mark.parametrize("mask_index", [0, None])
def test_samples_follow_the_distribution(mask_index):
    made = tiny_made(ordering="random", order_agnostic=True)
    with torch.no_grad():
        made.net.layers[-1].weight.mul_(3.0)
    probs = made.log_prob(all_sequences(), mask_index=mask_index).exp()  # (27,)
    n = 6000
    draws = made.sample(
        n, generator=torch.Generator().manual_seed(0), mask_index=mask_index
    )  # (n, 3)
    assert draws.shape == (n, 3)
    counts = torch.bincount(draws[:, 0] * 9 + draws[:, 1] * 3 + draws[:, 2], minlength=27)
    std = (n * probs * (1 - probs)).sqrt()
    assert ((counts - n * probs).abs() <= 4.5 * std + 1).all()


def test_binary_made_samples_and_shapes():
    made = MADE(num_features=12, hidden_features=[32])
    out = made.sample(5, (3, 4), generator=torch.Generator().manual_seed(0))
    assert out.shape == (5, 3, 4)
    assert set(out.unique().tolist()) <= {0, 1}
    assert torch.isfinite(made.log_prob(out)).all()


def test_made_errors_and_hub(tmp_path):
    made = tiny_made()
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        made(torch.tensor([[0, 1, 3]]))
    with pytest.raises(TypeError, match="integer tensor"):
        made(torch.zeros(1, 3))
    with pytest.raises(ValueError, match=r"shape \(B, D\), got \(3,\)"):
        made(torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="3 features per sample"):
        made(torch.zeros(1, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="unconditional"):
        made.log_prob(torch.zeros(1, 3, dtype=torch.long), cond=torch.tensor([0]))
    with pytest.raises(ValueError, match=r"mask_index must be an int in \[0, 3\)"):
        made(torch.zeros(1, 3, dtype=torch.long), mask_index=3)
    with pytest.raises(ValueError, match="ordering must be one of"):
        MADE(4, ordering="sorted")
    with pytest.raises(ValueError, match="num_embeddings must be an int >= 2"):
        MADE(4, num_embeddings=1)
    made.float().save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["num_masks"] == 3
    loaded = MADE.from_pretrained(tmp_path)
    x = all_sequences()
    torch.testing.assert_close(loaded.log_prob(x), made.log_prob(x))
    assert isinstance(vqkit.build("prior", {"type": "made", "num_features": 4}), MADE)
