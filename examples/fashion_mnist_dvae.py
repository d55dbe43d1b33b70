"""The DALL-E dVAE on Fashion-MNIST under two temperature / KL schedules.

The dVAE of "Zero-Shot Text-to-Image Generation" (Ramesh et al. 2021, arXiv:2102.12092) is
trained with the Gumbel-softmax relaxation (Jang et al. 2016, arXiv:1611.01144), a KL to the
uniform prior and the logit-Laplace likelihood. Its Appendix A.2 anneals the temperature τ from
1 to 1/16 (cosine) and warms the KL weight β up from 0. This script trains the small
``dvae-fashion-mnist`` preset (7×7 grid, K = 512) with ``vqkit.Trainer`` and
``TrainConfig.schedules`` under three settings with the same seed and number of steps:

- ``annealed``: τ 1 → 1/16 (cosine over the run), KL weight 0 → the preset's ELBO weight 49/784
  (linear over the first quarter of the run) — DALL-E's recipe scaled down;
- ``annealed_beta_6.6``: the same with DALL-E's β = 6.6 (KL weight 6.6·49/784);
- ``no_kl``: constant τ = 1 and no KL term (``kl_weight`` 0) — what users report collapses.

Reported on 2,000 test images (argmax codes, eval mode): PSNR and SSIM of the reconstructions,
codebook usage over the whole set (codes hit, perplexity of the code histogram), and the mean KL
per position of q to the uniform prior. Pictures: test images over their reconstructions, one
row pair per setting.

Data: ``apt-get install dataset-fashion-mnist``.

    python examples/fashion_mnist_dvae.py --threads 1                 # ~5 minutes per setting
    python examples/fashion_mnist_dvae.py --steps 20 --settings annealed   # smoke run

Writes ``metrics.json`` and PNGs to ``--pictures`` (docs/img/dvae).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import vqkit
from vqkit.train import CodebookUsage, Trainer, psnr, ssim
from vqkit.train.images import image_grid, save_image

ELBO_KL_WEIGHT = 49 / 784  # β = 1 on the ELBO's scale: h·w / (H·W·C)


def settings(steps: int) -> dict[str, list[dict]]:
    return {
        "annealed": [
            {"name": "quantizer.temperature", "type": "cosine", "start": 1.0, "end": 1 / 16,
             "steps": steps},
            {"name": "quantizer.kl_weight", "type": "linear", "start": 0.0,
             "end": ELBO_KL_WEIGHT, "steps": max(1, steps // 4)},
        ],
        "annealed_beta_6.6": [  # DALL-E's β = 6.6 on the ELBO's scale
            {"name": "quantizer.temperature", "type": "cosine", "start": 1.0, "end": 1 / 16,
             "steps": steps},
            {"name": "quantizer.kl_weight", "type": "linear", "start": 0.0,
             "end": 6.6 * ELBO_KL_WEIGHT, "steps": max(1, steps // 4)},
        ],
        "no_kl": [
            {"name": "quantizer.temperature", "type": "constant", "value": 1.0},
            {"name": "quantizer.kl_weight", "type": "constant", "value": 0.0},
        ],
    }  # fmt: skip


@torch.no_grad()
def evaluate(model, images: torch.Tensor) -> dict[str, float]:
    model.eval()
    usage = CodebookUsage(model.codebook_size)
    p, s, kl = [], [], []
    for i in range(0, len(images), 250):
        x = images[i : i + 250]
        out = model(x)
        usage.update(out.quantizer.indices)
        p.append(psnr(out.reconstruction, x))
        s.append(ssim(out.reconstruction, x))
        kl.append(out.quantizer.metrics["kl"] * len(x))
    stats = usage.compute()
    return {
        "psnr": float(torch.cat(p).mean()),
        "ssim": float(torch.cat(s).mean()),
        "used_codes": int(stats["used_codes"]),
        "usage": stats["usage"],
        "code_perplexity": stats["perplexity"],
        "kl_per_position": float(sum(kl) / len(images)),
        "max_kl_per_position": float(torch.log(torch.tensor(float(model.codebook_size)))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--train-images", type=int, default=20000)
    parser.add_argument("--test-images", type=int, default=2000)
    parser.add_argument("--settings", nargs="+", default=["annealed", "annealed_beta_6.6", "no_kl"])
    parser.add_argument("--out", default="runs/fashion-mnist-dvae")
    parser.add_argument("--pictures", default="docs/img/dvae")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out, pictures = Path(args.out), Path(args.pictures)
    train = vqkit.load_dataset("fashion-mnist", split="train")
    train = vqkit.subset(train, min(1.0, args.train_images / len(train)), seed=args.seed)
    test = vqkit.load_dataset("fashion-mnist", split="test").data[: args.test_images]
    all_settings = settings(args.steps)
    metrics: dict = {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr}
    for name in args.settings:
        torch.manual_seed(args.seed)
        model = vqkit.create_model("dvae-fashion-mnist", prior=None)
        began = time.perf_counter()
        Trainer(
            model, train, out_dir=out / name, epochs=None, max_steps=args.steps,
            batch_size=args.batch_size, lr=args.lr, grad_clip=1.0, seed=args.seed,
            schedules=all_settings[name], progress=False, checkpoint_every=200,
        ).fit()  # fmt: skip
        figures = evaluate(model, test)
        figures["train_seconds"] = round(time.perf_counter() - began, 1)
        figures["schedules"] = all_settings[name]
        metrics[name] = figures
        print(name, json.dumps({k: v for k, v in figures.items() if k != "schedules"}), flush=True)
        with torch.no_grad():
            shown = test[:12]
            recon = model.eval()(shown).reconstruction
        save_image(image_grid(torch.cat([shown, recon]), nrow=12), pictures / f"{name}.png")
        hist = torch.bincount(model.encode_indices(test).flatten(), minlength=512).float()
        metrics[name]["top10_code_share"] = float(
            hist.sort(descending=True).values[:10].sum() / hist.sum()
        )
    pictures.mkdir(parents=True, exist_ok=True)
    (pictures / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")


if __name__ == "__main__":
    main()
