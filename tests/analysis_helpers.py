"""Synthetic LoCE sets with planted structure, shared by the tests of ``loce.analysis`` (imported explicitly)."""

from __future__ import annotations

import numpy as np


def brute_force_ranking(scores: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Columns of one row of scores by decreasing score, ties by lower key (reference for the kernels)."""
    return np.lexsort((key, -np.asarray(scores, dtype=np.float64)))


def brute_force_average_precision(ranked_relevant: np.ndarray) -> float:
    """AP of a full ranking given as a boolean relevance vector (NaN without relevant items)."""
    if not ranked_relevant.any():
        return float("nan")
    hits = np.cumsum(ranked_relevant)
    return float((hits[ranked_relevant] / (np.flatnonzero(ranked_relevant) + 1)).mean())


def clusters(
    centres: np.ndarray, sizes: list[int], spread: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs around ``centres`` (K x D) with ``sizes`` points each; returns (X, blob index)."""
    rng = np.random.default_rng(seed)
    X = np.concatenate(
        [c + rng.normal(scale=spread, size=(n, centres.shape[1])) for c, n in zip(centres, sizes)]
    )
    return X, np.repeat(np.arange(len(sizes)), sizes)


def planted_concepts(seed: int = 0, dim: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Four concepts: ``car`` and ``bus`` drawn from one distribution (confused), ``cat`` and ``dog`` apart."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, dim)) * 5
    X, blob = clusters(centres[[0, 0, 1, 2]], [30, 30, 30, 30], spread=1.0, seed=seed + 1)
    labels = np.array(["car", "bus", "cat", "dog"])[blob]
    return X, labels
