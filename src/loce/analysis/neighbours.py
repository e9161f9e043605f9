"""One exact pass over all pairs of LoCEs, in memory-bounded blocks, feeding several analyses at once.

For every LoCE ``a`` and every concept ``j`` the pass records the distance to the nearest LoCE of ``j`` (``a``
itself excluded) and to the farthest LoCE of ``j`` (separation and overlap need nothing else), the ``k`` nearest
LoCEs of ``a`` (retrieval, leave-one-out) and the average precision of ``a``'s full ranking (concept retrieval with
the LoCEs of ``a``'s concept as the relevant set). One block of query rows against all N LoCEs is in memory at a
time: memory grows like ``block x N``, never ``N x N``; compute is one matrix product over all pairs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from loce.analysis.distances import DEFAULT_BLOCK_BYTES, BlockScorer, rows_per_block
from loce.analysis.errors import TooFewSamplesError
from loce.analysis.inputs import ConceptIndex, prepare
from loce.analysis.ranking import average_precision_block, top_k_block
from loce.reprs import short_repr


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
        notes: what a reader must know about how the scan was made (e.g. approximate neighbours).
        quality: figures of merit of an approximate scan (e.g. ``approximate_recall_at_10``), reported with it.
    """

    __repr__ = short_repr

    concepts: np.ndarray
    labels: np.ndarray
    metric: str
    nearest: np.ndarray | None = None
    farthest: np.ndarray | None = None
    neighbours: np.ndarray | None = None
    neighbour_distances: np.ndarray | None = None
    average_precision: np.ndarray | None = None
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    quality: dict[str, float] = field(default_factory=dict)

    @property
    def index(self) -> ConceptIndex:
        return ConceptIndex.from_labels(self.labels)


RowRunner = Callable[[BlockScorer, ConceptIndex, dict, bool], "list[RowScan]"]
"""Runs :func:`scan_rows` over the query rows ``0:N`` and returns the parts: ``(scorer, index, options, progress)``
with ``options`` the keywords of :func:`scan_rows` (the local pass runs one part; the Ray engine one task per
range of rows)."""


