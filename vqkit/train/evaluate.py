"""Evaluation of trained models over a whole dataset: reconstruction, codes, prior, ELBO.

Figures and their units:

- ``mse``: mean over images of the per-image mean squared error (pixels in ``[0, 1]``);
- ``psnr``: mean over images of ``10 · log10(1 / MSE_image)`` in dB;
- ``ssim``: mean over images of ``ssim`` (scikit-image conventions,
  7×7 uniform window, or the largest odd window that fits smaller images);
- ``codebook_usage``, ``codebook_perplexity``, ``dead_codes``: counts over every code of every
  image (``CodebookUsage``); a multi-level model (VQ-VAE-2, whose ``codebook_size`` is a tuple,
  one per level) also gets them per level (``codebook_usage_top``, ``codebook_perplexity_bottom``,
  ...), and the plain keys then pool the levels: used and dead codes summed, usage their ratio
  to the summed codebook sizes, perplexity the product of the levels' (the perplexity of the
  pair of codes were the levels independent);
- ``prior_nll``: an exact-likelihood prior's NLL of a code grid in nats per image;
  ``bits_per_latent``: ``prior_nll / (h · w · ln 2)``, bits per latent position (the same
  figure is also written as ``prior_bits_per_dim``, its 0.1 name);
- ``prior_<name>``: for a prior without an exact likelihood (``prior.exact_likelihood`` False,
  e.g. MaskGIT), the batch-size-weighted mean of each figure ``name`` of
  ``prior.loss(codes).losses``;
- ``reconstruction_dataset_fd``, ``sample_dataset_fd``: the *dataset* Fréchet distance
  (``vqkit.train.frechet.dataset_frechet_distance``, Heusel et al. 2017, arXiv:1706.08500)
  between the features of held-out images and those of their reconstructions / of as many
  samples from the model, in the features of a ``DatasetClassifier``
  trained on the run's training split (not FID: it compares models on one dataset only);
  ``reconstruction_kid``, ``sample_kid`` (and ``_std``): KID in the same features
  (Bińkowski et al. 2018, arXiv:1801.01401); ``sample_quality_num``: images per set;
- ``elbo``: the VAE's evidence lower bound in nats per example; ``nelbo_bits_per_dim``:
  ``−elbo / (C · H · W · ln 2)`` over the data dimensions (a density bound for continuous
  likelihoods, comparable only between models with the same likelihood).

What applies is decided from what a model declares (``vqkit.contracts``): ``model.family``
(``"discrete"``: reconstruction, codebook and prior figures; ``"continuous"``: reconstruction and
ELBO), ``model.prior is None`` and ``prior.exact_likelihood``, never by probing for methods.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sized
from typing import Any, cast

import torch
from torch import nn
from torch.utils.data import Dataset

from vqkit._checks import check_int, check_positive_int
from vqkit._utils import eval_mode
from vqkit.data.loader import sequential_batches
from vqkit.train.metrics import CodebookUsage, bits_per_latent, mse, psnr, ssim

__all__ = [
    "SAMPLE_QUALITY_KEYS",
    "evaluate_codebook",
    "evaluate_elbo",
    "evaluate_model",
    "evaluate_prior",
    "evaluate_prior_loss",
    "evaluate_reconstruction",
    "evaluate_sample_quality",
    "reconstruct",
]

#: The sample-quality figures ``evaluate_sample_quality`` writes for every model (None where
#: they do not apply: no prior to sample, or data that are not images).
SAMPLE_QUALITY_KEYS = (
    "reconstruction_dataset_fd",
    "reconstruction_kid",
    "reconstruction_kid_std",
    "sample_dataset_fd",
    "sample_kid",
    "sample_kid_std",
    "sample_quality_num",
)
#: Added by ``evaluate_sample_quality`` only when it is given the FID Inception network.
FID_KEYS = ("reconstruction_fid", "sample_fid")


def _device(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def _batches(data: Dataset | torch.Tensor, batch_size: int, device) -> Iterator[torch.Tensor]:
    """Every example of ``data`` in order, ``batch_size`` at a time, on ``device``.

    ``data`` is a tensor ``(N, ...)`` or any map-style dataset whose items are tensors (an
    ``ArrayDataset`` or a lazy one read on access, such as
    ``ImageFolderDataset``), read by ``vqkit.data.loader.sequential_batches``.
    """
    check_positive_int("evaluate", "batch_size", batch_size)
    if isinstance(data, torch.Tensor):
        if data.dim() == 0 or data.shape[0] == 0:
            raise ValueError(
                f"evaluate: data must hold at least one example, got shape {tuple(data.shape)}"
            )
        for start in range(0, data.shape[0], batch_size):
            yield data[start : start + batch_size].to(device)
        return
    if not isinstance(data, Dataset) or not hasattr(data, "__len__"):
        raise TypeError(
            f"evaluate: data must be a dataset (an ArrayDataset or a tensor, or a lazy map-style "
            f"Dataset), got {type(data).__name__}"
        )
    if len(data) == 0:
        name = getattr(data, "name", type(data).__name__)
        raise ValueError(f"evaluate: data must hold at least one example, {name} is empty")
    for batch in sequential_batches(data, batch_size):
        if not isinstance(batch, torch.Tensor):
            raise TypeError(
                f"evaluate: the items of {type(data).__name__} must be tensors, got batches of "
                f"{type(batch).__name__}"
            )
        yield batch.to(device)


def _check_family(model: Any) -> str:
    family = model.family  # the model contract (vqkit.contracts)
    if family not in ("discrete", "continuous"):
        raise ValueError(
            f"{type(model).__name__}.family must be 'discrete' or 'continuous', got {family!r}"
        )
    return family


def reconstruct(model: Any, x: torch.Tensor) -> torch.Tensor:
    """Deterministic reconstruction: the decoded posterior mean for a continuous model
    (``model.reconstruct(x)``), ``model(x).reconstruction`` for a discrete one."""
    if _check_family(model) == "continuous":
        return model.reconstruct(x)
    return model(x).reconstruction


def _ssim_window(h: int, w: int) -> int:
    side = min(7, h, w)
    return side if side % 2 else side - 1


@torch.no_grad()
def evaluate_reconstruction(
    model: nn.Module, data: Dataset | torch.Tensor, *, batch_size: int = 256
) -> dict[str, float]:
    """Mean MSE, PSNR and SSIM of the model's reconstructions of ``data`` (images in [0, 1])."""
    device = _device(model)
    sums = {"mse": 0.0, "psnr": 0.0, "ssim": 0.0}
    count = 0
    with eval_mode(model, no_grad=True):
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
    model: Any, data: Dataset | torch.Tensor, *, batch_size: int = 256
) -> dict[str, float]:
    """Codebook usage, perplexity and dead codes of ``model.encode_indices`` over ``data``
    (per level too for a multi-level model)."""
    if isinstance(model.codebook_size, tuple):
        return _evaluate_levels(model, data, batch_size)
    usage = CodebookUsage(model.codebook_size)
    device = _device(model)
    with eval_mode(model, no_grad=True):
        for x in _batches(data, batch_size, device):
            usage.update(model.encode_indices(x))
    stats = usage.compute()
    return {
        "codebook_usage": stats["usage"],
        "codebook_used_codes": stats["used_codes"],
        "codebook_perplexity": stats["perplexity"],
        "dead_codes": stats["dead_codes"],
    }


