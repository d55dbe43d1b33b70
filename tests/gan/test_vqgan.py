"""The VQGAN model and the GAN training step: β placement, generator-only Hub files, the exact
zero adversarial gradient before disc_start, resume, presets and bad input."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from safetensors import safe_open

import vqkit
from vqkit.contracts import contract_problems
from vqkit.losses import adaptive_weight
from vqkit.models.presets import GAN_PRESETS, gan_preset_config
from vqkit.train.gan import GANStep

TAMING = {"type": "taming", "ch": 8, "ch_mult": [1, 2], "num_res_blocks": 1,
          "attention_factors": [2], "norm_groups": 4}  # fmt: skip


def tiny(**overrides) -> vqkit.VQGAN:
    config = {
        "encoder": {**TAMING, "in_channels": 1},
        "quantizer": {"type": "vq", "dim": 4, "codebook_size": 8, "ema": False, "reseed": None},
        "decoder": {"type": "taming"},
        "image_size": [12, 16],
        "discriminator": {"type": "patchgan", "ndf": 4, "n_layers": 1},
        "perceptual_weight": 0.0,
        **overrides,
    }
    return vqkit.VQGAN(**config)


def images(n: int = 4, seed: int = 0, shape=(1, 12, 16)) -> torch.Tensor:
    return torch.rand(n, *shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def l1_distance(x, y):
    return (x - y).abs().flatten(1).mean(1)


def test_assembly_wires_the_parts():
    torch.manual_seed(0)
    model = tiny()
    assert not contract_problems("model", model)
    assert model.family == "discrete"
    assert model.decoder.ch_mult == [1, 2]  # mirrored from the encoder spec
    assert model.decoder.out_channels == 1
    assert model.discriminator_spec["in_channels"] == 1
    assert model.latent_size == (6, 8)
    assert model.last_layer is model.decoder.conv_out.weight
    disc = model.build_discriminator()
    assert isinstance(disc, vqkit.PatchGANDiscriminator)
    assert not any(name.startswith("discriminator") for name in model.state_dict())
    codes = model.encode_indices(images())
    assert codes.shape == (4, 6, 8)
    assert model.decode_indices(codes).shape == (4, 1, 12, 16)


def test_beta_multiplies_the_commitment_term():
    """vqkit puts β on ‖z − sg(e)‖² (the paper), not on the codebook term (taming legacy)."""
    torch.manual_seed(0)
    beta = 0.4
    model = tiny(quantizer={"type": "vq", "dim": 4, "codebook_size": 8, "ema": False,
                            "commitment_weight": beta, "reseed": None})  # fmt: skip
    quantizer = model.quantizer
    z = torch.randn(2, 4, 3, 5, requires_grad=True)
    out = quantizer(z)
    grad_z, grad_e = torch.autograd.grad(out.loss, [z, quantizer.embed])
    e = quantizer.embed.detach()[out.indices]  # (B, h, w, D)
    e = e.permute(0, 3, 1, 2)  # (B, D, h, w)
    n = z.numel()
    torch.testing.assert_close(grad_z, 2 * beta * (z.detach() - e) / n)  # commitment: β
    expected_e = torch.zeros_like(quantizer.embed)
    flat_z = z.detach().permute(0, 2, 3, 1).reshape(-1, 4)
    flat_e = e.permute(0, 2, 3, 1).reshape(-1, 4)
    expected_e.index_add_(0, out.indices.flatten(), 2 * (flat_e - flat_z) / n)  # codebook: 1
    torch.testing.assert_close(grad_e, expected_e)


def test_hub_files_hold_the_generator_only(tmp_path):
    torch.manual_seed(0)
    model = tiny(prior={"type": "gated_pixelcnn", "hidden_channels": 8, "num_layers": 1})
    model.save_pretrained(tmp_path)
    with safe_open(str(tmp_path / "model.safetensors"), framework="pt") as f:
        keys = set(f.keys())
    assert keys == set(model.state_dict())
    assert not any("disc" in k or k.startswith("net.") for k in keys)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["discriminator"] == {"type": "patchgan", "ndf": 4, "n_layers": 1}
    loaded = vqkit.VQGAN.from_pretrained(tmp_path)
    x = images()
    model.eval()
    assert torch.equal(loaded(x).reconstruction, model(x).reconstruction)
    assert loaded.build_discriminator().in_channels == 1
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(model.generate(2, generator=g1), loaded.generate(2, generator=g2))


class CountingDisc(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls = inner, 0

    def forward(self, x):
        self.calls += 1
        return self.inner(x)


def test_no_adversarial_gradient_before_disc_start():
    torch.manual_seed(0)
    model = tiny(disc_start=3)
    disc = CountingDisc(model.build_discriminator())
    x = images()
    params = [p for p in model.parameters() if p.requires_grad]

    def grads(loss):
        return torch.autograd.grad(loss, params, allow_unused=True, retain_graph=True)

    before, logs, out = model.generator_loss(x, disc, step=2)
    assert disc.calls == 0  # the discriminator is not even run
    assert logs["g_loss"] == 0
    assert logs["lambda"] == 0
    reference = out.losses["recon"] + out.quantizer.loss
    for a, b in zip(grads(before), grads(reference), strict=True):
        assert torch.equal(a, b)  # exactly the VQ-VAE gradient: the adversarial part is 0
    d_loss, d_logs = model.discriminator_loss(x, out.reconstruction, disc, step=2)
    assert disc.calls == 0
    assert not d_loss.requires_grad
    assert d_logs["d_loss"] == 0

    after, logs, out = model.generator_loss(x, disc, step=3)
    assert disc.calls == 1
    assert logs["lambda"] > 0
    reference = out.losses["recon"] + out.quantizer.loss
    assert any(not torch.equal(a, b) for a, b in zip(grads(after), grads(reference), strict=True))


def test_lambda_is_the_adaptive_weight_times_disc_weight():
    torch.manual_seed(0)
    model = tiny(disc_weight=0.5)
    disc = model.build_discriminator()
    x = images()
    _, logs, out = model.generator_loss(x, disc, step=0)
    from vqkit.losses import generator_loss

    g_loss = generator_loss(disc(out.reconstruction))
    expected = 0.5 * adaptive_weight(out.losses["recon"], g_loss, model.last_layer)
    torch.testing.assert_close(logs["lambda"], expected)
    fixed = tiny(disc_weight=0.3, adaptive_weight=False)
    _, logs, _ = fixed.generator_loss(x, fixed.build_discriminator(), step=0)
    assert logs["lambda"].item() == pytest.approx(0.3)


def test_perceptual_term_and_r1():
    torch.manual_seed(0)
    model = tiny(perceptual_weight=2.0, r1_weight=10.0, gan_loss="non_saturating")
    disc = model.build_discriminator()
    x = images()
    _loss, logs, out = model.generator_loss(x, disc, step=0, perceptual=l1_distance)
    torch.testing.assert_close(logs["perceptual"], l1_distance(x, out.reconstruction).mean())
    torch.testing.assert_close(logs["nll"], logs["rec"] + 2.0 * logs["perceptual"])
    d_loss, d_logs = model.discriminator_loss(x, out.reconstruction, disc, step=0)
    assert d_logs["r1"] > 0
    plain = tiny(gan_loss="non_saturating")
    plain_loss, _ = plain.discriminator_loss(x, out.reconstruction, disc, step=0)
    torch.testing.assert_close(d_loss, plain_loss + 5.0 * d_logs["r1"])


def test_gan_step_updates_the_discriminator_only_from_disc_start():
    torch.manual_seed(0)
    model = tiny(disc_start=2)
    step = GANStep(model, lr=1e-3)
    frozen = copy.deepcopy(step.discriminator.state_dict())
    x = images()
    for _ in range(2):
        logs = step(x)
        assert logs["disc_active"] == 0
        assert logs["d_loss"] == 0
    for key, value in step.discriminator.state_dict().items():
        assert torch.equal(value, frozen[key]), key  # not run: not even BatchNorm statistics
    assert not step.opt_d.state
    logs = step(x)
    assert logs["disc_active"] == 1
    assert logs["d_loss"] > 0
    assert step.step == 3
    changed = [
        k for k, v in step.discriminator.state_dict().items() if not torch.equal(v, frozen[k])
    ]
    assert changed
    expected = {"rec", "perceptual", "quantizer", "nll", "g_loss", "lambda", "total", "d_loss",
                "logits_real", "logits_fake", "r1", "disc_active"}  # fmt: skip
    assert set(logs) == expected
    assert all(not v.requires_grad for v in logs.values())


def test_generator_step_leaves_no_gradient_in_the_discriminator(monkeypatch):
    torch.manual_seed(0)
    model = tiny()
    step = GANStep(model, lr=1e-3)
    zero = torch.zeros(())
    no_d_step = (zero, {"d_loss": zero, "logits_real": zero, "logits_fake": zero, "r1": zero})
    monkeypatch.setattr(model, "discriminator_loss", lambda *args: no_d_step)
    logs = step(images())
    assert logs["g_loss"] != 0  # the discriminator was used by the generator step...
    assert all(p.grad is None for p in step.discriminator.parameters())  # ...without gradients
    assert all(p.requires_grad for p in step.discriminator.parameters())  # and is restored


def test_resume_reproduces_the_uninterrupted_run():
    x1, x2, x3, x4 = (images(seed=s) for s in range(4))

    def fresh():
        torch.manual_seed(0)
        model = tiny(disc_start=1)
        return model, GANStep(model, lr=1e-3, disc_lr=2e-3)

    model_a, step_a = fresh()
    for x in (x1, x2, x3, x4):
        step_a(x)

    model_b, step_b = fresh()
    for x in (x1, x2):
        step_b(x)
    saved_model = copy.deepcopy(model_b.state_dict())
    saved_step = copy.deepcopy(step_b.state_dict())
    assert set(saved_step) == {"discriminator", "opt_g", "opt_d", "step"}
    del model_b, step_b

    model_c, step_c = fresh()
    model_c.load_state_dict(saved_model)
    step_c.load_state_dict(saved_step)
    assert step_c.step == 2
    for x in (x3, x4):
        step_c(x)
    for key, value in model_a.state_dict().items():
        assert torch.equal(value, model_c.state_dict()[key]), key
    for key, value in step_a.discriminator.state_dict().items():
        assert torch.equal(value, step_c.discriminator.state_dict()[key]), key


def test_imagenet_preset_has_taming_sizes_and_runs_a_step():
    config = gan_preset_config("vqgan-imagenet-f16-1024")
    assert GAN_PRESETS["vqgan-imagenet-f16-1024"].source
    torch.manual_seed(0)
    model = vqkit.create_model("vqgan-imagenet-f16-1024")
    assert isinstance(model, vqkit.VQGAN)
    assert (model.codebook_size, model.dim) == (1024, 256)
    assert model.image_size == (256, 256)
    assert model.latent_size == (16, 16)
    assert model.encoder.ch_mult == model.decoder.ch_mult == [1, 1, 2, 2, 4]
    assert model.encoder.z_channels == model.decoder.z_channels == 256
    assert model.encoder.attention_factors == [16]
    assert model.quantizer.commitment_weight == 0.25
    assert (model.disc_start, model.disc_weight, model.perceptual_weight) == (250001, 0.8, 1.0)
    assert (model.gan_loss, model.reconstruction_loss) == ("hinge", "l1")
    assert config["discriminator"] == {"type": "patchgan", "ndf": 64, "n_layers": 3,
                                       "norm": "batch"}  # fmt: skip
    # one full step past disc_start on a small input (perceptual: any distance, no weights here)
    step = GANStep(model, perceptual=l1_distance, step=250001)
    logs = step(images(2, shape=(3, 32, 32)))
    assert logs["disc_active"] == 1
    assert all(torch.isfinite(v) for v in logs.values())


@pytest.mark.parametrize("name", ["vqgan-digits", "vqgan-fashion-mnist"])
def test_small_presets_reduce_the_reconstruction_loss(name):
    torch.manual_seed(0)
    model = vqkit.create_model(name, disc_start=4)
    height, width = model.image_size
    # smooth blobs: learnable structure (the pixel values do not matter for the step's cost)
    grid = torch.linspace(-1, 1, width)
    centres = torch.rand(4, 1, 1, 1, generator=torch.Generator().manual_seed(1)) * 2 - 1
    rows = torch.linspace(-1, 1, height).view(1, 1, height, 1)
    x = torch.exp(-8 * ((grid.view(1, 1, 1, width) - centres) ** 2 + rows**2)) * 2 - 1
    step = GANStep(model, lr=1e-3)
    first = step(x)["rec"]
    for _ in range(7):
        logs = step(x)
    assert logs["rec"] < 0.6 * first
    assert logs["disc_active"] == 1


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"perceptual_weight": -1.0}, ValueError, "perceptual_weight"),
        ({"disc_weight": float("nan")}, ValueError, "disc_weight must be a finite number"),
        ({"gan_loss": "wgan"}, ValueError, "gan_loss must be one of"),
        ({"disc_start": -1}, ValueError, "disc_start must be in"),
        ({"disc_start": 1.5}, TypeError, "disc_start must be an integer"),
        ({"adaptive_weight": "yes"}, TypeError, "adaptive_weight must be True or False"),
        ({"r1_weight": -0.1}, ValueError, "r1_weight"),
        ({"disc_factor": True}, ValueError, "disc_factor"),
        ({"reconstruction_loss": "huber"}, ValueError, "reconstruction_loss must be one of"),
        ({"discriminator": 3}, TypeError, "discriminator must be"),
        ({"discriminator": {"type": "patchgun"}}, KeyError, "patchgan"),
        ({"discriminator": {"type": "patchgan", "in_channels": 3}}, ValueError, "in_channels=3"),
    ],
)
def test_bad_model_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        tiny(**kwargs)


def test_bad_loss_calls():
    torch.manual_seed(0)
    model = tiny(perceptual_weight=1.0)
    disc = model.build_discriminator()
    x = images()
    with pytest.raises(ValueError, match="needs a perceptual network"):
        model.generator_loss(x, disc, 0)
    with pytest.raises(TypeError, match="perceptual must be callable"):
        model.generator_loss(x, disc, 0, perceptual="lpips")
    with pytest.raises(TypeError, match=r"discriminator must be an nn\.Module"):
        model.generator_loss(x, "patchgan", 0, perceptual=l1_distance)
    with pytest.raises(ValueError, match="step must be in"):
        model.generator_loss(x, disc, -1, perceptual=l1_distance)
    with pytest.raises(TypeError, match="step must be an integer"):
        model.generator_loss(x, disc, 2.0, perceptual=l1_distance)
    with pytest.raises(ValueError, match="same shape"):
        model.discriminator_loss(x, x[:2], disc, 0)
    with pytest.raises(TypeError, match="reconstruction must be a tensor"):
        model.discriminator_loss(x, x.tolist(), disc, 0)
    with pytest.raises(ValueError, match="meta"):
        model.discriminator_loss(x.to("meta"), x, disc, 0)


def test_bad_gan_step_arguments():
    torch.manual_seed(0)
    model = tiny()
    with pytest.raises(TypeError, match="model must be a vqkit VQGAN"):
        GANStep(vqkit.build("model", "vqvae-digits"))
    with pytest.raises(ValueError, match="lr must be in"):
        GANStep(model, lr=0.0)
    with pytest.raises(ValueError, match="disc_lr must be a finite number"):
        GANStep(model, disc_lr=float("inf"))
    with pytest.raises(ValueError, match="betas must be a pair"):
        GANStep(model, betas=(0.5,))
    with pytest.raises(ValueError, match="betas must be in"):
        GANStep(model, betas=(0.5, 1.0))
    with pytest.raises(TypeError, match=r"discriminator must be an nn\.Module or None"):
        GANStep(model, discriminator="patchgan")
    with pytest.raises(ValueError, match="step must be in"):
        GANStep(model, step=-2)
    with pytest.raises(ValueError, match="no perceptual network"):
        GANStep(tiny(perceptual_weight=0.5))
    step = GANStep(model)
    with pytest.raises(TypeError, match="expected an image batch tensor"):
        step([1.0])
    with pytest.raises(ValueError, match="floating-point images"):
        step(torch.zeros(2, 1, 12, 16, dtype=torch.long))
    with pytest.raises(ValueError, match="empty batch"):
        step(torch.zeros(0, 1, 12, 16))
    with pytest.raises(ValueError, match="divisible by 2"):
        step(torch.zeros(2, 1, 13, 16))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        step(torch.zeros(1, 12, 16))
    with pytest.raises(ValueError, match="meta"):
        step(torch.zeros(2, 1, 12, 16, device="meta"))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        step(torch.zeros(2, 3, 12, 16))
    with pytest.raises(ValueError, match="expected keys"):
        step.load_state_dict({"discriminator": {}})
    with pytest.raises(ValueError, match="expected keys"):
        step.load_state_dict([])
