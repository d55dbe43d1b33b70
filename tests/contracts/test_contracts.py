"""One contract test per registered part, for every registry kind.

Every ``(kind, name)`` in the registry gets the same checks, driven by the table of cases in
``contract_cases.py`` (read its docstring to add a part: one ``Case`` in the table of its kind):

- the built part satisfies its kind's contract (``vqkit.contracts.contract_problems`` is empty);
- forward / backward: output shapes follow the contract (an encoder divides H and W by its
  ``downsample_factor`` and outputs ``out_channels``, a quantizer keeps the shape and ``decode``
  inverts its indices, a prior's ``loss`` is a scalar, ...), and gradients reach the parameters
  (and the input, for encoders, decoders, quantizers and losses);
- determinism: two builds under the same seed have equal weights and equal scores;
- a state_dict round trip into a part built under another seed gives the same scores;
- a Hub round trip (``save_pretrained`` / ``from_pretrained``) for Hub-capable parts (every model
  and prior must be one), weights as safetensors only;
- every named bad input raises ``ValueError`` or ``TypeError``.

A registered part without a case fails ``test_every_registered_part_has_a_case``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch
from contract_cases import CASES, META, Case
from torch import nn

import vqkit
from vqkit._hub import HubMixin
from vqkit._utils import eval_mode
from vqkit.contracts import contract_problems

REGISTERED = [(kind, name) for kind in vqkit.KINDS for name in vqkit.list_registered(kind)]
HUB_REQUIRED = ("model", "prior")


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_every_registered_part_has_a_case():
    missing = [f"{kind}/{name}" for kind, name in REGISTERED if name not in CASES[kind]]
    assert not missing, (
        f"registered without a contract-test case: {missing}; add a tiny Case to "
        "tests/contracts/contract_cases.py (its docstring says how)"
    )
    assert set(CASES) == set(vqkit.KINDS), "contract_cases.CASES needs one table per kind"


def test_every_case_names_a_registered_part():
    registered = set(REGISTERED)
    stale = [f"{k}/{n}" for k, table in CASES.items() for n in table if (k, n) not in registered]
    assert not stale, f"cases for parts that are not registered: {stale}"


def _case(kind: str, name: str) -> Case:
    if name not in CASES[kind]:
        pytest.fail(f"no contract-test case for {kind}/{name}")
    return CASES[kind][name]


def _build(case: Case, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return case.build()


def _call(kind: str, module: nn.Module, x: Any) -> Any:
    """The kind's forward: a loss takes (recon_nll, kl); everything else one input."""
    return module(*x) if kind == "loss" else module(x)


def _score(kind: str, case: Case, module: nn.Module, x: Any) -> torch.Tensor:
    """A deterministic tensor summarising the part's output on ``x``."""
    if case.score is not None:
        return case.score(module, x)
    if kind == "prior":
        return module.log_prob(x) if module.exact_likelihood else module.loss(x).loss
    out = _call(kind, module, x)
    if kind == "quantizer":
        return torch.cat([out.quantized.flatten(), out.indices.flatten().float()])
    if kind == "loss" and isinstance(out, torch.Tensor):  # a per-example distance (LPIPS)
        return out
    if kind in ("loss", "model"):
        return out.loss
    return out


def _seeded_score(kind: str, case: Case, module: nn.Module, x: Any) -> torch.Tensor:
    torch.manual_seed(1234)
    return _score(kind, case, module, x)


@pytest.mark.parametrize(("kind", "name"), REGISTERED, ids=lambda v: v)
def test_built_part_satisfies_its_contract(kind, name):
    module = _build(_case(kind, name))
    assert contract_problems(kind, module) == []
    assert contract_problems(kind, type(module)) == []


def _requires_grad(x: Any) -> Any:
    if isinstance(x, tuple):
        return tuple(_requires_grad(t) for t in x)
    return x.clone().requires_grad_(True) if x.is_floating_point() else x


