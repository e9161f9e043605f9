"""Concept-based retrieval: exact k nearest LoCEs, precision@k and true mean average precision.

The paper's "mAP@k" is the mean over all queries of precision@k (leave-one-out over all LoCEs, relevant = same
concept); it is reported here under its true name ``precision_at_k``. The true mean average precision (every
relevant LoCE's rank counts) is reported beside it. Both are exact and computed in memory-bounded blocks.

Ranking rules: candidates by decreasing cosine similarity (or increasing Euclidean distance); ties broken by the
lower index; exact duplicate vectors get identical scores; zero vectors have similarity 0 to everything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from loce.analysis.distances import DEFAULT_BLOCK_BYTES, BlockScorer, rows_per_block
from loce.analysis.errors import AnalysisError, TooFewSamplesError
from loce.analysis.inputs import ConceptIndex, as_vectors, prepare
from loce.analysis.neighbours import NeighbourhoodScan, scan_neighbourhoods
from loce.analysis.ranking import top_k_block
from loce.reprs import short_repr

DEFAULT_KS = (1, 5, 10, 20, 30, 40)
BACKENDS = ("torch", "numpy", "faiss")
FAISS_MARGIN = 16


@dataclass
class KnnResult:
    """The k nearest LoCEs of each query, nearest first.

    Attributes:
        indices: Q x k indices into the searched LoCEs.
        distances: Q x k distances (cosine distance ``1 - similarity`` or Euclidean).
        metric: the metric used.
    """

    __repr__ = short_repr

    indices: np.ndarray
    distances: np.ndarray
    metric: str

    def to_frame(self) -> pd.DataFrame:
        """One row per (query, rank)."""
        q, r = np.indices(self.indices.shape)
        return pd.DataFrame(
            {
                "query": q.ravel(),
                "rank": r.ravel() + 1,
                "index": self.indices.ravel(),
                "distance": self.distances.ravel(),
            }
        )


def knn(
    X: object,
    queries: object | None = None,
    k: int = 10,
    *,
    metric: str = "cosine",
    backend: str = "torch",
    block_bytes: int = DEFAULT_BLOCK_BYTES,
) -> KnnResult:
    """Exact k nearest neighbours among the rows of ``X``, in memory-bounded blocks.

    Args:
        X: N x D LoCEs to search.
        queries: Q x D query vectors; ``None`` means every row of ``X`` queries the others (leave-one-out).
        k: neighbours per query (at most N, or N - 1 leave-one-out).
        metric: ``"cosine"`` or ``"euclidean"``.
        backend: ``"torch"`` / ``"numpy"`` (blocked matrix products) or ``"faiss"`` (``IndexFlatIP`` on unit vectors
            / ``IndexFlatL2``; needs ``loce[faiss]``; candidates are re-scored exactly, so the results match).
        block_bytes: size of one block of scores.

    Example:
        >>> X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
        >>> knn(X, np.array([[1.0, 1.0]]), k=2).indices.tolist()  # ties of [1,0] and [0,1]: lower index first
        [[2, 0]]
    """
    if backend not in BACKENDS:
        raise AnalysisError(f"unknown backend {backend!r}; use one of {', '.join(BACKENDS)}.")
    database = as_vectors(X)
    n = database.shape[0]
    leave_one_out = queries is None
    limit = n - 1 if leave_one_out else n
    if not 1 <= k <= limit:
        raise TooFewSamplesError(f"k={k} neighbours asked for, but only {limit} candidates per query exist.")
    scorer = BlockScorer.build(database, metric, backend="numpy" if backend == "faiss" else backend)
    if leave_one_out:
        prepared, self_scores = scorer.vectors, scorer.self_score
    else:
        Q = as_vectors(queries, name="queries")
        if Q.shape[1] != database.shape[1]:
            raise AnalysisError(f"queries have {Q.shape[1]} dimensions but X has {database.shape[1]}.")
        prepared, self_scores = scorer.prepare_queries(Q)
    if backend == "faiss":
        cols, scores = _faiss_top_k(scorer, prepared, k, leave_one_out, block_bytes)
    else:
        cols, scores = _blocked_top_k(scorer, prepared, k, leave_one_out, block_bytes)
    return KnnResult(cols, scorer.to_distance(scores, self_scores), metric)


def _block_scores(scorer: BlockScorer, prepared: np.ndarray, r0: int, r1: int, leave_one_out: bool, out=None):
    if leave_one_out:
        S = scorer.scores(slice(r0, r1), out=out)
        S[np.arange(r1 - r0), np.arange(r0, r1)] = -np.inf
    else:
        S = scorer.raw_scores(prepared[r0:r1], out=out)
        scorer.equalise_duplicates(S)
    return S


def _blocked_top_k(scorer, prepared, k, leave_one_out, block_bytes):
    n_queries, n = prepared.shape[0], scorer.n
    cols = np.empty((n_queries, k), np.int64)
    scores = np.empty((n_queries, k), scorer.vectors.dtype)
    rows = rows_per_block(n, block_bytes, scorer.vectors.dtype.itemsize)
    buffer = np.empty((min(rows, n_queries), n), scorer.vectors.dtype)
    key = np.arange(n)
    for r0 in range(0, n_queries, rows):
        r1 = min(n_queries, r0 + rows)
        S = _block_scores(scorer, prepared, r0, r1, leave_one_out, out=buffer)
        cols[r0:r1], scores[r0:r1] = top_k_block(S, k, key)
    return cols, scores


def _faiss_top_k(scorer, prepared, k, leave_one_out, block_bytes):
    try:
        import faiss
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError('the faiss backend needs the "faiss" extra: pip install "loce[faiss]"') from exc
    vectors = np.ascontiguousarray(scorer.vectors, dtype=np.float32)
    n, dim = vectors.shape
    index = faiss.IndexFlatIP(dim) if scorer.metric == "cosine" else faiss.IndexFlatL2(dim)
    index.add(vectors)
    representative = np.arange(n)
    for members in scorer.groups:
        representative[members] = members[0]
    fetch = min(n, k + FAISS_MARGIN + (1 if leave_one_out else 0))
    norms = np.sqrt(np.einsum("ij,ij->i", vectors, vectors, dtype=np.float64))
    n_queries = prepared.shape[0]
    cols = np.empty((n_queries, k), np.int64)
    scores = np.empty((n_queries, k), scorer.vectors.dtype)
    rows = max(1, rows_per_block(fetch * dim, block_bytes, 4))
    key = np.arange(n)
    for r0 in range(0, n_queries, rows):
        r1 = min(n_queries, r0 + rows)
        Q = np.ascontiguousarray(prepared[r0:r1], dtype=np.float32)
        _, candidates = index.search(Q, fetch)
        # re-score exactly, once per (query, distinct vector), so duplicates get identical scores
        pairs = np.arange(r1 - r0)[:, None] * n + representative[candidates]
        unique_pairs, inverse = np.unique(pairs, return_inverse=True)
        q_of, v_of = np.divmod(unique_pairs, n)
        values = np.einsum("id,id->i", Q[q_of], vectors[v_of])
        if scorer.metric == "euclidean":
            values = 2 * values - scorer.sq_norms[v_of]
        exact = values[inverse.reshape(candidates.shape)].astype(scorer.vectors.dtype)
        if leave_one_out:
            for local, i in enumerate(range(r0, r1)):
                exact[local, representative[candidates[local]] == representative[i]] = scorer.self_score[i]
        weakest = exact.min(axis=1)
        if leave_one_out:
            exact[candidates == np.arange(r0, r1)[:, None]] = -np.inf
        order = np.lexsort((candidates, -exact), axis=1)
        ranked_cols = np.take_along_axis(candidates, order, axis=1)
        ranked = np.take_along_axis(exact, order, axis=1)
        cols[r0:r1], scores[r0:r1] = ranked_cols[:, :k], ranked[:, :k]
        # settled when the k-th score clearly beats the weakest fetched candidate (so every better vector was
        # fetched despite float differences between faiss and the exact score); otherwise redo the row exactly
        q_norm = np.sqrt(np.einsum("ij,ij->i", Q, Q, dtype=np.float64))
        scale = q_norm * norms.max() * (2 if scorer.metric == "euclidean" else 1)
        if scorer.metric == "euclidean":
            scale = scale + norms.max() ** 2
        unsettled = np.flatnonzero(ranked[:, k - 1] <= weakest + 1e-5 * (1 + scale))
        if fetch >= n:
            unsettled = np.arange(r1 - r0)
        for local in unsettled:
            S = _block_scores(scorer, prepared, r0 + local, r0 + local + 1, leave_one_out)
            top_cols, top_scores = top_k_block(S, k, key)
            cols[r0 + local], scores[r0 + local] = top_cols[0], top_scores[0]
    return cols, scores


@dataclass
class RetrievalResult:
    """Leave-one-out concept retrieval quality.

    Attributes:
        ks: the k values.
        concepts, labels: K concept names, N labels.
        metric: the metric used.
        precision: N x len(ks) precision@k of each query (share of its k nearest other LoCEs of its concept;
            0 for a concept with a single LoCE).
        average_precision: N average precisions (NaN where the concept has no other LoCE), or None.
    """

    __repr__ = short_repr

    ks: tuple[int, ...]
    concepts: np.ndarray
    labels: np.ndarray = field(repr=False)
    metric: str
    precision: np.ndarray = field(repr=False)
    average_precision: np.ndarray | None = field(default=None, repr=False)

    def precision_at(self, k: int) -> float:
        """Mean precision@k over all queries (the paper's "mAP@k")."""
        return float(self.precision[:, self.ks.index(k)].mean())

    @property
    def mean_average_precision(self) -> float | None:
        """Mean of the average precisions of the queries that have relevant LoCEs (None if not computed)."""
        if self.average_precision is None:
            return None
        valid = ~np.isnan(self.average_precision)
        return float(self.average_precision[valid].mean()) if valid.any() else float("nan")

    def to_frame(self) -> pd.DataFrame:
        """One row per concept, then ``(all)`` (mean over all queries) and ``(mean of concepts)``."""
        index = ConceptIndex.from_labels(self.labels)
        rows = []
        for k, concept in enumerate(index.concepts.tolist()):
            rows.append(self._row(concept, index.members(k)))
        rows.append(self._row("(all)", np.arange(self.labels.size)))
        frame = pd.DataFrame(rows)
        macro = frame.iloc[:-1].drop(columns=["concept", "n_queries"]).mean(numeric_only=True)
        macro_row = {"concept": "(mean of concepts)", "n_queries": len(self.labels), **macro.to_dict()}
        return pd.concat([frame, pd.DataFrame([macro_row])], ignore_index=True)

    def _row(self, name: str, members: np.ndarray) -> dict:
        row: dict = {"concept": name, "n_queries": int(members.size)}
        for j, k in enumerate(self.ks):
            row[f"precision_at_{k}"] = float(self.precision[members, j].mean())
        if self.average_precision is not None:
            values = self.average_precision[members]
            valid = ~np.isnan(values)
            row["mean_average_precision"] = float(values[valid].mean()) if valid.any() else float("nan")
        return row

    @classmethod
    def from_scan(cls, scan: NeighbourhoodScan, ks: Sequence[int] = DEFAULT_KS) -> RetrievalResult:
        """Precision@k (and AP if the scan has it) from a scan made with ``k >= max(ks)``."""
        ks = tuple(int(k) for k in ks)
        if scan.neighbours is None or scan.neighbours.shape[1] < max(ks):
            raise AnalysisError(
                f"the neighbourhood scan kept fewer than {max(ks)} neighbours; rerun it with k={max(ks)}."
            )
        hits = scan.labels[scan.neighbours[:, : max(ks)]] == scan.labels[:, None]
        cumulative = np.cumsum(hits, axis=1)
        precision = np.stack([cumulative[:, k - 1] / k for k in ks], axis=1)
        return cls(ks, scan.concepts, scan.labels, scan.metric, precision, scan.average_precision)


def retrieval_scores(
    X: object,
    labels: object,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    metric: str = "cosine",
    average_precision: bool = True,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    backend: str = "torch",
    progress: bool = False,
) -> RetrievalResult:
    """Leave-one-out precision@k for every LoCE as a query (and true average precision), exactly.

    Args:
        X: N x D LoCEs.
        labels: N concept names (relevant = same concept).
        ks: the k values (paper: 1, 5, 10, 20, 30, 40); each at most N - 1.
        metric: ``"cosine"`` (paper) or ``"euclidean"``.
        average_precision: also compute the true mean average precision (costs about as much again as the
            matrix products).
        block_bytes, backend, progress: see :func:`loce.analysis.neighbours.scan_neighbourhoods`.

    Example:
        >>> X = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
        >>> retrieval_scores(X, ["a", "a", "b", "b"], ks=[1, 2]).precision_at(2)
        0.5
    """
    X, labels = prepare(X, labels)
    ks = tuple(int(k) for k in ks)
    if not ks or min(ks) < 1:
        raise AnalysisError(f"ks must be positive integers, got {ks}.")
    if max(ks) > X.shape[0] - 1:
        raise TooFewSamplesError(
            f"precision@{max(ks)} needs more than {max(ks)} LoCEs, there are {X.shape[0]}; use smaller ks."
        )
    scan = scan_neighbourhoods(
        X,
        labels,
        metric=metric,
        extremes=False,
        k=max(ks),
        average_precision=average_precision,
        block_bytes=block_bytes,
        backend=backend,
        progress=progress,
    )
    return RetrievalResult.from_scan(scan, ks)
