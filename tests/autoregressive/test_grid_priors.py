"""PixelCNN and Gated PixelCNN priors: causality, receptive field, likelihood, conditioning, I/O."""

from __future__ import annotations

import itertools
import json

import pytest
import torch

import vqkit
from vqkit import GatedPixelCNN, PixelCNN
from vqkit.autoregressive import grid_dependencies, raster_before

K = 5


def tiny_pixelcnn(**kw) -> PixelCNN:
    torch.manual_seed(0)
    args = {"num_embeddings": K, "hidden_channels": 8, "num_layers": 2, "head_channels": 16}
    return PixelCNN(**{**args, **kw}).double()


def tiny_gated(**kw) -> GatedPixelCNN:
    torch.manual_seed(0)
    args = {
        "num_embeddings": K,
        "hidden_channels": 6,
        "num_layers": 3,
        "first_kernel_size": 3,
        "head_channels": 12,
    }
    return GatedPixelCNN(**{**args, **kw}).double()


MAKERS = {"pixelcnn": tiny_pixelcnn, "gated_pixelcnn": tiny_gated}
SIZES = [(5, 5), (4, 9), (8, 3)]


@pytest.mark.parametrize("name", MAKERS)
@pytest.mark.parametrize("size", SIZES)
def test_network_is_causal(name, size):
    model = MAKERS[name]()
    h, w = size
    dep = grid_dependencies(model, size)  # (H, W, H, W)
    for i, j in itertools.product(range(h), range(w)):
        assert not (dep[i, j] & ~raster_before(size, (i, j))).any(), (i, j)
        assert bool(dep[i, j].any()) == ((i, j) != (0, 0))  # each position uses its context


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize(("first", "k", "layers"), [(3, 3, 3), (5, 3, 2), (3, 1, 2)])
def test_gated_depends_on_exactly_its_receptive_field(size, first, k, layers):
    """No blind spot: every earlier position within reach matters, and nothing else does."""
    model = tiny_gated(first_kernel_size=first, kernel_size=k, num_layers=layers)
    h, w = size
    dep = grid_dependencies(model, size)  # (H, W, H, W)
    for i, j in itertools.product(range(h), range(w)):
        expected = model.receptive_field(size, (i, j))
        assert not (expected & ~raster_before(size, (i, j))).any()
        assert torch.equal(dep[i, j], expected), (i, j)


def test_gated_reaches_up_and_right_where_pixelcnn_has_a_blind_spot():
    size, pos = (6, 9), (4, 3)
    gated = grid_dependencies(tiny_gated(num_layers=3), size, pos)
    plain = grid_dependencies(tiny_pixelcnn(num_layers=2, first_kernel_size=3), size, pos)
    # One row up and three columns right: within the Gated PixelCNN's reach R = 3, but in the
    # wedge right of the up-right diagonal that stacked masked kernels never reach.
    assert gated[3, 6]
    assert not plain[3, 6]  # the plain PixelCNN's blind spot


@pytest.mark.parametrize("name", MAKERS)
def test_log_prob_is_sum_of_gathered_log_softmax(name):
    model = MAKERS[name]()
    x = torch.randint(0, K, (3, 4, 6))
    logits = model(x)
    assert logits.shape == (3, K, 4, 6)
    expected = torch.zeros(3, dtype=torch.float64)
    logp = logits.log_softmax(dim=1)
    for b, i, j in itertools.product(range(3), range(4), range(6)):
        expected[b] += logp[b, x[b, i, j], i, j]
    torch.testing.assert_close(model.log_prob(x), expected)


@pytest.mark.parametrize("name", MAKERS)
def test_probabilities_sum_to_one_over_all_grids(name):
    model = MAKERS[name]()
    grids = torch.tensor(list(itertools.product(range(K), repeat=4))).view(-1, 2, 2)
    total = model.log_prob(grids).exp().sum()
    torch.testing.assert_close(total, torch.tensor(1.0, dtype=torch.float64))


