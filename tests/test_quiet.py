"""Quiet by default: no pybullet banner on stdout, no UMAP n_jobs warning, one note while UMAP compiles."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np

from loce.analysis.reduce import fit_reducer


def test_pybullet_banner_does_not_reach_stdout():
    code = (
        "from loce.scenes.render import _pybullet\np = _pybullet()\nc = p.connect(p.DIRECT)\nprint('after')\n"
    )
    raw = subprocess.run(
        [sys.executable, "-c", "import pybullet"], capture_output=True, text=True, check=True
    )
    assert "pybullet build time" in raw.stdout + raw.stderr  # the banner exists: the check is not vacuous
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == "after\n" and "pybullet" not in out.stderr


def test_umap_is_quiet_but_notes_compilation_once(capsys):
    first_import = "umap" not in sys.modules
    X = np.random.default_rng(0).normal(size=(40, 5))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit_reducer(X, method="umap", seed=0)
        fit_reducer(X, method="umap", seed=1)
    assert not [w for w in caught if "n_jobs" in str(w.message)]
    err = capsys.readouterr().err
    assert err.count("loce: note: UMAP compiles its numba code on first use") == (1 if first_import else 0)
