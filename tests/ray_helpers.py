"""A local Ray cluster for the engine tests: 2 CPUs, no dashboard, workers that can import the test helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
SRC = TESTS.parent / "src"


@pytest.fixture(scope="module")
def ray_cluster():
    """Start a local cluster for one test module and always shut it down (token authentication stays on)."""
    import ray

    path = os.pathsep.join([str(SRC), str(TESTS), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    context = ray.init(
        num_cpus=2,
        include_dashboard=False,
        logging_level="WARNING",
        runtime_env={"env_vars": {"PYTHONPATH": path}},
    )
    try:
        yield context
    finally:
        ray.shutdown()
