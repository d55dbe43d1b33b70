"""Hugging Face Hub glue: ``config.json`` + ``model.safetensors`` + a model card, checked loading.

Every vqkit model and standalone prior inherits [`HubMixin`][vqkit.HubMixin], which is
``huggingface_hub.PyTorchModelHubMixin`` with vqkit's defaults:

- ``config.json`` is the constructor arguments (minus ``device`` / ``dtype``) plus, as diffusers
  does, two ``_``-prefixed records: ``_class_name`` (the class that wrote it, e.g. ``"VQVAE"``)
  and ``_vqkit_version``. Loading drops every ``_``-prefixed key before calling the constructor,
  so ``Model(**{k: v for k, v in config.items() if not k.startswith("_")})`` rebuilds the
  architecture;
- weights are ``model.safetensors`` only: nothing is ever unpickled, there is no ``.bin`` fallback;
  its header metadata records the registered name of the class that wrote it and the vqkit
  version (``vqkit_class``, ``vqkit_kind``, ``vqkit_version``). ``from_pretrained`` finds the
  class from ``_class_name`` (checked against that metadata when both are present), or from the
  metadata alone for folders written before ``_class_name`` existed, so it can load any vqkit
  model without being told its class;
- a downloaded folder is treated as untrusted: ``config.json`` is parsed strictly, the model is
  first built on the ``meta`` device under a size budget implied by the weights file, every tensor's
  name, shape and dtype is compared with the safetensors header, and only then is the model
  materialised and loaded. Every refusal raises a ``HubError`` naming the file (and the key);
- the generated model card names the library, the licence, the pipeline tag, the tags, how to load
  the model, and the config.

The header checks live in ``vqkit._safetensors``, the bounded meta build in
``vqkit._meta_build``, the error types in ``vqkit.errors``.
"""

from __future__ import annotations

import difflib
import inspect
import json
import os
import shutil
import threading
import warnings
from pathlib import Path
from typing import Any, TypeVar, cast

import torch
from huggingface_hub import ModelCard, PyTorchModelHubMixin, constants, hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    HFValidationError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from vqkit._meta_build import build_bounded, needs_real_tensors
from vqkit._safetensors import (
    SafetensorsHeader,
    check_against_header,
    load_weights,
    read_safetensors_header,
)
from vqkit.errors import HubConnectionError, HubError, InvalidModelError, ModelNotFoundError

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "HubConnectionError",
    "HubError",
    "HubMixin",
    "InvalidModelError",
    "ModelNotFoundError",
    "from_pretrained",
    "load_safetensors_strict",
    "read_safetensors_header",
]

CONFIG_NAME = constants.CONFIG_NAME  # "config.json"
WEIGHTS_NAME = constants.SAFETENSORS_SINGLE_FILE  # "model.safetensors"
_NOT_CONFIG = ("device", "dtype")  # constructor arguments that describe placement, not the model
_HUB_KINDS = ("model", "prior")  # registry kinds whose classes save themselves to the Hub

MAX_CONFIG_BYTES = 1 << 20  # a vqkit config.json is a few kB
CLASS_NAME_KEY = "_class_name"  # config.json's record of the class that wrote it (as diffusers)
VERSION_KEY = "_vqkit_version"  # ... and of the vqkit version

M = TypeVar("M", bound="HubMixin")


def load_safetensors_strict(model: Any, model_file: str | os.PathLike, *, strict: bool = True):
    """Load ``model_file`` into ``model``, checking the header's keys, shapes and dtypes first.

    Args:
        model: an ``nn.Module``.
        model_file: a safetensors file.
        strict: raise on missing or unexpected keys (shape and dtype mismatches always raise).

    Raises:
        InvalidModelError: (a ``ValueError``) the file is malformed, a tensor's shape or dtype
            differs, or (strict) keys are missing or unexpected; the message names the file and
            the keys.
    """
    header = read_safetensors_header(model_file)
    missing, unexpected = check_against_header(model, header, model_file, strict=strict)
    load_weights(model, model_file)
    if missing or unexpected:
        warnings.warn(
            f"loaded {model_file} non-strictly: missing {missing}, unexpected {unexpected}",
            UserWarning,
            stacklevel=2,
        )
    return model


