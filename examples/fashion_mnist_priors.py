"""Gated PixelCNN vs transformer vs MaskGIT priors on the codes of one Fashion-MNIST VQ-VAE.

A small VQ-VAE ("Neural Discrete Representation Learning", van den Oord et al. 2017,
arXiv:1711.00937) maps 28×28 images to 7×7 grids of K codes; three priors are then trained on
the frozen codes of 20,000 training images with the same number of steps (small sizes, so the
whole run fits a shared CPU core; the priors are far from converged):

- Gated PixelCNN (van den Oord et al. 2016, arXiv:1606.05328), sampled with its fast sampler;
- the transformer prior (taming-transformers' second stage, Esser et al. 2021,
  arXiv:2012.09841), sampled with the KV cache;
- MaskGIT (Chang et al. 2022, arXiv:2202.04200), sampled in 8 and 16 steps.

Reported on the test split: the exact NLL of the two likelihood priors (nats per image, bits per
latent), MaskGIT's masked-token NLLs, and the dataset Fréchet distance and KID of 500 decoded
samples from each prior against 500 test images, in the features of a small classifier trained
on the Fashion-MNIST training images (a *dataset* Fréchet distance, not FID), beside two
references: real training images and the VQ-VAE's reconstructions of test images.

Data: ``apt-get install dataset-fashion-mnist`` (read through ``vqkit.data.load_dataset``).

    python examples/fashion_mnist_priors.py --threads 1      # 15-25 minutes on a shared core
    python examples/fashion_mnist_priors.py --steps 20 --prior-steps 20 --samples 50   # smoke

Writes ``metrics.json`` and sample grids to ``--pictures`` (docs/img/transformer_priors).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from _fashion_mnist import data_and_classifier, first_stage, in_chunks, train

from vqkit import VQVAE, GatedPixelCNN, MaskGIT, TransformerPrior
from vqkit.train.frechet import dataset_frechet_distance, kid
from vqkit.train.images import image_grid, save_image


@torch.no_grad()
def decode(model: VQVAE, codes: torch.Tensor) -> torch.Tensor:
    return in_chunks(model.decode_indices, codes).clamp(0, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300, help="VQ-VAE training steps")
    parser.add_argument("--prior-steps", type=int, default=300, help="steps per prior")
    parser.add_argument("--width", type=int, default=48, help="width of each prior")
    parser.add_argument("--layers", type=int, default=3, help="layers of each prior")
    parser.add_argument("--train-images", type=int, default=20000, help="codes to train on")
    parser.add_argument("--codes", type=int, default=128, help="codebook size K")
    parser.add_argument("--samples", type=int, default=500, help="samples per prior")
    parser.add_argument("--out", default="runs/fashion-mnist-priors", help="cache folder")
    parser.add_argument("--pictures", default="docs/img/transformer_priors")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out, pictures = Path(args.out), Path(args.pictures)
    out.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()

    # the classifier whose features measure sample quality (cached in the run folder)
    images, test_images, classifier = data_and_classifier(out)
    model, _ = first_stage(out, images, 32, args.codes, args.steps, args.seed)
    model.eval().requires_grad_(False)
    codes = in_chunks(model.encode_indices, images[: args.train_images])
    test_codes = in_chunks(model.encode_indices, test_images)
    h, w = codes.shape[1:]
    positions = h * w
    usage = torch.unique(codes).numel()

    k, width, layers = args.codes, args.width, args.layers
    priors = {
        "gated_pixelcnn": GatedPixelCNN(
            num_embeddings=k, hidden_channels=width, num_layers=2 * layers, head_channels=128
        ),
        "transformer": TransformerPrior(
            num_embeddings=k, embed_dim=width, num_layers=layers, num_heads=4, max_size=[h, w]
        ),
        "maskgit": MaskGIT(
            num_embeddings=k, embed_dim=width, num_layers=layers, num_heads=4, max_size=[h, w]
        ),
    }
    metrics: dict = {
        "grid": [h, w],
        "codebook_size": k,
        "codebook_used_codes": usage,
        "vqvae_steps": args.steps,
        "prior_steps": args.prior_steps,
        "prior_training_grids": len(codes),
        "prior_width": width,
        "prior_layers": layers,
        "samples": args.samples,
    }
    for name, prior in priors.items():
        torch.manual_seed(args.seed)
        seconds = train(prior, lambda c, p=prior: p.loss(c).loss, codes, args.prior_steps, 1e-3,
                        args.seed, name)  # fmt: skip
        entry = {"train_minutes": round(seconds / 60, 2)}
        with torch.no_grad():
            if prior.exact_likelihood:
                nll = torch.cat(
                    [
                        -prior.log_prob(test_codes[i : i + 1000])
                        for i in range(0, len(test_codes), 1000)
                    ]
                )
                entry["test_nll_nats_per_image"] = float(nll.mean())
                entry["test_bits_per_latent"] = float(
                    nll.mean() / positions / torch.log(torch.tensor(2.0))
                )
            else:
                losses = prior.loss(test_codes[:2000]).losses
                entry |= {key: float(v) for key, v in losses.items()}
        metrics[name] = entry
        print(f"{name}: {entry}", flush=True)

    reference = test_images[
        torch.randperm(len(test_images), generator=torch.Generator().manual_seed(1))[: args.samples]
    ]
    real = images[
        torch.randperm(len(images), generator=torch.Generator().manual_seed(2))[: args.samples]
    ]
    recon = decode(model, in_chunks(model.encode_indices, reference))

    def quality(fake: torch.Tensor) -> dict:
        fd = dataset_frechet_distance(classifier, reference, fake)
        feats = [classifier.features(x).detach() for x in (reference, fake)]
        mean, std = kid(*feats, num_subsets=50, subset_size=min(500, len(fake)),
                        generator=torch.Generator().manual_seed(0))  # fmt: skip
        return {"dataset_fd": round(fd, 4), "kid": round(mean, 5), "kid_std": round(std, 5)}

    metrics["real_train_images"] = quality(real)
    metrics["vqvae_reconstructions"] = quality(recon)
    n = args.samples
    draws = {
        "gated_pixelcnn": lambda g: priors["gated_pixelcnn"].sample(n, (h, w), generator=g),
        "transformer": lambda g: priors["transformer"].sample(n, (h, w), generator=g),
        "maskgit_8_steps": lambda g: priors["maskgit"].sample(n, (h, w), steps=8, generator=g),
        "maskgit_16_steps": lambda g: priors["maskgit"].sample(n, (h, w), steps=16, generator=g),
    }
    grids = {"real_test_images": reference[:64], "vqvae_reconstructions": recon[:64]}
    for name, draw in draws.items():
        start = time.perf_counter()
        sampled = draw(torch.Generator().manual_seed(3))
        seconds = time.perf_counter() - start
        fake = decode(model, sampled)
        metrics[f"samples_{name}"] = quality(fake) | {"sampling_seconds": round(seconds, 2)}
        print(f"samples {name}: {metrics[f'samples_{name}']}", flush=True)
        grids[name] = fake[:64]

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
