"""``vqkit report``: write a run folder's ``report.html`` again (metrics, pictures, curves, config).

``vqkit train`` writes the page at the end of every run; this command rewrites it, e.g. after
``vqkit sample`` added a picture to the folder or for a run trained before the page existed.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from vqkit.cli._common import FAILURE, CLIError, HelpFormatter, one_line, writable_path


def add_parser(sub: Any, parents: list[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    s = sub.add_parser(
        "report",
        parents=parents,
        help="write a run folder's report.html (metrics, pictures, loss curves, config)",
        description="Write one self-contained HTML page of a run folder: its metrics table, "
        "every picture (embedded), the loss curves and the run's config.",
        formatter_class=HelpFormatter,
    )
    s.add_argument("run", help="a run folder written by `vqkit train`")
    s.add_argument("--out", default=None, help="HTML path (default: <run>/report.html)")
    s.set_defaults(handler=run)
    return s


def run(args: argparse.Namespace) -> int:
    from vqkit.train.report import write_report

    folder = Path(args.run)
    if not folder.is_dir():
        what = "a file" if folder.exists() else "not there"
        raise CLIError(f"{args.run!r} is {what}; expected a run folder written by `vqkit train`")
    if not (folder / "config.json").is_file():
        raise CLIError(
            f"{args.run!r} is not a run folder written by `vqkit train` (no config.json)"
        )
    out = None
    if args.out is not None:
        out = Path(args.out)
        if out.suffix.lower() not in (".html", ".htm"):
            raise CLIError(f"--out {args.out!r}: expected an .html file name")
        writable_path(out, "--out")
        if out.is_dir():
            raise CLIError(f"--out {args.out!r} is a folder; give a file name such as report.html")
    try:
        path = write_report(folder, out=out)
    except (OSError, ValueError) as exc:
        raise CLIError(
            f"cannot write the report of {args.run!r} ({one_line(exc)})", FAILURE
        ) from exc
    print(f"wrote {path}")
    return 0
