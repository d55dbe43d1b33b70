"""The variational autoencoder for vectors (e.g. 2D toy data) and for images.

Kingma & Welling, "Auto-Encoding Variational Bayes", arXiv:1312.6114. ``VAE`` is the
paper's MLP model; by default its decoder is a Gaussian with a learned diagonal covariance
(the paper's continuous-data decoder), so ``sample(n, decoder_noise=True)`` draws from the full
model p(x) = ∫ p(x|z) p(z) dz. ``ImageVAE`` is a small convolutional VAE with 16-dimensional
latents and a unit-variance Gaussian decoder by default.

Both are assembled from registry specs like ``VQVAE``: ``encoder`` / ``decoder`` name registered
parts (``"mlp"`` and ``"vector_conv"`` of ``vqkit.nn.vector`` by default) and ``prior`` a
registered continuous prior (None: N(0, I)). Sizes that must agree (data and latent dimensions,
the likelihood's parameter count) are wired into the specs; ``hidden_dims`` fills the default
widths of a spec that leaves them out.
"""

from __future__ import annotations

from collections.abc import Sequence

from vqkit._checks import check_bool, check_positive_int, check_positive_ints
from vqkit._hub import HubMixin
from vqkit._registry import register
from vqkit.models.vae_base import VAEBase

__all__ = ["VAE", "ImageVAE"]

Spec = str | dict | None


