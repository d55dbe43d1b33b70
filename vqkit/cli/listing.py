"""``vqkit list``: registered models and presets (or any registry kind) matching a pattern."""

from __future__ import annotations

import argparse
from typing import Any

from vqkit.cli._common import HelpFormatter


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    from vqkit._registry import KINDS

    li = sub.add_parser(
        "list",
        parents=parents,
        help="list models, presets, parts and datasets",
        description="List registered names (models and presets by default) matching a pattern.",
        formatter_class=HelpFormatter,
    )
    li.add_argument("pattern", nargs="?", default="*", help="shell wildcard, e.g. 'vqvae-*'")
    li.add_argument(
        "--kind", choices=(*KINDS, "all"), default="model", help="registry kind, or 'all'"
    )
    li.set_defaults(handler=run)
    return li


def run(args: argparse.Namespace) -> int:
    import vqkit
    from vqkit._registry import KINDS

    kinds = KINDS if args.kind == "all" else (args.kind,)
    for kind in kinds:
        names = vqkit.list_registered(kind, args.pattern)
        if args.kind == "all" and names:
            print(f"[{kind}]")
        for name in names:
            preset = vqkit.models.PRESETS.get(name) if kind == "model" else None
            print(f"{name:24s} {preset.description}" if preset else name)
    if args.kind in ("model", "all"):
        print(
            "datasets: digits, fashion-mnist[:FOLDER], mnist:FOLDER, toy:NAME, "
            "a folder of images, a .npy/.npz file"
        )
    return 0
