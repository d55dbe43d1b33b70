"""Hugging Face Hub glue: ``config.json`` + ``model.safetensors`` + a model card, strict loading.

Every vqkit model and standalone prior inherits :class:`HubMixin`, which is
``huggingface_hub.PyTorchModelHubMixin`` with vqkit's defaults:

- ``config.json`` is exactly the constructor arguments (minus ``device`` / ``dtype``), so
  ``Model(**json.load(open("config.json")))`` rebuilds the architecture;
- weights are ``model.safetensors`` only: nothing is ever unpickled, there is no ``.bin`` fallback;
- loading is strict by default; a missing file, a missing or unexpected key, or a tensor of the
  wrong shape raises an error naming the file (and the key);
- the generated model card names the library, the tags, how to load the model, and the config.
"""

from __future__ import annotations

import inspect
import json
import os
import warnings
from pathlib import Path
from typing import Any, TypeVar

from huggingface_hub import ModelCard, PyTorchModelHubMixin, constants, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError

__all__ = ["CONFIG_NAME", "WEIGHTS_NAME", "HubMixin", "load_safetensors_strict"]

CONFIG_NAME = constants.CONFIG_NAME  # "config.json"
WEIGHTS_NAME = constants.SAFETENSORS_SINGLE_FILE  # "model.safetensors"
_NOT_CONFIG = ("device", "dtype")  # constructor arguments that describe placement, not the model

M = TypeVar("M", bound="HubMixin")


