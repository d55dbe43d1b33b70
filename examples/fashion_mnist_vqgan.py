"""VQ-GAN against VQ-VAE on Fashion-MNIST: same network, code grid, K and step budget.

*Taming Transformers for High-Resolution Image Synthesis* (Esser et al. 2021, arXiv:2012.09841)
trains the VQ-VAE of van den Oord et al. (arXiv:1711.00937) with a patch discriminator so that
reconstructions stay sharp at a low code rate. This script measures that claim at a small scale:
the ``vqgan-fashion-mnist`` preset (taming encoder/decoder, 7×7 grid, K = 512, no prior) is
trained twice from the same initialisation and data order,

- ``vqvae``: the plain objective (L1 reconstruction + quantizer loss, ``VQGAN.forward``),
- ``vqgan``: the same plus the adaptive-weight hinge GAN term from ``--disc-start`` on
  (``vqkit.train.Trainer``'s adversarial path; no perceptual loss: LPIPS needs weights),

and reports on the test set: the dataset Fréchet distance of reconstructions
(``vqkit.train.frechet.dataset_frechet_distance`` with a ``DatasetClassifier`` trained on the
training set: not FID), PSNR, SSIM and codebook usage. Pictures go to ``--pictures``.
Fashion-MNIST: Xiao et al., arXiv:1708.07747 (``apt-get install dataset-fashion-mnist``).

    python examples/fashion_mnist_vqgan.py --threads 1 --steps 1500 --disc-start 500
    python examples/fashion_mnist_vqgan.py --steps 20 --disc-start 10 --test 200   # smoke run
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


def build(disc_start: int, seed: int) -> VQGAN:
    torch.manual_seed(seed)
    return VQGAN(**gan_preset_config("vqgan-fashion-mnist", prior=None, disc_start=disc_start))


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1500, help="optimizer steps of each model")
    parser.add_argument("--disc-start", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--test", type=int, default=2000, help="test images evaluated")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/fashion_mnist_vqgan")
    parser.add_argument("--pictures", default="docs/img/vqgan")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out, pictures = Path(args.out), Path(args.pictures)
    train = load_dataset("fashion-mnist", split="train")
    test_set = load_dataset("fashion-mnist", split="test")
    test = test_set.data[: args.test].float()
    classifier = load_or_train_classifier(
        out / "classifier.safetensors", train.data, train.labels, epochs=2, seed=args.seed
    )
    real_fd = dataset_frechet_distance(classifier, test, train.data[: args.test].float())
    results, recs = {"train_vs_test_frechet": real_fd}, {}
    for kind in ("vqvae", "vqgan"):
        model = build(args.disc_start, args.seed)
        start = time.perf_counter()
        Trainer(
            model,
            ArrayDataset(train.data),
            objective=default_objective if kind == "vqvae" else None,
            out_dir=out / kind,
            max_steps=args.steps,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
            checkpoint_every=250,
            progress=False,
            name=kind,
        ).fit()
        metrics, recs[kind] = evaluate(model, test, classifier)
        metrics["train_seconds"] = round(time.perf_counter() - start, 1)
        results[kind] = metrics
        print(kind, json.dumps(metrics), flush=True)
    shown = 16
    rows = torch.cat([test[:shown], recs["vqvae"][:shown], recs["vqgan"][:shown]])
    save_image(image_grid(rows, nrow=shown, scale=3), pictures / "reconstructions.png")
    results["settings"] = vars(args)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (pictures / "results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