@pytest.mark.parametrize("name", MAKERS)
def test_class_conditioning_changes_output(name):
    model = MAKERS[name](num_classes=3)
    for module in model.modules():  # embeddings start random; make the effect large
        if isinstance(module, torch.nn.Embedding) and module.num_embeddings == 3:
            torch.nn.init.normal_(module.weight, std=1.0)
    x = torch.randint(0, K, (2, 4, 4))
    out0 = model(x, torch.tensor([0, 0]))
    out1 = model(x, torch.tensor([1, 1]))
    assert (out0 - out1).abs().amax() > 1e-3
    torch.testing.assert_close(model(x, 2), model(x, torch.tensor([2, 2])))
    # conditioning keeps causality
    dep = grid_dependencies(model, (4, 5), (2, 2), cond=torch.tensor([1]))
    assert not (dep & ~raster_before((4, 5), (2, 2))).any()


@pytest.mark.parametrize("name", MAKERS)
def test_bad_input_errors(name):
    model = MAKERS[name]()
    with pytest.raises(ValueError, match=r"\[0, 5\).*got values in \[0, 5\]"):
        model(torch.tensor([[[0, 5]]]))
    with pytest.raises(ValueError, match=r"got values in \[-1"):
        model(torch.tensor([[[0, -1]]]))
    with pytest.raises(ValueError, match=r"shape \(B, H, W\), got \(4, 4\)"):
        model(torch.zeros(4, 4, dtype=torch.long))
    with pytest.raises(TypeError, match=r"integer tensor.*torch\.float32"):
        model(torch.zeros(1, 4, 4))
    with pytest.raises(TypeError, match=r"torch\.Tensor"):
        model([[[0]]])
    with pytest.raises(ValueError, match="unconditional"):
        model(torch.zeros(1, 2, 2, dtype=torch.long), cond=torch.tensor([0]))
    conditional = MAKERS[name](num_classes=2)
    with pytest.raises(ValueError, match=r"class-conditional.*pass cond"):
        conditional(torch.zeros(1, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"cond labels must lie in \[0, 2\)"):
        conditional(torch.zeros(1, 2, 2, dtype=torch.long), cond=torch.tensor([2]))
    with pytest.raises(ValueError, match=r"cond must have shape \(1,\)"):
        conditional(torch.zeros(1, 2, 2, dtype=torch.long), cond=torch.tensor([0, 1]))
    with pytest.raises(TypeError, match="integer class labels"):
        conditional(torch.zeros(1, 2, 2, dtype=torch.long), cond=torch.tensor([0.0]))


@pytest.mark.parametrize("name", MAKERS)
def test_hub_round_trip_and_registry(name, tmp_path):
    model = MAKERS[name](num_classes=2).float()
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config.pop("_class_name") == type(model).__name__
    config = {k: v for k, v in config.items() if not k.startswith("_")}  # the constructor's
    assert config["num_embeddings"] == K
    assert config["num_classes"] == 2
    loaded = type(model).from_pretrained(tmp_path)
    x = torch.randint(0, K, (2, 3, 4))
    torch.testing.assert_close(loaded(x, 1), model(x, 1))
    built = vqkit.build("prior", {"type": name, **config})
    assert isinstance(built, type(model))
    assert f"num_embeddings={K}" in repr(model)


def test_gated_default_construction_matches_issue_api():
    prior = GatedPixelCNN(num_embeddings=512, hidden_channels=64, num_layers=15, num_classes=None)
    assert len(prior.layers) == 15
    assert prior.reach == 3 + 14
    plain = PixelCNN()
    assert len(plain.blocks) == 12
    # the gated default head maps 64 -> 512 -> K
    logits = prior(torch.zeros(1, 2, 3, dtype=torch.long))
    assert logits.shape == (1, 512, 2, 3)


def test_loss_trains_a_tiny_prior():
    """A few Adam steps on a fixed batch lower the NLL (the gradient reaches every layer)."""
    model = tiny_gated().float()
    x = torch.randint(0, K, (8, 3, 3))
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    first = None
    for _ in range(25):
        loss = -model.log_prob(x).mean()
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first - 3.0
