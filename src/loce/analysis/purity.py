"""Concept purity of an adaptive hierarchical clustering (METHOD.md section 2).

Agglomerative clustering of the LoCEs, then a top-down walk of the tree that stops at a node when it is small
enough (at most ``max_share`` of all LoCEs, paper 5%) or pure enough (majority concept share >= ``min_purity``,
paper 0.8). Purity = sum over the resulting clusters of their majority count / N.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from loce.analysis.distances import normalize_rows
from loce.analysis.errors import AnalysisError, TooFewSamplesError, TooManySamplesError
from loce.analysis.inputs import ConceptIndex, prepare
from loce.reprs import short_repr

LINKAGES = ("ward", "complete", "average", "single")
DEFAULT_MAX_SAMPLES = 15_000


@dataclass
class PurityResult:
    """Result of :func:`concept_purity`.

    Attributes:
        purity: sum of the clusters' majority counts / N.
        n_clusters: number of clusters where the walk stopped.
        assignment: N cluster ids (0 .. n_clusters - 1, in the walk's left-first order).
        concepts: K concept names (columns of ``contingency``).
        labels: N concept names.
        contingency: n_clusters x K counts of each concept in each cluster.
        stopped_by: per cluster ``"pure"`` (majority share reached) or ``"size"`` (small enough).
        linkage_matrix: the scipy linkage matrix (for dendrogram figures).
        linkage, metric, max_share, min_purity: the settings used.
        ids: optional N sample ids.
    """

    __repr__ = short_repr

    purity: float
    n_clusters: int
    assignment: np.ndarray
    concepts: np.ndarray
    labels: np.ndarray
    contingency: np.ndarray
    stopped_by: np.ndarray
    linkage_matrix: np.ndarray
    linkage: str
    metric: str
    max_share: float
    min_purity: float
    ids: np.ndarray | None = None

    def to_frame(self) -> pd.DataFrame:
        """One row per cluster: size, majority concept, its count and share, why the walk stopped, composition."""
        sizes = self.contingency.sum(axis=1)
        majority = self.contingency.argmax(axis=1)
        majority_count = self.contingency.max(axis=1)
        composition = [
            ", ".join(f"{self.concepts[k]}: {row[k]}" for k in np.argsort(-row, kind="stable") if row[k] > 0)
            for row in self.contingency
        ]
        return pd.DataFrame(
            {
                "cluster": np.arange(self.n_clusters),
                "size": sizes,
                "majority_concept": self.concepts[majority],
                "majority_count": majority_count,
                "majority_share": majority_count / sizes,
                "stopped_by": self.stopped_by,
                "n_concepts": (self.contingency > 0).sum(axis=1),
                "composition": composition,
            }
        )

    def members_frame(self) -> pd.DataFrame:
        """One row per LoCE: its index, id (if given), concept and cluster."""
        frame = pd.DataFrame({"index": np.arange(self.labels.size), "concept": self.labels})
        if self.ids is not None:
            frame.insert(1, "id", self.ids)
        frame["cluster"] = self.assignment
        return frame

    def cluster_sharing(self, concepts: Sequence[str] | None = None) -> np.ndarray:
        """K x K: ``sum over clusters of min(n_ci, n_cj) / min(n_i, n_j)`` (1 on the diagonal).

        1 means every LoCE of the smaller concept sits in a cluster with at least as many LoCEs of the other.
        """
        order = np.arange(self.concepts.size)
        if concepts is not None:
            position = {c: k for k, c in enumerate(self.concepts.tolist())}
            missing = [c for c in concepts if c not in position]
            if missing:
                raise AnalysisError(
                    f"concepts {missing} are not in the clustering; use the same LoCEs for both."
                )
            order = np.array([position[c] for c in concepts], dtype=np.int64)
        table = self.contingency[:, order]
        totals = table.sum(axis=0)
        sharing = np.empty((order.size, order.size))
        for i in range(order.size):
            shared = np.minimum(table[:, i : i + 1], table).sum(axis=0)
            sharing[i] = shared / np.maximum(1, np.minimum(totals[i], totals))
        return sharing


def linkage_matrix(X: np.ndarray, linkage: str = "ward", metric: str = "euclidean") -> np.ndarray:
    """scipy linkage of the rows of ``X``.

    ``ward`` needs Euclidean geometry: with ``metric="cosine"`` it runs on unit-normalised rows (whose squared
    Euclidean distance is twice the cosine distance). Other linkages with ``"cosine"`` use cosine distances with
    the zero-vector rule (distance 1), computed in blocks.
    """
    from scipy.cluster import hierarchy
    from scipy.spatial.distance import pdist

    if linkage not in LINKAGES:
        raise AnalysisError(f"unknown linkage {linkage!r}; use one of {', '.join(LINKAGES)}.")
    if metric not in ("euclidean", "cosine"):
        raise AnalysisError(f"unknown metric {metric!r} for clustering; use 'euclidean' or 'cosine'.")
    X = np.asarray(X, dtype=np.float64)
    if linkage == "ward":
        Y = normalize_rows(X) if metric == "cosine" else X
        return hierarchy.linkage(Y, method="ward", metric="euclidean")
    condensed = condensed_cosine_distances(X) if metric == "cosine" else pdist(X, "euclidean")
    return hierarchy.linkage(condensed, method=linkage)


def condensed_cosine_distances(X: np.ndarray, block: int = 256) -> np.ndarray:
    """Condensed (upper-triangle) cosine distances with the zero-vector rule, like ``pdist(X, "cosine")``."""
    Y = normalize_rows(np.asarray(X, dtype=np.float64))
    n = Y.shape[0]
    out = np.empty(n * (n - 1) // 2)
    position = 0
    for r0 in range(0, n, block):
        r1 = min(n, r0 + block)
        sims = Y[r0:r1] @ Y[r0:].T
        for local, i in enumerate(range(r0, r1)):
            row = sims[local, i - r0 + 1 :]
            out[position : position + row.size] = row
            position += row.size
    return np.clip(1.0 - out, 0.0, 2.0, out=out)


def concept_purity(
    X: object,
    labels: object,
    *,
    linkage: str = "ward",
    metric: str = "euclidean",
    max_share: float = 0.05,
    min_purity: float = 0.8,
    ids: Sequence | None = None,
    max_samples: int = DEFAULT_MAX_SAMPLES,
    max_size: int | None = None,
    weights: Sequence[float] | None = None,
    condensed: np.ndarray | None = None,
) -> PurityResult:
    """Purity of the adaptive top-down cut of a hierarchical clustering of the LoCEs.

    Args:
        X: N x D LoCEs.
        labels: N concept names.
        linkage: ``"ward"`` (paper, with ``metric="euclidean"``), ``"complete"``, ``"average"`` or ``"single"``.
        metric: ``"euclidean"`` or ``"cosine"``.
        max_share: stop at a node with at most ``max_share * N`` LoCEs (paper 0.05).
        min_purity: stop at a node whose majority concept has at least this share (paper 0.8).
        ids: optional N sample ids, carried into :meth:`PurityResult.members_frame`.
        max_samples: the clustering needs N^2 / 2 distances in memory; larger sets raise
            :class:`TooManySamplesError` (subsample with :func:`loce.analysis.stratified_subsample`).
        max_size: stop at a node with at most this many LoCEs instead of ``max_share * N`` (the publication's
            ``group_size``, taken from all loaded LoCEs while the clustering runs on a sample).
        weights: N multiplicities (a bootstrap resample's distinct LoCEs); sizes, shares and the purity count
            them. Default: 1 each.
        condensed: precomputed condensed Euclidean distances of ``X`` (``ward`` with ``metric="euclidean"``
            only), to cluster many subsets of one set without recomputing them.

    Example:
        >>> X = np.array([[0.0, 0], [0, 0.1], [5, 5], [5, 5.1]])
        >>> result = concept_purity(X, ["a", "a", "b", "b"], max_share=0.25)
        >>> result.purity, result.n_clusters
        (1.0, 2)
    """
    X, labels = prepare(X, labels, dtype=np.float64)
    n = X.shape[0]
    if n < 2:
        raise TooFewSamplesError(f"purity needs at least 2 LoCEs, got {n}.")
    if n > max_samples:
        raise TooManySamplesError(
            f"hierarchical clustering of {n} LoCEs needs about {n * n * 8 / 2**30:.1f} GiB of distances; the limit "
            f"is max_samples={max_samples}. Subsample with loce.analysis.stratified_subsample(labels, "
            f"{max_samples}) or raise max_samples if the machine has the memory."
        )
    if not 0 < max_share <= 1 or not 0 < min_purity <= 1:
        raise AnalysisError(f"max_share and min_purity must be in (0, 1], got {max_share} and {min_purity}.")
    index = ConceptIndex.from_labels(labels)
    if condensed is not None:
        if linkage != "ward" or metric != "euclidean":
            raise AnalysisError("precomputed distances are supported for ward + euclidean only.")
        from scipy.cluster import hierarchy

        Z = hierarchy.linkage(np.asarray(condensed, dtype=np.float64), method="ward")
    else:
        Z = linkage_matrix(X, linkage, metric)
    w = np.ones(n, dtype=np.int64) if weights is None else np.asarray(weights).astype(np.int64)
    if w.shape != (n,) or (w < 1).any():
        raise AnalysisError(f"weights must be {n} positive integers (multiplicities of the LoCEs).")
    total = int(w.sum())
    limit = max_share * total if max_size is None else float(max_size)
    counts = np.zeros((2 * n - 1, index.n_concepts), dtype=np.int64)
    counts[np.arange(n), index.codes] = w
    children = Z[:, :2].astype(np.int64)
    for t in range(n - 1):
        counts[n + t] = counts[children[t, 0]] + counts[children[t, 1]]
    clusters, reasons = [], []
    stack = [2 * n - 2]
    while stack:
        node = stack.pop()
        size = counts[node].sum()
        pure = counts[node].max() >= min_purity * size - 1e-9
        if pure or size <= limit + 1e-9:
            clusters.append(node)
            reasons.append("pure" if pure else "size")
        else:
            stack.extend([children[node - n, 1], children[node - n, 0]])  # left child is visited first
    assignment = np.empty(n, dtype=np.int64)
    for cluster, node in enumerate(clusters):
        pending = [node]
        while pending:
            current = pending.pop()
            if current < n:
                assignment[current] = cluster
            else:
                pending.extend(children[current - n])
    contingency = counts[np.array(clusters, dtype=np.int64)]
    return PurityResult(
        purity=float(contingency.max(axis=1).sum() / total),
        n_clusters=len(clusters),
        assignment=assignment,
        concepts=index.concepts,
        labels=labels,
        contingency=contingency,
        stopped_by=np.array(reasons),
        linkage_matrix=Z,
        linkage=linkage,
        metric=metric,
        max_share=max_share,
        min_purity=min_purity,
        ids=None if ids is None else np.asarray(ids),
    )
