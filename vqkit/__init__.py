"""vqkit: composable, tested PyTorch layers for discrete-latent and autoregressive models.

Everything public is re-exported here; parts register themselves by name on import.
"""

from vqkit._hub import (
    HubConnectionError,
    HubError,
    HubMixin,
    InvalidModelError,
    ModelNotFoundError,
    from_pretrained,
)
from vqkit._registry import KINDS, build, get, list_registered, load_plugins, register
from vqkit.autoregressive import (
    MADE,
    GatedPixelCNN,
    HierarchicalPrior,  # vqvae2 branch
    MADEFlowPrior,
    MaskedConv2d,
    MaskedLinear,
    MaskGIT,
    PixelCNN,
    TransformerPrior,
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
from vqkit.diffusion import LatentDiffusion
from vqkit.losses import LPIPS
from vqkit.losses.logit_laplace import LogitLaplace
from vqkit.models import VQGAN, VQVAE, VQVAEOutput, VQVAEPriorOutput, create_model, list_models
from vqkit.models.dvae import DVAE
from vqkit.models.vqvae2 import VQVAE2, VQVAE2Output  # vqvae2 branch
from vqkit.nn import (
    ConvDecoder,
    ConvEncoder,
    ConvVectorDecoder,
    ConvVectorEncoder,
    MLPDecoder,
    MLPEncoder,
    PatchGANDiscriminator,
    ResidualStack,
    ResNetDecoder,
    ResNetEncoder,
    TamingDecoder,
    TamingEncoder,
)
from vqkit.quantize import FSQ, QuantizerOutput, ResidualVQ, VectorQuantizer
from vqkit.quantize.gumbel import GumbelQuantizer
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
from vqkit.train.metrics import bits_per_latent
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

__version__ = "0.2.0.dev0"

__all__ = [
    "DVAE",
    "FSQ",
    "KINDS",
    "LPIPS",
    "MADE",
    "VAE",
    "VLAE",
    "VQGAN",
    "VQVAE",
    "VQVAE2",  # vqvae2 branch
    "ArrayDataset",
    "BetaVAE",
    "CapacityKL",
    "CodebookUsage",
    "ConvDecoder",
    "ConvEncoder",
    "ConvVectorDecoder",
    "ConvVectorEncoder",
    "GANStep",
    "GatedPixelCNN",
    "GumbelQuantizer",
    "HierarchicalPrior",  # vqvae2 branch
    "HubConnectionError",
    "HubError",
    "HubMixin",
    "ImageVAE",
    "InvalidModelError",
    "LatentDiffusion",
    "LogitLaplace",
    "MADEFlowPrior",
    "MLPDecoder",
    "MLPEncoder",
    "MaskGIT",
    "MaskedConv2d",
    "MaskedLinear",
    "ModelNotFoundError",
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
    "TransformerPrior",
    "VAEOutput",
    "VQVAE2Output",  # vqvae2 branch
    "VQVAEOutput",
    "VQVAEPriorOutput",
    "VectorQuantizer",
    "__version__",
    "bits_per_dim",
    "bits_per_latent",
    "build",
    "create_model",
    "evaluate_model",
    "from_pretrained",
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
