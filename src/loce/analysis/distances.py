"""Similarity blocks for exact, memory-bounded neighbour computations (never an N x N matrix).

Conventions used by every analysis:

- ``metric="cosine"``: similarity ``x.y / (|x| |y|)``, distance ``1 - similarity``. A zero vector has
  similarity 0 (distance 1) to every other vector, including another zero vector, so zero LoCEs never give NaN.
  The distance of a vector to itself is 0.
- ``metric="euclidean"``: the usual distance. Internally the vectors are centred (distances do not change) and
  the score ``2 x.y - |y|^2`` is used, which orders the candidates of a query ``x`` like ``-|x - y|``.
- Exact duplicate vectors get bit-identical scores to every query, and distance exactly 0 to each other (except
  zero vectors under the cosine metric, see above), so ties between them are resolved only by the tie-break rule.
- Ties are broken by the lower original index, everywhere.

Scores ("higher = closer") are computed as float32 (default) matrix products of one block of query rows against
all N vectors; a block holds at most ``block_bytes`` bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from loce.analysis.errors import AnalysisError

METRICS = ("cosine", "euclidean")
DEFAULT_BLOCK_BYTES = 128 * 2**20


def normalize_rows(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; zero rows stay zero (so their cosine similarity with anything is 0).

    Example:
        >>> normalize_rows(np.array([[3.0, 4.0], [0.0, 0.0]])).round(6).tolist()
        [[0.6, 0.8], [0.0, 0.0]]
    """
    X = np.asarray(X)
    norms = np.sqrt(np.einsum("ij,ij->i", X, X, dtype=np.float64))
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return (X * scale[:, None].astype(X.dtype, copy=False)).astype(X.dtype, copy=False)