def _level_names(count: int) -> list[str]:
    return ["top", "bottom"] if count == 2 else [f"level{i}" for i in range(count)]


def _evaluate_levels(model: Any, data: Dataset | torch.Tensor, batch_size: int) -> dict:
    """``evaluate_codebook`` of a multi-level model: per level, and the levels pooled."""
    sizes = model.codebook_size
    usages = [CodebookUsage(k) for k in sizes]
    with eval_mode(model, no_grad=True):
        for x in _batches(data, batch_size, _device(model)):
            for usage, indices in zip(usages, model.encode_indices(x), strict=True):
                usage.update(indices)
    stats = [usage.compute() for usage in usages]
    used = sum(s["used_codes"] for s in stats)
    out = {
        "codebook_usage": used / sum(sizes),
        "codebook_used_codes": used,
        "codebook_perplexity": math.prod(s["perplexity"] for s in stats),
        "dead_codes": sum(s["dead_codes"] for s in stats),
    }
    for name, level in zip(_level_names(len(sizes)), stats, strict=True):
        out[f"codebook_usage_{name}"] = level["usage"]
        out[f"codebook_used_codes_{name}"] = level["used_codes"]
        out[f"codebook_perplexity_{name}"] = level["perplexity"]
        out[f"dead_codes_{name}"] = level["dead_codes"]
    return out


