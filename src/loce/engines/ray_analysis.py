"""``loce analyze --engine ray``: the exact neighbour pass as Ray tasks over query blocks, and an approximate mode.

Exact: the pass of :func:`loce.analysis.neighbours.scan_neighbourhoods` (nearest / farthest LoCE per concept for
separation and overlap, k nearest neighbours for retrieval, leave-one-out average precision) is split into ranges
of query rows; each Ray task runs :func:`loce.analysis.neighbours.scan_rows` on its range against all N LoCEs
(the prepared :class:`~loce.analysis.distances.BlockScorer` is put in the object store once and read zero-copy),
and the driver joins the parts with :func:`~loce.analysis.neighbours.combine_row_scans`. Ranges start at
multiples of the local block size, so every task computes the very blocks of the local pass: same results.
A task holds the N x D vectors (shared) plus one block of scores (``block_bytes``), whatever N.

Approximate (``approximate=True``, for stores of millions of LoCEs): the k nearest neighbours come from a faiss
HNSW index (``loce[faiss]``); recall@k against the exact neighbours is measured on ``recall_queries`` random
queries (exact top-k of those queries through the same blocked scorer) and reported with the results. What needs
every pair (average precision over the full ranking, the nearest / farthest LoCE of every concept) is not
approximated: those numbers are left out (NaN) and a note says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from loce.analysis.distances import DEFAULT_BLOCK_BYTES, BlockScorer, rows_per_block
from loce.analysis.inputs import ConceptIndex, prepare
from loce.analysis.neighbours import (
    NeighbourhoodScan,
    RowScan,
    check_neighbour_count,
    scan_neighbourhoods,
    scan_rows,
)
from loce.analysis.ranking import top_k_block
from loce.engines.options import RayOptions
from loce.engines.ray_cluster import import_ray, ray_session

TASKS_PER_WORKER = 4
"""Query ranges per worker: enough to balance uneven blocks, few enough that the per-task overhead is small."""


def task_ranges(n: int, rows: int, tasks: int) -> list[tuple[int, int]]:
    """Split rows ``0:n`` into at most ``tasks`` ranges that start at multiples of ``rows`` (the block size).

    Example:
        >>> task_ranges(10, 3, 2)
        [(0, 6), (6, 10)]
    """
    blocks = -(-n // rows)
    per_task = -(-blocks // max(1, min(tasks, blocks)))
    return [(b * rows, min(n, (b + per_task) * rows)) for b in range(0, blocks, per_task)]


def _scan_task(scorer: BlockScorer, index: ConceptIndex, start: int, stop: int, options: dict) -> RowScan:
    import warnings

    from loce.runs import peak_memory_mb

    with warnings.catch_warnings():  # the object store's arrays are read-only; the scorer only reads them
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        part = scan_rows(scorer, index, start, stop, **options)
    part.timings["peak_memory_mb"] = peak_memory_mb()
    return part


@dataclass(frozen=True)
class RayRows:
    """The :data:`~loce.analysis.neighbours.RowRunner` of the Ray engine: one task per range of query rows.

    Ranges start at multiples of the local block size (:func:`task_ranges`), so every task computes the very blocks
    of the local pass. ``ray_options.workers`` concurrent tasks (default: the cluster's CPUs), ``tasks`` ranges
    (default :data:`TASKS_PER_WORKER` per worker). Each part's ``timings`` hold its task's ``peak_memory_mb``.
    """

    ray_options: RayOptions | None = None
    tasks: int | None = None

    def __call__(
        self, scorer: BlockScorer, index: ConceptIndex, options: dict, progress: bool
    ) -> list[RowScan]:
        ray_options = self.ray_options or RayOptions()
        itemsize = scorer.vectors.dtype.itemsize
        with ray_session(ray_options.address) as ray:
            workers = ray_options.workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
            rows = rows_per_block(scorer.n, options["block_bytes"], itemsize)
            ranges = task_ranges(scorer.n, rows, self.tasks or TASKS_PER_WORKER * workers)
            remote = ray.remote(num_cpus=1, max_retries=3)(_scan_task)
            scorer_ref, index_ref = ray.put(scorer), ray.put(index)
            pending = [remote.remote(scorer_ref, index_ref, a, b, options) for a, b in ranges]
            return _gather(ray, pending, progress)


def ray_scan_neighbourhoods(
    X: object,
    labels: object,
    *,
    ray_options: RayOptions | None = None,
    tasks: int | None = None,
    **scan_options: Any,
) -> NeighbourhoodScan:
    """:func:`loce.analysis.neighbours.scan_neighbourhoods` as Ray tasks over query ranges; same results.

    Args:
        ray_options: cluster address and ``workers`` (concurrent tasks; default: the cluster's CPUs).
        tasks: number of query ranges (default :data:`TASKS_PER_WORKER` per worker).
        scan_options: as :func:`~loce.analysis.neighbours.scan_neighbourhoods`.

    Returns:
        The :class:`~loce.analysis.neighbours.NeighbourhoodScan`; ``timings`` add up the tasks' seconds and hold
        ``peak_memory_mb``, the largest resident memory of a task.

    Example:
        >>> scan = ray_scan_neighbourhoods(X, labels, k=10, average_precision=True)  # doctest: +SKIP
    """
    return scan_neighbourhoods(X, labels, rows_with=RayRows(ray_options, tasks), **scan_options)


def _gather(ray, pending: list, progress: bool) -> list:
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(pending), desc="neighbourhood pass (ray)", unit="task")
    done = []
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        done.extend(ray.get(ready))
        if bar is not None:
            bar.update(len(ready))
    if bar is not None:
        bar.close()
    return done


def ray_scanner(ray_options: RayOptions | None = None, **kwargs: Any) -> Callable[..., NeighbourhoodScan]:
    """A drop-in for ``scan_neighbourhoods`` (``analyze_run(..., scan_with=ray_scanner(options))``)."""
    return partial(ray_scan_neighbourhoods, ray_options=ray_options, **kwargs)


# ------------------------------------------------------------------------------------------ approximate mode
HNSW_CHUNK_ROWS = 65536
"""Rows normalised or searched at a time (the search's temporaries stay small)."""


def hnsw_neighbours(
    X: np.ndarray,
    k: int,
    metric: str = "cosine",
    *,
    m: int = 16,
    ef_search: int = 96,
    ef_construction: int = 48,
    chunk_rows: int = HNSW_CHUNK_ROWS,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Approximate leave-one-out k nearest neighbours of every row of ``X`` with a faiss HNSW index.

    All rows go into the index in one ``add`` (in a random order, ``seed``): adding them in several calls builds
    a much poorer graph (recall@10 0.86-0.88 instead of 0.96 at 300k planted LoCEs, 0.67 at 1M, whether in 2 or
    16 calls). The rows to add (for cosine: normalised) are one float32 copy of ``X``, freed once the index holds
    its own; the search then goes ``chunk_rows`` queries at a time. Peak memory: ``X``, that copy, the index
    (vectors and graph, about ``8 m`` bytes per row more).

    Returns ``(indices, distances)``, N x k, nearest first, the row itself left out (cosine distance
    ``1 - similarity`` or Euclidean).
    """
    try:
        import faiss
    except ImportError:
        from loce.analysis.errors import AnalysisError

        raise AnalysisError('the approximate mode needs faiss: pip install "loce[faiss]"') from None
    n = X.shape[0]
    order = np.random.default_rng(seed).permutation(n)

    def rows(start: int) -> np.ndarray:
        chunk = np.ascontiguousarray(X[order[start : start + chunk_rows]], dtype=np.float32)
        if metric != "cosine":
            return chunk
        norms = np.linalg.norm(chunk, axis=1, keepdims=True)
        return np.ascontiguousarray(chunk / np.where(norms > 0, norms, 1.0))

    kind = faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2
    index = faiss.IndexHNSWFlat(X.shape[1], m, kind)
    index.hnsw.efConstruction = ef_construction
    added = np.empty((n, X.shape[1]), np.float32)
    for start in range(0, n, chunk_rows):
        added[start : start + chunk_rows] = rows(start)
    index.add(added)
    del added
    index.hnsw.efSearch = max(ef_search, k + 1)
    indices = np.empty((n, k), np.int64)
    distances = np.empty((n, k), np.float64)
    for start in range(0, n, chunk_rows):
        scores, found = index.search(rows(start), k + 1)
        found = np.where(found >= 0, order[np.clip(found, 0, None)], -1)  # index ids -> rows of X
        queries = order[start : start + found.shape[0]]
        # leave one out: drop the row itself (or, when a duplicate outranks it, the last candidate)
        own = found == queries[:, None]
        keep = ~own
        keep[~own.any(axis=1), k] = False
        indices[queries] = found[keep].reshape(-1, k)
        kept = scores[keep].reshape(-1, k).astype(np.float64)
        distances[queries] = (
            np.clip(1.0 - kept, 0.0, np.inf) if metric == "cosine" else np.sqrt(np.clip(kept, 0.0, np.inf))
        )
    return indices, distances


def exact_neighbours_of(
    X: np.ndarray, queries: np.ndarray, k: int, metric: str = "cosine", block_bytes: int = DEFAULT_BLOCK_BYTES
) -> np.ndarray:
    """Exact leave-one-out k nearest neighbours of the rows ``queries`` of ``X`` (indices, nearest first)."""
    scorer = BlockScorer.build(X, metric)
    order = np.arange(X.shape[0])
    rows = rows_per_block(X.shape[0], block_bytes, 4)
    out = []
    for start in range(0, len(queries), rows):
        q = queries[start : start + rows]
        S = scorer.raw_scores(scorer.vectors[q])
        S[np.arange(len(q)), q] = -np.inf
        out.append(top_k_block(S, k, order)[0])
    return np.concatenate(out) if out else np.empty((0, k), np.int64)


def recall_at_k(approximate: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of the exact k nearest neighbours that the approximate search found.

    Example:
        >>> recall_at_k(np.array([[1, 2], [0, 3]]), np.array([[1, 2], [0, 2]]))
        0.75
    """
    k = exact.shape[1]
    hits = [len(set(a[:k]) & set(e)) for a, e in zip(approximate, exact, strict=True)]
    return float(np.mean(hits) / k) if hits else float("nan")


def approximate_scan(
    X: object,
    labels: object,
    *,
    metric: str = "cosine",
    extremes: bool = True,
    k: int = 0,
    average_precision: bool = False,
    recall_queries: int = 1000,
    seed: int = 0,
    **_: Any,
) -> NeighbourhoodScan:
    """The neighbourhood scan with approximate (HNSW) neighbours and their measured recall@k.

    The returned scan has ``neighbours`` / ``neighbour_distances`` for every LoCE; ``nearest`` / ``farthest``
    (when ``extremes``) and ``average_precision`` are NaN: they need every pair. ``scan.quality`` holds
    ``approximate_recall_at_<k>`` measured on ``recall_queries`` random queries; ``scan.notes`` says all this.
    """
    X, labels = prepare(X, labels, dtype=np.float32)
    n = X.shape[0]
    check_neighbour_count(k, n)
    index = ConceptIndex.from_labels(labels)
    scan = NeighbourhoodScan(index.concepts, labels, metric)
    if k:
        # the exact reference first: its scorer (a normalised copy) is gone before the index is built
        clock = time.perf_counter()
        queries = np.random.default_rng(seed).choice(n, size=min(recall_queries, n), replace=False)
        exact = exact_neighbours_of(X, queries, k, metric)
        scan.timings["exact_reference"] = time.perf_counter() - clock
        clock = time.perf_counter()
        scan.neighbours, scan.neighbour_distances = hnsw_neighbours(X, k, metric, seed=seed)
        scan.timings["approximate_search"] = time.perf_counter() - clock
        recall = recall_at_k(scan.neighbours[queries], exact)
        scan.quality[f"approximate_recall_at_{k}"] = recall
        scan.notes.append(
            f"approximate neighbours (faiss HNSW): recall@{k} against the exact pass {recall:.3f}, measured on "
            f"{queries.size} random queries; precision@k is of the approximate neighbours"
        )
    if extremes:
        scan.nearest = np.full((n, index.n_concepts), np.nan)
        scan.farthest = np.full((n, index.n_concepts), np.nan)
        scan.notes.append(
            "approximate mode: separation and overlap need every pair and are not computed (NaN)"
        )
    if average_precision:
        scan.average_precision = np.full(n, np.nan)
        scan.notes.append(
            "approximate mode: mean average precision needs full rankings and is not computed (NaN)"
        )
    return scan


def approximate_scanner(recall_queries: int = 1000, seed: int = 0) -> Callable[..., NeighbourhoodScan]:
    """A drop-in for ``scan_neighbourhoods`` running :func:`approximate_scan`."""
    return partial(approximate_scan, recall_queries=recall_queries, seed=seed)


def check_ray() -> None:
    """Raise the ``pip install "loce[ray]"`` error early when Ray is missing."""
    import_ray()


# ------------------------------------------------------------------------- clustering on stratified samples
SPREAD_NUMBERS = ("purity", "n_clusters", "gmm_components", "subconcepts_per_concept")
"""What :func:`clustering_spread` reports per stratified sample (the last only with sub-concept options)."""


def _clustering_task(
    X: np.ndarray, labels: np.ndarray, sample_size: int, seed: int, options: dict | None = None
) -> dict[str, float]:
    """Purity, mixtures (and sub-concepts) of one stratified sample, by the registry's built-in analyses."""
    from loce.analysis.builtin import (
        gmm_summary,
        purity_summary,
        small_problem_threads,
        subconcepts_of_concepts,
    )
    from loce.analysis.gmm import fit_gmms
    from loce.analysis.inputs import stratified_subsample
    from loce.analysis.purity import concept_purity

    rows = stratified_subsample(labels, sample_size, seed=seed)
    Xs, ls = X[rows], labels[rows]
    figures = dict.fromkeys(SPREAD_NUMBERS[:3], float("nan"))
    figures.update(purity_summary(concept_purity(Xs, ls, max_samples=max(sample_size, rows.size))))
    with small_problem_threads():
        figures.update(gmm_summary(fit_gmms(Xs, ls, seed=seed)))
    if options is not None:
        splits = subconcepts_of_concepts(Xs, ls, max_members=rows.size, seed=seed, **options)
        figures["subconcepts_per_concept"] = float(np.mean([s.n_subconcepts for s in splits]))
    return {name: float(value) for name, value in figures.items()}


def clustering_spread(
    X: object,
    labels: object,
    *,
    sample_size: int = 2000,
    seeds: int = 10,
    seed: int = 0,
    options: dict | None = None,
    ray_options: RayOptions | None = None,
) -> tuple[dict[str, float], str]:
    """Purity, GMM components (and sub-concepts) of a large store on ``seeds`` stratified samples, one Ray task
    per sample.

    Hierarchical clustering and mixtures do not scale to millions of LoCEs; on stratified samples of
    ``sample_size`` (every concept in proportion) they do, and the spread over the samples says how much the
    numbers depend on the sample.

    ``options`` (``method``, ``n_dims``, ``loces_per_subconcept`` of
    :func:`loce.analysis.builtin.subconcepts_of_concepts`) add ``subconcepts_per_concept``, the mean number of
    sub-concepts a concept splits into. ``loce analyze --engine ray`` uses this above ``--max-samples`` LoCEs
    (:func:`ray_clustering`, :func:`loce.analysis.run.clustering_spread_of`).

    Returns:
        ``(figures, note)``: for each of ``purity``, ``n_clusters``, ``gmm_components`` (and
        ``subconcepts_per_concept``) the mean and the 95% spread over the samples (``M``, ``M_ci_low``,
        ``M_ci_high``), and the sentence to report with them.

    Example:
        >>> figures, note = clustering_spread(X, labels, sample_size=2000, seeds=10)  # doctest: +SKIP
    """
    from loce.analysis.intervals import percentile_interval

    X, labels = prepare(X, labels, dtype=np.float64)
    with ray_session((ray_options or RayOptions()).address) as ray:
        remote = ray.remote(num_cpus=1, max_retries=3)(_clustering_task)
        X_ref, labels_ref = ray.put(X), ray.put(labels)
        results = _gather(
            ray,
            [remote.remote(X_ref, labels_ref, sample_size, seed + s, options) for s in range(seeds)],
            False,
        )
    figures: dict[str, float] = {}
    for name in [n for n in SPREAD_NUMBERS if n in results[0]]:
        values = np.array([r[name] for r in results])
        figures[name] = float(np.nanmean(values))
        figures[f"{name}_ci_low"], figures[f"{name}_ci_high"] = percentile_interval(values)
    what = "purity and Gaussian mixtures" + (" and sub-concepts" if options is not None else "")
    note = (
        f"{what} on {seeds} stratified samples of {min(sample_size, len(labels))} of "
        f"{len(labels)} LoCEs (seeds {seed}..{seed + seeds - 1}): mean and 95% spread over the samples"
    )
    return figures, note


def ray_clustering(ray_options: RayOptions | None = None, seeds: int = 10) -> Callable[..., tuple[dict, str]]:
    """:func:`clustering_spread` on the cluster with ``seeds`` samples, for ``analyze_run(..., spread_with=...)``."""
    return partial(clustering_spread, seeds=seeds, ray_options=ray_options)
