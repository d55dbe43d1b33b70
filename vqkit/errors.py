"""The errors vqkit raises while saving, finding or loading a model.

Each is a subclass of ``HubError`` and of the built-in exception a caller would expect
(``FileNotFoundError``, ``ConnectionError``, ``ValueError``), so ``except HubError`` catches them
all and older ``except FileNotFoundError`` code keeps working. Their messages are one line saying
what is wrong and what to do; a command-line tool prints them as they are.
"""

from __future__ import annotations

__all__ = ["HubConnectionError", "HubError", "InvalidModelError", "ModelNotFoundError"]


class HubError(Exception):
    """Base of every error vqkit raises while saving, finding or loading a model.

    Its message is one line saying what is wrong and what to do; the CLI prints it as is.
    """


class ModelNotFoundError(HubError, FileNotFoundError):
    """The folder, the Hub repo, its revision or one of its files does not exist (or is private
    and no token was given, or is not in the cache while offline)."""


class HubConnectionError(HubError, ConnectionError):
    """The Hugging Face Hub could not be reached (no network, a timeout, a server error)."""


class InvalidModelError(HubError, ValueError):
    """``config.json`` or ``model.safetensors`` is malformed, tampered with or does not match."""
