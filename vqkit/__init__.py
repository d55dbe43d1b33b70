"""vqkit: composable, tested PyTorch layers for discrete-latent and autoregressive models.

Everything public is re-exported here; parts register themselves by name on import.
"""

from vqkit._hub import HubMixin
from vqkit._registry import KINDS, build, get, list_registered, load_plugins, register
from vqkit.autoregressive import (
    MADE,
    GatedPixelCNN,
    MADEFlowPrior,
    MaskedConv2d,
    MaskedLinear,
    PixelCNN,
)
from vqkit.data import (
    ArrayDataset,
    load_array,
    load_dataset,
    load_digits,
    load_fashion_mnist,
    load_image_folder,
    load_mnist,
    load_toy,
    subset,
    train_val_split,
)
from vqkit.losses import LPIPS
from vqkit.models import VQGAN, VQVAE, VQVAEOutput, VQVAEPriorOutput, create_model, list_models
from vqkit.nn import (
    ConvDecoder,
    ConvEncoder,
    PatchGANDiscriminator,
    ResidualStack,
    ResNetDecoder,
    ResNetEncoder,
    TamingDecoder,
    TamingEncoder,
)
from vqkit.quantize import FSQ, QuantizerOutput, ResidualVQ, VectorQuantizer
from vqkit.train import (
    CodebookUsage,
    TrainConfig,
    Trainer,
    bits_per_dim,
    evaluate_model,
    load_run_model,
    mse,
    psnr,
    ssim,
)
from vqkit.train.gan import GANStep
from vqkit.vae import (
    VAE,
    VLAE,
    BetaVAE,
    CapacityKL,
    ImageVAE,
    VAEOutput,
    gaussian_kl,
    kld_weight_to_beta,
)

__version__ = "0.1.0"

__all__ = [
    "FSQ",
    "KINDS",
    "LPIPS",
    "MADE",
    "VAE",
    "VLAE",
    "VQGAN",
    "VQVAE",
    "ArrayDataset",
    "BetaVAE",
    "CapacityKL",
    "CodebookUsage",
    "ConvDecoder",
    "ConvEncoder",
    "GANStep",
    "GatedPixelCNN",
    "HubMixin",
    "ImageVAE",
    "MADEFlowPrior",
    "MaskedConv2d",
    "MaskedLinear",
    "PatchGANDiscriminator",
    "PixelCNN",
    "QuantizerOutput",
    "ResNetDecoder",
    "ResNetEncoder",
    "ResidualStack",
    "ResidualVQ",
    "TamingDecoder",
    "TamingEncoder",
    "TrainConfig",
    "Trainer",
    "VAEOutput",
    "VQVAEOutput",
    "VQVAEPriorOutput",
    "VectorQuantizer",
    "__version__",
    "bits_per_dim",
    "build",
    "create_model",
    "evaluate_model",
    "gaussian_kl",
    "get",
    "kld_weight_to_beta",
    "list_models",
    "list_registered",
    "load_array",
    "load_dataset",
    "load_digits",
    "load_fashion_mnist",
    "load_image_folder",
    "load_mnist",
    "load_plugins",
    "load_run_model",
    "load_toy",
    "mse",
    "psnr",
    "register",
    "ssim",
    "subset",
    "train_val_split",
]
