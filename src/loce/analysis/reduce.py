"""Low-dimensional spaces of LoCEs: PCA (default) and UMAP (the paper's figures; optional, imported lazily)."""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass, field

import numpy as np

from loce.analysis.distances import normalize_rows
from loce.analysis.errors import AnalysisError, TooFewSamplesError
from loce.analysis.inputs import as_vectors
from loce.quiet import note_once

REDUCERS = ("pca", "umap")


@dataclass
class Reducer:
    """A fitted reduction of LoCEs to ``n_components`` dimensions.

    Attributes:
        method: ``"pca"`` or ``"umap"``.
        n_components: output dimensions.
        normalize: whether rows are unit-normalised before the reduction (cosine geometry).
        model: the fitted sklearn ``PCA`` or ``umap.UMAP``.
        explained_variance_ratio: per component, for PCA (None for UMAP).
    """

    method: str
    n_components: int
    normalize: bool
    model: object = field(repr=False)
    explained_variance_ratio: np.ndarray | None = None

    def transform(self, X: object) -> np.ndarray:
        """Map LoCEs (N x D) into the fitted space (N x n_components)."""
        arr = as_vectors(X, dtype=np.float64)
        if self.normalize:
            arr = normalize_rows(arr)
        return np.asarray(self.model.transform(arr), dtype=np.float64)


def fit_reducer(
    X: object,
    method: str = "pca",
    n_components: int = 10,
    *,
    normalize: bool = False,
    seed: int = 0,
    **options: object,
) -> tuple[Reducer, np.ndarray]:
    """Fit a reducer on ``X`` and return it with the embedded ``X``.

    Args:
        X: N x D LoCEs.
        method: ``"pca"`` or ``"umap"`` (needs ``pip install "loce[umap]"``; its first import compiles for ~20 s).
        n_components: output dimensions (PCA: clipped to ``min(N, D)``).
        normalize: unit-normalise rows first (cosine geometry; zero rows stay zero).
        seed: random state.
        options: extra keyword arguments for ``PCA`` / ``umap.UMAP`` (e.g. ``n_neighbors=15``).

    Example:
        >>> reducer, Y = fit_reducer(np.random.default_rng(0).normal(size=(20, 5)), n_components=2)
        >>> Y.shape
        (20, 2)
    """
    arr = as_vectors(X, dtype=np.float64)
    if method not in REDUCERS:
        raise AnalysisError(f"unknown reducer {method!r}; use one of {', '.join(REDUCERS)}.")
    if normalize:
        arr = normalize_rows(arr)
    n, d = arr.shape
    if method == "pca":
        from sklearn.decomposition import PCA

        if n < 2:
            raise TooFewSamplesError(f"PCA needs at least 2 LoCEs, got {n}.")
        k = int(min(n_components, n, d))
        model = PCA(n_components=k, random_state=seed, **options)
        embedded = model.fit_transform(arr)
        return Reducer("pca", k, normalize, model, model.explained_variance_ratio_.copy()), embedded
    if "umap" not in sys.modules:
        note_once(
            "umap-compile", "UMAP compiles its numba code on first use in a process (about 20 s or more)."
        )
    try:
        import umap
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError('UMAP needs the "umap" extra: pip install "loce[umap]"') from exc
    if n < 4:
        raise TooFewSamplesError(f"UMAP needs at least 4 LoCEs, got {n}.")
    options.setdefault("n_neighbors", int(min(15, n - 1)))
    model = umap.UMAP(n_components=n_components, random_state=seed, **options)
    with (
        warnings.catch_warnings()
    ):  # "n_jobs value 1 overridden to 1 by setting random_state": expected, seeded
        warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
        embedded = model.fit_transform(arr)
    return Reducer("umap", n_components, normalize, model), np.asarray(embedded, dtype=np.float64)
