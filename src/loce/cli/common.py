"""Helpers shared by the subcommands: help formatting and common option groups."""

from __future__ import annotations

import argparse


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the examples in epilogs as written and shows defaults."""


def add_command(subparsers, name: str, *, help: str, description: str, examples: str) -> argparse.ArgumentParser:
    """Add a subcommand parser with a description and an ``examples:`` epilog."""
    return subparsers.add_parser(
        name,
        help=help,
        description=description,
        epilog="examples:\n" + examples.rstrip() + "\n",
        formatter_class=HelpFormatter,
    )


def split_list(value: str | None) -> list[str] | None:
    """Parse a comma-separated option value (``"a,b, c"`` -> ``["a", "b", "c"]``); ``None`` stays ``None``."""
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]
