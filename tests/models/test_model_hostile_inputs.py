"""Hostile input for the model, block, loss and evaluation entry points: each bad argument or
input raises ``ValueError`` / ``TypeError`` with a message naming what was expected; empty batches
give a clear error, never NaN. (The forward passes of every registered part also get the bad
inputs of their contract case in tests/contracts.)"""

from __future__ import annotations

import copy

import pytest
import torch
from models_helpers import TINY

import vqkit
from vqkit._utils import eval_mode
from vqkit.train.evaluate import evaluate_model

BAD = (ValueError, TypeError)


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _vqvae(**changes):
    config = copy.deepcopy(TINY)
    config.update(changes)
    return vqkit.VQVAE(**config)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"reconstruction_loss": "huber"}, "reconstruction_loss must be one of"),
        ({"reconstruction_loss": 1}, "reconstruction_loss must be one of"),
        ({"data_variance": 0.0}, r"data_variance must be in \(0"),
        ({"data_variance": float("nan")}, "data_variance must be a finite number"),
        ({"data_variance": True}, "data_variance must be a finite number"),
        ({"image_size": [8, 4.0]}, "image_size must be an int or"),
        ({"image_size": "8x4"}, "image_size must be an int or"),
        ({"encoder": 3}, "encoder must be a registered name"),
        ({"quantizer": {"dim": 4}}, "needs a string 'type' key"),
        ({"prior": {"type": "made_flow", "dim": 8}}, "not a prior over code indices"),
    ],
)
def test_vqvae_constructor_refuses_bad_arguments(changes, message):
    with pytest.raises(BAD, match=message):
        _vqvae(**changes)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: [[0.0]], "expects images as a tensor"),
        (lambda: torch.zeros(2, 1, 8, 4, dtype=torch.uint8), "floating-point images"),
        (lambda: torch.zeros(2, 1, 8, 4, device="meta"), "'meta' device"),
        (lambda: torch.zeros(1, 8, 4), r"\(B, C, H, W\)"),
        (lambda: torch.zeros(0, 1, 8, 4), "empty batch"),
        (lambda: torch.zeros(2, 3, 8, 4), r"\(B, 1, H, W\)"),
        (lambda: torch.zeros(2, 1, 7, 4), "divisible"),
    ],
)
def test_vqvae_forward_refuses_bad_images(make, message):
    model = _vqvae()
    with pytest.raises(BAD, match=message):
        model(make())


def test_vqvae_encode_indices_of_an_empty_batch_is_a_clear_error():
    model = _vqvae().eval()
    with pytest.raises(ValueError, match="empty batch"):
        model.encode_indices(torch.zeros(0, 1, 8, 4))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 0}, "positive integer"),
        ({"n": 2.0}, "positive integer"),
        ({"n": True}, "positive integer"),
        ({"n": 2, "temperature": 0.0}, "temperature must be in"),
        ({"n": 2, "temperature": float("inf")}, "temperature must be a finite number"),
        ({"n": 2, "generator": 7}, "generator must be a torch.Generator"),
        ({"n": 2, "latent_size": (4,)}, r"latent_size must be \(h, w\)"),
        ({"n": 2, "latent_size": (4, 0)}, "latent_size must be a positive integer"),
    ],
)
def test_vqvae_generate_refuses_bad_arguments(kwargs, message):
    model = _vqvae().eval()
    with pytest.raises(BAD, match=message):
        model.generate(**kwargs)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: torch.zeros(2, 4, 2), "integer tensor"),
        (lambda: torch.zeros(2, 4, 2, dtype=torch.bool), "bool tensor"),
        (lambda: torch.zeros(2, 4, 2, dtype=torch.long, device="meta"), "'meta' device"),
        (lambda: [[0, 1]], "integer tensor"),
    ],
)
def test_vqvae_decode_indices_refuses_bad_codes(make, message):
    model = _vqvae().eval()
    with pytest.raises(BAD, match=message):
        model.decode_indices(make())


