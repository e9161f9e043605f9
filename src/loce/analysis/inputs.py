"""Validation of analysis inputs and small helpers on (vectors, labels).

Every analysis takes ``X`` (N x D LoCEs) and ``labels`` (N concept names). This module turns them into
checked arrays with one clear error per problem, and groups LoCEs by concept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from loce.analysis.errors import AnalysisError, SingleConceptError, TooFewSamplesError


def as_vectors(X: object, *, dtype: type = np.float32, name: str = "X") -> np.ndarray:
    """Return ``X`` as a C-contiguous 2-D float array, checking shape and finiteness.

    Args:
        X: anything ``np.asarray`` accepts (a torch tensor works too), shape N x D.
        dtype: float dtype of the result.
        name: how the error messages call the array.

    Example:
        >>> as_vectors([[1, 2], [3, 4]]).dtype
        dtype('float32')
    """
    if hasattr(X, "detach"):  # torch tensor
        X = X.detach().cpu().numpy()
    arr = np.ascontiguousarray(np.asarray(X, dtype=dtype))
    if arr.ndim != 2:
        raise AnalysisError(f"{name} must be a 2-D array (N LoCEs x D dimensions), got shape {arr.shape}.")
    if arr.shape[0] == 0:
        raise TooFewSamplesError(f"{name} holds no LoCEs; select a layer/concepts that have fitted LoCEs.")
    if arr.shape[1] == 0:
        raise AnalysisError(f"{name} has zero dimensions (shape {arr.shape}).")
    if not np.isfinite(arr).all():
        bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))
        raise AnalysisError(
            f"{name} has non-finite values (NaN or inf) in {bad.size} rows, first rows {bad[:5].tolist()}; "
            "drop them (e.g. rows whose fit failed) before the analysis."
        )
    return arr


def as_labels(labels: object, n: int) -> np.ndarray:
    """Return ``labels`` as a 1-D array of ``str`` of length ``n``.

    Example:
        >>> as_labels(["car", "bus"], 2)
        array(['car', 'bus'], dtype='<U3')
    """
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise AnalysisError(f"labels must be 1-D (one concept name per LoCE), got shape {arr.shape}.")
    if arr.shape[0] != n:
        raise AnalysisError(f"labels has {arr.shape[0]} entries but there are {n} LoCEs; they must match.")
    return arr.astype(str)


@dataclass(frozen=True)
class ConceptIndex:
    """LoCEs grouped by concept.

    Attributes:
        concepts: the K concept names, sorted.
        codes: N ints, the concept index of each LoCE.
        counts: K ints, LoCEs per concept.
        order: N ints, a stable permutation that sorts the LoCEs by concept (original order kept within one).
        starts: K ints, where each concept's block starts in ``order``.
    """

    concepts: np.ndarray
    codes: np.ndarray
    counts: np.ndarray
    order: np.ndarray
    starts: np.ndarray

    @classmethod
    def from_labels(cls, labels: np.ndarray) -> ConceptIndex:
        """Group ``labels`` (1-D str array)."""
        concepts, codes, counts = np.unique(labels, return_inverse=True, return_counts=True)
        order = np.argsort(codes, kind="stable")
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        return cls(concepts, codes.astype(np.int64), counts.astype(np.int64), order, starts)

    @property
    def n_concepts(self) -> int:
        return int(self.concepts.size)

    def members(self, k: int) -> np.ndarray:
        """Original indices of the LoCEs of concept ``k`` (ascending)."""
        return self.order[self.starts[k] : self.starts[k] + self.counts[k]]

    def require(self, min_count: int, analysis: str, *, min_concepts: int = 1) -> None:
        """Raise a clear error when a concept has fewer than ``min_count`` LoCEs or there are too few concepts."""
        if self.n_concepts < min_concepts:
            raise SingleConceptError(
                f"{analysis} compares concepts but the LoCEs carry only {self.n_concepts} concept(s) "
                f"({', '.join(self.concepts.tolist())}); it needs at least {min_concepts}."
            )
        small = self.counts < min_count
        if small.any():
            listed = ", ".join(
                f"{c!r} ({n})" for c, n in zip(self.concepts[small].tolist(), self.counts[small].tolist())
            )
            raise TooFewSamplesError(
                f"{analysis} needs at least {min_count} LoCEs per concept; too few for {listed}. "
                f"Drop them with loce.analysis.drop_small_concepts(X, labels, min_count={min_count})."
            )


def prepare(X: object, labels: object, *, dtype: type = np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Check ``X`` and ``labels`` together; return ``(X, labels)`` as arrays."""
    arr = as_vectors(X, dtype=dtype)
    return arr, as_labels(labels, arr.shape[0])


def drop_small_concepts(
    X: object, labels: object, min_count: int, ids: Sequence | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Remove the LoCEs of concepts with fewer than ``min_count`` LoCEs.

    Returns:
        ``(X, labels, kept)`` where ``kept`` are the original row indices that remain (use it to subset ids).

    Example:
        >>> X, y, kept = drop_small_concepts(np.eye(3), ["a", "a", "b"], 2)
        >>> y.tolist(), kept.tolist()
        (['a', 'a'], [0, 1])
    """
    arr, lab = prepare(X, labels)
    index = ConceptIndex.from_labels(lab)
    kept = np.flatnonzero(index.counts[index.codes] >= min_count)
    return arr[kept], lab[kept], kept


def stratified_subsample(labels: object, n: int, seed: int = 0) -> np.ndarray:
    """Indices of at most ``n`` LoCEs drawn without replacement, each concept keeping its share (at least one).

    Use it before analyses whose memory grows with N^2 (hierarchical clustering).

    Example:
        >>> idx = stratified_subsample(["a"] * 90 + ["b"] * 10, 20)
        >>> len(idx), int((idx >= 90).sum())
        (20, 2)
    """
    lab = np.asarray(labels).astype(str)
    if n >= lab.size:
        return np.arange(lab.size)
    index = ConceptIndex.from_labels(lab)
    rng = np.random.default_rng(seed)
    quota = np.maximum(1, np.floor(index.counts * n / lab.size)).astype(np.int64)
    # hand out what flooring left over to the largest remainders, deterministically
    rest = n - int(quota.sum())
    if rest > 0:
        remainder = index.counts * n / lab.size - np.floor(index.counts * n / lab.size)
        for k in np.argsort(-remainder, kind="stable")[:rest]:
            quota[k] += 1
    quota = np.minimum(quota, index.counts)
    picked = [
        rng.choice(index.members(k), size=int(quota[k]), replace=False) for k in range(index.n_concepts)
    ]
    return np.sort(np.concatenate(picked))