def _code_batches(codes, batch_size: int, device) -> Iterator:
    """Batches of a code tensor, or tuples of batches of a tuple of code tensors (per level)."""
    if not isinstance(codes, tuple):
        yield from _batches(codes, batch_size, device)
        return
    for start in range(0, codes[0].shape[0], batch_size):
        yield tuple(c[start : start + batch_size].to(device).long() for c in codes)


@torch.no_grad()
def evaluate_prior(
    prior: Any, codes: Dataset | torch.Tensor | tuple, *, batch_size: int = 256
) -> dict[str, float]:
    """Exact NLL of code grids ``(N, h, w)`` under a likelihood prior.

    Returns ``prior_nll`` (nats per grid), ``bits_per_latent`` (bits per latent position) and
    ``prior_bits_per_dim`` (the same figure under its 0.1 name). For a prior without an exact
    likelihood use ``evaluate_prior_loss``; ``evaluate_model`` picks the right one from
    ``prior.exact_likelihood``.
    """
    device = _device(prior)
    total, count, dims = 0.0, 0, None
    with eval_mode(prior, no_grad=True):
        for idx in _code_batches(codes, batch_size, device):
            if isinstance(idx, tuple):  # one grid per level: positions of all levels
                total += float(-prior.log_prob(idx).double().sum())
                count += idx[0].shape[0]
                dims = sum(level[0].numel() for level in idx)
                continue
            total += float(-prior.log_prob(idx.long()).double().sum())
            count += idx.shape[0]
            dims = idx[0].numel()
    nll = total / count
    bits = bits_per_latent(nll, cast(int, dims))  # set by the first batch (count > 0)
    return {"prior_nll": nll, "bits_per_latent": bits, "prior_bits_per_dim": bits}


@torch.no_grad()
def evaluate_prior_loss(
    prior: Any, codes: Dataset | torch.Tensor, *, batch_size: int = 256
) -> dict[str, float]:
    """The figures of ``prior.loss(codes).losses`` over a whole set, for any prior.

    Each figure is averaged over batches weighted by their size (the figures are batch means)
    and reported as ``prior_<name>``; ``prior_loss`` is the objective itself. This is how a
    prior without an exact likelihood (MaskGIT's masked-token NLL) is evaluated.
    """
    device = _device(prior)
    sums: dict[str, float] = {}
    count = 0
    with eval_mode(prior, no_grad=True):
        for idx in _batches(codes, batch_size, device):
            out = prior.loss(idx.long() if prior.domain == "codes" else idx)
            b = idx.shape[0]
            figures = {"loss": out.loss, **out.losses}
            for name, value in figures.items():
                sums[f"prior_{name}"] = sums.get(f"prior_{name}", 0.0) + float(value) * b
            count += b
    return {name: total / count for name, total in sums.items()}


@torch.no_grad()
def evaluate_elbo(
    model: Any,
    data: Dataset | torch.Tensor,
    *,
    batch_size: int = 256,
    seed: int = 0,
) -> dict[str, float]:
    """Mean ELBO (one posterior sample per example, seeded) in nats and its bits per data dim."""
    device = _device(model)
    generator = torch.Generator(device=device).manual_seed(seed)
    total, count, dims = 0.0, 0, None
    with eval_mode(model, no_grad=True):
        for x in _batches(data, batch_size, device):
            total += float(model.elbo(x, generator=generator).double().sum())
            count += x.shape[0]
            dims = x[0].numel()
    elbo = total / count
    dims = cast(int, dims)  # set by the first batch (count > 0)
    return {"elbo": elbo, "nelbo_bits_per_dim": -elbo / (dims * math.log(2))}


