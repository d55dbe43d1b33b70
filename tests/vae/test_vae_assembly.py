"""The continuous VAEs are assembled from encoder / decoder / prior specs like the VQ-VAE, with the
0.1 constructor calls, state_dict keys and configs unchanged."""

from __future__ import annotations

import json

import pytest
import torch

import vqkit
from vqkit.vae.nets import conv_decoder, conv_encoder, mlp


def _seeded(build):
    torch.manual_seed(0)
    return build()


def test_state_dict_keys_are_those_of_the_0_1_release():
    # The 0.1 networks were plain nn.Sequential stacks; checkpoints depend on these names.
    assert list(vqkit.VAE(hidden_dims=[8]).state_dict()) == [
        "loss_fn.iteration",
        "encoder.0.weight", "encoder.0.bias", "encoder.2.weight", "encoder.2.bias",
        "decoder.0.weight", "decoder.0.bias", "decoder.2.weight", "decoder.2.bias",
    ]  # fmt: skip
    keys = list(vqkit.BetaVAE(in_channels=1, image_size=8, hidden_dims=[4]).state_dict())
    assert keys[:3] == ["loss_fn.iteration", "encoder.0.weight", "encoder.0.bias"]
    assert "encoder.1.running_mean" in keys  # BatchNorm after the conv
    assert "encoder.4.weight" in keys  # conv, BN, LeakyReLU, Flatten, Linear
    assert "decoder.0.weight" in keys  # Linear, Unflatten, ConvT...
    assert any(
        k.startswith("prior.") for k in vqkit.VLAE(image_size=8, hidden_dims=[4]).state_dict()
    )


def test_default_specs_equal_the_explicit_specs():
    default = _seeded(lambda: vqkit.VAE(latent_dim=3, hidden_dims=[8, 6]))
    explicit = _seeded(
        lambda: vqkit.VAE(
            latent_dim=3,
            hidden_dims=[8, 6],
            encoder={"type": "mlp", "in_features": 2, "out_features": 6, "hidden_dims": [8, 6]},
            decoder={"type": "mlp", "hidden_dims": [6, 8]},
        )
    )
    for key, value in default.state_dict().items():
        assert torch.equal(value, explicit.state_dict()[key]), key
    # The 0.1 helper functions build the same networks.
    torch.manual_seed(0)
    old = mlp(2, [8, 6], 6)
    for key, value in old.state_dict().items():
        assert torch.equal(value, default.encoder.state_dict()[key]), key


def test_old_conv_helpers_build_the_image_vae_networks():
    vae = _seeded(lambda: vqkit.ImageVAE(image_size=8, latent_dim=2, hidden_dims=[4, 8]))
    torch.manual_seed(0)
    enc = conv_encoder(1, 8, [4, 8], 4, False)
    dec = conv_decoder(2, 8, [4, 8], 1, False)
    for net, built in ((enc, vae.encoder), (dec, vae.decoder)):
        assert list(net.state_dict()) == list(built.state_dict())
    x = torch.rand(3, 1, 8, 8)
    assert vae.decoder(vae.encoder(x)[:, :2]).shape == (3, 1, 8, 8)


def test_image_vae_with_a_flow_prior_is_the_vlae():
    kwargs = {"image_size": 8, "latent_dim": 2, "hidden_dims": [4]}
    vlae = _seeded(lambda: vqkit.VLAE(**kwargs, prior_hidden_features=[8]))
    prior = {"type": "made_flow", "hidden_features": [8]}
    image_vae = _seeded(lambda: vqkit.ImageVAE(**kwargs, likelihood="bernoulli", prior=prior))
    state, other = vlae.state_dict(), image_vae.state_dict()
    assert state.keys() == other.keys()
    for key in state:
        assert torch.equal(state[key], other[key]), key
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    g1, g2 = torch.Generator().manual_seed(2), torch.Generator().manual_seed(2)
    torch.testing.assert_close(vlae(x, generator=g1).loss, image_vae(x, generator=g2).loss)
    # The one-sample KL of a learned prior: log q(z|x) − log p(z).
    out = vlae(x, generator=torch.Generator().manual_seed(3))
    expected = vlae.posterior_log_prob(out.z, out.mu, out.logvar) - vlae.prior.log_prob(out.z)
    torch.testing.assert_close(out.kl, expected)


def test_a_vae_prior_gets_its_dim_wired_and_changes_sampling():
    vae = vqkit.VAE(
        latent_dim=3, hidden_dims=[4], prior={"type": "made_flow", "hidden_features": [8]}
    )
    assert vae.prior.dim == 3
    assert vae.sample(5, generator=torch.Generator().manual_seed(0)).shape == (5, 2)
    z = torch.randn(4, 3)
    torch.testing.assert_close(vae.prior_log_prob(z), vae.prior.log_prob(z))


def test_disagreeing_explicit_sizes_are_rejected():
    with pytest.raises(ValueError, match=r"in_features=3 but the model's in_features is 2"):
        vqkit.VAE(encoder={"type": "mlp", "in_features": 3})
    with pytest.raises(ValueError, match=r"dim=5 but the latent_dim is 2"):
        vqkit.VAE(prior={"type": "made_flow", "dim": 5})
    with pytest.raises(ValueError, match="out_channels"):
        vqkit.ImageVAE(
            image_size=8, hidden_dims=[4], decoder=vqkit.ConvVectorDecoder(16, 3, 8, [4])
        )


def test_a_swapped_encoder_spec_is_used_and_recorded_in_the_config(tmp_path):
    spec = {"type": "vector_conv", "hidden_dims": [2, 4], "batch_norm": True}
    vae = vqkit.ImageVAE(image_size=8, latent_dim=2, hidden_dims=[4], encoder=spec)
    assert vae.encoder.hidden_dims == [2, 4]  # the spec's widths win over hidden_dims
    assert vae.encoder.batch_norm
    assert vae.decoder.hidden_dims == [4]
    vae.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["encoder"] == spec
    loaded = vqkit.ImageVAE.from_pretrained(tmp_path)
    assert loaded.encoder.hidden_dims == [2, 4]


def test_a_config_saved_without_part_specs_still_loads(tmp_path):
    vae = vqkit.VLAE(image_size=8, latent_dim=2, hidden_dims=[4], prior_hidden_features=[8])
    vae.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    for key in ("encoder", "decoder", "prior"):
        config.pop(key)  # the 0.1 release wrote none of these
    (tmp_path / "config.json").write_text(json.dumps(config))
    loaded = vqkit.VLAE.from_pretrained(tmp_path)
    for key, value in vae.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