def _check_forward(kind: str, module: nn.Module, x: Any) -> torch.Tensor:
    """Shape checks of the kind's contract; returns a scalar to backpropagate."""
    if kind == "encoder":
        y = module(x)
        b = x.shape[0]
        if y.dim() == 4:
            f = module.downsample_factor
            assert y.shape == (b, module.out_channels, x.shape[2] // f, x.shape[3] // f)
        else:  # an encoder to vectors
            assert y.shape == (b, module.out_channels)
        return y.square().mean()
    if kind == "decoder":
        y = module(x)
        assert y.shape[:2] == (x.shape[0], module.out_channels)
        if x.dim() == 4:
            f = module.upsample_factor
            assert y.shape[2:] == (x.shape[2] * f, x.shape[3] * f)
        return y.square().mean()
    if kind == "quantizer":
        out = module(x)
        assert out.quantized.shape == x.shape
        assert out.indices.shape[:3] == (x.shape[0], *x.shape[2:])
        assert out.indices.dtype == torch.int64
        assert out.loss.dim() == 0
        with eval_mode(module, no_grad=True):  # training forwards may move the codebook
            again = module(x.detach())
            decoded = module.decode(again.indices)
        torch.testing.assert_close(decoded, again.quantized, atol=1e-5, rtol=1e-5)
        return out.quantized.square().mean() + out.loss
    if kind == "prior":
        out = module.loss(x)
        assert out.loss.dim() == 0
        assert torch.isfinite(out.loss)
        assert all(v.dim() == 0 for v in out.losses.values())
        if module.exact_likelihood:
            log_prob = module.log_prob(x)
            grids = x if isinstance(x, tuple) else (x,)  # a tuple: one grid per level (VQ-VAE-2)
            assert log_prob.shape == (grids[0].shape[0],)
            if "bits_per_latent" in out.losses:
                positions = sum(grid[0].numel() for grid in grids)
                expected = -log_prob.mean() / positions / torch.log(torch.tensor(2.0))
                torch.testing.assert_close(out.losses["bits_per_latent"], expected.detach())
        return out.loss
    if kind == "loss":
        out = module(*x)
        if isinstance(out, torch.Tensor):  # a per-example distance such as LPIPS: (B,)
            assert out.shape == (x[0].shape[0],)
            assert torch.isfinite(out).all()
            return out.mean()
        assert out.loss.dim() == 0
        assert torch.isfinite(out.loss)
        return out.loss
    if kind == "model":
        out = module(x)
        assert out.loss.dim() == 0
        assert torch.isfinite(out.loss)
        assert out.reconstruction.shape == x.shape
        if module.family == "discrete":
            codes = module.encode_indices(x)
            if isinstance(codes, tuple):  # one grid per level (VQ-VAE-2), at latent_size
                for grid, size in zip(codes, module.latent_size, strict=True):
                    assert grid.shape == (x.shape[0], *size)
                assert module.decode_indices(codes).shape == x.shape
                return out.loss
            h, w = (
                x.shape[2] // module.encoder.downsample_factor,
                x.shape[3] // (module.encoder.downsample_factor),
            )
            assert codes.shape == (x.shape[0], h, w)
            assert module.decode_indices(codes).shape == x.shape
        else:
            assert module.reconstruct(x).shape == x.shape
        return out.loss
    out = module(x)  # discriminator: real/fake logits (B, 1, h', w')
    assert out.shape[:2] == (x.shape[0], 1)
    return out.mean()


@pytest.mark.parametrize(("kind", "name"), REGISTERED, ids=lambda v: v)
def test_forward_backward_shapes(kind, name):
    case = _case(kind, name)
    module = _build(case).train()
    x = _requires_grad(case.inputs())
    _check_forward(kind, module, x).backward()
    grads = [p.grad for p in module.parameters() if p.requires_grad]
    if grads:
        assert any(g is not None and g.abs().sum() > 0 for g in grads), "no gradient reached"
    assert all(g is None or torch.isfinite(g).all() for g in grads)
    inputs = x if isinstance(x, tuple) else (x,)
    if kind in ("encoder", "decoder", "quantizer", "loss"):
        for t in inputs:
            if t.is_floating_point():
                assert t.grad is not None
                assert t.grad.shape == t.shape
                assert torch.isfinite(t.grad).all()


@pytest.mark.parametrize(("kind", "name"), REGISTERED, ids=lambda v: v)
def test_determinism_and_state_dict_round_trip(kind, name):
    case = _case(kind, name)
    a, b = _build(case, seed=0).eval(), _build(case, seed=0).eval()
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), f"{key} differs between seeded builds"
    x = case.inputs()
    first = _seeded_score(kind, case, a, x)
    assert torch.equal(first, _seeded_score(kind, case, a, x)), "not deterministic under a seed"
    other = _build(case, seed=1).eval()
    other.load_state_dict(a.state_dict())
    assert torch.equal(_seeded_score(kind, case, other, x), first), "state_dict round trip"
    if case.sample is not None:
        s1 = case.sample(a, torch.Generator().manual_seed(7))
        s2 = case.sample(other, torch.Generator().manual_seed(7))
        assert torch.equal(s1, s2)


