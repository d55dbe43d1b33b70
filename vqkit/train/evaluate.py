"""Evaluation of trained models over a whole dataset: reconstruction, codes, prior, ELBO.

Figures and their units:

- ``mse``: mean over images of the per-image mean squared error (pixels in ``[0, 1]``);
- ``psnr``: mean over images of ``10 · log10(1 / MSE_image)`` in dB;
- ``ssim``: mean over images of :func:`~vqkit.train.metrics.ssim` (scikit-image conventions,
  7×7 uniform window, or the largest odd window that fits smaller images);
- ``codebook_usage``, ``codebook_perplexity``, ``dead_codes``: counts over every code of every
  image (:class:`~vqkit.train.metrics.CodebookUsage`);
- ``prior_nll``: the prior's NLL of a code grid in nats per image; ``prior_bits_per_dim``:
  ``prior_nll / (h · w · ln 2)``, the dims being the ``h · w`` latent positions;
- ``elbo``: the VAE's evidence lower bound in nats per example; ``nelbo_bits_per_dim``:
  ``−elbo / (C · H · W · ln 2)`` over the data dimensions (a density bound for continuous
  likelihoods, comparable only between models with the same likelihood).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from vqkit.data.dataset import ArrayDataset
from vqkit.train.metrics import CodebookUsage, bits_per_dim, mse, psnr, ssim

__all__ = [
    "evaluate_codebook",
    "evaluate_elbo",
    "evaluate_model",
    "evaluate_prior",
    "evaluate_reconstruction",
    "reconstruct",
]


def _device(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def _batches(data: ArrayDataset | torch.Tensor, batch_size: int, device) -> Iterator[torch.Tensor]:
    tensor = data.data if isinstance(data, ArrayDataset) else data
    for start in range(0, tensor.shape[0], batch_size):
        yield tensor[start : start + batch_size].to(device)


class _EvalMode:
    """Context manager: eval mode and no gradients, the previous mode restored afterwards."""

    def __init__(self, model: nn.Module) -> None:
        self.model, self.was_training = model, model.training
        self.no_grad = torch.no_grad()

    def __enter__(self) -> nn.Module:
        self.model.eval()
        self.no_grad.__enter__()
        return self.model

    def __exit__(self, *exc: Any) -> None:
        self.no_grad.__exit__(*exc)
        self.model.train(self.was_training)


def reconstruct(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Deterministic reconstruction: ``model.reconstruct(x)`` if it exists (VAEs, posterior mean),
    else ``model(x).reconstruction``."""
    if hasattr(model, "reconstruct"):
        return model.reconstruct(x)
    return model(x).reconstruction


def _ssim_window(h: int, w: int) -> int:
    side = min(7, h, w)
    return side if side % 2 else side - 1


@torch.no_grad()
def evaluate_reconstruction(
    model: nn.Module, data: ArrayDataset | torch.Tensor, *, batch_size: int = 256
) -> dict[str, float]:
    """Mean MSE, PSNR and SSIM of the model's reconstructions of ``data`` (images in [0, 1])."""
    device = _device(model)
    sums = {"mse": 0.0, "psnr": 0.0, "ssim": 0.0}
    count = 0
    with _EvalMode(model):
        for x in _batches(data, batch_size, device):
            x_hat = reconstruct(model, x).float()
            x = x.float()
            if x.ndim == 4:
                x_hat = x_hat.clamp(0, 1)
            sums["mse"] += float(mse(x_hat, x).sum())
            sums["psnr"] += float(psnr(x_hat, x, 1.0).clamp(max=100.0).sum())
            if x.ndim == 4:
                window = _ssim_window(*x.shape[-2:])
                sums["ssim"] += float(ssim(x_hat, x, 1.0, win_size=window).sum())
            count += x.shape[0]
    result = {k: v / count for k, v in sums.items()}
    if x.ndim != 4:  # points, not images: only the MSE means something
        return {"mse": result["mse"]}
    return result


@torch.no_grad()
def evaluate_codebook(
    model: nn.Module, data: ArrayDataset | torch.Tensor, *, batch_size: int = 256
) -> dict[str, float]:
    """Codebook usage, perplexity and dead codes of ``model.encode_indices`` over ``data``."""
    usage = CodebookUsage(model.codebook_size)
    device = _device(model)
    with _EvalMode(model):
        for x in _batches(data, batch_size, device):
            usage.update(model.encode_indices(x))
    stats = usage.compute()
    return {
        "codebook_usage": stats["usage"],
        "codebook_used_codes": stats["used_codes"],
        "codebook_perplexity": stats["perplexity"],
        "dead_codes": stats["dead_codes"],
    }


@torch.no_grad()
def evaluate_prior(
    prior: nn.Module, codes: ArrayDataset | torch.Tensor, *, batch_size: int = 256
) -> dict[str, float]:
    """Prior NLL of code grids ``(N, h, w)``: nats per image and bits per latent position."""
    device = _device(prior)
    total, count, dims = 0.0, 0, None
    with _EvalMode(prior):
        for idx in _batches(codes, batch_size, device):
            total += float(-prior.log_prob(idx.long()).double().sum())
            count += idx.shape[0]
            dims = idx[0].numel()
    nll = total / count
    return {"prior_nll": nll, "prior_bits_per_dim": bits_per_dim(nll, dims)}


@torch.no_grad()
def evaluate_elbo(
    model: nn.Module,
    data: ArrayDataset | torch.Tensor,
    *,
    batch_size: int = 256,
    seed: int = 0,
) -> dict[str, float]:
    """Mean ELBO (one posterior sample per example, seeded) in nats and its bits per data dim."""
    device = _device(model)
    generator = torch.Generator(device=device).manual_seed(seed)
    total, count, dims = 0.0, 0, None
    with _EvalMode(model):
        for x in _batches(data, batch_size, device):
            total += float(model.elbo(x, generator=generator).double().sum())
            count += x.shape[0]
            dims = x[0].numel()
    elbo = total / count
    return {"elbo": elbo, "nelbo_bits_per_dim": -elbo / (dims * math.log(2))}


def evaluate_model(
    model: nn.Module, data: ArrayDataset, *, batch_size: int = 256, seed: int = 0
) -> dict[str, float]:
    """Every figure that applies to ``model``: reconstruction, and codes + prior for a VQ-VAE,
    or the ELBO for a VAE."""
    metrics: dict[str, float] = {}
    if hasattr(model, "reconstruct") or hasattr(model, "encode_indices"):
        metrics.update(evaluate_reconstruction(model, data, batch_size=batch_size))
    if hasattr(model, "encode_indices") and hasattr(model, "codebook_size"):
        metrics.update(evaluate_codebook(model, data, batch_size=batch_size))
        if getattr(model, "prior", None) is not None:
            with _EvalMode(model):
                codes = torch.cat(
                    [model.encode_indices(x) for x in _batches(data, batch_size, _device(model))]
                )
            metrics.update(evaluate_prior(model.prior, codes, batch_size=batch_size))
    if hasattr(model, "elbo"):
        metrics.update(evaluate_elbo(model, data, batch_size=batch_size, seed=seed))
    metrics["num_examples"] = len(data)
    return metrics
