"""Scale benchmark of the LoCE distribution analyses (issue 5).

100,000 synthetic LoCEs of 512 dimensions over 20 concepts (seeded): leave-one-out retrieval precision@k for every
query and true mean average precision, separation and overlap, and the per-concept outlier scores. The exact
all-pairs work is one blocked pass (float32 matrix products, one block of queries x all LoCEs in memory) that
yields the per-concept nearest/farthest distances, the top-40 neighbours and every query's average precision.
Prints the time and peak memory of each step and the memory an N x N approach would need.

Run:  .venv/bin/python benchmarks/analysis_scale.py            (N = 100,000; several minutes on 2 cores)
      .venv/bin/python benchmarks/analysis_scale.py --n 20000  (smaller)
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from loce.analysis import (
    ConceptSeparation,
    RetrievalResult,
    confused_pairs,
    find_outliers,
    scan_neighbourhoods,
)
from loce.analysis.distances import BlockScorer, rows_per_block
from loce.analysis.inputs import ConceptIndex

GIB = 2**30


def synthetic_loces(n: int, dim: int, n_concepts: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Concepts as 2-3 Gaussian sub-clusters around a concept direction with strong noise (neighbours of
    different concepts interleave: a hard ranking, precision@1 ~ 0.9 and mean AP ~ 0.35 at N = 10,000); concepts
    0 and 1 share most of their direction (a confused pair); a few exact duplicates, zero vectors and outliers."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_concepts, dim)).astype(np.float32)
    centres[1] = 0.8 * centres[0] + 0.6 * centres[1]
    codes = np.sort(rng.integers(0, n_concepts, size=n))
    X = np.empty((n, dim), np.float32)
    for c in range(n_concepts):
        members = np.flatnonzero(codes == c)
        n_sub = 2 + c % 2
        subs = rng.normal(scale=0.7, size=(n_sub, dim)).astype(np.float32)
        which = rng.integers(0, n_sub, size=members.size)
        X[members] = (
            centres[c] + subs[which] + rng.normal(scale=4.0, size=(members.size, dim)).astype(np.float32)
        )
    X[rng.integers(0, n, size=50)] = 0.0  # zero LoCEs (failed fits)
    dup = rng.integers(0, n, size=(100, 2))
    X[dup[:, 1]] = X[dup[:, 0]]  # exact duplicates
    outliers = rng.choice(n, size=20, replace=False)
    X[outliers] = rng.normal(scale=4.0, size=(20, dim)).astype(np.float32)
    labels = np.array([f"concept_{c:02d}" for c in range(n_concepts)])[codes]
    return X, labels


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class Meter:
    """Wall time and peak resident memory of one step.

    The peak is the kernel's high-water mark of the process (``VmHWM``, everything: numpy, torch, sklearn),
    reset before the step through ``/proc/self/clear_refs``; where that is not allowed, the process-wide
    ``ru_maxrss`` is shown instead (then it is the peak so far, not of the step alone).
    """

    peaks: list[int] = []

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> Meter:
        try:
            with open("/proc/self/clear_refs", "w") as refs:
                refs.write("5")
            self.resettable = True
        except OSError:
            self.resettable = False
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start
        if self.resettable:
            self.peak = _rss_kib("VmHWM") * 1024
            label = "peak RSS of the step"
        else:
            self.peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            label = "peak RSS so far"
        Meter.peaks.append(self.peak)
        print(f"  {self.name:<38} {self.seconds:8.1f} s   {label} {self.peak / GIB:6.2f} GiB", flush=True)


def verify_sample(X, labels, scan, n_queries: int, seed: int, k: int, block_bytes: int, backend: str) -> None:
    """Recompute a random sample of queries by brute force (a full sort of the row) and compare.

    The rows are recomputed in the same blocks as in the pass, so the float32 scores are bit-identical."""
    rng = np.random.default_rng(seed + 1)
    index = ConceptIndex.from_labels(labels)
    order = index.order
    position = np.empty_like(order)
    position[order] = np.arange(order.size)
    scorer = BlockScorer.build(X[order], backend=backend)
    rows = rows_per_block(X.shape[0], block_bytes)
    worst_ap = 0.0
    for q in rng.choice(X.shape[0], size=n_queries, replace=False):
        p = position[q]
        r0 = p - p % rows
        row = scorer.scores(slice(r0, min(X.shape[0], r0 + rows)))[p - r0].copy()
        row[p] = -np.inf
        ranking = order[np.lexsort((order, -row))][
            :-1
        ]  # by score, ties by original index; self last, dropped
        assert (ranking[:k] == scan.neighbours[q]).all(), f"top-{k} of query {q} differs from brute force"
        relevant = labels[ranking] == labels[q]
        if relevant.any():
            ap = (np.cumsum(relevant)[relevant] / (np.flatnonzero(relevant) + 1)).mean()
            worst_ap = max(worst_ap, abs(ap - scan.average_precision[q]))
    assert worst_ap < 1e-9, f"average precision differs from brute force by {worst_ap}"
    print(
        f"  verified {n_queries} random queries against a brute-force full sort: top-{k} identical, AP equal"
    )


def bare_matmul_seconds(X: np.ndarray, block_bytes: int) -> float:
    """Time of the bare matrix products of all pairs, extrapolated from 3 blocks (the floor of any exact pass)."""
    import torch

    rows = rows_per_block(X.shape[0], block_bytes)
    unit = torch.from_numpy(X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12))
    out = torch.empty((rows, X.shape[0]))
    torch.mm(unit[:rows], unit.T, out=out)  # warm-up
    start = time.perf_counter()
    for r0 in range(0, 3 * rows, rows):
        torch.mm(unit[r0 : r0 + rows], unit.T, out=out[: unit[r0 : r0 + rows].shape[0]])
    return (time.perf_counter() - start) / 3 * (X.shape[0] / rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=100_000, help="number of LoCEs")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--concepts", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--block-mb", type=int, default=128, help="size of one block of scores (MiB)")
    parser.add_argument("--backend", default="torch", choices=["torch", "numpy"])
    parser.add_argument("--no-ap", action="store_true", help="skip the true mean average precision")
    parser.add_argument("--no-lof", action="store_true", help="skip LocalOutlierFactor / IsolationForest")
    parser.add_argument("--verify", type=int, default=50, help="queries re-checked by brute force (0: none)")
    args = parser.parse_args(argv)
    ks = (1, 5, 10, 20, 30, 40)
    n = args.n
    print(
        f"N = {n} LoCEs x {args.dim} dims, {args.concepts} concepts, block {args.block_mb} MiB, {args.backend}"
    )
    print(
        f"an N x N approach would hold {n * n * 4 / GIB:.1f} GiB of float32 similarities "
        f"({n * n * 8 / GIB:.1f} GiB as float64, plus {n * n * 8 / GIB:.1f} GiB for a full argsort's indices)"
    )
    total = time.perf_counter()
    with Meter("generate data"):
        X, labels = synthetic_loces(n, args.dim, args.concepts, args.seed)
    print(f"  data: {X.nbytes / GIB:.2f} GiB")
    bare = bare_matmul_seconds(X, args.block_mb * 2**20)
    print(
        f"  reference: bare float32 matrix products of all pairs ~{bare:.1f} s (3 blocks timed, extrapolated)"
    )
    with Meter("one pass: extremes + top-40 + AP") as pass_meter:
        scan = scan_neighbourhoods(
            X,
            labels,
            extremes=True,
            k=max(ks),
            average_precision=not args.no_ap,
            block_bytes=args.block_mb * 2**20,
            backend=args.backend,
        )
    for phase, seconds in scan.timings.items():
        print(f"    of which {phase:<28} {seconds:8.1f} s")
    print(f"    the pass took {pass_meter.seconds / bare:.2f}x the bare matrix products (same run)")
    with Meter("separation + overlap matrices"):
        separation = ConceptSeparation.from_scan(scan)
        pairs = confused_pairs(separation)
    with Meter("retrieval metrics"):
        retrieval = RetrievalResult.from_scan(scan, ks)
    methods = ["summed_cosine"] if args.no_lof else ["summed_cosine", "lof", "isolation_forest"]
    outlier_times = {}
    for method in methods:
        with Meter(f"outliers: {method}") as meter:
            outliers = find_outliers(X, labels, methods=[method])
        outlier_times[method] = meter.seconds
    total = time.perf_counter() - total
    peak = max(Meter.peaks)
    print(f"total {total:.1f} s ({total / 60:.1f} min); largest peak RSS of a step {peak / GIB:.2f} GiB")
    print("results:")
    print("  " + ", ".join(f"precision@{k} {retrieval.precision_at(k):.3f}" for k in ks))
    if not args.no_ap:
        print(f"  mean average precision {retrieval.mean_average_precision:.4f}")
    off = ~np.eye(separation.concepts.size, dtype=bool)
    print(
        f"  separation: mean {separation.separation[off].mean():.3f}, min {separation.separation[off].min():.3f}; "
        f"overlap: mean {separation.overlap[off].mean():.4f}, max {separation.overlap[off].max():.3f}"
    )
    top = pairs.table.iloc[0]
    print(
        f"  most confused pair: {top.concept_a} / {top.concept_b} (score {top.score:.3f}, overlap {top.overlap:.3f})"
    )
    del outliers
    if args.verify and not args.no_ap:
        verify_sample(
            X, labels, scan, min(args.verify, n), args.seed, max(ks), args.block_mb * 2**20, args.backend
        )


if __name__ == "__main__":
    main()