@pytest.mark.parametrize(("kind", "name"), REGISTERED, ids=lambda v: v)
def test_save_load_round_trip_and_determinism(kind, name, tmp_path):
    """The Hub round trip (moved here from tests/models/test_registered_models.py)."""
    case = _case(kind, name)
    torch.manual_seed(0)
    model = case.build()
    if kind in HUB_REQUIRED:
        assert isinstance(model, HubMixin), f"{kind}/{name} must inherit vqkit._hub.HubMixin"
    elif not isinstance(model, HubMixin):
        pytest.skip(f"{kind}/{name} is not Hub-capable (state_dict round trip checked)")
    model.eval()
    x = case.inputs()

    first = _seeded_score(kind, case, model, x)
    second = _seeded_score(kind, case, model, x)
    assert torch.equal(first, second), "not deterministic under a fixed seed"

    model.save_pretrained(tmp_path)
    assert not list(tmp_path.glob("*.bin")), "weights must be safetensors only"
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["_class_name"] == type(model).__name__
    assert {k: v for k, v in config.items() if not k.startswith("_")} == model.hub_config
    loaded = type(model).from_pretrained(tmp_path)
    assert not loaded.training
    assert loaded.hub_config == model.hub_config
    state, loaded_state = model.state_dict(), loaded.state_dict()
    assert state.keys() == loaded_state.keys()
    for key in state:
        assert torch.equal(state[key], loaded_state[key]), key
    assert torch.equal(_seeded_score(kind, case, loaded, x), first)

    if case.sample is not None:
        a = case.sample(model, torch.Generator().manual_seed(7))
        b = case.sample(loaded, torch.Generator().manual_seed(7))
        assert torch.equal(a, b), "samples differ after a save/load round trip"


def _bad_input(case: Case, bad: Any) -> Any:
    if bad == META:
        valid = case.inputs()
        return valid.to("meta")
    return bad()


BAD = [(k, n, label) for k, n in REGISTERED if n in CASES[k] for label in CASES[k][n].bad]


def test_every_case_has_bad_inputs():
    missing = [f"{k}/{n}" for k, n in REGISTERED if n in CASES[k] and not CASES[k][n].bad]
    assert not missing, f"cases without a bad input: {missing}"


@pytest.mark.parametrize(("kind", "name", "label"), BAD, ids=lambda v: v)
def test_bad_input_raises_a_clear_error(kind, name, label):
    case = _case(kind, name)
    module = _build(case).eval()
    x = _bad_input(case, case.bad[label])
    with pytest.raises((ValueError, TypeError)):
        _score(kind, case, module, x)
