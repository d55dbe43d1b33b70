"""Full models assembled from registered parts, and named presets from the literature."""

from vqkit.models.presets import PRESETS, Preset, create_model, list_models, preset_config
from vqkit.models.vqgan import VQGAN
from vqkit.models.vqvae import VQVAE, VQVAEOutput, VQVAEPriorOutput

__all__ = [
    "PRESETS",
    "VQGAN",
    "VQVAE",
    "Preset",
    "VQVAEOutput",
    "VQVAEPriorOutput",
    "create_model",
    "list_models",
    "preset_config",
]