@register("model", "vae")
class VAE(VAEBase, HubMixin):
    """MLP VAE for vector data, with a learned-diagonal-covariance Gaussian decoder by default.

    Args:
        data_dim: number of features per example (2 for 2D toy data).
        latent_dim: number of latent dimensions.
        hidden_dims: widths of the encoder's hidden layers (the decoder mirrors them).
        likelihood: ``"diag_gaussian"`` (learned diagonal covariance), ``"gaussian"`` (unit
            variance) or ``"bernoulli"``.
        loss: a ``"loss"`` registry spec: ``"kl"`` (the negative ELBO), ``"beta_kl"``,
            ``"capacity_kl"`` or a dict such as ``{"type": "beta_kl", "beta": 4.0}``.
        encoder: an ``"encoder"`` spec mapping (B, data_dim) to (B, 2·latent_dim); None is
            ``{"type": "mlp"}`` (``in_features`` / ``out_features`` are wired).
        decoder: a ``"decoder"`` spec mapping (B, latent_dim) to the likelihood's parameters;
            None is ``{"type": "mlp"}`` with the encoder's widths reversed.
        prior: a ``"prior"`` spec over the latents (domain ``"continuous"``, e.g.
            ``{"type": "made_flow"}``; ``dim`` is wired); None is N(0, I).

    Shape:
        - Input: (B, data_dim)
        - Output: ``VAEOutput``; ``sample(n)`` gives (n, data_dim)
    """

    def __init__(
        self,
        data_dim: int = 2,
        latent_dim: int = 2,
        hidden_dims: Sequence[int] = (64, 64),
        likelihood: str = "diag_gaussian",
        loss: str | dict = "kl",
        encoder: Spec = None,
        decoder: Spec = None,
        prior: Spec = None,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        self.data_dim = check_positive_int("VAE", "data_dim", data_dim)
        self.hidden_dims = check_positive_ints("VAE", "hidden_dims", hidden_dims, allow_empty=True)
        self._setup(latent_dim, (data_dim,), likelihood, loss, prior, device, dtype)
        out = self.likelihood.num_params * data_dim
        self._build_networks(
            "mlp" if encoder is None else encoder,
            "mlp" if decoder is None else decoder,
            encoder_sizes={
                "in_features": (data_dim, "in_channels"),
                "out_features": (2 * latent_dim, "out_channels"),
            },
            decoder_sizes={
                "in_features": (latent_dim, "in_channels"),
                "out_features": (out, "out_channels"),
            },
            encoder_defaults={"hidden_dims": self.hidden_dims},
            decoder_defaults={"hidden_dims": self.hidden_dims[::-1]},
            device=device,
            dtype=dtype,
        )

    def extra_repr(self) -> str:
        return (
            f"data_dim={self.data_dim}, latent_dim={self.latent_dim}, "
            f"hidden_dims={self.hidden_dims}, likelihood={self.likelihood.name!r}"
        )


@register("model", "image_vae")
class ImageVAE(VAEBase, HubMixin):
    """Convolutional VAE for square images: stride-2 conv encoder, transposed-conv decoder.

    Each entry of ``hidden_dims`` is one 4×4 stride-2 layer that halves the image, so
    ``image_size`` must be divisible by ``2 ** len(hidden_dims)``.

    Args:
        in_channels: image channels.
        image_size: height and width of the images the model is built for.
        latent_dim: latent dimensions (16 by default).
        hidden_dims: encoder widths, small to large; the decoder mirrors them.
        likelihood: ``"gaussian"`` (unit variance, the default), ``"diag_gaussian"`` or
            ``"bernoulli"`` (data in [0, 1]).
        loss: a ``"loss"`` registry spec (``"kl"`` by default).
        batch_norm: BatchNorm after every hidden (transposed) convolution.
        encoder: an ``"encoder"`` spec mapping images to (B, 2·latent_dim); None is
            ``{"type": "vector_conv"}`` (channels, sizes, widths and ``batch_norm`` are wired).
        decoder: a ``"decoder"`` spec mapping (B, latent_dim) to the likelihood's parameters
            (B, num_params·in_channels, image_size, image_size); None is
            ``{"type": "vector_conv"}``.
        prior: a ``"prior"`` spec over the latents (domain ``"continuous"``); None is N(0, I).

    Shape:
        - Input: (B, in_channels, image_size, image_size)
        - Output: ``VAEOutput``; ``sample(n)`` gives
          (n, in_channels, image_size, image_size)
    """

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 28,
        latent_dim: int = 16,
        hidden_dims: Sequence[int] = (32, 64),
        likelihood: str = "gaussian",
        loss: str | dict = "kl",
        batch_norm: bool = False,
        encoder: Spec = None,
        decoder: Spec = None,
        prior: Spec = None,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.in_channels = check_positive_int(owner, "in_channels", in_channels)
        self.image_size = check_positive_int(owner, "image_size", image_size)
        self.hidden_dims = check_positive_ints(owner, "hidden_dims", hidden_dims)
        factor = 2 ** len(self.hidden_dims)
        if (encoder is None or decoder is None) and image_size % factor:
            raise ValueError(
                f"{owner}: {len(self.hidden_dims)} stride-2 layers (hidden_dims="
                f"{self.hidden_dims}) need image_size divisible by {factor}, got {image_size}"
            )
        self.batch_norm = check_bool(owner, "batch_norm", batch_norm)
        data_shape = (in_channels, image_size, image_size)
        self._setup(latent_dim, data_shape, likelihood, loss, prior, device, dtype)
        widths = {"hidden_dims": self.hidden_dims, "batch_norm": self.batch_norm}
        self._build_networks(
            "vector_conv" if encoder is None else encoder,
            "vector_conv" if decoder is None else decoder,
            encoder_sizes={
                "in_channels": (in_channels, "in_channels"),
                "out_features": (2 * latent_dim, "out_channels"),
                "image_size": (image_size, None),
            },
            decoder_sizes={
                "in_features": (latent_dim, "in_channels"),
                "out_channels": (self.likelihood.num_params * in_channels, "out_channels"),
                "image_size": (image_size, None),
            },
            encoder_defaults=widths,
            decoder_defaults=widths,
            device=device,
            dtype=dtype,
        )

    def _shape_hint(self, shape: tuple[int, ...]) -> str:
        if len(shape) != 4:
            return f" ({len(shape)} dimensions; images need 4: batch, channels, height, width)"
        _, c, h, w = shape
        if c != self.in_channels:
            return f": wrong number of channels (expected {self.in_channels}, received {c})"
        return (
            f": the architecture is built for {self.image_size}×{self.image_size} images, "
            f"received {h}×{w}"
        )

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, image_size={self.image_size}, "
            f"latent_dim={self.latent_dim}, hidden_dims={self.hidden_dims}, "
            f"likelihood={self.likelihood.name!r}, batch_norm={self.batch_norm}"
        )
