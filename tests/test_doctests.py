"""Docstring examples run as tests: every module of :mod:`loce` whose docstrings hold an example.

Modules are found by reading the sources (a ``>>>`` line), so a new module's examples run without being listed
here. Examples that need a real file on disk carry ``# doctest: +SKIP``; a module whose every example carries it
has nothing to run and is not a test case (CI may skip nothing); :func:`test_file_only_modules_are_few` keeps
their number in view.
"""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

import loce

SOURCE = Path(loce.__file__).parent


def _runnable(line: str) -> bool:
    return ">>> " in line and "doctest: +SKIP" not in line


def modules_with_examples(runnable: bool = True) -> list[str]:
    """Dotted names of the modules of ``loce`` whose source holds a ``>>>`` prompt (``runnable``: one without
    ``+SKIP``; else: only ``+SKIP`` ones)."""
    names = []
    for path in sorted(SOURCE.rglob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        if not any(">>> " in line for line in lines) or any(map(_runnable, lines)) != runnable:
            continue
        parts = path.relative_to(SOURCE.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


MODULES = modules_with_examples()
FILE_ONLY = modules_with_examples(runnable=False)


def test_the_examples_are_found():
    # the modules named in issue 14 and the one that held the only doctest before it
    for name in ("loce.localize.metrics", "loce.analysis.gmm", "loce.preprocessing", "loce.quiet", "loce"):
        assert name in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_pass(name):
    module = importlib.import_module(name)
    result = doctest.testmod(
        module, report=False, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    )
    assert result.attempted > 0, f"{name}: no example ran, though its source holds one without +SKIP"
    assert result.failed == 0, f"{name}: {result}"


def test_file_only_modules_are_few():
    # modules whose every example needs a real file; most modules must run theirs
    assert FILE_ONLY and not set(FILE_ONLY) & set(MODULES)
    assert len(FILE_ONLY) < len(MODULES) / 2, FILE_ONLY
