"""What every subcommand shares: the common options, argument types and one-line errors.

Exit codes: 0 success, 2 a usage error (bad arguments, a missing path, data or a model spec that
cannot be used), 1 a failure while running (a corrupt file, an unreachable Hub, a missing
extra), 130 interrupted (Ctrl-C). Every failure is one line on stderr; ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

USAGE = 2
FAILURE = 1
INTERRUPTED = 130

#: Modules of the optional extras and the install that brings each.
EXTRAS = {
    "PIL": "pip install 'vqkit[data]'",
    "numpy": "pip install 'vqkit[data]'",
    "tqdm": "pip install 'vqkit[data]'",
    "sklearn": "pip install 'vqkit[data]'",
    "skimage": "pip install 'vqkit[metrics]'",
}


class CLIError(Exception):
    """A failure the CLI reports as one line with ``code`` as the exit status."""

    def __init__(self, message: str, code: int = USAGE) -> None:
        super().__init__(message)
        self.code = code


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (and a pointer to ``--help``)."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default only where there is one (not None, not a plain flag)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        hidden = action.default is None or action.default is False
        if hidden or action.default is argparse.SUPPRESS or "%(default)" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action)


# ---- argument types (each raises ArgumentTypeError: argparse turns it into a usage error) ----
def _argument(
    name: str,
    convert: Callable[[str], Any],
    ok: Callable[[Any], bool],
    expected: str,
    out_of_range: str | None = None,
) -> Callable[[str], Any]:
    """An argparse type: ``convert(text)``, then ``ok(value)``; each failure names ``expected``
    (``out_of_range`` for a value that parses but is refused)."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {out_of_range or expected}, got {text!r}")
        return value

    parse.__name__ = name
    return parse


positive_int = _argument("positive_int", int, lambda v: v >= 1, "a positive integer")
non_negative_int = _argument("non_negative_int", int, lambda v: v >= 0, "an integer >= 0")
positive_float = _argument(
    "positive_float",
    float,
    lambda v: math.isfinite(v) and v > 0,
    "a positive number",
    "a positive finite number",
)
non_negative_float = _argument(
    "non_negative_float",
    float,
    lambda v: math.isfinite(v) and v >= 0,
    "a number >= 0",
    "a finite number >= 0",
)


def fraction(low_open: bool) -> Callable[[str], float]:
    """A float in ``(0, 1]`` (``low_open``) or ``[0, 1)``."""
    if low_open:
        return _argument("fraction", float, lambda v: 0 < v <= 1, "a number in (0, 1]")
    return _argument("fraction", float, lambda v: 0 <= v < 1, "a number in [0, 1)")


def json_object(text: str) -> dict:
    """A JSON object given inline or as a path to a .json file."""
    path = Path(text)
    if text.endswith(".json"):
        if not path.is_file():
            raise argparse.ArgumentTypeError(f"no such JSON file: {text!r}")
        try:
            raw = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise argparse.ArgumentTypeError(f"cannot read {text!r}: {exc}") from None
    else:
        raw = text
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def image_size(text: str) -> list[int]:
    parts = text.lower().replace("x", ",").split(",")
    try:
        sizes = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"image size must be N or HxW, got {text!r}") from None
    if len(sizes) == 1:
        sizes *= 2
    if len(sizes) != 2 or min(sizes) <= 0:
        raise argparse.ArgumentTypeError(f"image size must be N or HxW, got {text!r}")
    return sizes


def device(text: str) -> str:
    """A device torch can parse and this machine has (``cuda`` needs a visible GPU)."""
    import torch

    try:
        parsed = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(
            f"not a device: {text!r} (expected cpu, cuda, cuda:N or mps)"
        ) from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(
                f"{text!r}: CUDA is not available on this machine (no GPU visible to torch "
                f"{torch.__version__}); use --device cpu"
            )
        count = torch.cuda.device_count()
        if parsed.index is not None and parsed.index >= count:
            raise argparse.ArgumentTypeError(f"{text!r}: this machine has {count} CUDA device(s)")
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise argparse.ArgumentTypeError(f"{text!r}: MPS is not available on this machine")
    elif parsed.type not in ("cpu", "cuda", "mps"):
        raise argparse.ArgumentTypeError(f"{text!r}: expected cpu, cuda, cuda:N or mps")
    return text


# ---- the shared options, defined once ------------------------------------------------------
def debug_options() -> argparse.ArgumentParser:
    """``--debug`` on every subcommand (SUPPRESS: absent, it leaves ``vqkit --debug`` alone)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show full tracebacks on errors",
    )
    return parent


def compute_options(device_help: str = "device to run on (default: cuda if any)"):
    """``--device`` and ``--threads``, for the subcommands that compute."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--device", type=device, default=None, help=device_help)
    parent.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="CPU threads for torch (default: torch's choice)",
    )
    return parent