@torch.no_grad()
def evaluate_sample_quality(
    model: Any,
    data: Dataset | torch.Tensor,
    classifier: nn.Module | None,
    *,
    num_samples: int = 1000,
    batch_size: int = 256,
    seed: int = 0,
    sample_options: dict | None = None,
    inception: nn.Module | None = None,
) -> dict[str, float | None]:
    """Dataset Fréchet distance and KID of the model's reconstructions and samples.

    The real set is the first ``min(num_samples, len(data))`` images of ``data``; the
    reconstructions are theirs; the samples are as many draws from the model (a discrete model's
    prior, decoded; a continuous model's ``sample``), seeded by ``seed``. Features come from
    ``classifier`` (a ``DatasetClassifier``). Every key of
    ``SAMPLE_QUALITY_KEYS`` is returned; those that do not apply are None (no classifier,
    data that are not images, fewer than 2 images, or a discrete model without a prior for the
    sample figures). With ``inception`` (a ``vqkit.train.inception.FIDInceptionV3`` holding the
    FID weights) the true FID of each set is added as ``reconstruction_fid`` / ``sample_fid``
    (Heusel et al. 2017, arXiv:1706.08500); these keys appear only then.

    Args:
        model: a vqkit model (``family`` ``"discrete"`` or ``"continuous"``).
        data: held-out images ``(N, C, H, W)`` in ``[0, 1]`` (a tensor or a map-style dataset).
        classifier: the feature extractor, or None (every figure None).
        num_samples: images per set (at least 2).
        batch_size: batch size of the reconstructions, samples and features.
        seed: seed of the samples and of KID's subsets.
        sample_options: keyword options of a discrete model's ``generate`` (its prior's
            sampling options, e.g. a diffusion prior's ``{"steps": 25}``).
        inception: the FID network, or None (no ``*_fid`` keys).
    """
    from vqkit.train.frechet import DatasetClassifier, frechet_distance, kid
    from vqkit.train.inception import FIDInceptionV3, inception_features

    check_int("evaluate_sample_quality", "num_samples", num_samples, low=2)
    check_positive_int("evaluate_sample_quality", "batch_size", batch_size)
    family = _check_family(model)
    out: dict[str, float | None] = dict.fromkeys(SAMPLE_QUALITY_KEYS)
    if inception is not None:
        if not isinstance(inception, FIDInceptionV3):
            raise TypeError(
                f"evaluate_sample_quality: inception must be a FIDInceptionV3 or None, got "
                f"{type(inception).__name__}"
            )
        out.update(dict.fromkeys(FID_KEYS))
    if classifier is None and inception is None:
        return out
    if classifier is not None and not isinstance(classifier, DatasetClassifier):
        raise TypeError(
            f"evaluate_sample_quality: classifier must be a DatasetClassifier or None, got "
            f"{type(classifier).__name__}"
        )
    device = _device(model)
    real_batches, recon_batches, taken = [], [], 0
    with eval_mode(model, no_grad=True):
        for x in _batches(data, batch_size, device):
            x = x[: num_samples - taken]
            if x.ndim != 4:
                return out  # points, not images
            real_batches.append(x.float())
            recon_batches.append(reconstruct(model, x).float().clamp(0, 1))
            taken += x.shape[0]
            if taken >= num_samples:
                break
    if taken < 2:
        return out
    real, recon = torch.cat(real_batches), torch.cat(recon_batches)
    if classifier is not None and real.shape[1] != classifier.in_channels:
        raise ValueError(
            f"evaluate_sample_quality: the classifier reads {classifier.in_channels}-channel "
            f"images, the data has {real.shape[1]} channel(s)"
        )
    if classifier is not None:
        classifier = classifier.to(device).eval()

    def features(net: DatasetClassifier, images: torch.Tensor) -> torch.Tensor:
        return torch.cat([net.features(b) for b in images.split(batch_size)]).cpu()

    real_f = features(classifier, real) if classifier is not None else None
    real_i = inception_features(inception.to(device), real) if inception is not None else None
    kid_gen = torch.Generator().manual_seed(seed)
    sets = {"reconstruction": recon}
    has_samples = family == "continuous" or model.prior is not None
    if has_samples:
        generator = torch.Generator(device=device).manual_seed(seed)
        drawn = []
        with eval_mode(model, no_grad=True):
            for start in range(0, taken, batch_size):
                n = min(batch_size, taken - start)
                if family == "discrete":
                    latent = model.latent_size or tuple(model.encode_indices(real[:1]).shape[-2:])
                    batch = model.generate(
                        n, generator=generator, latent_size=latent, **(sample_options or {})
                    )
                else:
                    batch = model.sample(n, generator=generator)
                drawn.append(batch.float().clamp(0, 1))
        sets["sample"] = torch.cat(drawn)
    for name, images in sets.items():
        if real_i is not None and inception is not None:
            out[f"{name}_fid"] = frechet_distance(real_i, inception_features(inception, images))
        if real_f is None or classifier is None:
            continue
        f = features(classifier, images)
        out[f"{name}_dataset_fd"] = frechet_distance(real_f, f)
        mean, std = kid(real_f, f, num_subsets=10, subset_size=min(taken, 1000), generator=kid_gen)
        out[f"{name}_kid"], out[f"{name}_kid_std"] = mean, std
    out["sample_quality_num"] = taken
    return out


