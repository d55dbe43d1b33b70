"""Registry: register / get / list / build, error messages, and real entry-point plugins."""

from __future__ import annotations

import copy
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

import vqkit
import vqkit.contracts
from vqkit import _registry


@pytest.fixture(autouse=True)
def isolated_registry(monkeypatch):
    """Each test sees a copy of the registry and a fresh plugin state; nothing leaks out."""
    monkeypatch.setattr(_registry, "_REGISTRY", copy.copy(_registry._REGISTRY))
    for kind in _registry._REGISTRY:
        _registry._REGISTRY[kind] = dict(_registry._REGISTRY[kind])
    monkeypatch.setattr(_registry, "_plugins_loaded", False)


class Tiny(nn.Module):
    """A part that satisfies the encoder, decoder and quantizer contracts (vqkit/contracts.py)."""

    def __init__(self, width: int, depth: int = 1):
        super().__init__()
        self.width, self.depth = width, depth
        self.in_channels = self.out_channels = self.dim = width
        self.downsample_factor = self.upsample_factor = 1
        self.codebook_size = 2

    def decode(self, indices):
        return indices


def make_distribution(root: Path, dist: str, module: str, entry_points: str, source: str) -> None:
    """Write an installed-looking distribution (dist-info + module) under ``root``."""
    info = root / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    (root / f"{module}.py").write_text(textwrap.dedent(source))


def test_register_defaults_to_lowercase_name_and_builds_from_every_spec_form():
    vqkit.register("encoder")(Tiny)
    assert vqkit.get("encoder", "tiny") is Tiny
    from_name = vqkit.build("encoder", "tiny", width=3)
    from_dict = vqkit.build("encoder", {"type": "tiny", "width": 4, "depth": 2})
    assert (from_name.width, from_name.depth) == (3, 1)
    assert (from_dict.width, from_dict.depth) == (4, 2)
    # Overrides win over the dict, and the caller's dict is not mutated.
    spec = {"type": "tiny", "width": 4}
    assert vqkit.build("encoder", spec, width=9).width == 9
    assert spec == {"type": "tiny", "width": 4}
    module = Tiny(5)
    assert vqkit.build("encoder", module) is module


def test_duplicate_names_raise_unless_override():
    vqkit.register("encoder", "tiny")(Tiny)

    class Other(Tiny):
        pass

    with pytest.raises(ValueError, match=r"encoder 'tiny' is already registered.*override=True"):
        vqkit.register("encoder", "tiny")(Other)
    vqkit.register("encoder", "tiny", override=True)(Other)
    assert vqkit.get("encoder", "tiny") is Other
    # Registering the same object twice under the same name is harmless.
    vqkit.register("encoder", "tiny", override=False)(Other)


def test_list_registered_with_wildcards():
    for name in ("conv_small", "conv_large", "resnet_tiny"):
        vqkit.register("decoder", name)(Tiny)
    assert vqkit.list_registered("decoder", "conv_*") == ["conv_large", "conv_small"]
    assert vqkit.list_registered("decoder", "*_tiny") == ["resnet_tiny"]
    assert vqkit.list_registered("decoder", "conv_?mall") == ["conv_small"]
    assert "decoder/resnet_tiny" in vqkit.list_registered(pattern="decoder/*")
    assert "decoder/resnet_tiny" in vqkit.list_registered(pattern="resnet_*")
    assert vqkit.list_registered("decoder", "nothing*") == []


def test_unknown_name_suggests_close_matches_and_lists_what_exists():
    vqkit.register("quantizer", "ema_vq")(Tiny)
    vqkit.register("quantizer", "fsq_like")(Tiny)
    with pytest.raises(KeyError) as info:
        vqkit.build("quantizer", "emavq")
    message = str(info.value)
    assert "unknown quantizer 'emavq'" in message
    assert "Did you mean 'ema_vq'" in message
    assert "fsq_like" in message  # everything registered for the kind is listed


