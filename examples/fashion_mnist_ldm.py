"""Latent diffusion vs a Gated PixelCNN prior on one Fashion-MNIST VQ-VAE first stage.

One small VQ-VAE ("Neural Discrete Representation Learning", van den Oord et al. 2017,
arXiv:1711.00937) maps 28×28 images to 7×7 latents of D channels and K codes. On that frozen
first stage two priors are trained for a few CPU minutes each:

- latent diffusion (Rombach et al. 2022, arXiv:2112.10752, the LDM-VQ variant): a small
  diffusers UNet on the *pre-quantisation* latents z_e (scaled by 1/std of the first batch),
  ε-prediction, EMA weights; samples are quantised by the VQ-VAE's quantizer when decoding.
  Sampled with DDIM (Song et al. 2020, arXiv:2010.02502, η = 0) at 25, 50 and 250 steps, and
  with DDPM (Ho et al. 2020, arXiv:2006.11239) at 250 steps;
- a Gated PixelCNN over the code grid (van den Oord et al. 2016, arXiv:1606.05328).

Reported: ``vqkit.train.evaluate.evaluate_sample_quality`` of each model (the dataset Fréchet
distance and KID of ``--samples`` decoded samples against as many test images, in the features
of one small classifier trained on the training images: a *dataset* Fréchet distance, not FID),
the sampling time, and the reconstruction figures of the shared first stage.

Data: ``apt-get install dataset-fashion-mnist`` (read through ``vqkit.data.load_dataset``).

    python examples/fashion_mnist_ldm.py --threads 1          # ~30 minutes on a loaded shared core
    python examples/fashion_mnist_ldm.py --steps 10 --prior-steps 10 --samples 20 --ddim 2 4 \\
        --ddpm 4 --out /tmp/ldm-smoke --pictures /tmp/ldm-smoke/pictures       # smoke run

Writes ``metrics.json`` and sample grids to ``--pictures`` (docs/images/ldm).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from _fashion_mnist import data_and_classifier, first_stage, in_chunks, train, vqvae_config

from vqkit import VQVAE
from vqkit.train.evaluate import evaluate_sample_quality
from vqkit.train.images import image_grid, save_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="VQ-VAE training steps")
    parser.add_argument("--prior-steps", type=int, default=800, help="steps per prior")
    parser.add_argument("--train-images", type=int, default=20000, help="latents to train on")
    parser.add_argument("--dim", type=int, default=16, help="latent channels D")
    parser.add_argument("--codes", type=int, default=128, help="codebook size K")
    parser.add_argument("--samples", type=int, default=300, help="samples per model")
    parser.add_argument("--ddim", type=int, nargs="+", default=[25, 50, 250])
    parser.add_argument("--ddpm", type=int, nargs="*", default=[50])
    parser.add_argument("--out", default="runs/fashion-mnist-ldm", help="cache folder")
    parser.add_argument("--pictures", default="docs/images/ldm")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out, pictures = Path(args.out), Path(args.pictures)
    out.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()

    images, test_images, classifier = data_and_classifier(out)
    first_stage_config = vqvae_config(args.dim, args.codes)
    vqvae, vq_minutes = first_stage(out, images, args.dim, args.codes, args.steps, args.seed)

    priors = {
        "latent_diffusion": {
            "type": "latent_diffusion",
            "block_out_channels": [32, 64],
            "layers_per_block": 1,
            "attention_head_dim": 16,
            "norm_num_groups": 8,
            "ema_decay": 0.999,
        },
        "gated_pixelcnn": {
            "type": "gated_pixelcnn",
            "hidden_channels": 32,
            "num_layers": 4,
            "head_channels": 128,
        },
    }
    data = images[: args.train_images]
    metrics: dict = {
        "first_stage": {
            "dim": args.dim,
            "codebook_size": args.codes,
            "steps": args.steps,
            "train_minutes": vq_minutes,
        },
        "prior_steps": args.prior_steps,
        "prior_training_images": len(data),
        "samples": args.samples,
    }
    reference = test_images[: args.samples]
    grids = {"real_test_images": reference[:64]}
    for name, spec in priors.items():
        torch.manual_seed(args.seed)
        model = VQVAE(**first_stage_config, prior=spec)
        model.load_state_dict(vqvae.state_dict(), strict=False)  # the shared first stage
        model.eval().requires_grad_(False)
        prior = model.prior.requires_grad_(True)
        if prior.domain == "continuous":
            inputs = in_chunks(model.encode_latents, data)  # (N, D, 7, 7) before the quantizer
        else:
            inputs = in_chunks(model.encode_indices, data)  # (N, 7, 7) codes
        if (out / name / "config.json").is_file():  # a finished prior of an earlier run
            model = VQVAE.from_pretrained(out / name).eval()
            prior, seconds = model.prior, None
            print(f"{name}: reusing the prior trained earlier in {out / name}", flush=True)
        else:
            seconds = train(prior, lambda b, p=prior: p.loss(b).loss, inputs, args.prior_steps,
                            1e-3, args.seed, name)  # fmt: skip
        model.eval()
        entry: dict = {
            "train_minutes": None if seconds is None else round(seconds / 60, 2),
            "parameters": sum(p.numel() for p in prior.parameters()),
        }
        if prior.domain == "continuous":
            entry["scale_factor"] = float(prior.scale_factor)
            entry["scaled_latent_std"] = float((inputs * prior.scale_factor).std())
            runs = [("ddim", s) for s in args.ddim] + [("ddpm", s) for s in args.ddpm]
            options = [{"sampler": sampler, "steps": s} for sampler, s in runs]
        else:
            options = [{}]
        model.save_pretrained(out / name)
        for option in options:
            label = "_".join(f"{v}" for v in option.values()) or "samples"
            start = time.perf_counter()
            figures = evaluate_sample_quality(
                model, reference, classifier, num_samples=args.samples, seed=3,
                sample_options=option,
            )  # fmt: skip
            seconds = time.perf_counter() - start
            entry[label] = {
                "sample_dataset_fd": round(figures["sample_dataset_fd"], 4),
                "sample_kid": round(figures["sample_kid"], 5),
                "sample_kid_std": round(figures["sample_kid_std"], 5),
                "evaluation_seconds": round(seconds, 1),
            }
            if "reconstruction" not in metrics:
                metrics["reconstruction"] = {
                    "reconstruction_dataset_fd": round(figures["reconstruction_dataset_fd"], 4),
                    "reconstruction_kid": round(figures["reconstruction_kid"], 5),
                }
            print(f"{name} {label}: {entry[label]}", flush=True)
            with torch.no_grad():
                samples = model.generate(64, generator=torch.Generator().manual_seed(4), **option)
            grids[f"{name}_{label}"] = samples.clamp(0, 1)
        metrics[name] = entry

    metrics["minutes_total"] = round((time.perf_counter() - began) / 60, 1)
    metrics["threads"] = torch.get_num_threads()
    pictures.mkdir(parents=True, exist_ok=True)
    for name, grid in grids.items():
        save_image(image_grid(grid, nrow=8, scale=2), pictures / f"{name}.png")
    (pictures / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(json.dumps(metrics, indent=2))
    print(f"pictures and metrics: {pictures}/")


if __name__ == "__main__":
    main()
