"""The ``loce`` command: a thin face over the library's functions.

Each subcommand lives in its own module of :mod:`loce.cli` and exposes ``register(subparsers)``, which adds its
parser (with examples in the epilog) and sets ``func`` to a function taking the parsed arguments and returning
an exit code. Errors that ``loce`` raises on purpose (:class:`loce.errors.LoceError`) are printed as one line,
never as a traceback; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from loce import __version__
from loce.errors import LoceError

# Subcommand modules, in the order `loce --help` lists them (the pipeline's order).
COMMAND_MODULES: list[str] = [
    "loce.cli.demo",
    "loce.cli.scenes",
    "loce.cli.layers",
    "loce.cli.fit",
    "loce.cli.embed",
    "loce.cli.info",
    "loce.cli.analyze",
    "loce.cli.compare_methods",
    "loce.cli.location",
    "loce.cli.localize",
    "loce.cli.cbm",
    "loce.cli.report",
]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``loce`` command with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="loce",
        description=(
            "Local Concept Embeddings: fit one embedding per (image, concept) from a frozen vision model's "
            "activations, store them, analyse their distributions and report the results."
        ),
        epilog="Run `loce COMMAND --help` for the options and examples of each command.",
    )
    parser.add_argument("--version", action="version", version=f"loce {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``loce`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except LoceError as exc:
        if args.debug:
            raise
        print(f"loce: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "loce: interrupted; everything written so far is kept, run the same command again to resume.",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
