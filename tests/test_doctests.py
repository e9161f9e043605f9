"""Docstring examples run as tests, module by module (doctests of :mod:`loce.localize.metrics` for now)."""

from __future__ import annotations

import doctest

import pytest

import loce.localize.metrics

MODULES = [loce.localize.metrics]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_docstring_examples_pass(module):
    result = doctest.testmod(
        module, report=False, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    )
    assert result.attempted > 0 and result.failed == 0, f"{module.__name__}: {result}"
