"""The ``loce`` command: a thin face over the library's functions.

Each subcommand lives in its own module of :mod:`loce.cli`: ``NAME``, ``HELP``, ``DESCRIPTION``, ``EXAMPLES``,
``add_arguments(parser)`` and ``run(args) -> exit code`` (registered by :func:`loce.cli.common.register_command`;
the conventions they share are in :mod:`loce.cli.common`). Errors are printed as one line (``loce: error: ...``), never as a traceback: the errors ``loce``
raises on purpose (:class:`loce.errors.LoceError`), operating-system errors (a full disk, a read-only directory,
naming the file) and, as a last resort, any other exception (with its type). The global options ``--debug`` (which shows
the traceback) and ``--jobs`` are accepted before and after the command (and after ``cbm train`` / ``cbm eval``). Output piped into ``head`` ends quietly when the reader goes away.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys

from loce import __version__
from loce.cli.common import register_command
from loce.errors import LoceError

# Subcommand modules, in the order `loce --help` lists them (the pipeline's order).
COMMAND_MODULES: list[str] = [
    "loce.cli.demo",
    "loce.cli.scenes",
    "loce.cli.layers",
    "loce.cli.fit",
    "loce.cli.embed",
    "loce.cli.info",
    "loce.cli.check",
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
    _add_global_options(parser, default=False)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in COMMAND_MODULES:
        register_command(sub, importlib.import_module(name))
    for command in command_parsers(parser):  # global options are accepted after the command too
        _add_global_options(command, default=argparse.SUPPRESS)
    return parser


def command_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every (sub)command parser below ``parser``: ``fit``, ..., ``cbm``, ``cbm train``, ``cbm eval``."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                found += [child, *command_parsers(child)]
    return found


def _add_global_options(parser: argparse.ArgumentParser, default) -> None:
    parser.add_argument(
        "--debug", action="store_true", default=default, help="show full tracebacks on errors"
    )
    parser.add_argument(
        "--jobs",
        dest="read_jobs",
        metavar="JOBS",
        default=None if default is False else default,
        help="comma-separated jobs to read where several jobs of a run hold the same LoCEs",
    )


def one_line(text: str) -> str:
    """``text`` on one line (newlines and runs of spaces collapsed), for ``loce: error: ...``."""
    return " ".join(str(text).split())


def _quiet_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _error(message: str) -> int:
    with contextlib.suppress(BrokenPipeError, OSError, ValueError):
        print(f"loce: error: {one_line(message)}", file=sys.stderr)
    return 1


def os_error_message(exc: OSError) -> str:
    """A sentence for an operating-system error: the file, the cause, and what to do for the common ones."""
    import errno

    where = f"{exc.filename}: " if exc.filename else ""
    reason = exc.strerror or str(exc) or type(exc).__name__
    hint = {
        errno.ENOSPC: "free some space and run the same command again (a run resumes where it stopped)",
        errno.EACCES: "check the file permissions or choose another --out directory",
        errno.EROFS: "the file system is read-only; choose another --out directory",
        errno.ENOTDIR: "a path component is a file, not a directory",
        errno.EISDIR: "a directory was given where a file is expected",
    }.get(exc.errno, "")
    return f"{where}{reason}" + (f"; {hint}" if hint else "")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``loce`` console script."""
    from loce.cli.common import split_list
    from loce.store.store import preferred_jobs

    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    try:
        with preferred_jobs(split_list(args.read_jobs)):
            code = int(args.func(args) or 0)
        sys.stdout.flush()
        return code
    except BrokenPipeError:  # `loce info RUN | head`: the reader left; stop quietly like other tools
        _quiet_stdout()
        return 141
    except KeyboardInterrupt:
        print(
            "loce: interrupted; everything written so far is kept, run the same command again to resume.",
            file=sys.stderr,
        )
        return 130
    except LoceError as exc:
        if args.debug:
            raise
        return _error(str(exc))
    except OSError as exc:
        if args.debug:
            raise
        return _error(os_error_message(exc))
    except Exception as exc:  # a bug or an unforeseen input: still one line, the traceback with --debug
        if args.debug:
            raise
        return _error(
            f"unexpected {type(exc).__name__}: {exc} (run again with --debug for the traceback, and please "
            "report it)"
        )


if __name__ == "__main__":
    sys.exit(main())