class HubMixin(
    PyTorchModelHubMixin,
    library_name="vqkit",
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

    ``from_pretrained(repo_id_or_path, *, strict=True, map_location="cpu", revision=None,
    **overrides)``: keyword overrides replace config values; the model is returned in eval mode.
    """

    # ------------------------------------------------------------------ saving
    @property
    def hub_config(self) -> dict[str, Any]:
        """The constructor arguments written to ``config.json``."""
        config = dict(self._hub_mixin_config or {})
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
        config: dict | None = None,
        repo_id: str | None = None,
        push_to_hub: bool = False,
        model_card_kwargs: dict[str, Any] | None = None,
        **push_to_hub_kwargs: Any,
    ) -> str | None:
        """Write ``config.json``, ``model.safetensors`` and ``README.md`` into ``save_directory``.

        Args:
            save_directory: folder to create or overwrite.
            config: not supported (the config is always the constructor arguments); must be None.
            repo_id: with ``push_to_hub=True``, the repository to push to.
            push_to_hub: also upload the folder (see :meth:`push_to_hub`).
            model_card_kwargs: extra fields for the generated card (``repo_id`` for the snippet).
        """
        if config is not None:
            raise TypeError(
                "vqkit models write their constructor arguments as config.json; "
                "save_pretrained(config=...) is not supported"
            )
        self._check_config_complete()
        super().save_pretrained(save_directory, model_card_kwargs=model_card_kwargs)
        if push_to_hub:
            return self.push_to_hub(
                repo_id or Path(save_directory).name,
                model_card_kwargs=model_card_kwargs,
                **push_to_hub_kwargs,
            )
        return None

    def _save_pretrained(self, save_directory: Path) -> None:
        from safetensors.torch import save_model

        config = self._check_config_complete()
        (save_directory / CONFIG_NAME).write_text(json.dumps(config, sort_keys=True, indent=2))
        save_model(self, str(save_directory / WEIGHTS_NAME), metadata={"format": "pt"})

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
        """A card with the library name, tags, a loading snippet and the config."""
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
                "```",
                "",
                "Weights are stored as `model.safetensors` (no pickle); `config.json` holds the "
                "constructor arguments.",
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
        """Build the model from ``config.json`` and load ``model.safetensors``.

        Args:
            pretrained_model_name_or_path: a local folder written by :meth:`save_pretrained`, or
                a Hub repo id such as ``"user/vqvae-celeba"``.
            **kwargs: ``strict`` (default True), ``map_location`` (default ``"cpu"``),
                ``revision``, ``cache_dir``, ``token``, ``force_download``,
                ``local_files_only``; any other keyword overrides a config value.

        Raises:
            FileNotFoundError: ``config.json`` or ``model.safetensors`` is missing (the message
                names the file and the folder or repo).
            KeyError: the config names a part that is not registered (for example a plugin's
                encoder whose package is not installed).
            ValueError: keys or tensor shapes in the weights do not match the model.
        """
        try:
            return super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        except EntryNotFoundError as exc:  # the config download (weights errors are rewritten)
            where = _describe(str(pretrained_model_name_or_path), kwargs.get("revision"))
            raise FileNotFoundError(
                f"{CONFIG_NAME} not found in {where} ({type(exc).__name__}: {exc})"
            ) from exc

    @classmethod
    def _from_pretrained(
        cls: type[M],
        *,
        model_id: str,
        revision: str | None,
        cache_dir: Any,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        config: dict | None = None,
        map_location: str = "cpu",
        strict: bool = True,
        **model_kwargs: Any,
    ) -> M:
        where = _describe(model_id, revision)
        if config is None:
            raise FileNotFoundError(
                f"{CONFIG_NAME} not found in {where}: a vqkit model needs it to rebuild the "
                "architecture (it holds the constructor arguments)"
            )
        params = inspect.signature(cls.__init__).parameters
        unknown = sorted(k for k in config if k not in params)
        if unknown:
            message = (
                f"{where}/{CONFIG_NAME} has keys {unknown} that {cls.__name__}() does not accept; "
                f"it accepts {[p for p in params if p != 'self']}"
            )
            if strict:
                raise ValueError(message + " (pass strict=False to ignore them)")
            warnings.warn(message + "; they are ignored", UserWarning, stacklevel=4)
        try:
            model = cls(**model_kwargs)
        except KeyError as exc:
            reason = exc.args[0] if exc.args else exc
            raise KeyError(
                f"cannot build {cls.__name__} from {where}/{CONFIG_NAME}: {reason}"
            ) from exc
        model_file = _resolve_weights(
            model_id,
            revision=revision,
            cache_dir=cache_dir,
            force_download=force_download,
            local_files_only=local_files_only,
            token=token,
        )
        load_safetensors_strict(model, model_file, strict=strict)
        if str(map_location) != "cpu":
            model.to(map_location)
        model.eval()
        return model


def _describe(model_id: str, revision: str | None) -> str:
    if os.path.isdir(model_id):
        return f"local folder {model_id!r}"
    return f"Hub repo {model_id!r}" + (f" (revision {revision!r})" if revision else "")


def _resolve_weights(model_id: str, *, revision: str | None, **download_kwargs: Any) -> str:
    where = _describe(model_id, revision)
    if os.path.isdir(model_id):
        path = os.path.join(model_id, WEIGHTS_NAME)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{WEIGHTS_NAME} not found in {where} (expected {path})")
        return path
    try:
        return hf_hub_download(
            repo_id=model_id, filename=WEIGHTS_NAME, revision=revision, **download_kwargs
        )
    except EntryNotFoundError as exc:  # also LocalEntryNotFoundError (offline, not cached)
        raise FileNotFoundError(
            f"{WEIGHTS_NAME} not found in {where}; vqkit loads safetensors weights only "
            f"({type(exc).__name__}: {exc})"
        ) from exc


def load_safetensors_strict(model: Any, model_file: str | os.PathLike, *, strict: bool = True):
    """Load ``model_file`` into ``model``, checking keys and shapes first.

    Args:
        model: an ``nn.Module``.
        model_file: a safetensors file.
        strict: raise on missing or unexpected keys (shape mismatches always raise).

    Raises:
        ValueError: a tensor's shape differs, or (strict) keys are missing or unexpected; the
            message names the file and the keys.
    """
    from safetensors import safe_open
    from safetensors.torch import load_model

    with safe_open(str(model_file), framework="pt") as f:
        file_shapes = {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}  # noqa: SIM118
    expected = model.state_dict()
    mismatched = [
        f"{key}: file {file_shapes[key]} vs model {tuple(expected[key].shape)}"
        for key in sorted(file_shapes)
        if key in expected and file_shapes[key] != tuple(expected[key].shape)
    ]
    if mismatched:
        raise ValueError(f"shape mismatch loading {model_file}: " + "; ".join(mismatched))
    missing, unexpected = load_model(model, str(model_file), strict=False)
    if strict and (missing or unexpected):
        parts = []
        if missing:
            parts.append(f"missing key(s) {sorted(missing)}")
        if unexpected:
            parts.append(f"unexpected key(s) {sorted(unexpected)}")
        raise ValueError(
            f"{model_file} does not match {type(model).__name__}: {'; '.join(parts)} "
            "(pass strict=False to load anyway)"
        )
    if missing or unexpected:
        warnings.warn(
            f"loaded {model_file} non-strictly: missing {sorted(missing)}, "
            f"unexpected {sorted(unexpected)}",
            UserWarning,
            stacklevel=2,
        )
    return model