@pytest.mark.parametrize(
    ("cls", "kwargs", "message"),
    [
        (vqkit.VAE, {"data_dim": 0}, "data_dim must be a positive integer"),
        (vqkit.VAE, {"data_dim": 2.5}, "data_dim must be a positive integer"),
        (vqkit.VAE, {"latent_dim": True}, "latent_dim must be a positive int"),
        (vqkit.VAE, {"hidden_dims": [8, 0]}, "list of positive ints"),
        (vqkit.VAE, {"hidden_dims": "64"}, "list of positive ints"),
        (vqkit.VAE, {"likelihood": 3}, "likelihood must be a string"),
        (vqkit.VAE, {"encoder": {"type": "mlp", "out_features": 3}}, "out_features=3"),
        (vqkit.VAE, {"prior": {"type": "made", "num_features": 2}}, "domain 'continuous'"),
        (vqkit.ImageVAE, {"batch_norm": "no"}, "batch_norm must be True or False"),
        (vqkit.ImageVAE, {"image_size": 0}, "image_size must be a positive integer"),
        (vqkit.ImageVAE, {"in_channels": 1.0}, "in_channels must be a positive integer"),
        (vqkit.BetaVAE, {"image_size": 60}, "divisible by 32"),
        (vqkit.VLAE, {"prior_hidden_features": [0]}, "prior_hidden_features"),
        (vqkit.VLAE, {"hidden_dims": []}, "non-empty list of positive ints"),
    ],
)
def test_vae_constructors_refuse_bad_arguments(cls, kwargs, message):
    with pytest.raises(BAD, match=message):
        cls(**kwargs)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: m(torch.zeros(0, 2)), "empty batch"),
        (lambda m: m(torch.zeros(3, 2, device="meta")), "'meta' device"),
        (lambda m: m(torch.zeros(3, 2), generator="seed"), "generator must be a torch.Generator"),
        (lambda m: m.sample(2, decoder_noise="yes"), "decoder_noise must be True or False"),
        (lambda m: m.sample(2, generator=1), "generator must be a torch.Generator"),
        (lambda m: m.elbo(torch.zeros(3, 2), num_samples=0), "num_samples must be"),
        (lambda m: m.decode(torch.zeros(3, 2, device="meta")), "'meta' device"),
        (lambda m: m.interpolate(torch.zeros(2), torch.zeros(3)), "same shape"),
    ],
)
def test_vae_calls_refuse_bad_input(call, message):
    model = vqkit.VAE(hidden_dims=[4])
    with pytest.raises(BAD, match=message):
        call(model)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"beta": float("nan")}, "beta must be a number >= 0"),
        ({"gamma": float("inf")}, "gamma must be a number >= 0"),
        ({"gamma": "1000"}, "gamma must be a number >= 0"),
        ({"max_capacity": -1.0}, "max_capacity must be a number >= 0"),
        ({"capacity_steps": 2.5}, "capacity_steps must be an int >= 1"),
        ({"auto_step": "no"}, "auto_step must be True or False"),
        ({"beta": 1.0, "gamma": 2.0}, "beta selects the H-type"),
    ],
)
def test_capacity_kl_refuses_bad_arguments(kwargs, message):
    with pytest.raises(BAD, match=message):
        vqkit.CapacityKL(**kwargs)


def test_capacity_kl_empty_batch_is_an_error_not_nan():
    with pytest.raises(ValueError, match="empty batch"):
        vqkit.CapacityKL(beta=1.0)(torch.zeros(0), torch.zeros(0))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: vqkit.ResNetEncoder(in_channels=0), "in_channels must be a positive integer"),
        (lambda: vqkit.ResNetEncoder(num_downsamples=True), "non-negative integer"),
        (lambda: vqkit.ResNetDecoder(hidden_channels=8.0), "hidden_channels must be a positive"),
        (lambda: vqkit.ConvEncoder(hidden_channels="32"), "must be an int or a list of ints"),
        (lambda: vqkit.ConvDecoder(hidden_channels=[8, 8], num_upsamples=3), "one width per"),
        (lambda: vqkit.ResidualStack(8, -1, 4), "num_layers must be a non-negative integer"),
        (lambda: vqkit.MLPEncoder(in_features=0), "in_features must be a positive integer"),
        (lambda: vqkit.MLPDecoder(hidden_dims=[4, -4]), "list of positive ints"),
        (lambda: vqkit.ConvVectorEncoder(image_size=10, hidden_dims=[4, 4]), "divisible by 4"),
        (lambda: vqkit.ConvVectorDecoder(batch_norm=1), "batch_norm must be True or False"),
    ],
)
def test_block_constructors_refuse_bad_arguments(build, message):
    with pytest.raises(BAD, match=message):
        build()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((torch.zeros(0, 1, 8, 4),), "at least one example"),
        (("images",), "ArrayDataset or a tensor"),
        ((torch.zeros(2, 1, 8, 4),), None),  # valid: the figures come back finite
    ],
)
def test_evaluate_model_inputs(args, message):
    model = _vqvae().eval()
    data = args[0]
    if message is None:
        figures = evaluate_model(model, data)
        assert all(torch.isfinite(torch.tensor(float(v))) for v in figures.values())
        assert figures["bits_per_latent"] == figures["prior_bits_per_dim"]
        return
    with pytest.raises(BAD, match=message):
        evaluate_model(model, data)


def test_evaluate_model_refuses_a_bad_batch_size():
    with pytest.raises(BAD, match="batch_size must be a positive integer"):
        evaluate_model(_vqvae().eval(), vqkit.ArrayDataset(torch.zeros(2, 1, 8, 4)), batch_size=0)


def test_eval_mode_restores_every_submodule_and_refuses_non_modules():
    model = _vqvae().train()
    model.quantizer.eval()  # a frozen part inside a training model
    with eval_mode(model, no_grad=True):
        assert not model.training
        assert not model.encoder.training
        assert not torch.is_grad_enabled()
    assert model.training
    assert model.encoder.training
    assert not model.quantizer.training  # its own flag, not the parent's
    assert torch.is_grad_enabled()
    with pytest.raises(TypeError, match=r"expects nn\.Module"), eval_mode("model"):
        pass


def test_bits_per_latent_is_nats_over_positions_ln2_and_checks_positions():
    assert vqkit.bits_per_latent(16 * torch.log(torch.tensor(32.0)), 16) == pytest.approx(5.0)
    for bad in (0, 2.0, True):
        with pytest.raises(ValueError, match="positions must be a positive integer"):
            vqkit.bits_per_latent(1.0, bad)
