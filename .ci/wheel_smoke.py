"""Smoke test of a built vqkit sdist and wheel, the wheel installed with only its core
dependencies (run by .ci/run as ``python wheel_smoke.py DIST_DIR``).

Run it from outside the repository, with the fresh environment's Python, so ``import vqkit`` finds
the installed wheel. It checks that the sdist in DIST_DIR carries only the package, its metadata,
README and licence (no tests), then saves, loads (by class and by the top-level loader) and
pushes a tiny model to a fake Hub, loads the push back through an offline Hub cache, and fails
loudly on any mismatch.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import sys
import tarfile
import tempfile
from pathlib import Path

import torch


def check(condition: bool, message: str) -> None:
    if not condition:
        sys.exit(f"wheel smoke test FAILED: {message}")


SDIST_FOLDERS = ("vqkit", "vqkit.egg-info")
SDIST_FILES = ("LICENSE", "README.md", "MANIFEST.in", "PKG-INFO", "pyproject.toml", "setup.cfg")


def check_sdist(dist: Path) -> None:
    sdists = list(dist.glob("vqkit-*.tar.gz"))
    check(len(sdists) == 1, f"expected one sdist in {dist}, found {sdists}")
    root = sdists[0].name.removesuffix(".tar.gz")
    with tarfile.open(sdists[0]) as tar:
        names = [name.removeprefix(root + "/") for name in tar.getnames() if name != root]
    stray = [n for n in names if n.split("/")[0] not in SDIST_FOLDERS and n not in SDIST_FILES]
    check(not stray, f"stray files in {sdists[0].name}: {stray}")
    check("vqkit/py.typed" in names, "the sdist lacks vqkit/py.typed")


def main() -> None:
    import huggingface_hub
    from huggingface_hub import HfApi, constants
    from huggingface_hub.hf_api import RepoUrl

    import vqkit

    repo = Path(__file__).resolve().parents[1]
    check(repo not in Path(vqkit.__file__).resolve().parents, f"imported {vqkit.__file__}")
    installed = importlib.metadata.version("vqkit")
    check(vqkit.__version__ == installed, f"__version__ {vqkit.__version__} vs wheel {installed}")
    check((Path(vqkit.__file__).parent / "py.typed").is_file(), "py.typed is not installed")
    for extra in ("PIL", "sklearn", "skimage", "matplotlib"):  # the data / metrics extras
        check(importlib.util.find_spec(extra) is None, f"{extra} is installed: not a core install")

    torch.manual_seed(0)
    model = vqkit.VQVAE(
        encoder={"type": "resnet", "in_channels": 1, "hidden_channels": 8, "num_downsamples": 1},
        quantizer={"type": "vq", "dim": 4, "codebook_size": 8},
        decoder={"type": "resnet", "hidden_channels": 8},
        prior={"type": "pixelcnn", "hidden_channels": 8, "num_layers": 1},
        image_size=[8, 8],
    ).eval()
    x = torch.rand(2, 1, 8, 8)
    expected = model(x).reconstruction

    def same(other: torch.nn.Module, what: str) -> None:
        check(type(other) is vqkit.VQVAE, f"{what}: got {type(other).__name__}")
        check(torch.equal(other(x).reconstruction, expected), f"{what}: outputs differ")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model.save_pretrained(tmp / "saved")
        same(vqkit.VQVAE.from_pretrained(tmp / "saved"), "VQVAE.from_pretrained")
        same(vqkit.from_pretrained(str(tmp / "saved")), "vqkit.from_pretrained")

        uploaded: dict[str, bytes] = {}

        class FakeHfApi(HfApi):  # the two network calls of push_to_hub, recorded
            def create_repo(self, repo_id, **kwargs):
                return RepoUrl(f"https://huggingface.co/{repo_id}")

            def upload_folder(self, *, repo_id, folder_path, **kwargs):
                for path in Path(folder_path).iterdir():
                    uploaded[path.name] = path.read_bytes()
                return f"https://huggingface.co/{repo_id}/commit/{'0' * 40}"

        huggingface_hub.hub_mixin.HfApi = FakeHfApi
        model.push_to_hub("user/smoke")
        names = sorted(uploaded)
        check(names == ["README.md", "config.json", "model.safetensors"], f"uploaded {names}")
        pushed = json.loads(uploaded["config.json"])
        check(pushed.get("_class_name") == type(model).__name__, f"_class_name {pushed!r}")
        pushed = {k: v for k, v in pushed.items() if not k.startswith("_")}
        check(pushed == model.hub_config, "uploaded config differs")

        # What was pushed is what a user downloads: serve it from an offline Hub cache.
        snapshot = tmp / "cache" / "models--user--smoke" / "snapshots" / ("0" * 40)
        snapshot.mkdir(parents=True)
        (snapshot.parents[1] / "refs").mkdir()
        (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)
        for name, data in uploaded.items():
            (snapshot / name).write_bytes(data)
        constants.HF_HUB_CACHE = str(tmp / "cache")
        constants.HF_HUB_OFFLINE = True
        same(vqkit.from_pretrained("user/smoke"), "from_pretrained('user/smoke')")
        try:
            vqkit.from_pretrained("user/absent")
        except vqkit.ModelNotFoundError as exc:
            check("offline" in str(exc), f"unclear offline error: {exc}")
        else:
            check(False, "an uncached repo loaded offline")
    print(f"wheel smoke test passed: vqkit {installed}, torch {torch.__version__}, core install")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python wheel_smoke.py DIST_DIR (the folder holding the built sdist)")
    check_sdist(Path(sys.argv[1]))
    main()
