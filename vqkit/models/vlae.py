"""VLAE: a convolutional VAE whose prior p(z) is a MADE autoregressive flow.

Chen et al., "Variational Lossy Autoencoder", arXiv:1611.02731: replacing the N(0, I) prior by an
autoregressive-flow prior (``MADEFlowPrior``) makes the prior as
expressive as an inverse autoregressive flow posterior at the cost of one network pass. The
objective is the negative ELBO

    −E_q[log p(x|z)] + E_q[log q(z|x) − log p(z)],

with both expectations estimated by the one reparameterised sample z ~ q(z|x) of each example (the
KL has no closed form under a flow prior). The paper pairs the prior with a PixelCNN decoder of
restricted receptive field; here the decoder is the factorised conv decoder of
``ImageVAE``.
"""

from __future__ import annotations

from collections.abc import Sequence

from vqkit._checks import check_positive_ints
from vqkit._registry import register
from vqkit.models.vae import ImageVAE

__all__ = ["VLAE"]


@register("model", "vlae")
class VLAE(ImageVAE):
    """Convolutional VAE with a learned MADE-flow prior, trained on the one-sample negative ELBO.

    An ``ImageVAE`` whose ``prior`` defaults to
    ``{"type": "made_flow", "hidden_features": prior_hidden_features}`` (``dim`` wired to
    ``latent_dim``); ``log p(z)``, sampling and the KL estimate come from that prior.

    Args:
        in_channels: image channels.
        image_size: image height and width (divisible by ``2 ** len(hidden_dims)``).
        latent_dim: latent dimensions.
        hidden_dims: encoder widths (stride-2 convs), mirrored by the decoder.
        likelihood: ``"bernoulli"`` (default, data in [0, 1]), ``"gaussian"`` or
            ``"diag_gaussian"``.
        prior_hidden_features: hidden widths of the prior's MADE (used by the default prior).
        loss: a ``"loss"`` registry spec; the default ``"kl"`` is the negative ELBO. β or
            capacity losses apply to the Monte Carlo KL estimate.
        encoder: an ``"encoder"`` spec (see ``ImageVAE``); None is the conv stack.
        decoder: a ``"decoder"`` spec (see ``ImageVAE``); None is the transposed-conv stack.
        prior: a ``"prior"`` spec over the latents (domain ``"continuous"``, exact likelihood);
            None is the MADE flow above.

    Shape:
        - Input: (B, in_channels, image_size, image_size)
        - Output: ``VAEOutput`` whose ``kl`` is the one-sample
          estimate log q(z|x) − log p(z) per example
    """

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 28,
        latent_dim: int = 32,
        hidden_dims: Sequence[int] = (32, 64),
        likelihood: str = "bernoulli",
        prior_hidden_features: Sequence[int] = (512, 512),
        loss: str | dict = "kl",
        encoder: str | dict | None = None,
        decoder: str | dict | None = None,
        prior: str | dict | None = None,
        device=None,
        dtype=None,
    ) -> None:
        hidden = check_positive_ints("VLAE", "prior_hidden_features", prior_hidden_features)
        if prior is None:
            prior = {"type": "made_flow", "hidden_features": hidden}
        super().__init__(
            in_channels=in_channels,
            image_size=image_size,
            latent_dim=latent_dim,
            hidden_dims=hidden_dims,
            likelihood=likelihood,
            loss=loss,
            encoder=encoder,
            decoder=decoder,
            prior=prior,
            device=device,
            dtype=dtype,
        )
