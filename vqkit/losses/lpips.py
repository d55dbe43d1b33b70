"""LPIPS, the learned perceptual distance, with a VGG16 backbone written here (no torchvision).

*The Unreasonable Effectiveness of Deep Features as a Perceptual Metric*, Zhang, Isola, Efros,
Shechtman, Wang 2018 (arXiv:1801.03924), eq. 1, as in richzhang/PerceptualSimilarity (``lpips``
0.1): images in [-1, 1] are shifted and scaled per channel (shift ``[-.030, -.088, -.188]``,
scale ``[.458, .448, .450]``), passed through VGG16 (*Very Deep Convolutional Networks*,
Simonyan & Zisserman 2014, arXiv:1409.1556) up to relu1_2, relu2_2, relu3_3, relu4_3 and
relu5_3; each feature map is divided by its norm over channels, the squared differences are
weighted per channel by a 1×1 linear head (non-negative, no bias), averaged over positions and
summed over the five layers. VQ-GAN uses it as its perceptual loss (Esser et al. 2021,
arXiv:2012.09841, §3.1).

Weights are never downloaded here. They come from one safetensors file that the user names (or a
Hub repo they name), made once from the two published files with the converter::

    # torchvision's ImageNet VGG16: https://download.pytorch.org/models/vgg16-397923af.pth
    # the LPIPS v0.1 heads (a few KB): lpips/weights/v0.1/vgg.pth in richzhang/PerceptualSimilarity
    python -m vqkit.losses.lpips --vgg vgg16-397923af.pth --heads vgg.pth \\
        --out ~/.cache/vqkit/lpips_vgg16.safetensors

The converter reads the ``.pth`` files with ``torch.load(weights_only=True)`` (tensors only,
no code is unpickled). Taming's combined ``vgg.pth`` (``net.slice*`` and ``lin*`` keys) is also
accepted as ``--vgg`` (its heads are then taken from it unless ``--heads`` is given).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from vqkit._checks import check_bool, check_real_device
from vqkit._registry import register
from vqkit._safetensors import read_checked_tensors

__all__ = ["DEFAULT_WEIGHTS", "LPIPS", "VGG16Features", "convert_lpips_weights"]

#: Where ``LPIPS`` looks when no file or repo is named (the converter's default output).
DEFAULT_WEIGHTS = Path("~/.cache/vqkit/lpips_vgg16.safetensors")
HUB_FILENAME = "lpips_vgg16.safetensors"

# VGG16 "D" convs: (name, in, out); "M" is a 2×2 max-pool. Index = torchvision's features.<i>.
_VGG16: list[tuple[str, int, int] | Literal["M"]] = [
    ("conv1_1", 3, 64), ("conv1_2", 64, 64), "M",
    ("conv2_1", 64, 128), ("conv2_2", 128, 128), "M",
    ("conv3_1", 128, 256), ("conv3_2", 256, 256), ("conv3_3", 256, 256), "M",
    ("conv4_1", 256, 512), ("conv4_2", 512, 512), ("conv4_3", 512, 512), "M",
    ("conv5_1", 512, 512), ("conv5_2", 512, 512), ("conv5_3", 512, 512),
]  # fmt: skip
_TAPS = ("conv1_2", "conv2_2", "conv3_3", "conv4_3", "conv5_3")  # LPIPS reads their ReLUs
CHANNELS = (64, 128, 256, 512, 512)
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


def _torchvision_index() -> dict[str, int]:
    """Our conv name → its index in torchvision's ``vgg16().features`` (conv, ReLU, pools)."""
    index, position = {}, 0
    for item in _VGG16:
        if item == "M":
            position += 1
        else:
            index[item[0]] = position
            position += 2  # the conv and its ReLU
    return index


# taming's vgg.pth slices: slice1 = features[0:4], slice2 = [4:9], slice3 = [9:16], ...
_TAMING_SLICES = ((1, 0), (2, 4), (3, 9), (4, 16), (5, 23))


