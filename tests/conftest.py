"""Project-wide test settings: deterministic seeds, few threads, and no silent skips in CI."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest

try:  # torch is a core dependency, but keep conftest importable for a quick `pytest --collect-only`
    import torch
except ImportError:  # pragma: no cover
    torch = None


@pytest.fixture(autouse=True)
def _seed_everything():
    """Every test starts from the same random state."""
    random.seed(0)
    np.random.seed(0)  # noqa: NPY002 -- seeds legacy global-state users (e.g. third-party code)
    if torch is not None:
        torch.manual_seed(0)
    yield


def pytest_configure(config):
    if torch is not None:
        torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    os.environ.setdefault("MPLBACKEND", "Agg")
    # Tests never download: Hugging Face models are built from local directories only.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pytest_sessionfinish(session, exitstatus):
    """With CI=true a skipped test counts as a failure: CI may skip nothing."""
    if os.environ.get("CI", "").lower() not in ("1", "true", "yes"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None:
        return
    skipped = reporter.stats.get("skipped", [])
    if skipped and session.exitstatus == 0:
        reporter.write_line(f"CI=true: {len(skipped)} test(s) skipped; CI may skip nothing.", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
