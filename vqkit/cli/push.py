"""``vqkit push``: upload a run's model (config.json, weights, model card) to the Hub."""

from __future__ import annotations

import argparse
from typing import Any

from vqkit.cli._common import FAILURE, CLIError, load_model, one_line


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    u = sub.add_parser(
        "push",
        parents=parents,
        help="upload a run's model to the Hugging Face Hub",
        description="Push the model of a run folder (config.json, model.safetensors, model card) "
        "to a Hub repository.",
    )
    u.add_argument("run", help="a run folder written by `vqkit train`")
    u.add_argument("repo_id", help="target repository, e.g. user/vqvae-digits")
    u.add_argument("--private", action="store_true", help="create the repository as private")
    u.add_argument("--token", default=None, help="Hub token (default: the logged-in one)")
    u.add_argument("--message", default="Upload vqkit model", help="commit message")
    u.set_defaults(handler=run)
    return u


def run(args: argparse.Namespace) -> int:
    owner, slash, name = args.repo_id.partition("/")
    if not (slash and owner and name) or "/" in name:
        raise CLIError(f"repo_id must be 'owner/name', got {args.repo_id!r}")
    model = load_model(args.run)
    try:
        url = model.push_to_hub(
            args.repo_id, private=args.private, token=args.token, commit_message=args.message
        )
    except Exception as exc:  # huggingface_hub's HTTP and network errors (OSError or httpx's)
        if not (isinstance(exc, OSError) or type(exc).__module__.startswith("httpx")):
            raise
        raise CLIError(
            f"cannot push to {args.repo_id!r} ({type(exc).__name__}: {one_line(exc)}); check "
            "the network and your token (`hf auth login`)",
            FAILURE,
        ) from None
    print(f"pushed {args.run} to {args.repo_id}: {url}")
    return 0