def _taming_key(index: int) -> str:
    slice_id, _ = max(s for s in _TAMING_SLICES if s[1] <= index)
    return f"net.slice{slice_id}.{index}"


class VGG16Features(nn.Module):
    """The 13 convolutions of VGG16 with ReLUs and max-pools; returns the five LPIPS taps.

    Shape:
        - Input: (B, 3, H, W), H and W ≥ 16 (four 2×2 pools before relu5_3)
        - Output: a list of five maps (B, 64, H, W), (B, 128, H/2, W/2), (B, 256, H/4, W/4),
          (B, 512, H/8, W/8), (B, 512, H/16, W/16)
    """

    def __init__(self, *, device: torch.device | str | None = None) -> None:
        super().__init__()
        self.convs = nn.ModuleDict(
            {name: nn.Conv2d(c_in, c_out, 3, padding=1, device=device) for name, c_in, c_out in
             (item for item in _VGG16 if item != "M")}
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for item in _VGG16:
            if item == "M":
                x = F.max_pool2d(x, 2)
                continue
            x = F.relu(self.convs[item[0]](x))
            if item[0] in _TAPS:
                taps.append(x)
        return taps


def _missing_weights_message(where: str) -> str:
    return (
        f"LPIPS weights not found ({where}). LPIPS needs two published files, converted once "
        "into one safetensors file:\n"
        "  1. torchvision's VGG16: https://download.pytorch.org/models/vgg16-397923af.pth\n"
        "  2. the LPIPS v0.1 linear heads: lpips/weights/v0.1/vgg.pth from "
        "https://github.com/richzhang/PerceptualSimilarity\n"
        "then run: python -m vqkit.losses.lpips --vgg vgg16-397923af.pth --heads vgg.pth "
        f"--out {DEFAULT_WEIGHTS}\n"
        f"and use LPIPS() (it reads {DEFAULT_WEIGHTS}), LPIPS(weights='path/to/file."
        "safetensors') or LPIPS(repo_id='user/repo') for a Hub repo holding "
        f"{HUB_FILENAME}. Nothing is downloaded automatically."
    )


@register("loss", "lpips")
class LPIPS(nn.Module):
    """LPIPS distance with the VGG16 backbone and the published v0.1 linear heads.

    The network is frozen (no parameter requires grad) and stays in eval mode; gradients flow
    to the *images*, which is what a perceptual loss needs.

    Args:
        weights: a safetensors file from ``convert_lpips_weights``; None reads
            ``DEFAULT_WEIGHTS`` (``~/.cache/vqkit/lpips_vgg16.safetensors``) unless
            ``repo_id`` or ``random_init`` is given.
        repo_id: a Hugging Face Hub repo holding ``lpips_vgg16.safetensors`` (downloaded through
            the Hub cache only because you name it).
        revision: the Hub revision with ``repo_id``.
        random_init: a randomly initialised backbone and random non-negative heads (plumbing
            and tests only: it is not a perceptual metric).

    Shape:
        - Input: two image batches (B, C, H, W) in [-1, 1], C = 3 or 1 (grayscale is repeated
          to 3 channels), H and W ≥ 16
        - Output: (B,) distances ≥ 0; 0 for identical images

    Raises:
        FileNotFoundError: no weights; the message says which files to get and where.
    """

    shift: torch.Tensor  # constant buffers registered in __init__
    scale: torch.Tensor

    def __init__(
        self,
        weights: str | os.PathLike | None = None,
        *,
        repo_id: str | None = None,
        revision: str | None = None,
        random_init: bool = False,
    ) -> None:
        super().__init__()
        check_bool("LPIPS", "random_init", random_init)
        given = [weights is not None, repo_id is not None, random_init]
        if sum(given) > 1:
            raise ValueError("LPIPS: pass at most one of weights, repo_id and random_init=True")
        path = None if random_init else self._resolve(weights, repo_id, revision)
        device = "meta" if path is not None else None  # no random init of weights to be loaded
        self.backbone = VGG16Features(device=device)
        self.heads = nn.ParameterList(
            nn.Parameter(torch.rand(1, c, 1, 1, device=device) / c) for c in CHANNELS
        )  # random non-negative heads (random_init)
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)
        if path is not None:
            self.load_weights(path)
        self.requires_grad_(False)
        self.eval()

    @staticmethod
    def _resolve(weights: object, repo_id: str | None, revision: str | None) -> Path:
        if repo_id is not None:
            if not isinstance(repo_id, str) or not repo_id:
                raise TypeError(f"LPIPS: repo_id must be a non-empty string, got {repo_id!r}")
            from huggingface_hub import hf_hub_download
            from huggingface_hub.errors import EntryNotFoundError

            try:
                return Path(hf_hub_download(repo_id, HUB_FILENAME, revision=revision))
            except EntryNotFoundError as exc:
                raise FileNotFoundError(_missing_weights_message(f"Hub repo {repo_id!r}")) from exc
        if weights is not None and not isinstance(weights, (str, os.PathLike)):
            raise TypeError(f"LPIPS: weights must be a file path, got {type(weights).__name__}")
        path = Path(weights if weights is not None else DEFAULT_WEIGHTS).expanduser()
        if not path.is_file():
            raise FileNotFoundError(_missing_weights_message(f"no file {str(path)!r}"))
        return path

    @staticmethod
    def expected_shapes() -> dict[str, tuple[int, ...]]:
        """The key → shape of every tensor in an LPIPS weights file."""
        shapes: dict[str, tuple[int, ...]] = {}
        for item in _VGG16:
            if item != "M":
                name, c_in, c_out = item
                shapes[f"backbone.convs.{name}.weight"] = (c_out, c_in, 3, 3)
                shapes[f"backbone.convs.{name}.bias"] = (c_out,)
        for j, c in enumerate(CHANNELS):
            shapes[f"heads.{j}"] = (1, c, 1, 1)
        return shapes

    def load_weights(self, path: str | os.PathLike) -> None:
        """Load a safetensors file written by ``convert_lpips_weights`` (strict)."""
        state = read_checked_tensors(
            path,
            self.expected_shapes(),
            "LPIPS",
            "an LPIPS VGG16 file",
            "make it with python -m vqkit.losses.lpips",
        )
        self.load_state_dict(state, assign=True)

    def train(self, mode: bool = True) -> LPIPS:
        """LPIPS is a fixed metric: it stays in eval mode whatever ``mode`` says."""
        return super().train(False)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x, y = self._check(x, "x"), self._check(y, "y")
        if x.shape != y.shape:
            raise ValueError(
                f"LPIPS: x and y must have the same shape, got {tuple(x.shape)} and "
                f"{tuple(y.shape)}"
            )
        b = x.shape[0]
        both = torch.cat([x, y]).float()  # (2B, C, H, W)
        if both.shape[1] == 1:
            both = both.expand(-1, 3, -1, -1)  # grayscale as RGB
        both = (both - self.shift) / self.scale
        total = both.new_zeros(b)
        for feats, head in zip(self.backbone(both), self.heads, strict=True):
            feats = feats / (feats.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)  # unit channels
            diff = (feats[:b] - feats[b:]).pow(2)  # (B, c, h, w)
            total = total + (diff * head).sum(1).mean((1, 2))  # 1×1 head, spatial mean
        return total  # (B,)

    @staticmethod
    def _check(t: object, name: str) -> torch.Tensor:
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"LPIPS: {name} must be a tensor, got {type(t).__name__}")
        check_real_device("LPIPS", t, name)
        if not t.dtype.is_floating_point:
            raise TypeError(f"LPIPS: {name} must be floating point, got {t.dtype}")
        if t.dim() != 4 or t.shape[1] not in (1, 3):
            raise ValueError(
                f"LPIPS: {name} must be images (B, 3, H, W) or (B, 1, H, W), got {tuple(t.shape)}"
            )
        if t.shape[0] == 0:
            raise ValueError(f"LPIPS: {name} is an empty batch")
        if min(t.shape[-2:]) < 16:
            raise ValueError(
                f"LPIPS: {name} must be at least 16×16 (VGG16 pools four times before relu5_3), "
                f"got {t.shape[-2]}×{t.shape[-1]}"
            )
        return t


