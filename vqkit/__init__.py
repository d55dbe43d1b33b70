"""vqkit: composable, tested PyTorch layers for discrete-latent and autoregressive models.

Everything public is re-exported here; parts register themselves by name on import.
"""

from vqkit._registry import KINDS, build, get, list_registered, load_plugins, register

__version__ = "0.1.0"

__all__ = [
    "KINDS",
    "__version__",
    "build",
    "get",
    "list_registered",
    "load_plugins",
    "register",
]
