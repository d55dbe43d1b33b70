"""The variational autoencoder for vectors (e.g. 2D toy data) and for images.

Kingma & Welling, "Auto-Encoding Variational Bayes", arXiv:1312.6114. :class:`VAE` is the
paper's MLP model; by default its decoder is a Gaussian with a learned diagonal covariance
(the paper's continuous-data decoder), so ``sample(n, decoder_noise=True)`` draws from the full
model p(x) = ∫ p(x|z) p(z) dz. :class:`ImageVAE` is a small convolutional VAE with 16-dimensional
latents and a unit-variance Gaussian decoder by default.
"""

from __future__ import annotations

from collections.abc import Sequence

from vqkit._hub import HubMixin
from vqkit._registry import register
from vqkit.vae.base import VAEBase
from vqkit.vae.nets import conv_decoder, conv_encoder, mlp

__all__ = ["VAE", "ImageVAE"]


def _positive_int(owner: str, name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive int, got {value!r}")
    return value


def _widths(owner: str, hidden_dims: Sequence[int], allow_empty: bool) -> list[int]:
    widths = list(hidden_dims)
    if (not widths and not allow_empty) or not all(
        isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in widths
    ):
        raise ValueError(
            f"{owner}: hidden_dims must be a {'' if allow_empty else 'non-empty '}list of "
            f"positive ints, got {hidden_dims!r}"
        )
    return widths


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

    Shape:
        - Input: (B, data_dim)
        - Output: :class:`~vqkit.vae.base.VAEOutput`; ``sample(n)`` gives (n, data_dim)
    """

    def __init__(
        self,
        data_dim: int = 2,
        latent_dim: int = 2,
        hidden_dims: Sequence[int] = (64, 64),
        likelihood: str = "diag_gaussian",
        loss: str | dict = "kl",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        self.data_dim = _positive_int("VAE", "data_dim", data_dim)
        self.hidden_dims = _widths("VAE", hidden_dims, allow_empty=True)
        self._setup(latent_dim, (data_dim,), likelihood, loss)
        self.encoder = mlp(data_dim, self.hidden_dims, 2 * latent_dim, device, dtype)
        out = self.likelihood.num_params * data_dim
        self.decoder = mlp(latent_dim, self.hidden_dims[::-1], out, device, dtype)

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

    Shape:
        - Input: (B, in_channels, image_size, image_size)
        - Output: :class:`~vqkit.vae.base.VAEOutput`; ``sample(n)`` gives
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
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        self.in_channels = _positive_int(owner, "in_channels", in_channels)
        self.image_size = _positive_int(owner, "image_size", image_size)
        self.hidden_dims = _widths(owner, hidden_dims, allow_empty=False)
        factor = 2 ** len(self.hidden_dims)
        if image_size % factor:
            raise ValueError(
                f"{owner}: {len(self.hidden_dims)} stride-2 layers (hidden_dims="
                f"{self.hidden_dims}) need image_size divisible by {factor}, got {image_size}"
            )
        self.batch_norm = bool(batch_norm)
        self._setup(latent_dim, (in_channels, image_size, image_size), likelihood, loss)
        widths, norm = self.hidden_dims, self.batch_norm
        self.encoder = conv_encoder(
            in_channels, image_size, widths, 2 * latent_dim, norm, device, dtype
        )
        out_channels = self.likelihood.num_params * in_channels
        self.decoder = conv_decoder(
            latent_dim, image_size, widths, out_channels, norm, device, dtype
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
