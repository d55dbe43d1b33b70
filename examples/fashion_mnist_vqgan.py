"""VQ-GAN against VQ-VAE on Fashion-MNIST: same network, code grid, K and step budget.

*Taming Transformers for High-Resolution Image Synthesis* (Esser et al. 2021, arXiv:2012.09841)
trains the VQ-VAE of van den Oord et al. (arXiv:1711.00937) with a patch discriminator so that
reconstructions stay sharp at a low code rate. This script measures that claim at a small scale:
the ``vqgan-fashion-mnist`` preset (taming encoder/decoder, 7×7 grid, K = 512, no prior) is
trained from the same initialisation, data order and Adam settings (β = (0.5, 0.9), taming's) as

- ``vqvae``: the plain objective (L1 reconstruction + quantizer loss, ``VQGAN.forward``),
- ``vqgan``: the same plus the adaptive-weight hinge GAN term from ``--disc-start`` on
  (``vqkit.train.Trainer``'s adversarial path). No perceptual loss: LPIPS needs the user's
  pretrained VGG16 weights, and with a random VGG16 its values mean nothing.

Before ``--disc-start`` the two runs are the same computation (the trainer's tests check the
generator's gradient bit for bit), so every difference comes from the adversarial term.

Each model is one invocation (``--run``), so the runs can go in parallel processes; ``--report``
then evaluates every finished run in ``--out`` on the test set: the dataset Fréchet distance of
reconstructions (``vqkit.train.frechet.dataset_frechet_distance`` in the features of a
``DatasetClassifier`` trained on the training set: not FID), PSNR, SSIM and codebook usage, and
writes the pictures and ``results.json`` to ``--pictures``.
Fashion-MNIST: Xiao et al., arXiv:1708.07747 (``apt-get install dataset-fashion-mnist``).

    python examples/fashion_mnist_vqgan.py --run classifier
    python examples/fashion_mnist_vqgan.py --run vqvae &
    python examples/fashion_mnist_vqgan.py --run vqgan --disc-weight 0.25 &
    wait; python examples/fashion_mnist_vqgan.py --report
    # smoke run: --steps 20 --disc-start 10 --test 200 --out /tmp/x --pictures /tmp/x/pictures
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from vqkit.data import ArrayDataset, load_dataset
from vqkit.models.presets import gan_preset_config
from vqkit.models.vqgan import VQGAN
from vqkit.train import Trainer
from vqkit.train.frechet import dataset_frechet_distance, load_or_train_classifier
from vqkit.train.images import image_grid, save_image
from vqkit.train.metrics import CodebookUsage, psnr, ssim
from vqkit.train.trainer import default_objective

GAN_BETAS = (0.5, 0.9)


def build(args: argparse.Namespace) -> VQGAN:
    torch.manual_seed(args.seed)
    return VQGAN(
        **gan_preset_config(
            "vqgan-fashion-mnist",
            prior=None,
            disc_start=args.disc_start,
            disc_weight=args.disc_weight,
        )
    )


def run_name(args: argparse.Namespace) -> str:
    if args.run == "vqvae":
        return "vqvae"
    return f"vqgan_w{args.disc_weight:g}_s{args.disc_start}"


def classifier_of(args: argparse.Namespace, train):
    return load_or_train_classifier(
        Path(args.out) / "classifier.safetensors",
        train.data,
        train.labels,
        epochs=2,
        seed=args.seed,
    )


def train_one(args: argparse.Namespace, train) -> None:
    name = run_name(args)
    folder = Path(args.out) / name
    model = build(args)
    start = time.perf_counter()
    adversarial = args.run == "vqgan"
    extra = {"disc_lr": args.disc_lr} if adversarial else {"betas": GAN_BETAS}
    Trainer(
        model,
        ArrayDataset(train.data),
        objective=None if adversarial else default_objective,
        out_dir=folder,
        max_steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        checkpoint_every=250,
        progress=False,
        name=name,
        callbacks=[lambda trainer, step, logs: _progress(name, step, start)],
        **extra,
    ).fit()
    torch.save(
        {"state": model.state_dict(), "settings": vars(args)},
        folder / "final.pt",
    )
    (folder / "train_seconds.txt").write_text(f"{time.perf_counter() - start:.1f}\n")
    print(name, "trained in", (folder / "train_seconds.txt").read_text().strip(), "s", flush=True)


def _progress(name: str, step: int, start: float) -> None:
    if step % 50 == 0:
        print(f"{name} step {step} at {time.perf_counter() - start:.0f} s", flush=True)


@torch.no_grad()
def evaluate(model: VQGAN, test: torch.Tensor, classifier) -> tuple[dict, torch.Tensor]:
    model.eval()
    recs, usage = [], CodebookUsage(model.quantizer.codebook_size)
    for chunk in test.split(250):
        out = model(chunk)
        recs.append(out.reconstruction.clamp(0, 1))
        usage.update(model.encode_indices(chunk))
    rec = torch.cat(recs)
    return {
        "dataset_frechet": dataset_frechet_distance(classifier, test, rec),
        "psnr": float(psnr(test, rec).mean()),
        "ssim": float(ssim(test, rec).mean()),
        **{f"codebook_{k}": v for k, v in usage.compute().items()},
    }, rec


def report(args: argparse.Namespace, train) -> None:
    out, pictures = Path(args.out), Path(args.pictures)
    test = load_dataset("fashion-mnist", split="test").data[: args.test].float()
    classifier = classifier_of(args, train)
    results: dict = {
        "train_vs_test_frechet": dataset_frechet_distance(
            classifier, test, train.data[: args.test].float()
        )
    }
    runs = sorted(p.parent for p in out.glob("*/final.pt"))
    runs.sort(key=lambda p: (p.name != "vqvae", p.name))
    if not runs:
        raise SystemExit(f"no finished run (final.pt) under {out}")
    shown, rows = 16, [test[:16]]
    for folder in runs:
        saved = torch.load(folder / "final.pt", weights_only=True)
        settings = argparse.Namespace(**saved["settings"])
        model = build(settings)
        model.load_state_dict(saved["state"])
        metrics, rec = evaluate(model, test, classifier)
        metrics["train_seconds"] = float((folder / "train_seconds.txt").read_text())
        metrics["settings"] = saved["settings"]
        results[folder.name] = metrics
        rows.append(rec[:shown])
        print(folder.name, json.dumps({k: v for k, v in metrics.items() if k != "settings"}))
    save_image(image_grid(torch.cat(rows), nrow=shown, scale=3), pictures / "reconstructions.png")
    results["rows"] = ["test images"] + [p.name for p in runs]
    (pictures / "results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", choices=["classifier", "vqvae", "vqgan"], default=None)
    parser.add_argument("--report", action="store_true", help="evaluate the finished runs")
    parser.add_argument("--steps", type=int, default=360, help="optimizer steps of each model")
    parser.add_argument("--disc-start", type=int, default=180)
    parser.add_argument("--disc-weight", type=float, default=0.25)
    parser.add_argument("--disc-lr", type=float, default=None, help="default: --lr")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--test", type=int, default=1000, help="test images evaluated")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/fashion_mnist_vqgan")
    parser.add_argument("--pictures", default="docs/images/vqgan")
    args = parser.parse_args()
    if args.run is None and not args.report:
        parser.error("give --run vqvae|vqgan|classifier or --report")
    torch.set_num_threads(args.threads)
    train = load_dataset("fashion-mnist", split="train")
    if args.run == "classifier":
        classifier_of(args, train)
    elif args.run is not None:
        train_one(args, train)
    if args.report:
        report(args, train)


if __name__ == "__main__":
    main()
