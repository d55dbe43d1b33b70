"""PatchGAN discriminator: one real/fake logit per overlapping image patch.

The discriminator of pix2pix (*Image-to-Image Translation with Conditional Adversarial
Networks*, Isola et al. 2017, arXiv:1611.07004, §3.2.2 "PatchGAN") as VQ-GAN uses it (*Taming
Transformers for High-Resolution Image Synthesis*, Esser et al. 2021, arXiv:2012.09841, §3.1;
CompVis/taming-transformers ``NLayerDiscriminator``): 4×4 convolutions, ``n_layers`` of them with
stride 2 and widths ``ndf · min(2**i, 8)``, then two of stride 1, LeakyReLU(0.2) between them and
a normalisation after every convolution except the first and the last. Each output logit sees a
square patch of the input: 16, 34 or 70 pixels wide for ``n_layers`` = 1, 2, 3 (pix2pix's
"70×70 PatchGAN"); ``receptive_field`` gives the size for any depth.

Registered as ``discriminator/patchgan``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from vqkit._checks import (
    check_bool,
    check_choice,
    check_input_dtype,
    check_positive_int,
    check_real_device,
)
from vqkit._registry import register

__all__ = ["PatchGANDiscriminator", "patchgan_receptive_field"]

_NORMS = ("batch", "group", "none")
_KERNEL = 4


def patchgan_receptive_field(n_layers: int) -> int:
    """Width in pixels of the input patch one logit of a PatchGAN with ``n_layers`` sees.

    ``n_layers`` 4×4 convs of stride 2 then two of stride 1: going backwards from one output
    pixel, a stride-1 conv adds 3 pixels and a stride-2 conv maps ``r`` to ``2 (r - 1) + 4``.
    """
    n_layers = check_positive_int("patchgan_receptive_field", "n_layers", n_layers)
    field = 1
    for stride in [1, 1] + [2] * n_layers:  # last layer first
        field = (field - 1) * stride + _KERNEL
    return field


def _norm(kind: str, channels: int, groups: int, dd: dict) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels, **dd)
    if kind == "group":
        return nn.GroupNorm(min(groups, channels), channels, **dd)
    return nn.Identity()


@register("discriminator", "patchgan")
class PatchGANDiscriminator(nn.Module):
    """PatchGAN discriminator (pix2pix / taming ``NLayerDiscriminator``).

    Widths: the first conv has ``ndf`` outputs, conv ``i`` (1-based) ``ndf · min(2**i, 8)``, the
    final conv 1. Weights are drawn from N(0, 0.02) and norm scales from N(1, 0.02), as in
    pix2pix and taming (``weights_init``). With ``norm="batch"`` the convs before a norm have no
    bias (the norm's shift replaces it).

    Args:
        in_channels: image channels ``C``.
        ndf: width of the first conv (64 in pix2pix and taming).
        n_layers: stride-2 convs (3 in taming: a 70-pixel receptive field).
        norm: ``"batch"`` (taming's default), ``"group"`` (GroupNorm, independent of the batch)
            or ``"none"``.
        norm_groups: groups of ``norm="group"`` (capped at the channel count).
        spectral_norm: wrap every conv in spectral normalisation (*Spectral Normalization for
            Generative Adversarial Networks*, Miyato et al. 2018, arXiv:1802.05957).

    Shape:
        - Input: (B, C, H, W), any channels and size with ``H, W ≥ 3 · 2**n_layers`` (the
          stride-2 convs give ``⌊H / 2**n_layers⌋`` rows, the two stride-1 convs 2 fewer)
        - Output: (B, 1, h', w') logits, one per patch
    """

    def __init__(
        self,
        in_channels: int = 3,
        ndf: int = 64,
        n_layers: int = 3,
        norm: str = "batch",
        norm_groups: int = 32,
        spectral_norm: bool = False,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.in_channels = check_positive_int(owner, "in_channels", in_channels)
        self.ndf = check_positive_int(owner, "ndf", ndf)
        self.n_layers = check_positive_int(owner, "n_layers", n_layers)
        self.norm = check_choice(owner, "norm", norm, _NORMS)
        self.norm_groups = check_positive_int(owner, "norm_groups", norm_groups)
        self.spectral_norm = check_bool(owner, "spectral_norm", spectral_norm)
        self.receptive_field = patchgan_receptive_field(n_layers)
        dd: dict[str, Any] = {"device": device, "dtype": dtype}
        bias = norm != "batch"

        def conv(c_in: int, c_out: int, stride: int, with_bias: bool) -> nn.Module:
            layer = nn.Conv2d(c_in, c_out, _KERNEL, stride, padding=1, bias=with_bias, **dd)
            nn.init.normal_(layer.weight, 0.0, 0.02)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
            return nn.utils.parametrizations.spectral_norm(layer) if spectral_norm else layer

        widths = [ndf * min(2**i, 8) for i in range(n_layers + 1)]  # ndf, 2ndf, 4ndf, 8ndf, ...
        bad = [w for w in widths[1:] if w % min(norm_groups, w)]
        if norm == "group" and bad:
            raise ValueError(
                f"{owner}: norm_groups={norm_groups} must divide the normalised widths "
                f"{widths[1:]}, but not {bad}"
            )
        layers: list[nn.Module] = [conv(in_channels, ndf, 2, True), nn.LeakyReLU(0.2)]
        for i in range(1, n_layers + 1):
            stride = 2 if i < n_layers else 1
            layers += [
                conv(widths[i - 1], widths[i], stride, bias),
                _norm(norm, widths[i], norm_groups, dd),
                nn.LeakyReLU(0.2),
            ]
        layers.append(conv(widths[-1], 1, 1, True))
        self.net = nn.Sequential(*layers)
        for module in self.net:
            if isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.normal_(module.weight, 1.0, 0.02)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        owner = type(self).__name__
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{owner}: expected an image tensor, got {type(x).__name__}")
        check_real_device(owner, x)
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{owner}: expected images of shape (B, {self.in_channels}, H, W), "
                f"got {tuple(x.shape)}"
            )
        if not x.dtype.is_floating_point:
            raise TypeError(f"{owner}: expected floating-point images, got {x.dtype}")
        check_input_dtype(owner, x, self)
        if x.shape[0] == 0:
            raise ValueError(f"{owner}: got an empty batch {tuple(x.shape)}")
        smallest = 3 * 2**self.n_layers
        if min(x.shape[-2:]) < smallest:
            raise ValueError(
                f"{owner}: images must be at least {smallest}×{smallest} for n_layers="
                f"{self.n_layers} (every 4×4 conv needs a positive output), got "
                f"{x.shape[-2]}×{x.shape[-1]}"
            )
        return self.net(x)  # (B, 1, h', w')

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, ndf={self.ndf}, n_layers={self.n_layers}, "
            f"norm={self.norm!r}, spectral_norm={self.spectral_norm}, "
            f"receptive_field={self.receptive_field}"
        )