def evaluate_model(
    model: Any,
    data: Dataset,
    *,
    batch_size: int = 256,
    seed: int = 0,
    classifier: nn.Module | None = None,
    num_samples: int = 1000,
    inception: nn.Module | None = None,
) -> dict[str, float | None]:
    """Every figure that applies to ``model``, chosen from what it declares.

    ``family == "discrete"``: reconstruction, codebook usage and, when ``model.prior`` is not
    None, the prior's figures (exact NLL and ``bits_per_latent`` if ``prior.exact_likelihood``,
    else the figures of ``prior.loss``, e.g. MaskGIT's masked-token NLL). ``family ==
    "continuous"``: reconstruction and ELBO. With a ``classifier``, the sample-quality figures
    of ``evaluate_sample_quality`` too (``num_samples`` images per set).

    Args:
        model: the model.
        data: the images (or points) to score: any map-style dataset, lazy ones included.
        batch_size: evaluation batch size.
        seed: seed of the ELBO's posterior samples and of the sample-quality draws.
        classifier: a ``DatasetClassifier``, or None to leave the
            sample-quality figures out.
        num_samples: images per set of the sample-quality figures.
        inception: a ``FIDInceptionV3`` with the FID weights: adds ``reconstruction_fid`` and
            ``sample_fid`` (true FID) to the sample-quality figures.
    """
    family = _check_family(model)
    metrics: dict[str, float | None] = {}
    metrics.update(evaluate_reconstruction(model, data, batch_size=batch_size))
    if family == "discrete":
        metrics.update(evaluate_codebook(model, data, batch_size=batch_size))
        if model.prior is not None:
            # a "continuous" prior (latent diffusion) is scored on the pre-quantisation latents
            encode = (
                model.encode_latents if model.prior.domain == "continuous" else model.encode_indices
            )
            with eval_mode(model, no_grad=True):
                grids = [encode(x) for x in _batches(data, batch_size, _device(model))]
            codes: torch.Tensor | tuple[torch.Tensor, ...]
            if isinstance(grids[0], tuple):  # one grid per level (VQ-VAE-2)
                codes = tuple(torch.cat(level) for level in zip(*grids, strict=True))
            else:
                codes = torch.cat(grids)
            if model.prior.exact_likelihood:
                metrics.update(evaluate_prior(model.prior, codes, batch_size=batch_size))
            else:
                # (multi-level grids go with exact-likelihood priors; a tuple here is refused
                # by the batching with a clear TypeError)
                single = cast(torch.Tensor, codes)
                metrics.update(evaluate_prior_loss(model.prior, single, batch_size=batch_size))
    else:
        metrics.update(evaluate_elbo(model, data, batch_size=batch_size, seed=seed))
    if classifier is not None or inception is not None:
        metrics.update(
            evaluate_sample_quality(
                model,
                data,
                classifier,
                num_samples=num_samples,
                batch_size=batch_size,
                seed=seed,
                inception=inception,
            )
        )
    metrics["num_examples"] = len(cast(Sized, data))  # map-style datasets define __len__
    return metrics
