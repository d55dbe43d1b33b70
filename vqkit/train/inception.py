"""Inception-v3 pool features for the Fréchet Inception Distance (FID), written here.

FID (Heusel et al. 2017, *GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
Equilibrium*, arXiv:1706.08500) is the Fréchet distance between Gaussians fitted to the 2048-d
final average-pool features of Inception-v3 (Szegedy et al. 2016, *Rethinking the Inception
Architecture for Computer Vision*, arXiv:1512.00567). Published FIDs use one network: the
TensorFlow graph ``inception-2015-12-05`` of the original TTUR code, which pytorch-fid ported to
PyTorch (``pt_inception-2015-12-05-6726825d.pth``). That graph differs from torchvision's
Inception-v3 in three places, reproduced here:

- the 3×3 average pool of the pooling branch in the ``Mixed_5*`` (A), ``Mixed_6b-e`` (C) and
  ``Mixed_7b`` (E) blocks ignores the zero padding (TensorFlow's ``count_include_pad=False``);
- the pooling branch of the last block, ``Mixed_7c``, is a 3×3 *max* pool (stride 1, padding 1);
- the classifier has 1008 classes (it is not used for FID and is dropped by the converter).

The input convention is pytorch-fid's: images in [0, 1] are resized to 299×299 with bilinear
interpolation (``align_corners=False``) and scaled to [-1, 1]; grayscale is repeated to RGB.
Features are taken after ``Mixed_7c`` and a global average pool: (N, 2048).

Weights are never downloaded. Get pytorch-fid's published file once and convert it; the module's
parameter names are torchvision's (``Conv2d_1a_3x3.conv.weight``, ``Mixed_5b.branch1x1.bn.
running_mean``, ...), so the conversion only drops the classifier and checks every shape::

    # https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth
    python -m vqkit.train.inception --pth pt_inception-2015-12-05-6726825d.pth \\
        --out ~/.cache/vqkit/inception_fid.safetensors

The converter reads the ``.pth`` with ``torch.load(weights_only=True)`` (tensors only).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vqkit._checks import check_bool, check_positive_int, check_real_device
from vqkit._safetensors import read_checked_tensors

__all__ = [
    "DEFAULT_WEIGHTS",
    "FEATURE_DIM",
    "HUB_FILENAME",
    "PTH_NAME",
    "PTH_URL",
    "FIDInceptionV3",
    "convert_inception_weights",
    "inception_features",
]

#: Where ``FIDInceptionV3`` looks when no file or repo is named (the converter's default output).
DEFAULT_WEIGHTS = Path("~/.cache/vqkit/inception_fid.safetensors")
HUB_FILENAME = "inception_fid.safetensors"
#: The published file (pytorch-fid's port of the TF 2015-12-05 graph) and where it is.
PTH_NAME = "pt_inception-2015-12-05-6726825d.pth"
PTH_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{PTH_NAME}"
FEATURE_DIM = 2048
INPUT_SIZE = 299
MIN_SIZE = 75  # the smallest input the stride-2 stages accept without resizing
# Keys of the published file that FID does not use: the 1008-way classifier (and the auxiliary
# head of torchvision-style files); BatchNorm's step counters.
_DROPPED_PREFIXES = ("fc.", "AuxLogits.")


class BasicConv2d(nn.Module):
    """A bias-free convolution, BatchNorm (ε = 10⁻³, the TF graph's) and ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel, stride=1, padding=0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _tf_avg_pool(x: torch.Tensor) -> torch.Tensor:
    """3×3 average pool, stride 1, padding 1, averaging only over pixels inside the image."""
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    """``Mixed_5b/c/d``: 1×1, 5×5, double 3×3 and pooled 1×1 branches (64 + 64 + 96 + pool)."""

    def __init__(self, c_in: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(c_in, 64, 1)
        self.branch5x5_1 = BasicConv2d(c_in, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(c_in, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(c_in, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        five = self.branch5x5_2(self.branch5x5_1(x))
        double = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        pooled = self.branch_pool(_tf_avg_pool(x))
        return torch.cat([self.branch1x1(x), five, double, pooled], 1)


class InceptionB(nn.Module):
    """``Mixed_6a``: the 35 → 17 grid reduction (384 + 96 + the input's channels)."""

    def __init__(self, c_in: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(c_in, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(c_in, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        double = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), double, F.max_pool2d(x, 3, stride=2)], 1)


class InceptionC(nn.Module):
    """``Mixed_6b-e``: factorised 7×7 branches with ``c7`` inner channels (4 × 192 out)."""

    def __init__(self, c_in: int, c7: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(c_in, 192, 1)
        self.branch7x7_1 = BasicConv2d(c_in, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(c_in, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(c_in, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seven = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        double = x
        for i in range(1, 6):
            double = getattr(self, f"branch7x7dbl_{i}")(double)
        pooled = self.branch_pool(_tf_avg_pool(x))
        return torch.cat([self.branch1x1(x), seven, double, pooled], 1)


class InceptionD(nn.Module):
    """``Mixed_7a``: the 17 → 8 grid reduction (320 + 192 + the input's channels)."""

    def __init__(self, c_in: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(c_in, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(c_in, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        three = self.branch3x3_2(self.branch3x3_1(x))
        seven = x
        for i in range(1, 5):
            seven = getattr(self, f"branch7x7x3_{i}")(seven)
        return torch.cat([three, seven, F.max_pool2d(x, 3, stride=2)], 1)


class InceptionE(nn.Module):
    """``Mixed_7b/c``: expanded 1×3 / 3×1 branches (320 + 768 + 768 + 192 = 2048 out).

    ``pool="avg"`` is ``Mixed_7b`` (padding-excluding average), ``pool="max"`` is the FID
    graph's ``Mixed_7c``.
    """

    def __init__(self, c_in: int, pool: str) -> None:
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(f"InceptionE: pool must be 'avg' or 'max', got {pool!r}")
        self.pool = pool
        self.branch1x1 = BasicConv2d(c_in, 320, 1)
        self.branch3x3_1 = BasicConv2d(c_in, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(c_in, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(c_in, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        three = self.branch3x3_1(x)
        three = torch.cat([self.branch3x3_2a(three), self.branch3x3_2b(three)], 1)
        double = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        double = torch.cat([self.branch3x3dbl_3a(double), self.branch3x3dbl_3b(double)], 1)
        if self.pool == "max":
            pooled = F.max_pool2d(x, 3, stride=1, padding=1)
        else:
            pooled = _tf_avg_pool(x)
        return torch.cat([self.branch1x1(x), three, double, self.branch_pool(pooled)], 1)


def _missing_weights_message(where: str) -> str:
    return (
        f"FID Inception weights not found ({where}). A true FID needs the TF 2015-12-05 "
        f"Inception-v3 as ported by pytorch-fid: download {PTH_URL} once, then run\n"
        f"  python -m vqkit.train.inception --pth {PTH_NAME} --out {DEFAULT_WEIGHTS}\n"
        f"and use FIDInceptionV3() (it reads {DEFAULT_WEIGHTS}), FIDInceptionV3(weights="
        f"'path/to/file.safetensors'), FIDInceptionV3(repo_id='user/repo') for a Hub repo "
        f"holding {HUB_FILENAME}, or `vqkit eval RUN --inception FILE`. Nothing is downloaded "
        "automatically; without it vqkit reports the dataset Fréchet distance (not FID)."
    )


class FIDInceptionV3(nn.Module):
    """The FID variant of Inception-v3, up to its 2048-d final average-pool features.

    The network is frozen (no parameter requires grad) and stays in eval mode (BatchNorm uses
    its running statistics).

    Args:
        weights: a safetensors file from ``convert_inception_weights``; None reads
            ``DEFAULT_WEIGHTS`` (``~/.cache/vqkit/inception_fid.safetensors``) unless
            ``repo_id`` or ``random_init`` is given.
        repo_id: a Hugging Face Hub repo holding ``inception_fid.safetensors`` (fetched through
            the Hub cache only because you name it).
        revision: the Hub revision with ``repo_id``.
        random_init: random weights (plumbing and tests only: the features mean nothing and
            the distance computed from them is not FID).
        resize: resize every input to 299×299 (bilinear, ``align_corners=False``), as
            pytorch-fid and the published FIDs do. ``False`` feeds the images at their own
            size (at least 75×75); the features are then not those of FID.

    Shape:
        - Input: (N, C, H, W) images in [0, 1], C = 3 or 1 (grayscale is repeated to RGB)
        - Output: (N, 2048)

    Raises:
        FileNotFoundError: no weights; the message says which file to get and how to convert.
    """

    def __init__(
        self,
        weights: str | os.PathLike | None = None,
        *,
        repo_id: str | None = None,
        revision: str | None = None,
        random_init: bool = False,
        resize: bool = True,
    ) -> None:
        super().__init__()
        check_bool("FIDInceptionV3", "random_init", random_init)
        self.resize = check_bool("FIDInceptionV3", "resize", resize)
        given = [weights is not None, repo_id is not None, random_init]
        if sum(given) > 1:
            raise ValueError(
                "FIDInceptionV3: pass at most one of weights, repo_id and random_init=True"
            )
        path = None if random_init else self._resolve(weights, repo_id, revision)
        state = self.read_weights(path) if path is not None else None  # checked before building
        with torch.device("meta"):  # no default init of weights that are replaced below
            self._build()
        self.to_empty(device="cpu")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # random_init is the same network every time
            for module in self.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.reset_parameters()  # identity statistics, counters at 0
                elif isinstance(module, nn.Conv2d):  # He-normal: scale kept through 94 ReLUs
                    nn.init.normal_(module.weight, std=(2.0 / module.weight[0].numel()) ** 0.5)
        if state is not None:
            # Every tensor is there (read_weights checked); BatchNorm's step counters are not.
            self.load_state_dict(state, strict=False)
        self.requires_grad_(False)
        self.eval()

    def _build(self) -> None:
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = InceptionA(192, 32)
        self.Mixed_5c = InceptionA(256, 64)
        self.Mixed_5d = InceptionA(288, 64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, 128)
        self.Mixed_6c = InceptionC(768, 160)
        self.Mixed_6d = InceptionC(768, 160)
        self.Mixed_6e = InceptionC(768, 192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, "avg")
        self.Mixed_7c = InceptionE(2048, "max")

    @staticmethod
    def _resolve(weights: object, repo_id: str | None, revision: str | None) -> Path:
        if repo_id is not None:
            if not isinstance(repo_id, str) or not repo_id:
                raise TypeError(
                    f"FIDInceptionV3: repo_id must be a non-empty string, got {repo_id!r}"
                )
            from huggingface_hub import hf_hub_download
            from huggingface_hub.errors import EntryNotFoundError

            try:
                return Path(hf_hub_download(repo_id, HUB_FILENAME, revision=revision))
            except EntryNotFoundError as exc:
                raise FileNotFoundError(_missing_weights_message(f"Hub repo {repo_id!r}")) from exc
        if weights is not None and not isinstance(weights, (str, os.PathLike)):
            raise TypeError(
                f"FIDInceptionV3: weights must be a file path, got {type(weights).__name__}"
            )
        path = Path(weights if weights is not None else DEFAULT_WEIGHTS).expanduser()
        if not path.is_file():
            raise FileNotFoundError(_missing_weights_message(f"no file {str(path)!r}"))
        return path

    @classmethod
    def expected_shapes(cls) -> dict[str, tuple[int, ...]]:
        """The key → shape of every tensor in a converted weights file (torchvision's names)."""
        net = nn.Module.__new__(cls)
        nn.Module.__init__(net)
        with torch.device("meta"):
            net._build()
        return {
            k: tuple(v.shape)
            for k, v in net.state_dict().items()
            if not k.endswith("num_batches_tracked")
        }

    @classmethod
    def read_weights(cls, path: str | os.PathLike) -> dict[str, torch.Tensor]:
        """The tensors of a file written by ``convert_inception_weights``, every key and shape
        checked (``ValueError`` naming the first differences otherwise)."""
        return read_checked_tensors(
            path,
            cls.expected_shapes(),
            "FIDInceptionV3",
            "an FID Inception file",
            "make it with python -m vqkit.train.inception",
        )

    def load_weights(self, path: str | os.PathLike) -> None:
        """Load a safetensors file written by ``convert_inception_weights`` (every tensor)."""
        self.load_state_dict(self.read_weights(path), strict=False)

    def train(self, mode: bool = True) -> FIDInceptionV3:
        """A fixed feature extractor: it stays in eval mode whatever ``mode`` says."""
        return super().train(False)

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Images (N, C, H, W) in [0, 1] → the network's input (N, 3, 299, 299) in [-1, 1]."""
        x = self._check(x)
        x = x.float()
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if self.resize:
            x = F.interpolate(
                x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False
            )
        return 2 * x - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.preprocess(x)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, 3, stride=2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        return x.mean((2, 3))  # (N, 2048)

    def _check(self, x: object) -> torch.Tensor:
        owner = "FIDInceptionV3"
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{owner}: images must be a tensor, got {type(x).__name__}")
        check_real_device(owner, x, "images")
        if not x.dtype.is_floating_point:
            raise TypeError(f"{owner}: images must be floating point in [0, 1], got {x.dtype}")
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(
                f"{owner}: images must be (N, 3, H, W) or (N, 1, H, W), got {tuple(x.shape)}"
            )
        if x.shape[0] == 0:
            raise ValueError(f"{owner}: images is an empty batch")
        if not self.resize and min(x.shape[-2:]) < MIN_SIZE:
            raise ValueError(
                f"{owner}: with resize=False images must be at least {MIN_SIZE}×{MIN_SIZE}, got "
                f"{x.shape[-2]}×{x.shape[-1]}"
            )
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{owner}: images contain NaN or infinite values")
        return x


@torch.no_grad()
def inception_features(
    net: FIDInceptionV3, images: torch.Tensor, *, batch_size: int = 64
) -> torch.Tensor:
    """The (N, 2048) features of ``images`` (N, C, H, W) in [0, 1], ``batch_size`` at a time,
    computed on ``net``'s device and returned on the CPU in float32."""
    if not isinstance(net, FIDInceptionV3):
        raise TypeError(f"inception_features: net must be FIDInceptionV3, got {type(net).__name__}")
    check_positive_int("inception_features", "batch_size", batch_size)
    net._check(images)  # the whole set: type, shape, non-empty, finite
    device = next(net.parameters()).device
    return torch.cat([net(b.to(device)).float().cpu() for b in images.split(batch_size)])


def _load_pth(path: str | os.PathLike) -> Mapping[str, torch.Tensor]:
    if not Path(path).is_file():
        raise FileNotFoundError(
            f"Inception file {str(path)!r} does not exist (get {PTH_NAME} from {PTH_URL})"
        )
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(state, Mapping) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise ValueError(f"{str(path)!r} holds {type(state).__name__}, not a state dict")
    return state


def convert_inception_weights(pth: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Convert pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` to safetensors.

    The classifier (``fc.*``), any auxiliary head (``AuxLogits.*``) and BatchNorm's
    ``num_batches_tracked`` are dropped; every other tensor must be one of
    ``FIDInceptionV3.expected_shapes()`` with that shape, and every expected tensor must be there.

    Args:
        pth: the published ``.pth`` (read with ``torch.load(weights_only=True)``).
        out: the safetensors file to write (its folder is created). It is written to a
            temporary name and renamed, so a failed conversion leaves nothing behind.

    Returns:
        The written path.
    """
    from safetensors.torch import save_file

    state = _load_pth(pth)
    kept = {
        k: v
        for k, v in state.items()
        if not k.startswith(_DROPPED_PREFIXES) and not k.endswith("num_batches_tracked")
    }
    expected = FIDInceptionV3.expected_shapes()
    missing = sorted(set(expected) - set(kept))
    unexpected = sorted(set(kept) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"{str(pth)!r} is not the FID Inception state dict ({PTH_NAME}): missing "
            f"{missing[:4]}{' ...' if len(missing) > 4 else ''}, unexpected {unexpected[:4]}"
            f"{' ...' if len(unexpected) > 4 else ''}"
        )
    for key, value in kept.items():
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != expected[key]:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ValueError(f"{str(pth)!r}: {key} has shape {shape}, expected {expected[key]}")
    out = Path(out).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    try:
        tensors = {k: v.detach().float().contiguous() for k, v in kept.items()}
        save_file(tensors, str(tmp), metadata={"format": "pt", "source": PTH_NAME})
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m vqkit.train.inception --pth FILE.pth [--out FILE.safetensors]``."""
    parser = argparse.ArgumentParser(
        prog="python -m vqkit.train.inception",
        description=f"Convert pytorch-fid's {PTH_NAME} into a safetensors file for FID.",
    )
    parser.add_argument("--pth", required=True, help=f"{PTH_NAME} (from {PTH_URL})")
    parser.add_argument("--out", default=str(DEFAULT_WEIGHTS), help="output .safetensors")
    args = parser.parse_args(argv)
    try:
        path = convert_inception_weights(args.pth, args.out)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
