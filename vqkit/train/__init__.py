"""Training, evaluation and pictures: the ``Trainer``, metrics, recipes and run folders."""

from vqkit.train.checkpoint import find_latest_checkpoint, load_checkpoint, save_checkpoint
from vqkit.train.distributed import DistInfo, setup_distributed
from vqkit.train.evaluate import (
    evaluate_codebook,
    evaluate_elbo,
    evaluate_model,
    evaluate_prior,
    evaluate_reconstruction,
)
from vqkit.train.images import image_grid, index_map_grid, loss_curves, save_image, scatter_plot
from vqkit.train.metrics import CodebookUsage, bits_per_dim, mse, psnr, ssim
from vqkit.train.recipes import (
    RunResult,
    load_run_model,
    prior_objective,
    train_vae_run,
    train_vqvae_run,
    write_pictures,
)
from vqkit.train.run import DataSpec, RunSpec, RunSpecError, read_run_spec, train_run
from vqkit.train.trainer import LossOutput, TrainConfig, Trainer, TrainResult, default_objective

__all__ = [
    "CodebookUsage",
    "DataSpec",
    "DistInfo",
    "LossOutput",
    "RunResult",
    "RunSpec",
    "RunSpecError",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "bits_per_dim",
    "default_objective",
    "evaluate_codebook",
    "evaluate_elbo",
    "evaluate_model",
    "evaluate_prior",
    "evaluate_reconstruction",
    "find_latest_checkpoint",
    "image_grid",
    "index_map_grid",
    "load_checkpoint",
    "load_run_model",
    "loss_curves",
    "mse",
    "prior_objective",
    "psnr",
    "read_run_spec",
    "save_checkpoint",
    "save_image",
    "scatter_plot",
    "setup_distributed",
    "ssim",
    "train_run",
    "train_vae_run",
    "train_vqvae_run",
    "write_pictures",
]