def writable_path(path: Path, what: str) -> Path:
    """``path`` if it can be created: no part of it above is an existing file."""
    for parent in [path, *path.parents]:
        if parent.exists():
            if not parent.is_dir() and parent != path:
                raise CLIError(f"{what} {str(path)!r}: {str(parent)!r} is a file, not a folder")
            break
    return path


def one_line(exc: BaseException) -> str:
    """An exception as one line: its message (a KeyError's without quotes), newlines folded."""
    if isinstance(exc, KeyError) and exc.args:
        text = str(exc.args[0])
    else:
        text = str(exc) or type(exc).__name__
    if isinstance(exc, MemoryError) or "can't allocate memory" in text:
        return (
            "out of memory: the request is larger than this machine can hold; use a smaller "
            "-n / --num or --batch-size"
        )
    return " ".join(text.split())


def missing_extra(exc: ImportError) -> str:
    """The one-line message for an optional dependency that is not installed."""
    module = (exc.name or "").split(".")[0]
    install = EXTRAS.get(module)
    if install:
        return f"this needs the optional package {module!r}, which is not installed: {install}"
    return one_line(exc)


def load_model(source: str, *, model_class: str = "vqvae", device: str | None = None):
    """The model of a run folder, of a ``save_pretrained`` folder, or of a Hub repo ``owner/name``.

    A path that does not exist is a usage error naming it (not a Hub id complaint); a Hub repo
    that cannot be reached or read is a failure (exit 1) saying what to do.
    """
    import vqkit
    from vqkit.train import load_run_model

    path = Path(source)
    if path.is_dir():
        if (path / "config.json").is_file() and (path / "model").is_dir():
            try:
                return load_run_model(path, device=device)
            except Exception as exc:  # corrupt or tampered files: say which folder
                raise CLIError(
                    f"cannot load the model of the run {source!r} ({one_line(exc)})", FAILURE
                ) from exc
        if not (path / "config.json").is_file():
            raise CLIError(
                f"{source!r} is neither a run folder written by `vqkit train` nor a saved model "
                "folder (it has no config.json)"
            )
        if (path / "config.json").is_file() and (path / "vqvae").is_dir():
            raise CLIError(
                f"{source!r} is a run folder whose training has not finished (no model/)"
            )
    elif path.exists():
        raise CLIError(f"{source!r} is a file; expected a run folder, a model folder or a Hub id")
    elif not _looks_like_repo_id(source):
        raise CLIError(
            f"no such run or model folder: {source!r} (nor is it a Hub repo id 'owner/name')"
        )
    try:
        cls: Any = vqkit.get("model", model_class)  # a registered model class
    except KeyError as exc:
        raise CLIError(f"--model-class: {one_line(exc)}") from None
    if path.is_dir():
        try:
            model = cls.from_pretrained(source)
        except Exception as exc:
            raise CLIError(
                f"cannot load the model in {source!r} ({one_line(exc)})", FAILURE
            ) from exc
    else:
        model = _from_hub(cls, source)
    return model.to(device or "cpu").eval()


def _looks_like_repo_id(text: str) -> bool:
    owner, slash, name = text.partition("/")
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
    return (
        bool(slash and owner and name)
        and "/" not in name
        and not text.startswith((".", "~"))
        and set(owner + name) <= allowed
    )


def _from_hub(cls: Any, repo_id: str):
    """``cls.from_pretrained(repo_id)``: from the local cache if it is there, else from the Hub
    after a quick check that the Hub can be reached (instead of minutes of retries)."""
    import logging
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    logging.getLogger("huggingface_hub").setLevel(logging.ERROR)  # no retry chatter on stderr
    try:
        return cls.from_pretrained(repo_id, local_files_only=True)
    except (OSError, ValueError):
        pass  # not cached (or a stale cache): download
    endpoint = urlparse(constants.ENDPOINT)
    host, port = endpoint.hostname or "huggingface.co", endpoint.port or 443
    if constants.HF_HUB_OFFLINE:
        raise CLIError(
            f"{repo_id!r} is not in the local Hub cache and HF_HUB_OFFLINE is set; unset it to "
            "download, or pass a local folder",
            FAILURE,
        )
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as exc:
        raise CLIError(
            f"cannot reach the Hugging Face Hub at {host} ({one_line(exc)}) and {repo_id!r} is "
            "not in the local cache; check the network (or HF_ENDPOINT), or pass a local folder",
            FAILURE,
        ) from None
    try:
        return cls.from_pretrained(repo_id)
    except OSError as exc:  # huggingface_hub's HTTP errors are OSErrors
        raise CLIError(
            f"cannot load {repo_id!r} from the Hugging Face Hub ({type(exc).__name__}: "
            f"{one_line(exc)}); check the repo id, its access rights and your token",
            FAILURE,
        ) from None