def test_unknown_kind_and_bad_specs_raise_clearly():
    with pytest.raises(ValueError, match="unknown registry kind 'layer'"):
        vqkit.register("layer")(Tiny)
    vqkit.register("encoder", "tiny")(Tiny)
    with pytest.raises(TypeError, match="needs a 'type' key"):
        vqkit.build("encoder", {"width": 3})
    with pytest.raises(TypeError, match="got None"):
        vqkit.build("encoder", None)
    with pytest.raises(TypeError, match="cannot apply overrides"):
        vqkit.build("encoder", Tiny(1), width=2)


def test_bad_arguments_name_kind_name_and_argument():
    vqkit.register("encoder", "tiny")(Tiny)
    unexpected = r"encoder 'tiny' got an unexpected argument 'widht'.*'width'"
    with pytest.raises(TypeError, match=unexpected):
        vqkit.build("encoder", {"type": "tiny", "widht": 3})
    with pytest.raises(TypeError, match=r"encoder 'tiny': missing required argument 'width'"):
        vqkit.build("encoder", "tiny")

    @vqkit.register("encoder", "picky")
    class Picky(nn.Module):
        def __init__(self, width: int):
            super().__init__()
            if width <= 0:
                raise ValueError(f"width must be positive, got {width}")

    with pytest.raises(ValueError, match=r"encoder 'picky': width must be positive, got -1"):
        vqkit.build("encoder", {"type": "picky", "width": -1})


