"""One exact pass over all pairs of LoCEs, in memory-bounded blocks, feeding several analyses at once.

For every LoCE ``a`` and every concept ``j`` the pass records the distance to the nearest LoCE of ``j`` (``a``
itself excluded) and to the farthest LoCE of ``j`` (separation and overlap need nothing else), the ``k`` nearest
LoCEs of ``a`` (retrieval, leave-one-out) and the average precision of ``a``'s full ranking (concept retrieval with
the LoCEs of ``a``'s concept as the relevant set). One block of query rows against all N LoCEs is in memory at a
time: memory grows like ``block x N``, never ``N x N``; compute is one matrix product over all pairs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from loce.analysis.distances import DEFAULT_BLOCK_BYTES, BlockScorer, rows_per_block
from loce.analysis.errors import TooFewSamplesError
from loce.analysis.inputs import ConceptIndex, prepare
from loce.analysis.ranking import average_precision_block, top_k_block


@dataclass
class NeighbourhoodScan:
    """What one pass over all pairs found, in the original order of the LoCEs.

    Attributes:
        concepts: the K concept names (sorted); columns of ``nearest`` and ``farthest``.
        labels: N concept names.
        metric: ``"cosine"`` or ``"euclidean"``.
        nearest: N x K distances to the nearest LoCE of each concept, the LoCE itself excluded (``inf`` for its own
            concept when that concept has no other LoCE), or None when not computed.
        farthest: N x K distances to the farthest LoCE of each concept (the LoCE itself included, so 0 for its own
            concept when it is alone), or None.
        neighbours: N x k original indices of the k nearest other LoCEs, nearest first (ties: lower index), or None.
        neighbour_distances: N x k distances matching ``neighbours``, or None.
        average_precision: N average precisions of each LoCE's leave-one-out ranking (relevant = same concept;
            NaN when its concept has no other LoCE), or None.
        timings: seconds spent per phase (``similarity``, ``extremes``, ``top_k``, ``average_precision``).
    """

    concepts: np.ndarray
    labels: np.ndarray
    metric: str
    nearest: np.ndarray | None = None
    farthest: np.ndarray | None = None
    neighbours: np.ndarray | None = None
    neighbour_distances: np.ndarray | None = None
    average_precision: np.ndarray | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def index(self) -> ConceptIndex:
        return ConceptIndex.from_labels(self.labels)


def scan_neighbourhoods(
    X: object,
    labels: object,
    *,
    metric: str = "cosine",
    extremes: bool = True,
    k: int = 0,
    average_precision: bool = False,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    backend: str = "torch",
    dtype: type = np.float32,
    progress: bool = False,
) -> NeighbourhoodScan:
    """Run the exact all-pairs pass and collect what the requested analyses need.

    Args:
        X: N x D LoCEs.
        labels: N concept names.
        metric: ``"cosine"`` (zero vectors: distance 1 to everything else) or ``"euclidean"``.
        extremes: record per-concept nearest/farthest distances (separation, overlap).
        k: number of nearest neighbours to keep per LoCE (0: none); at most N - 1.
        average_precision: compute each LoCE's leave-one-out average precision.
        block_bytes: size of one block of scores (rows x N), the main memory knob.
        backend: ``"torch"`` or ``"numpy"`` for the matrix products (same results up to float rounding).
        dtype: ``np.float32`` (fast) or ``np.float64``.
        progress: show a progress bar on stderr.

    Example:
        >>> X = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
        >>> scan = scan_neighbourhoods(X, ["a", "a", "b", "b"], k=1)
        >>> scan.neighbours.ravel().tolist()
        [1, 0, 3, 2]
    """
    X, labels = prepare(X, labels, dtype=dtype)
    n = X.shape[0]
    if k and k > n - 1:
        raise TooFewSamplesError(
            f"asked for k={k} neighbours but there are only {n} LoCEs (at most {n - 1})."
        )
    index = ConceptIndex.from_labels(labels)
    order = index.order
    timings = {"similarity": 0.0, "extremes": 0.0, "top_k": 0.0, "average_precision": 0.0}
    clock = time.perf_counter()
    scorer = BlockScorer.build(X[order], metric, dtype=dtype, backend=backend)
    timings["prepare"] = time.perf_counter() - clock
    n_concepts = index.n_concepts
    near = np.empty((n, n_concepts), dtype) if extremes else None
    far = np.empty((n, n_concepts), dtype) if extremes else None
    top_cols = np.empty((n, k), np.int64) if k else None
    top_scores = np.empty((n, k), dtype) if k else None
    ap = np.full(n, np.nan) if average_precision else None
    concept_bounds = np.append(index.starts, n)
    rows = rows_per_block(n, block_bytes, np.dtype(dtype).itemsize)
    buffer = np.empty((rows, n), dtype)
    blocks = range(0, n, rows)
    if progress:
        from tqdm import tqdm

        blocks = tqdm(blocks, desc="neighbourhood pass", unit="block", total=-(-n // rows))
    for r0 in blocks:
        r1 = min(n, r0 + rows)
        local = np.arange(r1 - r0)
        clock = time.perf_counter()
        S = scorer.scores(slice(r0, r1), out=buffer)
        timings["similarity"] += time.perf_counter() - clock
        clock = time.perf_counter()
        if extremes:
            far[r0:r1] = np.minimum.reduceat(S, index.starts, axis=1)
        S[local, local + r0] = -np.inf  # leave one out
        if extremes:
            near[r0:r1] = np.maximum.reduceat(S, index.starts, axis=1)
        timings["extremes"] += time.perf_counter() - clock
        if k:
            clock = time.perf_counter()
            top_cols[r0:r1], top_scores[r0:r1] = top_k_block(S, k, order)
            timings["top_k"] += time.perf_counter() - clock
        if average_precision:
            clock = time.perf_counter()
            first, last = np.searchsorted(concept_bounds, [r0, r1 - 1], side="right") - 1
            for c in range(first, last + 1):
                s0, s1 = max(r0, concept_bounds[c]), min(r1, concept_bounds[c + 1])
                ap[s0:s1] = average_precision_block(
                    S[s0 - r0 : s1 - r0], int(concept_bounds[c]), int(concept_bounds[c + 1]), order
                )
            timings["average_precision"] += time.perf_counter() - clock
    del buffer
    scan = NeighbourhoodScan(index.concepts, labels, metric, timings=timings)
    self_score = scorer.self_score

    def back(sorted_rows: np.ndarray) -> np.ndarray:
        out = np.empty_like(sorted_rows)
        out[order] = sorted_rows
        return out

    if extremes:
        scan.nearest = back(scorer.to_distance(near, self_score))
        scan.farthest = back(scorer.to_distance(far, self_score))
    if k:
        scan.neighbours = back(order[top_cols])
        scan.neighbour_distances = back(scorer.to_distance(top_scores, self_score))
    if average_precision:
        scan.average_precision = back(ap)
    return scan