def _load_pth(path: str | os.PathLike, what: str) -> Mapping[str, torch.Tensor]:
    if not Path(path).is_file():
        raise FileNotFoundError(f"{what} file {str(path)!r} does not exist")
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(state, Mapping) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise ValueError(
            f"{what} file {str(path)!r} holds {type(state).__name__}, not a state dict"
        )
    return state


def convert_lpips_weights(
    vgg: str | os.PathLike,
    heads: str | os.PathLike | None,
    out: str | os.PathLike,
) -> Path:
    """Convert the published ``.pth`` files into one safetensors file for ``LPIPS``.

    Args:
        vgg: torchvision's ``vgg16-397923af.pth`` (keys ``features.<i>.weight`` / ``.bias``) or
            taming's LPIPS ``vgg.pth`` (keys ``net.slice<k>.<i>.*`` and ``lin<j>.model.1.weight``).
        heads: the LPIPS v0.1 heads ``vgg.pth`` (keys ``lin<j>.model.1.weight``); None takes
            them from ``vgg`` (taming's file has them).
        out: the safetensors file to write (its folder is created). The file is written to a
            temporary name and renamed, so a failed conversion leaves nothing behind.

    Returns:
        The written path.
    """
    from safetensors.torch import save_file

    vgg_state = _load_pth(vgg, "VGG16")
    head_state = _load_pth(heads, "LPIPS heads") if heads is not None else vgg_state
    converted: dict[str, torch.Tensor] = {}
    for name, index in _torchvision_index().items():
        for part in ("weight", "bias"):
            candidates = (f"features.{index}.{part}", f"{_taming_key(index)}.{part}")
            found = [k for k in candidates if k in vgg_state]
            if not found:
                raise ValueError(
                    f"{str(vgg)!r} has no {candidates[0]!r} (torchvision) or {candidates[1]!r} "
                    "(taming): is it VGG16's ImageNet state dict?"
                )
            converted[f"backbone.convs.{name}.{part}"] = vgg_state[found[0]]
    for j in range(len(CHANNELS)):
        key = f"lin{j}.model.1.weight"
        if key not in head_state:
            source = heads if heads is not None else vgg
            raise ValueError(f"{str(source)!r} has no {key!r}: is it the LPIPS v0.1 vgg.pth?")
        converted[f"heads.{j}"] = head_state[key]
    reference = LPIPS.expected_shapes()
    for key, value in converted.items():
        if tuple(value.shape) != reference[key]:
            raise ValueError(
                f"{key}: the source tensor has shape {tuple(value.shape)}, expected "
                f"{reference[key]}"
            )
    out = Path(out).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    try:
        tensors = {k: v.detach().float().contiguous() for k, v in converted.items()}
        save_file(tensors, str(tmp), metadata={"format": "pt", "source": "lpips v0.1 vgg"})
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m vqkit.losses.lpips --vgg VGG.pth [--heads HEADS.pth] [--out FILE]``."""
    parser = argparse.ArgumentParser(
        prog="python -m vqkit.losses.lpips",
        description="Convert the published LPIPS VGG16 .pth files into one safetensors file.",
    )
    parser.add_argument("--vgg", required=True, help="vgg16-397923af.pth (or taming's vgg.pth)")
    parser.add_argument("--heads", default=None, help="lpips weights/v0.1/vgg.pth")
    parser.add_argument("--out", default=str(DEFAULT_WEIGHTS), help="output .safetensors")
    args = parser.parse_args(argv)
    try:
        path = convert_lpips_weights(args.vgg, args.heads, args.out)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
