"""What every registered part must provide: the contract of each registry kind.

Read this file to write a part (or a plugin) that the rest of vqkit can use. Each registry kind
has one ``typing.Protocol`` below. The trainer, evaluation, the recipes and the CLI decide
what to do from what a part *declares* here (``family``, ``domain``, ``exact_likelihood``), never
by probing for optional attributes.

Kinds and what they declare::

    quantizer      z (B, D, h, w) -> QuantizerOutput;  decode(indices) -> (B, D, h, w)
    encoder        images (B, C, H, W) -> (B, out_channels, H / f, W / f)
    decoder        (B, in_channels, h, w) -> (B, out_channels, h * f, w * f)
    prior          a distribution over code grids (domain "codes") or over continuous latents
                   (domain "continuous"); exact_likelihood says whether log_prob is one
    loss           a module or function computing a scalar training term
    discriminator  images (B, C, H, W) -> real/fake logits (B, 1, h', w')
    model          family "discrete": encoder -> quantizer -> decoder with an optional prior;
                   family "continuous": a latent-variable model (VAE, β-VAE, VLAE)

``REQUIREMENTS`` lists, per kind, the methods a registered class must define and the
attributes a built instance must carry (``CLASS_ATTRIBUTES``: those a class must already declare;
``FAMILY_REQUIREMENTS``: the extra ones of each model family); ``contract_problems`` checks an
object against them and says what is missing. The registry calls ``check_contract`` on every
class it registers and every part it builds, which raises ``ContractError`` (a ``TypeError``)
naming the kind, the name and each missing item.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol

import torch
from torch import Tensor

__all__ = [
    "REQUIREMENTS",
    "ContinuousModel",
    "ContractError",
    "Decoder",
    "DiscreteModel",
    "Discriminator",
    "Encoder",
    "LossOutput",
    "Prior",
    "Quantizer",
    "check_contract",
    "contract_problems",
    "likelihood_loss",
]


@dataclass
class LossOutput:
    """A minimal objective output: a scalar ``loss`` and named scalar ``losses`` for logging."""

    loss: torch.Tensor
    losses: dict[str, torch.Tensor]


class Quantizer(Protocol):
    """``quantizer``: maps continuous vectors to codes.

    Attributes:
        dim: D, the size of the vectors it quantizes.
        codebook_size: K, the number of codes per position.
    """

    dim: int
    codebook_size: int

    def forward(self, z: Tensor) -> Any:
        """(B, D, h, w) -> ``QuantizerOutput`` (quantized, indices, loss)."""

    def decode(self, indices: Tensor) -> Tensor:
        """Code indices (B, h, w) -> quantized vectors (B, D, h, w)."""


class Encoder(Protocol):
    """``encoder``: images to feature maps, downsampled by ``downsample_factor`` per side."""

    in_channels: int
    out_channels: int
    downsample_factor: int

    def forward(self, x: Tensor) -> Tensor:
        """(B, in_channels, H, W) -> (B, out_channels, H / f, W / f)."""


class Decoder(Protocol):
    """``decoder``: feature maps to images, upsampled by ``upsample_factor`` per side."""

    in_channels: int
    out_channels: int
    upsample_factor: int

    def forward(self, z: Tensor) -> Tensor:
        """(B, in_channels, h, w) -> (B, out_channels, h * f, w * f)."""


class Prior(Protocol):
    """``prior``: a distribution the second stage fits and samples.

    Class attributes:
        domain: ``"codes"`` for a distribution over integer code grids (PixelCNN, Gated
            PixelCNN, MADE, transformers, MaskGIT), ``"continuous"`` for one over real latents
            (MADE flow, latent diffusion).
        exact_likelihood: True when ``log_prob`` is the exact log-likelihood (autoregressive
            priors and flows); False when the prior has none (MaskGIT, diffusion), in which case
            ``log_prob`` raises ``NotImplementedError`` and ``loss`` is its training
            objective and evaluation figure.

    Attributes:
        num_embeddings: K of a ``"codes"`` prior (None for ``"continuous"`` ones).
        num_classes: number of classes of a class-conditional prior, else None.
    """

    domain: ClassVar[Literal["codes", "continuous"]]
    exact_likelihood: ClassVar[bool]
    num_embeddings: int | None
    num_classes: int | None

    def loss(self, x: Tensor, cond: Tensor | None = None) -> LossOutput:
        """The training objective on a batch (codes (B, h, w) or latents): a scalar ``loss``
        (nats per latent position for likelihood priors) and named scalar ``losses``."""

    def log_prob(self, x: Tensor, cond: Tensor | None = None) -> Tensor:
        """(B,) log-likelihood in nats; only when ``exact_likelihood``."""

    def sample(self, n: int, size: Any = None, **options: Any) -> Tensor:
        """``n`` samples; keyword options include ``cond``, ``temperature``, ``generator``."""


class Discriminator(Protocol):
    """``discriminator``: real/fake logits for images (a PatchGAN gives one per patch)."""

    in_channels: int

    def forward(self, x: Tensor) -> Tensor:
        """(B, in_channels, H, W) -> logits (B, 1, h', w')."""


class DiscreteModel(Protocol):
    """``model`` with ``family = "discrete"``: a tokenizer (encoder → quantizer → decoder) and
    an optional prior over its codes (VQ-VAE; VQ-GAN, VQ-VAE-2 and dVAE follow the same contract).

    ``forward(x)`` returns an output with a scalar ``loss``, a dict ``losses`` of named scalars,
    the ``reconstruction`` and the ``quantizer`` output.
    """

    family: ClassVar[Literal["discrete"]]
    #: True when the default objective trains it against a discriminator (VQ-GAN): the trainer
    #: then runs a generator and a discriminator update per step.
    adversarial: ClassVar[bool]
    codebook_size: int
    image_size: tuple[int, int] | None
    latent_size: tuple[int, int] | None
    prior: Any

    def forward(self, x: Tensor) -> Any: ...

    def encode_indices(self, x: Tensor) -> Any:
        """Codes of images, without gradients or codebook updates."""

    def decode_indices(self, indices: Any) -> Tensor:
        """Images from codes (the inverse of ``encode_indices`` up to reconstruction)."""

    def prior_loss(self, x: Tensor, cond: Tensor | None = None) -> Any:
        """The second-stage objective on images (only the prior receives gradients)."""

    def generate(self, n: int, **options: Any) -> Tensor:
        """``n`` images sampled from the prior and decoded."""


class ContinuousModel(Protocol):
    """``model`` with ``family = "continuous"``: a latent-variable model (VAE, β-VAE, VLAE).

    ``forward(x)`` returns an output with a scalar ``loss`` (the negative ELBO or its β / capacity
    variant) and a dict ``losses``. ``prior`` is None for the standard-normal prior, else a
    ``"continuous"``-domain prior over the latents (VLAE's MADE flow).
    """

    family: ClassVar[Literal["continuous"]]
    latent_dim: int
    prior: Any

    def forward(self, x: Tensor) -> Any: ...

    def reconstruct(self, x: Tensor) -> Tensor:
        """The deterministic reconstruction (decoded posterior mean), the shape of ``x``."""

    def elbo(self, x: Tensor, num_samples: int = 1, generator: Any = None) -> Tensor:
        """(B,) evidence lower bound in nats per example."""

    def sample(self, n: int, **options: Any) -> Tensor:
        """``n`` samples from the model."""


#: Per kind: (methods the registered class must define, attributes every built instance has).
REQUIREMENTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "quantizer": (("forward", "decode"), ("dim", "codebook_size")),
    "encoder": (("forward",), ("in_channels", "out_channels", "downsample_factor")),
    "decoder": (("forward",), ("in_channels", "out_channels", "upsample_factor")),
    "prior": (
        ("loss", "log_prob", "sample"),
        ("domain", "exact_likelihood", "num_embeddings", "num_classes"),
    ),
    "loss": ((), ()),
    "discriminator": (("forward",), ("in_channels",)),
    "model": (("forward",), ("family",)),
}

#: Attributes a registered *class* must already declare (the ``ClassVar`` s of the Protocols).
CLASS_ATTRIBUTES: dict[str, tuple[str, ...]] = {"prior": ("domain", "exact_likelihood")}

#: Extra requirements of each model family.
FAMILY_REQUIREMENTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "discrete": (
        ("encode_indices", "decode_indices", "prior_loss", "generate"),
        ("adversarial", "codebook_size", "image_size", "latent_size", "prior"),
    ),
    "continuous": (("reconstruct", "elbo", "sample"), ("latent_dim", "prior")),
}


def likelihood_loss(log_prob: Tensor, positions: int) -> LossOutput:
    """The loss of a likelihood prior: the NLL in nats per latent position, batch mean.

    ``losses`` holds ``"nll"`` (the same, detached), ``"nll_per_sample"`` (nats per grid or
    latent vector) and ``"bits_per_latent"`` (bits per latent position): the names every
    prior, ``metrics.json`` and the CLI use.

    Args:
        log_prob: (B,) log-likelihood of each sample in nats.
        positions: latent positions per sample (h·w for a code grid, D for a latent vector).
    """
    nll_sample = -log_prob  # (B,)
    loss = nll_sample.mean() / positions
    detached = loss.detach()
    return LossOutput(
        loss,
        {
            "nll": detached,
            "nll_per_sample": nll_sample.mean().detach(),
            "bits_per_latent": detached / math.log(2.0),
        },
    )


def contract_problems(kind: str, obj: Any) -> list[str]:
    """What ``obj`` (a class, or a built instance) lacks of the ``kind`` contract; [] if none.

    A class is checked for the methods and the class attributes of ``CLASS_ATTRIBUTES``; an
    instance also for every attribute (which are often set in ``__init__``). A model is checked
    against its ``family`` as well, a prior's ``domain`` against the two domains.
    """
    if kind not in REQUIREMENTS:
        raise ValueError(f"unknown registry kind {kind!r}; expected one of {list(REQUIREMENTS)}")
    methods, attributes = REQUIREMENTS[kind]
    is_class = isinstance(obj, type)
    problems = [f"method {m}()" for m in methods if not callable(getattr(obj, m, None))]
    if is_class:
        declared = CLASS_ATTRIBUTES.get(kind, ())
        problems += [f"attribute {a!r}" for a in declared if not hasattr(obj, a)]
    else:
        problems += [f"attribute {a!r}" for a in attributes if a not in _names(obj)]
    if kind == "model":
        family = getattr(obj, "family", None)
        if family not in FAMILY_REQUIREMENTS:
            if is_class and family is None:
                return problems  # the family may be set per instance
            problems.append(f"family must be one of {list(FAMILY_REQUIREMENTS)}, got {family!r}")
            return problems
        f_methods, f_attributes = FAMILY_REQUIREMENTS[family]
        problems += [f"method {m}()" for m in f_methods if not callable(getattr(obj, m, None))]
        if not is_class:
            problems += [f"attribute {a!r}" for a in f_attributes if a not in _names(obj)]
    if kind == "prior":
        domain = getattr(obj, "domain", None)
        if domain is not None and domain not in ("codes", "continuous"):
            problems.append(f"domain must be 'codes' or 'continuous', got {domain!r}")
    return problems


def _names(obj: Any) -> set[str]:
    """Attribute names an instance carries (its own, its class's, and nn.Module's registries)."""
    names = set(dir(obj))
    for store in ("_parameters", "_buffers", "_modules"):
        names.update(getattr(obj, store, {}) or {})
    return names


class ContractError(TypeError):
    """A registered part does not provide what its kind's contract requires."""


def check_contract(kind: str, name: str, obj: Any) -> None:
    """Raise ``ContractError`` if ``obj`` does not satisfy the ``kind`` contract.

    The message names the kind, the registered name and every missing item, e.g.
    ``prior 'my_prior' does not satisfy the prior contract (vqkit/contracts.py): missing method
    loss(), attribute 'exact_likelihood'``.
    """
    problems = contract_problems(kind, obj)
    if not problems:
        return
    missing = [p for p in problems if p.startswith(("method ", "attribute "))]
    other = [p for p in problems if p not in missing]
    parts = ([f"missing {', '.join(missing)}"] if missing else []) + other
    raise ContractError(
        f"{kind} {name!r} does not satisfy the {kind} contract (vqkit/contracts.py): "
        f"{'; '.join(parts)}"
    )
