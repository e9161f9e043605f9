"""Separation, overlap, purity and confused pairs recomputed on many subsets of one set of LoCEs.

Used by the bootstrap over images (default protocol): the pairwise distances are computed once in float64 and
every resample (its distinct LoCEs, with multiplicities) reads its block of them, so one resample costs
O(n^2) instead of O(n^2 D). Memory is N^2 x 8 bytes per distance matrix, which is why the caller bounds N.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from loce.analysis.distances import duplicate_groups, normalize_rows
from loce.analysis.inputs import ConceptIndex
from loce.analysis.neighbours import NeighbourhoodScan
from loce.analysis.purity import PurityResult, concept_purity
from loce.analysis.separation import ConceptSeparation, ConfusedPairs, confused_pairs


def pairwise_distances(X: np.ndarray, metric: str) -> np.ndarray:
    """Dense N x N float64 distances under the analyses' conventions (see :mod:`loce.analysis.distances`).

    Cosine: zero vectors have distance 1 to everything else; Euclidean: exact duplicates have distance 0.

    Example:
        >>> float(pairwise_distances(np.array([[0.0, 0], [3, 4]]), "euclidean")[0, 1])
        5.0
    """
    X = np.asarray(X, dtype=np.float64)
    if metric == "cosine":
        U = normalize_rows(X)
        D = np.clip(1.0 - U @ U.T, 0.0, 2.0)
    else:
        C = X - X.mean(axis=0)
        sq = np.einsum("ij,ij->i", C, C)
        D = np.sqrt(np.clip(sq[:, None] + sq[None, :] - 2.0 * (C @ C.T), 0.0, None))
    for members in duplicate_groups(X, ignore_zero=metric == "cosine"):
        D[np.ix_(members, members)] = 0.0
    np.fill_diagonal(D, 0.0)
    return D


def scan_of_subset(D: np.ndarray, labels: np.ndarray, rows: np.ndarray, metric: str) -> NeighbourhoodScan:
    """The nearest / farthest distances per concept that a neighbourhood scan of ``rows`` alone would give."""
    sub_labels = labels[rows]
    index = ConceptIndex.from_labels(sub_labels)
    ordered = rows[index.order]
    block = D[np.ix_(ordered, ordered)]
    farthest = np.maximum.reduceat(block, index.starts, axis=1)
    np.fill_diagonal(block, np.inf)
    nearest = np.minimum.reduceat(block, index.starts, axis=1)
    back = np.empty_like(index.order)
    back[index.order] = np.arange(rows.size)
    return NeighbourhoodScan(
        index.concepts, sub_labels, metric, nearest=nearest[back], farthest=farthest[back]
    )


def condensed_block(D: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Upper triangle (scipy's condensed form) of ``D[rows][:, rows]``."""
    i, j = np.triu_indices(rows.size, k=1)
    return D[rows[i], rows[j]]


@dataclass
class Resample:
    """One resample's results: ``separation`` (None without geometry), ``purity`` and ``pairs`` (or None)."""

    separation: ConceptSeparation | None
    purity: PurityResult | None
    pairs: ConfusedPairs | None


def analyse_resample(
    labels: np.ndarray,
    weights: np.ndarray,
    *,
    separation_distances: np.ndarray | None,
    separation_metric: str,
    purity_distances: np.ndarray | None,
    purity_options: dict,
    confusion: bool,
    eps: float = 0.0,
) -> Resample:
    """Separation / overlap, purity and confused pairs of the LoCEs with ``weights > 0``, counted with weights.

    Concepts with fewer than 2 distinct LoCEs in the resample are left out of separation and overlap (their
    overlap is undefined), as the full analysis drops them.
    """
    present = np.flatnonzero(weights > 0)
    separation = purity = pairs = None
    if separation_distances is not None:
        index = ConceptIndex.from_labels(labels[present])
        enough = index.counts[index.codes] >= 2
        rows = present[enough]
        if np.unique(labels[rows]).size >= 2:
            scan = scan_of_subset(separation_distances, labels, rows, separation_metric)
            separation = ConceptSeparation.from_scan(scan, eps=eps, weights=weights[rows])
    if purity_distances is not None and present.size >= 2:
        purity = concept_purity(
            np.zeros((present.size, 1)),
            labels[present],
            weights=weights[present],
            condensed=condensed_block(purity_distances, present),
            **purity_options,
        )
    if confusion and separation is not None:
        pairs = confused_pairs(separation, purity if purity is not None else None)
    return Resample(separation, purity, pairs)
