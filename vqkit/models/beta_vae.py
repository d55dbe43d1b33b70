"""β-VAE for 64×64 images with Burgess et al.'s capacity-controlled objective by default.

Papers: Higgins et al., "β-VAE: Learning Basic Visual Concepts with a Constrained Variational
Framework", ICLR 2017; Burgess et al., "Understanding disentangling in β-VAE", arXiv:1804.03599
(loss ``rec + γ·|KL − C|``, γ = 1000, C: 0 → 25 nats over 100,000 iterations on dSprites).
"""

from __future__ import annotations

from collections.abc import Sequence

from vqkit._registry import register
from vqkit.models.vae import ImageVAE

__all__ = ["BetaVAE"]


@register("model", "beta_vae")
class BetaVAE(ImageVAE):
    """Convolutional β-VAE: five stride-2 conv + BatchNorm + LeakyReLU layers (32…512 wide)
    mapping 64×64 images to a 2×2×512 grid, a linear map to the latent Gaussian, and the mirrored
    transposed-convolution decoder.

    The default loss is the B-type capacity loss ``{"type": "capacity_kl"}`` with the paper's
    γ = 1000, C_max = 25, 100,000 steps; use ``loss={"type": "beta_kl", "beta": 4.0}`` for the
    H-type. The default decoder is Bernoulli (the paper's dSprites setting, inputs in [0, 1]);
    use ``likelihood="gaussian"`` for natural images. All loss terms are per-image sums, so γ and
    C keep their paper meaning (see ``CapacityKL``).

    Args:
        in_channels: image channels (any count).
        latent_dim: latent dimensions (128 or 256 in common configurations).
        image_size: image height and width; 64 for the default five layers (any multiple of
            ``2 ** len(hidden_dims)`` works).
        hidden_dims: encoder widths, small to large; the decoder mirrors them.
        likelihood: ``"bernoulli"``, ``"gaussian"`` (unit variance) or ``"diag_gaussian"``.
        loss: a ``"loss"`` registry spec.
        encoder: an ``"encoder"`` spec; None is the conv stack above (see ``ImageVAE``).
        decoder: a ``"decoder"`` spec; None is the mirrored transposed-conv stack.
        prior: a ``"prior"`` spec over the latents (domain ``"continuous"``); None is N(0, I).

    Shape:
        - Input: (B, in_channels, image_size, image_size)
        - Output: ``VAEOutput``
    """

    def __init__(
        self,
        in_channels: int = 3,
        latent_dim: int = 128,
        image_size: int = 64,
        hidden_dims: Sequence[int] = (32, 64, 128, 256, 512),
        likelihood: str = "bernoulli",
        loss: str | dict = "capacity_kl",
        encoder: str | dict | None = None,
        decoder: str | dict | None = None,
        prior: str | dict | None = None,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(
            in_channels=in_channels,
            image_size=image_size,
            latent_dim=latent_dim,
            hidden_dims=hidden_dims,
            likelihood=likelihood,
            loss=loss,
            batch_norm=True,
            encoder=encoder,
            decoder=decoder,
            prior=prior,
            device=device,
            dtype=dtype,
        )
