"""Docstring examples run as tests: every module of :mod:`loce` whose docstrings hold an example.

Modules are found by reading the sources (a ``>>>`` line), so a new module's examples run without being listed
here. Examples that need a real file on disk carry ``# doctest: +SKIP``; a module whose every example is skipped
is a recorded skip, not a pass.
"""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

import loce

SOURCE = Path(loce.__file__).parent


def modules_with_examples() -> list[str]:
    """Dotted names of the modules of ``loce`` whose source holds a ``>>>`` prompt."""
    names = []
    for path in sorted(SOURCE.rglob("*.py")):
        if ">>> " not in path.read_text(encoding="utf-8"):
            continue
        parts = path.relative_to(SOURCE.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


MODULES = modules_with_examples()


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
    if result.attempted == 0:
        pytest.skip(f"{name}: every example needs a real file (+SKIP)")
    assert result.failed == 0, f"{name}: {result}"
