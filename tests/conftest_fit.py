"""Helpers shared by the fitting tests (imported explicitly, not a pytest conftest).

``naive`` is ``benchmarks/naive_reference.py``: the paper's optimisation written naively (all channels upsampled,
autograd, ``torch.optim.AdamW``) plus the planted-problem generator. It shares no code with ``loce.fit``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "naive_reference.py"


def _load_naive():
    if "naive_reference" in sys.modules:
        return sys.modules["naive_reference"]
    spec = importlib.util.spec_from_file_location("naive_reference", _PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["naive_reference"] = module
    spec.loader.exec_module(module)
    return module


naive = _load_naive()
