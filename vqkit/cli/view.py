"""``vqkit view``: the interactive viewer of a trained discrete model, served on localhost.

Input | reconstruction | difference | code indices of dataset images or an uploaded one, code
editing by clicking the code map, the code atlas and usage histogram, prior samples and
completions (``vqkit.viewer``). Needs the ``viewer`` extra (Gradio, matplotlib).
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from typing import Any

from vqkit.cli._common import FAILURE, CLIError, HelpFormatter, one_line, positive_int

#: The one line printed when the viewer's optional packages are missing.
MISSING = (
    'vqkit view needs the optional packages gradio and matplotlib: pip install "vqkit[viewer]"'
)


def port(text: str) -> int:
    """A TCP port in [1, 65535]."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port in [1, 65535], got {text!r}")
    return value


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    s = sub.add_parser(
        "view",
        parents=parents,
        help="explore a trained discrete model in the browser (codes, edits, atlas, samples)",
        description="Serve a local web app for a run folder's (or saved model folder's) model: "
        "dataset or uploaded images beside their reconstruction, difference and code map; edit "
        "codes by clicking; the code atlas and usage histogram; prior samples and completions. "
        'Needs pip install "vqkit[viewer]".',
        formatter_class=HelpFormatter,
    )
    s.add_argument(
        "source", help="a run folder written by `vqkit train` or a save_pretrained folder"
    )
    s.add_argument(
        "--data",
        default=None,
        help="dataset spec to show (default: the run's own held-out data; required for a model "
        "folder), e.g. digits, fashion-mnist, a folder of images",
    )
    s.add_argument("--port", type=port, default=7860, help="port to serve on")
    s.add_argument("--host", default="127.0.0.1", help="address to serve on")
    s.add_argument(
        "--max-images",
        type=positive_int,
        default=10000,
        help="dataset images that enter the usage counts and the atlas's patches",
    )
    s.set_defaults(handler=run)
    return s


def viewer_installed() -> bool:
    """Whether gradio and matplotlib can be imported."""
    return all(importlib.util.find_spec(name) is not None for name in ("gradio", "matplotlib"))


def run(args: argparse.Namespace) -> int:
    if not viewer_installed():
        raise CLIError(MISSING, FAILURE)
    path = Path(args.source)
    if not path.exists():
        raise CLIError(f"no such run or model folder: {args.source!r}")
    if not path.is_dir():
        raise CLIError(f"{args.source!r} is a file; expected a run folder or a saved model folder")
    if not args.host or any(c.isspace() for c in args.host):
        raise CLIError(f"--host: expected an address such as 127.0.0.1, got {args.host!r}")
    from vqkit.viewer.app import build_app, launch
    from vqkit.viewer.state import load_viewer_state

    try:
        state = load_viewer_state(path, args.data, device=args.device, max_images=args.max_images)
    except (FileNotFoundError, ValueError, TypeError, KeyError) as exc:
        raise CLIError(one_line(exc)) from exc
    app = build_app(state)

    def ready() -> None:
        print(
            f"vqkit view: {state.name} ({state.describe()['class']}, K = {state.codebook_size}, "
            f"{len(state)} images) on http://{args.host}:{args.port} (Ctrl-C to stop)",
            flush=True,
        )

    try:
        launch(app, host=args.host, port=args.port, block=True, on_ready=ready)
    except OSError as exc:
        raise CLIError(
            f"cannot serve on {args.host}:{args.port} ({one_line(exc)}); choose another --port",
            FAILURE,
        ) from exc
    return 0
