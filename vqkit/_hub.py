"""Hugging Face Hub glue: ``config.json`` + ``model.safetensors`` + model card, strict loading.

Every vqkit model and standalone prior inherits :class:`HubMixin`, which is
``huggingface_hub.PyTorchModelHubMixin`` with vqkit's defaults: loading is strict, weights are
safetensors only (never a pickle fallback), and the card names the library.
"""

from __future__ import annotations

import os
from typing import Any

from huggingface_hub import PyTorchModelHubMixin, constants, hf_hub_download

__all__ = ["HubMixin"]


class HubMixin(
    PyTorchModelHubMixin,
    library_name="vqkit",
    tags=["vqkit"],
    repo_url="https://github.com/vqkit/vqkit",
    docs_url="https://vqkit.github.io/vqkit",
):
    """Mixin giving a module ``save_pretrained`` / ``from_pretrained`` / ``push_to_hub``.

    The constructor's JSON-serializable arguments become ``config.json``; loading is strict.
    """

    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        revision: str | None,
        cache_dir: Any,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        map_location: str = "cpu",
        strict: bool = True,
        **model_kwargs: Any,
    ):
        model = cls(**model_kwargs)
        if os.path.isdir(model_id):
            model_file = os.path.join(model_id, constants.SAFETENSORS_SINGLE_FILE)
        else:
            model_file = hf_hub_download(
                repo_id=model_id,
                filename=constants.SAFETENSORS_SINGLE_FILE,
                revision=revision,
                cache_dir=cache_dir,
                force_download=force_download,
                token=token,
                local_files_only=local_files_only,
            )
        return cls._load_as_safetensor(model, model_file, map_location, strict)