def check_neighbour_count(k: int, n: int) -> None:
    """Refuse ``k`` nearest neighbours of each of ``n`` LoCEs when there are fewer than ``k`` others.

    Example:
        >>> check_neighbour_count(3, 4)
    """
    if k and k > n - 1:
        raise TooFewSamplesError(
            f"asked for k={k} neighbours but there are only {n} LoCEs (at most {n - 1})."
        )


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
    rows_with: RowRunner | None = None,
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
        rows_with: who runs the blocks (a :data:`RowRunner`; default: this process, in one part), e.g. the Ray
            engine's tasks (:class:`loce.engines.ray_analysis.RayRows`): the same blocks, the same results.

    Example:
        >>> X = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
        >>> scan = scan_neighbourhoods(X, ["a", "a", "b", "b"], k=1)
        >>> scan.neighbours.ravel().tolist()
        [1, 0, 3, 2]
    """
    X, labels = prepare(X, labels, dtype=dtype)
    n = X.shape[0]
    check_neighbour_count(k, n)
    index = ConceptIndex.from_labels(labels)
    clock = time.perf_counter()
    scorer = BlockScorer.build(X[index.order], metric, dtype=dtype, backend=backend)
    prepared = time.perf_counter() - clock
    options = {
        "extremes": extremes,
        "k": k,
        "average_precision": average_precision,
        "block_bytes": block_bytes,
    }
    parts = (rows_with or scan_all_rows)(scorer, index, options, progress)
    scan = combine_row_scans(scorer, index, labels, parts)
    scan.timings["prepare"] = prepared
    return scan


def scan_all_rows(scorer: BlockScorer, index: ConceptIndex, options: dict, progress: bool) -> list[RowScan]:
    """The local :data:`RowRunner`: every query row in this process, as one part."""
    return [scan_rows(scorer, index, 0, scorer.n, progress=progress, **options)]


@dataclass
class RowScan:
    """What the pass found for the query rows ``start:stop`` of the concept-sorted LoCEs (see :func:`scan_rows`)."""

    start: int
    stop: int
    near: np.ndarray | None
    far: np.ndarray | None
    top_cols: np.ndarray | None
    top_scores: np.ndarray | None
    ap: np.ndarray | None
    timings: dict[str, float]


def scan_rows(
    scorer: BlockScorer,
    index: ConceptIndex,
    start: int,
    stop: int,
    *,
    extremes: bool = True,
    k: int = 0,
    average_precision: bool = False,
    block_bytes: int = DEFAULT_BLOCK_BYTES,
    progress: bool = False,
) -> RowScan:
    """The pass for the query rows ``start:stop`` (concept-sorted order) against all N LoCEs of ``scorer``.

    Rows are scored in blocks of :func:`rows_per_block` rows counted from 0, so splitting ``0:N`` into ranges that
    start at multiples of the block size computes the very same blocks (what the Ray engine does); the parts are
    put together by :func:`combine_row_scans`.
    """
    n, dtype = scorer.n, scorer.vectors.dtype
    m = stop - start
    timings = {"similarity": 0.0, "extremes": 0.0, "top_k": 0.0, "average_precision": 0.0}
    n_concepts = index.n_concepts
    order = index.order
    near = np.empty((m, n_concepts), dtype) if extremes else None
    far = np.empty((m, n_concepts), dtype) if extremes else None
    top_cols = np.empty((m, k), np.int64) if k else None
    top_scores = np.empty((m, k), dtype) if k else None
    ap = np.full(m, np.nan) if average_precision else None
    concept_bounds = np.append(index.starts, n)
    rows = rows_per_block(n, block_bytes, np.dtype(dtype).itemsize)
    buffer = np.empty((min(rows, max(m, 1)), n), dtype)
    blocks = range(start, stop, rows)
    if progress:
        from tqdm import tqdm

        blocks = tqdm(blocks, desc="neighbourhood pass", unit="block", total=-(-m // rows))
    for r0 in blocks:
        r1 = min(stop, r0 + rows)
        local = np.arange(r1 - r0)
        o0, o1 = r0 - start, r1 - start
        clock = time.perf_counter()
        S = scorer.scores(slice(r0, r1), out=buffer)
        timings["similarity"] += time.perf_counter() - clock
        clock = time.perf_counter()
        if extremes:
            far[o0:o1] = np.minimum.reduceat(S, index.starts, axis=1)
        S[local, local + r0] = -np.inf  # leave one out
        if extremes:
            near[o0:o1] = np.maximum.reduceat(S, index.starts, axis=1)
        timings["extremes"] += time.perf_counter() - clock
        if k:
            clock = time.perf_counter()
            top_cols[o0:o1], top_scores[o0:o1] = top_k_block(S, k, order)
            timings["top_k"] += time.perf_counter() - clock
        if average_precision:
            clock = time.perf_counter()
            first, last = np.searchsorted(concept_bounds, [r0, r1 - 1], side="right") - 1
            for c in range(first, last + 1):
                s0, s1 = max(r0, concept_bounds[c]), min(r1, concept_bounds[c + 1])
                ap[s0 - start : s1 - start] = average_precision_block(
                    S[s0 - r0 : s1 - r0], int(concept_bounds[c]), int(concept_bounds[c + 1]), order
                )
            timings["average_precision"] += time.perf_counter() - clock
    del buffer
    return RowScan(start, stop, near, far, top_cols, top_scores, ap, timings)


def combine_row_scans(
    scorer: BlockScorer, index: ConceptIndex, labels: np.ndarray, parts: list[RowScan]
) -> NeighbourhoodScan:
    """Put the :class:`RowScan` parts covering rows ``0:N`` together as one scan in the original order."""
    parts = sorted(parts, key=lambda p: p.start)
    n = scorer.n
    if [p.start for p in parts] != [0, *(p.stop for p in parts[:-1])] or parts[-1].stop != n:
        raise ValueError(f"the row scans do not cover 0:{n} exactly once")
    order = index.order
    timings: dict[str, float] = {}
    for part in parts:  # seconds add up; a peak (``peak_memory_mb``, from tasks) is the largest of the parts
        for name, value in part.timings.items():
            joined_with = max if name.startswith("peak_") else sum
            timings[name] = joined_with((timings[name], value)) if name in timings else value
    scan = NeighbourhoodScan(index.concepts, labels, scorer.metric, timings=timings)
    self_score = scorer.self_score

    def joined(name: str) -> np.ndarray:
        return np.concatenate([getattr(p, name) for p in parts])

    def back(sorted_rows: np.ndarray) -> np.ndarray:
        out = np.empty_like(sorted_rows)
        out[order] = sorted_rows
        return out

    first = parts[0]
    if first.near is not None:
        scan.nearest = back(scorer.to_distance(joined("near"), self_score))
        scan.farthest = back(scorer.to_distance(joined("far"), self_score))
    if first.top_cols is not None:
        scan.neighbours = back(order[joined("top_cols")])
        scan.neighbour_distances = back(scorer.to_distance(joined("top_scores"), self_score))
    if first.ap is not None:
        scan.average_precision = back(joined("ap"))
    return scan