def test_entry_point_plugin_module_is_loaded_lazily(tmp_path, monkeypatch):
    make_distribution(
        tmp_path,
        "vqkit-fancy",
        "vqkit_fancy",
        """
        [vqkit.plugins]
        fancy = vqkit_fancy
        """,
        """
        from torch import nn
        import vqkit

        LOADED = []

        @vqkit.register("encoder", "fancy_encoder")
        class FancyEncoder(nn.Module):
            def __init__(self, channels: int = 8):
                super().__init__()
                self.channels = channels
                self.in_channels = self.out_channels = channels
                self.downsample_factor = 1
                LOADED.append(channels)
        """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "fancy_encoder" not in _registry._REGISTRY["encoder"]  # nothing imported yet
    encoder = vqkit.build("encoder", {"type": "fancy_encoder", "channels": 3})
    assert encoder.channels == 3
    assert type(encoder).__module__ == "vqkit_fancy"
    assert "fancy_encoder" in vqkit.list_registered("encoder", "fancy*")


def test_entry_point_plugin_callable_is_called_once(tmp_path, monkeypatch):
    make_distribution(
        tmp_path,
        "vqkit-callable",
        "vqkit_callable_plugin",
        """
        [vqkit.plugins]
        setup = vqkit_callable_plugin:setup
        """,
        """
        from torch import nn
        import vqkit

        CALLS = []

        def setup():
            CALLS.append(1)

            @vqkit.register("prior", "plugin_prior")
            class PluginPrior(nn.Module):
                domain, exact_likelihood = "codes", True

                def loss(self, x, cond=None): ...

                def log_prob(self, x, cond=None): ...

                def sample(self, n, size=None, **options): ...
        """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert vqkit.list_registered("prior", "plugin_*") == ["plugin_prior"]
    vqkit.get("prior", "plugin_prior")
    vqkit.list_registered("prior")
    import vqkit_callable_plugin

    assert vqkit_callable_plugin.CALLS == [1]


def test_broken_plugin_warns_and_is_skipped(tmp_path, monkeypatch):
    make_distribution(
        tmp_path,
        "vqkit-broken",
        "vqkit_broken_plugin",
        """
        [vqkit.plugins]
        broken = vqkit_broken_plugin
        """,
        """
        raise ImportError("this plugin needs a library that is not installed")
        """,
    )
    make_distribution(
        tmp_path / "ok",
        "vqkit-ok",
        "vqkit_ok_plugin",
        """
        [vqkit.plugins]
        ok = vqkit_ok_plugin
        """,
        """
        from torch import nn
        import vqkit

        @vqkit.register("loss", "ok_loss")
        class OkLoss(nn.Module):
            pass
        """,
    )
    monkeypatch.syspath_prepend(str(tmp_path / "ok"))
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(RuntimeWarning, match=r"plugin 'broken'.*vqkit-broken.*not installed"):
        names = vqkit.list_registered("loss")
    assert "ok_loss" in names  # the good plugin still loads
    with pytest.raises(KeyError, match="unknown loss 'missing_loss'"):
        vqkit.get("loss", "missing_loss")  # plugins are not retried on every miss


# ------------------------------------------------------------------------------- contracts
def test_register_checks_a_class_against_its_kind_contract():
    class HalfPrior(nn.Module):
        domain = "codes"

        def log_prob(self, x, cond=None): ...

    with pytest.raises(vqkit.contracts.ContractError) as info:
        vqkit.register("prior", "my_prior")(HalfPrior)
    assert str(info.value) == (
        "prior 'my_prior' does not satisfy the prior contract (vqkit/contracts.py): missing "
        "method loss(), method sample(), attribute 'exact_likelihood'"
    )
    assert isinstance(info.value, TypeError)
    assert "my_prior" not in _registry._REGISTRY["prior"]  # nothing half-registered

    class NoDecode(nn.Module):
        pass

    with pytest.raises(TypeError, match=r"quantizer 'nodecode'.*missing method decode\(\)"):
        vqkit.register("quantizer")(NoDecode)


def test_build_checks_the_instance_attributes_and_factories():
    class Bare(nn.Module):
        def __init__(self, channels: int = 3):
            super().__init__()
            self.in_channels = channels

    vqkit.register("encoder", "bare")(Bare)  # the class has forward(); attributes come later
    with pytest.raises(
        TypeError,
        match=r"encoder 'bare' does not satisfy the encoder contract \(vqkit/contracts.py\): "
        r"missing attribute 'out_channels', attribute 'downsample_factor'",
    ):
        vqkit.build("encoder", "bare")
    with pytest.raises(TypeError, match=r"encoder 'Bare'.*attribute 'out_channels'"):
        vqkit.build("encoder", Bare())  # a built module is checked too

    def make_model():
        return nn.Linear(2, 2)  # a factory: checked when built

    vqkit.register("model", "linear_factory")(make_model)
    with pytest.raises(TypeError, match=r"model 'linear_factory'.*attribute 'family'"):
        vqkit.build("model", "linear_factory")


def test_a_model_family_and_a_prior_domain_must_be_known():
    class Odd(nn.Module):
        family = "quantum"

    with pytest.raises(TypeError, match=r"family must be one of \['discrete', 'continuous'\]"):
        vqkit.register("model", "odd")(Odd)

    class Elsewhere(nn.Module):
        domain, exact_likelihood = "pixels", True

        def loss(self, x, cond=None): ...

        def log_prob(self, x, cond=None): ...

        def sample(self, n, size=None, **options): ...

    with pytest.raises(TypeError, match="domain must be 'codes' or 'continuous', got 'pixels'"):
        vqkit.register("prior", "elsewhere")(Elsewhere)


def test_discriminator_is_a_kind():
    assert "discriminator" in vqkit.KINDS

    class Patch(nn.Module):
        def __init__(self, in_channels: int = 3):
            super().__init__()
            self.in_channels = in_channels
            self.net = nn.Conv2d(in_channels, 1, 4, stride=2, padding=1)

        def forward(self, x):
            return self.net(x)

    vqkit.register("discriminator", "patch")(Patch)
    assert vqkit.build("discriminator", "patch")(torch.zeros(1, 3, 8, 8)).shape == (1, 1, 4, 4)


def test_a_plugin_part_that_breaks_its_contract_is_skipped_with_a_warning(tmp_path, monkeypatch):
    make_distribution(
        tmp_path,
        "vqkit-halfway",
        "vqkit_halfway_plugin",
        """
        [vqkit.plugins]
        halfway = vqkit_halfway_plugin
        """,
        """
        from torch import nn
        import vqkit

        @vqkit.register("quantizer", "halfway_vq")
        class HalfwayVQ(nn.Module):
            pass
        """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(RuntimeWarning, match=r"plugin 'halfway'.*missing method decode\(\)"):
        names = vqkit.list_registered("quantizer")
    assert "halfway_vq" not in names