# ------------------------------------------------------------------------- config.json
def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """Parse a ``config.json`` strictly: a bounded, UTF-8, JSON object without placement keys.

    Raises:
        InvalidModelError: the file is too large, empty, not JSON (``NaN`` included), not an
            object, or has a ``device`` / ``dtype`` key; the message names the file.
    """
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise InvalidModelError(
            f"{path} is {size} bytes; a vqkit config.json holds constructor arguments and is "
            f"at most {MAX_CONFIG_BYTES} bytes"
        )
    text = path.read_bytes()
    if not text.strip():
        raise InvalidModelError(f"{path} is empty; expected a JSON object of constructor arguments")

    def no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    try:
        config = json.loads(text.decode("utf-8"), parse_constant=no_constants)
    except UnicodeDecodeError as exc:
        raise InvalidModelError(f"{path} is not UTF-8 text ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise InvalidModelError(
            f"{path} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    except (ValueError, RecursionError) as exc:
        raise InvalidModelError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise InvalidModelError(
            f"{path} must hold a JSON object of constructor arguments, got a JSON "
            f"{_json_kind(config)}"
        )
    for key in _NOT_CONFIG:
        if key in config:
            raise InvalidModelError(
                f"{path} has key {key!r}: placement is chosen when loading "
                f"(from_pretrained(..., {key}=...)), never stored in config.json"
            )
    return config


def split_config(
    config: dict[str, Any], path: str | os.PathLike
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a parsed ``config.json`` into constructor arguments and its ``_``-prefixed records.

    Raises:
        InvalidModelError: ``_class_name`` or ``_vqkit_version`` is not a non-empty string.
    """
    records = {k: v for k, v in config.items() if k.startswith("_")}
    for key in (CLASS_NAME_KEY, VERSION_KEY):
        value = records.get(key)
        if key in records and not (isinstance(value, str) and value):
            raise InvalidModelError(
                f"{path}: {key} must be a non-empty string, got a JSON {_json_kind(value)} "
                f"({value!r})"
            )
    return {k: v for k, v in config.items() if not k.startswith("_")}, records


def _json_kind(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )


# ---------------------------------------------------------------- finding the two files
def _describe(model_id: str, revision: str | None) -> str:
    if os.path.isdir(model_id):
        return f"local folder {model_id!r}"
    return f"Hub repo {model_id!r}" + (f" (revision {revision!r})" if revision else "")


def _looks_like_a_path(model_id: str) -> bool:
    """A string no Hub repo id can be ('user/name' or 'name'): it must be meant as a folder."""
    return (
        model_id.startswith((".", "/", "~", "\\"))
        or model_id.count("/") > 1
        or "\\" in model_id
        or os.path.exists(model_id)
    )


def _resolve_file(
    model_id: str,
    filename: str,
    *,
    revision: str | None = None,
    cache_dir: Any = None,
    force_download: bool = False,
    local_files_only: bool = False,
    token: str | bool | None = None,
) -> str:
    """The local path of ``filename`` in a folder or a Hub repo, or one clear ``HubError``."""
    where = _describe(model_id, revision)
    if os.path.isdir(model_id):
        path = os.path.join(model_id, filename)
        if not os.path.isfile(path):
            extra = " (vqkit loads safetensors weights only)" if filename == WEIGHTS_NAME else ""
            raise ModelNotFoundError(f"{filename} not found in {where} (expected {path}){extra}")
        return path
    if _looks_like_a_path(model_id):
        what = "is a file, not a folder" if os.path.isfile(model_id) else "does not exist"
        raise ModelNotFoundError(
            f"local folder {model_id!r} {what}; pass the folder written by save_pretrained, or a "
            "Hub repo id such as 'user/name'"
        )
    try:
        return hf_hub_download(
            repo_id=model_id,
            filename=filename,
            revision=revision,
            cache_dir=cache_dir,
            force_download=force_download,
            local_files_only=local_files_only,
            token=token,
        )
    except HFValidationError as exc:
        raise ModelNotFoundError(
            f"{model_id!r} is neither a local folder nor a valid Hub repo id ('user/name'): {exc}"
        ) from exc
    except RevisionNotFoundError as exc:
        raise ModelNotFoundError(
            f"revision {revision!r} not found in Hub repo {model_id!r}; check the branch, tag or "
            "commit"
        ) from exc
    except RepositoryNotFoundError as exc:
        raise ModelNotFoundError(
            f"Hub repo {model_id!r} not found (or it is private or gated: pass token=... or run "
            "`hf auth login`); check the name, or pass a local folder"
        ) from exc
    except LocalEntryNotFoundError as exc:
        if constants.HF_HUB_OFFLINE or local_files_only:
            raise ModelNotFoundError(
                f"{filename} not found in {where}: it is not in the local cache and offline mode "
                "is on (HF_HUB_OFFLINE=1 or local_files_only=True); download it once online, or "
                "pass a local folder"
            ) from exc
        raise HubConnectionError(
            f"cannot reach the Hugging Face Hub to download {filename} of {where}, and it is not "
            "in the local cache; check the network (or HF_ENDPOINT), or pass a local folder"
        ) from exc
    except EntryNotFoundError as exc:
        extra = "; vqkit loads safetensors weights only" if filename == WEIGHTS_NAME else ""
        raise ModelNotFoundError(f"{filename} not found in {where}{extra}") from exc
    except OfflineModeIsEnabled as exc:
        raise ModelNotFoundError(
            f"{filename} of {where} is not in the local cache and offline mode is on "
            "(HF_HUB_OFFLINE=1); download it once online, or pass a local folder"
        ) from exc
    except HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        raise HubConnectionError(
            f"the Hugging Face Hub answered HTTP {status} for {filename} of {where}; "
            "try again later, or pass a local folder"
        ) from exc
    except (OSError, ConnectionError) as exc:  # sockets, DNS, timeouts (httpx errors wrap these)
        raise HubConnectionError(
            f"cannot reach the Hugging Face Hub for {where} ({type(exc).__name__}); check the "
            "network (or HF_ENDPOINT), or set HF_HUB_OFFLINE=1 to use the local cache"
        ) from exc
    except Exception as exc:
        if type(exc).__module__.split(".")[0] in ("httpx", "httpcore", "httpx2"):
            raise HubConnectionError(
                f"cannot reach the Hugging Face Hub for {where} ({type(exc).__name__}: {exc}); "
                "check the network, or set HF_HUB_OFFLINE=1 to use the local cache"
            ) from exc
        raise


# --------------------------------------------------------------- building on meta, bounded
# ------------------------------------------------------------------ the class on record
def _registered_name(cls: type) -> tuple[str, str] | None:
    from vqkit import _registry

    for kind in _HUB_KINDS:
        for name, entry in _registry._REGISTRY[kind].items():
            if entry is cls:
                return kind, name
    return None


def _hub_classes() -> list[tuple[str, str, type[HubMixin]]]:
    from vqkit import _registry

    _registry.load_plugins()
    return [
        (kind, name, entry)
        for kind in _HUB_KINDS
        for name, entry in sorted(_registry._REGISTRY[kind].items())
        if isinstance(entry, type) and issubclass(entry, HubMixin)
    ]


def _class_on_record(
    header: SafetensorsHeader, config: dict, class_name: str | None, where: str, weights: str
) -> type[HubMixin]:
    """The class named by ``_class_name``, agreeing with the weights' metadata when it has one."""
    if class_name is None:  # folders written before config.json recorded the class
        return _class_in_metadata(header, config, where, weights)
    hub_classes = [cls for _, _, cls in _hub_classes()]
    named = [cls for cls in dict.fromkeys(hub_classes) if cls.__name__ == class_name]
    if not named:
        known = sorted({cls.__name__ for cls in hub_classes})
        close = difflib.get_close_matches(class_name, known, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise KeyError(
            f"cannot load {where}: its {CONFIG_NAME} names class {class_name!r} "
            f"({CLASS_NAME_KEY}), which is no registered vqkit model or prior (a plugin whose "
            f"package is not installed?).{hint} Known classes: {', '.join(known)}"
        )
    kind, name = header.metadata.get("vqkit_kind"), header.metadata.get("vqkit_class")
    if kind is None or name is None:
        if len(named) > 1:
            raise InvalidModelError(
                f"cannot load {where}: {CLASS_NAME_KEY} {class_name!r} names "
                f"{len(named)} registered classes ({', '.join(c.__module__ for c in named)}) and "
                f"{weights} records no 'vqkit_class'; load it with the class method"
            )
        return named[0]
    recorded = _class_in_metadata(header, config, where, weights)
    if recorded not in named:
        raise InvalidModelError(
            f"{where} contradicts itself: its {CONFIG_NAME} names class {class_name!r} "
            f"({CLASS_NAME_KEY}) but {weights} was written by {kind} {name!r} "
            f"({recorded.__name__}); one of the two files was replaced or edited"
        )
    return recorded


def _class_in_metadata(
    header: SafetensorsHeader, config: dict, where: str, weights: str
) -> type[HubMixin]:
    from vqkit import _registry

    kind, name = header.metadata.get("vqkit_kind"), header.metadata.get("vqkit_class")
    if kind is None or name is None:
        candidates = [
            cls.__name__
            for _, _, cls in _hub_classes()
            if set(config) <= set(inspect.signature(cls.__init__).parameters) - {"self"}
        ]
        hint = (
            f"; classes whose constructor accepts every key of its {CONFIG_NAME}: "
            + ", ".join(dict.fromkeys(candidates))
            if candidates
            else ""
        )
        raise InvalidModelError(
            f"{where} does not record which vqkit class saved it ({weights} has no 'vqkit_class' "
            "metadata; folders saved by vqkit 0.1.0 do not): load it with that class, e.g. "
            f"vqkit.VQVAE.from_pretrained(...){hint}"
        )
    if kind not in _HUB_KINDS:
        raise InvalidModelError(f"{weights}: vqkit_kind {kind!r} is not one of {list(_HUB_KINDS)}")
    try:
        cls = _registry.get(kind, name)
    except KeyError as exc:
        raise KeyError(f"cannot load {where}: {exc.args[0]}") from exc
    if not (isinstance(cls, type) and issubclass(cls, HubMixin)):
        raise InvalidModelError(f"{weights}: {kind} {name!r} is not a class vqkit can load")
    return cls


# ----------------------------------------------------------------------- placement
def _placement(device: Any, dtype: Any) -> tuple[torch.device | None, torch.dtype | None]:
    if isinstance(dtype, str):
        resolved = getattr(torch, dtype.removeprefix("torch."), None)
        if not isinstance(resolved, torch.dtype):
            raise ValueError(f"from_pretrained: unknown dtype {dtype!r} (e.g. 'float32')")
        dtype = resolved
    if dtype is not None and (not isinstance(dtype, torch.dtype) or not dtype.is_floating_point):
        raise ValueError(
            f"from_pretrained: dtype must be a floating-point torch.dtype, got {dtype!r}"
        )
    if device is None:
        return None, dtype
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"from_pretrained: bad device {device!r} ({exc})") from exc
    if device.type == "meta":
        raise ValueError("from_pretrained: device 'meta' holds no weights; pick a real device")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"from_pretrained: device {str(device)!r} asked for, but CUDA is not available"
        )
    return device, dtype


# ----------------------------------------------------------------------------- loading
_DOWNLOAD_KEYS = ("revision", "cache_dir", "force_download", "local_files_only", "token")


def _load(cls: type[HubMixin] | None, source: str | Path, kwargs: dict[str, Any]) -> Any:
    model_id = str(source)
    download = {k: kwargs.pop(k) for k in _DOWNLOAD_KEYS if k in kwargs}
    strict = kwargs.pop("strict", True)
    if not isinstance(strict, bool):
        raise TypeError(f"from_pretrained: strict must be True or False, got {strict!r}")
    map_location = kwargs.pop("map_location", None)
    device = kwargs.pop("device", None)
    if map_location is not None and device is not None and str(map_location) != str(device):
        raise ValueError(f"from_pretrained: device={device!r} and map_location={map_location!r}")
    device, dtype = _placement(
        device if device is not None else map_location, kwargs.pop("dtype", None)
    )
    where = _describe(model_id, download.get("revision"))

    config_file = _resolve_file(model_id, CONFIG_NAME, **download)
    config, records = split_config(read_config(config_file), config_file)
    weights = _resolve_file(model_id, WEIGHTS_NAME, **download)
    header = read_safetensors_header(weights)
    if cls is None:
        cls = _class_on_record(header, config, records.get(CLASS_NAME_KEY), where, weights)

    params = inspect.signature(cls.__init__).parameters
    unknown = sorted(k for k in config if k not in params)
    if unknown:
        message = (
            f"{where}/{CONFIG_NAME} has keys {unknown} that {cls.__name__}() does not accept; "
            f"it accepts {[p for p in params if p != 'self']}"
        )
        if strict:
            raise InvalidModelError(message + " (pass strict=False to ignore them)")
        warnings.warn(message + "; they are ignored", UserWarning, stacklevel=4)
    init = {k: v for k, v in config.items() if k in params}
    init.update(kwargs)  # keyword overrides replace config values

    # 1. On the meta device: no memory, a budget from the weights file, every tensor checked.
    #    A constructor that must read tensor values is built on the CPU instead, under the same
    #    budget (so its memory is still bounded by the weights file's size).
    try:
        model = build_bounded(cls, init, where, CONFIG_NAME, header, "meta")
    except Exception as exc:
        if not needs_real_tensors(exc):
            raise
        model = build_bounded(cls, init, where, CONFIG_NAME, header, "cpu")
    missing, unexpected = check_against_header(model, header, weights, strict=strict)
    # 2. For real (its size is now bounded by the file's), then the weights.
    if any(t.is_meta for t in model.state_dict(keep_vars=True).values()):
        model = build_bounded(cls, init, where, CONFIG_NAME, header, "cpu")
    load_weights(model, weights)
    if missing or unexpected:
        warnings.warn(
            f"loaded {weights} non-strictly: missing {missing}, unexpected {unexpected}",
            UserWarning,
            stacklevel=4,
        )
    if device is not None or dtype is not None:
        model.to(device=device, dtype=dtype)
    model.eval()
    return model


def from_pretrained(pretrained_model_name_or_path: str | Path, **kwargs: Any) -> Any:
    """Load any vqkit model or prior saved by ``save_pretrained``, without naming its class.

    The class is the one ``config.json`` names (its ``_class_name``, e.g. ``"VQVAE"``), which
    must agree with the registered name recorded in ``model.safetensors`` (its ``vqkit_class``
    metadata); folders written before ``_class_name`` existed are loaded by that metadata alone.
    Folders saved by vqkit 0.1.0 record no class: load those with the class method
    (``vqkit.VQVAE.from_pretrained(...)``); the error lists the classes that fit the config.

    Args:
        pretrained_model_name_or_path: a local folder, or a Hub repo id such as ``"user/repo"``.
        **kwargs: as [`HubMixin.from_pretrained`][vqkit.HubMixin.from_pretrained].

    Raises:
        HubError: see ``HubMixin.from_pretrained``; also ``InvalidModelError`` when
            ``_class_name`` and the weights' ``vqkit_class`` name different classes.
        KeyError: ``_class_name`` or ``vqkit_class`` names no registered vqkit model or prior.

    Example::

        model = vqkit.from_pretrained("user/vqvae-celeba", device="cpu")
    """
    return _load(None, pretrained_model_name_or_path, dict(kwargs))


# ------------------------------------------------------------------------------- the mixin
class HubMixin(
    PyTorchModelHubMixin,
    library_name="vqkit",
    license="mit",
    pipeline_tag="unconditional-image-generation",
    tags=["vqkit"],
    repo_url="https://github.com/vqkit/vqkit",
    docs_url="https://vqkit.github.io/vqkit",
):
    """Mixin giving an ``nn.Module`` ``save_pretrained`` / ``from_pretrained`` / ``push_to_hub``.

    Subclass it next to ``nn.Module``, with optional card metadata as class keywords::

        class GatedPixelCNN(nn.Module, HubMixin, tags=["pixelcnn"], paper_url="..."): ...

    Constructor arguments must be JSON-serializable (numbers, strings, lists, ``{"type": ...}``
    dicts); an argument passed as a non-JSON object (a built module) makes ``save_pretrained``
    raise instead of writing a config that cannot rebuild the model.

    ``from_pretrained(repo_id_or_path, *, strict=True, device=None, dtype=None, revision=None,
    **overrides)``: keyword overrides replace config values; the model is returned in eval mode.
    """

    # ------------------------------------------------------------------ saving
    @property
    def hub_config(self) -> dict[str, Any]:
        """The constructor arguments written to ``config.json`` (beside its ``_`` records)."""
        # typed dict | DataclassInstance: vqkit classes take keyword arguments, never a dataclass
        config = dict(cast(dict[str, Any], self._hub_mixin_config or {}))
        for key in _NOT_CONFIG:
            config.pop(key, None)
        return config

    def _check_config_complete(self) -> dict[str, Any]:
        config = self.hub_config
        params = inspect.signature(type(self).__init__).parameters
        missing = [
            name
            for name, p in params.items()
            if name != "self"
            and name not in _NOT_CONFIG
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            and name not in config
        ]
        if missing:
            raise TypeError(
                f"{type(self).__name__} cannot be saved: argument(s) {missing} were not "
                "JSON-serializable (e.g. a built module), so config.json could not rebuild the "
                "model. Pass registry specs such as {'type': 'resnet', ...} instead."
            )
        return config

    def save_pretrained(
        self,
        save_directory: str | Path,
        *,
        config: object = None,
        repo_id: str | None = None,
        push_to_hub: bool = False,
        model_card_kwargs: dict[str, Any] | None = None,
        **push_to_hub_kwargs: Any,
    ) -> str | None:
        """Write ``config.json``, ``model.safetensors`` and ``README.md`` into ``save_directory``.

        The three files are written into a temporary folder first and moved into place, so an
        interrupted save never leaves a half-written file (an older model in the same folder is
        replaced file by file).

        Args:
            save_directory: folder to create or overwrite.
            config: not supported (the config is always the constructor arguments); must be None.
            repo_id: with ``push_to_hub=True``, the repository to push to.
            push_to_hub: also upload the folder (see [`push_to_hub`][vqkit.HubMixin.push_to_hub]).
            model_card_kwargs: extra fields for the generated card (``repo_id`` for the snippet).
        """
        if config is not None:
            raise TypeError(
                "vqkit models write their constructor arguments as config.json; "
                "save_pretrained(config=...) is not supported"
            )
        self._check_config_complete()
        save_directory = Path(save_directory)
        if save_directory.exists() and not save_directory.is_dir():
            raise NotADirectoryError(f"cannot save into {save_directory}: it is a file")
        save_directory.mkdir(parents=True, exist_ok=True)
        tmp = save_directory / f".tmp-save-{os.getpid()}-{threading.get_ident()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            self._save_pretrained(tmp)
            self.generate_model_card(**(model_card_kwargs or {})).save(tmp / "README.md")
            for name in (CONFIG_NAME, WEIGHTS_NAME, "README.md"):
                os.replace(tmp / name, save_directory / name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if push_to_hub:
            return self.push_to_hub(
                repo_id or save_directory.name,
                model_card_kwargs=model_card_kwargs,
                **push_to_hub_kwargs,
            )
        return None

    def _save_pretrained(self, save_directory: Path) -> None:
        from safetensors.torch import save_model

        import vqkit

        config = {
            CLASS_NAME_KEY: type(self).__name__,
            VERSION_KEY: vqkit.__version__,
            **self._check_config_complete(),
        }
        metadata = {"format": "pt", "vqkit_version": vqkit.__version__}
        registered = _registered_name(type(self))
        if registered is not None:
            metadata["vqkit_kind"], metadata["vqkit_class"] = registered
        (save_directory / CONFIG_NAME).write_text(json.dumps(config, sort_keys=True, indent=2))
        # the mixin is always combined with nn.Module (see the class docstring)
        save_model(
            cast(torch.nn.Module, self), str(save_directory / WEIGHTS_NAME), metadata=metadata
        )

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> str:
        """Save into a temporary folder and upload it as one commit to ``repo_id``.

        Keyword arguments are those of ``huggingface_hub.ModelHubMixin.push_to_hub`` (``private``,
        ``token``, ``branch``, ``create_pr``, ``commit_message``, ...). Returns the commit URL.
        """
        if kwargs.get("config") is not None:
            raise TypeError("push_to_hub(config=...) is not supported; see save_pretrained")
        card_kwargs = {"repo_id": repo_id, **(kwargs.pop("model_card_kwargs", None) or {})}
        return super().push_to_hub(repo_id, model_card_kwargs=card_kwargs, **kwargs)

    def generate_model_card(self, *args: Any, **kwargs: Any) -> ModelCard:
        """A card with the library, licence, pipeline tag, tags, loading snippets and the config."""
        info = self._hub_mixin_info
        cls = type(self)
        repo_id = kwargs.get("repo_id") or "path/or/user-repo"
        import vqkit

        public = getattr(vqkit, cls.__name__, None) is cls
        import_line = f"from {'vqkit' if public else cls.__module__} import {cls.__name__}"
        links = [
            f"- Code: {info.repo_url}" if info.repo_url else None,
            f"- Docs: {info.docs_url}" if info.docs_url else None,
            f"- Paper: {info.paper_url}" if info.paper_url else None,
        ]
        doc = inspect.getdoc(cls) or ""
        summary = doc.split("\n\n")[0].replace("\n", " ") if doc else cls.__name__
        config_json = json.dumps(self.hub_config, sort_keys=True, indent=2)
        content = "\n".join(
            [
                "---",
                info.model_card_data.to_yaml(),
                "---",
                "",
                f"# {cls.__name__} ({info.model_card_data.library_name})",
                "",
                summary,
                "",
                "## How to load",
                "",
                "```python",
                import_line,
                "",
                f'model = {cls.__name__}.from_pretrained("{repo_id}")  # strict, eval mode',
                "",
                "import vqkit",
                "",
                f'model = vqkit.from_pretrained("{repo_id}", device="cpu")  # any vqkit model',
                "```",
                "",
                "Weights are stored as `model.safetensors` (no pickle); `config.json` holds the "
                f"constructor arguments. Saved with vqkit {vqkit.__version__}. Licence: MIT.",
                "",
                "## Config",
                "",
                "```json",
                config_json,
                "```",
                "",
                *[line for line in links if line],
                "",
            ]
        )
        return ModelCard(content)

    # ----------------------------------------------------------------- loading
    @classmethod
    def from_pretrained(
        cls: type[M], pretrained_model_name_or_path: str | Path, **kwargs: Any
    ) -> M:
        """Build the model from ``config.json`` and load ``model.safetensors``, checking both.

        The folder or repo is treated as untrusted: ``config.json`` is parsed strictly; the model
        is built on the ``meta`` device first, under a budget of parameter bytes and modules
        implied by the weights file's size (a config asking for 10¹² codes fails at once); every
        tensor's name, shape and dtype in the safetensors header is compared with the model's;
        only then is the model built for real and loaded.

        Args:
            pretrained_model_name_or_path: a local folder written by ``save_pretrained``, or
                a Hub repo id such as ``"user/vqvae-celeba"``.
            **kwargs: ``strict`` (default True: missing, unexpected or unknown keys raise),
                ``device`` (where to put the model; ``map_location`` is an alias), ``dtype`` (a
                floating-point dtype to cast floating parameters and buffers to after loading),
                ``revision``, ``cache_dir``, ``token``, ``force_download``,
                ``local_files_only``; any other keyword overrides a config value.

        Raises:
            ModelNotFoundError: (a ``FileNotFoundError``) the folder, repo, revision,
                ``config.json`` or ``model.safetensors`` is missing (offline and not cached
                included); the message names the file and the folder or repo.
            HubConnectionError: (a ``ConnectionError``) the Hub could not be reached.
            InvalidModelError: (a ``ValueError``) a malformed, oversized or placement-carrying
                ``config.json``; a truncated, empty or non-safetensors weights file; keys, shapes
                or dtypes that do not match the model.
            KeyError: the config names a part that is not registered (for example a plugin's
                encoder whose package is not installed).
        """
        return _load(cls, pretrained_model_name_or_path, dict(kwargs))
