"""The ``vqkit`` command: ``vqkit train | sample | eval | push | list | report | view``.

``vqkit train`` with no arguments trains the ``vqvae-digits`` preset and its Gated PixelCNN prior
on scikit-learn's 8×8 digits (no download) and writes a run folder with pictures, metrics and the
model; ``vqkit train --config RUN/config.json`` replays a run exactly. ``vqkit <command> --help``
explains every option. Under ``torchrun`` the same command trains with DistributedDataParallel
(``torchrun --nproc_per_node 2 -m vqkit train``).

The command is a thin shell over the library: each subcommand's module (``train``, ``sample``,
``evaluate``, ``push``, ``listing``) holds its parser beside its handler, the shared options
(``--device``, ``--threads``, ``--debug``) are defined once in ``_common``, and the runs
themselves are ``vqkit.train.run.RunSpec`` objects run by ``vqkit.train.train_run``.
Every failure is one line on stderr: exit 2 for usage, 1 for a runtime failure, 130 for Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys

from vqkit.cli import evaluate, listing, push, report, sample, train, view
from vqkit.cli._common import (
    FAILURE,
    INTERRUPTED,
    USAGE,
    CLIError,
    Parser,
    compute_options,
    debug_options,
    missing_extra,
    one_line,
)

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``vqkit`` command."""
    from vqkit import __version__

    parser = Parser(
        prog="vqkit",
        description="Train, sample, evaluate and share discrete-latent generative models.",
        epilog="Run `vqkit train` with no arguments for a VQ-VAE + Gated PixelCNN on 8x8 digits.",
    )
    parser.add_argument("--version", action="version", version=f"vqkit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.set_defaults(threads=None, device=None, out_dir=None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    debug, compute = debug_options(), compute_options()
    train.add_parser(sub, [debug, compute])
    sample.add_parser(sub, [debug, compute])
    evaluate.add_parser(sub, [debug, compute])
    push.add_parser(sub, [debug])
    listing.add_parser(sub, [debug])
    report.add_parser(sub, [debug])
    view.add_parser(sub, [debug, compute])
    return parser


def _fail(command: str, message: str, code: int) -> int:
    print(f"vqkit {command}: error: {message}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    """Run the ``vqkit`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        if args.debug:
            raise
        resume = ""
        if args.command == "train" and args.out_dir is not None:
            resume = (
                f"; run the same command again to resume from the newest checkpoint in "
                f"{str(args.out_dir)!r}"
            )
        return _fail(args.command, f"interrupted{resume}", INTERRUPTED)
    except CLIError as exc:
        if args.debug:
            raise
        return _fail(args.command, one_line(exc), exc.code)
    except ImportError as exc:
        if args.debug:
            raise
        return _fail(args.command, missing_extra(exc), FAILURE)
    except Exception as exc:
        if args.debug:
            raise
        from vqkit.train.run import RunSpecError

        code = USAGE if isinstance(exc, RunSpecError) else FAILURE
        return _fail(args.command, one_line(exc), code)
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