def cosine_distances(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Dense cosine distances between the rows of two small arrays, with the zero-vector rule (distance 1).

    For large inputs use the chunked functions (:func:`loce.analysis.knn`, the neighbourhood scan).

    Example:
        >>> cosine_distances(np.array([[1.0, 0.0], [0.0, 0.0]]), np.array([[1.0, 0.0]])).ravel().tolist()
        [0.0, 1.0]
    """
    sim = normalize_rows(np.asarray(A, dtype=np.float64)) @ normalize_rows(np.asarray(B, dtype=np.float64)).T
    return np.clip(1.0 - sim, 0.0, 2.0)


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise AnalysisError(f"Unknown metric {metric!r}; use one of {', '.join(METRICS)}.")
    return metric


def rows_per_block(n_cols: int, block_bytes: int = DEFAULT_BLOCK_BYTES, itemsize: int = 4) -> int:
    """How many query rows fit in one ``rows x n_cols`` score block of at most ``block_bytes`` bytes."""
    return int(max(1, min(n_cols, block_bytes // max(1, n_cols * itemsize))))


def duplicate_groups(X: np.ndarray, ignore_zero: bool = False) -> list[np.ndarray]:
    """Groups (ascending index arrays, each of size >= 2) of rows of ``X`` that are exactly equal.

    ``-0.0`` equals ``0.0``. With ``ignore_zero``, all-zero rows are never grouped (cosine convention).

    Example:
        >>> [g.tolist() for g in duplicate_groups(np.array([[1, 2], [3, 4], [1, 2]]))]
        [[0, 2]]
    """
    X = np.ascontiguousarray(X) + 0  # turns -0.0 into 0.0
    hashes = np.fromiter((hash(row.tobytes()) for row in X), dtype=np.int64, count=X.shape[0])
    order = np.argsort(hashes, kind="stable")
    sorted_hashes = hashes[order]
    boundaries = np.flatnonzero(np.diff(sorted_hashes)) + 1
    groups: list[np.ndarray] = []
    for candidate in np.split(order, boundaries):
        if candidate.size < 2:
            continue
        # equal hashes: confirm byte equality (hash collisions are possible)
        rest = np.sort(candidate)
        while rest.size > 1:
            same = (X[rest] == X[rest[0]]).all(axis=1)
            group = rest[same]
            if group.size > 1 and not (ignore_zero and not X[group[0]].any()):
                groups.append(group)
            rest = rest[~same]
    groups.sort(key=lambda g: int(g[0]))
    return groups


@dataclass
class BlockScorer:
    """Computes score blocks ``S[rows, :]`` (higher = closer) of a fixed set of N vectors.

    Built with :meth:`build`; ``vectors`` are the prepared (normalised or centred) vectors, ``self_score[i]`` the
    score of vector i with itself (distance 0), ``backend`` ``"torch"`` or ``"numpy"`` for the matrix product.
    """

    metric: str
    vectors: np.ndarray
    self_score: np.ndarray
    sq_norms: np.ndarray | None
    groups: list[np.ndarray]
    group_of: np.ndarray
    backend: str = "torch"
    mean: np.ndarray | None = None

    @classmethod
    def build(
        cls, X: np.ndarray, metric: str = "cosine", *, dtype: type = np.float32, backend: str = "torch"
    ) -> BlockScorer:
        """Prepare ``X`` (N x D) for scoring under ``metric``."""
        check_metric(metric)
        if backend not in ("torch", "numpy"):
            raise AnalysisError(f"Unknown backend {backend!r} for score blocks; use 'torch' or 'numpy'.")
        X = np.ascontiguousarray(X, dtype=dtype)
        groups = duplicate_groups(X, ignore_zero=metric == "cosine")
        group_of = np.full(X.shape[0], -1, dtype=np.int64)
        for g, members in enumerate(groups):
            group_of[members] = g
        if metric == "cosine":
            vectors = normalize_rows(X)
            return cls(metric, vectors, np.ones(X.shape[0], dtype), None, groups, group_of, backend)
        mean = X.mean(axis=0, dtype=np.float64).astype(dtype)
        centred = np.ascontiguousarray(X - mean)
        for members in groups:  # centring is per row, but make duplicates bit-identical regardless
            centred[members] = centred[members[0]]
        sq = np.einsum("ij,ij->i", centred, centred).astype(dtype)
        return cls(metric, centred, sq.copy(), sq, groups, group_of, backend, mean)

    @property
    def n(self) -> int:
        return int(self.vectors.shape[0])

    def prepare_queries(self, Q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Bring external query vectors into the scorer's space; returns ``(prepared, self_scores)``."""
        Q = np.ascontiguousarray(Q, dtype=self.vectors.dtype)
        if self.metric == "cosine":
            return normalize_rows(Q), np.ones(Q.shape[0], Q.dtype)
        centred = np.ascontiguousarray(Q - self.mean)
        return centred, np.einsum("ij,ij->i", centred, centred).astype(Q.dtype)

    def scores(self, rows: slice, out: np.ndarray | None = None) -> np.ndarray:
        """Score block of the database rows ``rows`` against all N vectors (self entries = ``self_score``)."""
        start, stop = rows.start, rows.stop
        block = self.raw_scores(self.vectors[start:stop], out=out)
        self.equalise_duplicates(block)
        for local in np.flatnonzero(self.group_of[start:stop] >= 0):
            i = start + local
            block[local, self.groups[self.group_of[i]]] = self.self_score[i]
        block[np.arange(stop - start), np.arange(start, stop)] = self.self_score[start:stop]
        return block

    def raw_scores(self, Q: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``Q`` (prepared, m x D) against all N vectors, without any duplicate handling."""
        m = Q.shape[0]
        if out is None or out.shape[0] < m:
            out = np.empty((m, self.n), dtype=self.vectors.dtype)
        out = out[:m]
        if self.backend == "torch":
            import torch

            q, v, o = torch.from_numpy(Q), torch.from_numpy(self.vectors), torch.from_numpy(out)
            if self.metric == "cosine":
                torch.mm(q, v.T, out=o)
            else:
                torch.addmm(torch.from_numpy(self.sq_norms)[None, :], q, v.T, beta=-1.0, alpha=2.0, out=o)
        else:
            np.matmul(Q, self.vectors.T, out=out)
            if self.metric == "euclidean":
                out *= 2
                out -= self.sq_norms[None, :]
        return out

    def equalise_duplicates(self, block: np.ndarray) -> None:
        """Give every member of a duplicate group the score of its first member, in every row of ``block``."""
        for members in self.groups:
            block[:, members[1:]] = block[:, members[:1]]

    def to_distance(self, scores: np.ndarray, query_self_score: np.ndarray) -> np.ndarray:
        """Convert scores of queries (one ``query_self_score`` per row) to distances (float64, -inf -> inf)."""
        scores = np.asarray(scores, dtype=np.float64)
        if self.metric == "cosine":
            return np.clip(1.0 - scores, 0.0, np.inf)
        sq = np.asarray(query_self_score, dtype=np.float64).reshape(-1, *([1] * (scores.ndim - 1)))
        return np.sqrt(np.clip(sq - scores, 0.0, np.inf))
