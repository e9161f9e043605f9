"""Scale-out benchmark of the Ray engine (issue 17): fit local vs Ray, and the analysis of 1,000,000 LoCEs.

(a) fit: ``--scenes`` scenes of the built-in world (``loce scenes``) fitted with EfficientNet-Lite0 at one layer,
    by the local engine and by the Ray engine with ``--workers`` model actors on this machine, side by side:
    images/s of both, their ratio (target: Ray costs at most 20% over local), and whether the rows are the same
    (keys, statuses, largest vector difference). The local cluster is started before the timed Ray run; its
    start-up is printed apart.
(b) analysis: ``--loces`` synthetic LoCEs of 256 dimensions over 50 concepts (planted: each concept a few
    sub-clusters on a low-dimensional manifold plus noise, as LoCEs are): a sample of exact block tasks (top-10,
    average precision, per-concept nearest / farthest) through Ray, their time and peak memory per worker,
    extrapolated to 1, 8 and 64 workers (target: < 4 GB per worker); the approximate mode (faiss HNSW) end to end
    on all of them in a child process (time, peak memory); and on a ``--subset`` its recall@10 and speed-up
    against the exact top-10 pass (target: recall@10 >= 0.95).

    python benchmarks/scale_out.py                              # the full run (~30 min on 2 busy cores)
    python benchmarks/scale_out.py --parts fit --scenes 1000    # (a) on a run long enough to amortise start-up
    python benchmarks/scale_out.py --loces 100000 --subset 20000 --scenes 40   # quick mode
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from loce.analysis.distances import BlockScorer, rows_per_block
from loce.analysis.inputs import ConceptIndex
from loce.analysis.neighbours import scan_neighbourhoods
from loce.engines import RayOptions
from loce.engines.ray_analysis import _scan_task, approximate_scan, recall_at_k
from loce.run_layout import RunLayout
from loce.runs import peak_memory_mb

DIM, CONCEPTS, K = 256, 50, 10
LAYER = "_blocks.10"


def planted_loces(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` x 256 float32 LoCEs over 50 concepts: per concept 4 sub-clusters, each an 8-D manifold + noise."""
    rng = np.random.default_rng(seed)
    labels = np.sort(rng.integers(0, CONCEPTS, size=n))
    X = np.empty((n, DIM), np.float32)
    centres = rng.normal(size=(CONCEPTS, DIM)).astype(np.float32) * 2
    for c in range(CONCEPTS):
        rows = np.flatnonzero(labels == c)
        sub = rng.integers(0, 4, size=rows.size)
        offsets = rng.normal(size=(4, DIM)).astype(np.float32)
        basis = rng.normal(size=(8, DIM)).astype(np.float32) * 0.5
        z = rng.normal(size=(rows.size, 8)).astype(np.float32)
        noise = rng.normal(scale=0.1, size=(rows.size, DIM)).astype(np.float32)
        X[rows] = centres[c] + offsets[sub] + z @ basis + noise
    return X, np.array([f"concept{c:02d}" for c in range(CONCEPTS)])[labels]


# ------------------------------------------------------------------------------------------------ (a) fit
def fit_part(scenes: int, workers: int, batch_size: int) -> list[str]:
    import ray

    from loce.data import load_coco
    from loce.engines.ray_fit import ray_fit_run
    from loce.models import load_model
    from loce.pipeline import fit_run
    from loce.store import LoCEStore

    root = Path(tempfile.mkdtemp(prefix="loce-scale-"))
    subprocess.run([sys.executable, "-m", "loce.cli.main", "scenes", "--out", str(root / "scenes"), "--n",
                    str(scenes), "--no-progress"], check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    dataset = load_coco(root / "scenes" / "annotations.json", root / "scenes" / "images")
    model = load_model("efficientnet-lite0")
    common = {"batch_size": batch_size, "progress": False}
    local = fit_run(dataset, model, [LAYER], root / "local", **common)
    clock = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level="WARNING")
    startup = time.perf_counter() - clock
    try:
        remote = ray_fit_run(
            dataset, model, [LAYER], root / "ray", ray_options=RayOptions(workers=workers), **common
        )
    finally:
        ray.shutdown()
    keys = ["sample_id", "concept", "layer", "method"]

    def rows(run):
        frame = LoCEStore.open(run).frame(status=None, columns=[*keys, "status", "vector"])
        return frame.sort_values(keys).reset_index(drop=True)

    a, b = rows(root / "local"), rows(root / "ray")
    same_keys = a[[*keys, "status"]].equals(b[[*keys, "status"]])
    ok = (a["status"] == "ok").to_numpy()
    diff = float(
        np.abs(np.concatenate(a["vector"][ok].tolist()) - np.concatenate(b["vector"][ok].tolist())).max()
    )
    shard_bytes = sum(p.stat().st_size for p in RunLayout(root / "ray").loces.glob("*.parquet"))
    local_ips = local.images_processed / local.timings.total
    ray_ips = remote.images_processed / remote.timings.total
    warmup = remote.timings.startup
    steady = remote.timings.total - warmup  # from the first group computed to the last shard written
    return [
        f"(a) fit, {len(dataset)} scenes, efficientnet-lite0 {LAYER}, batch {batch_size}, {local.vectors} LoCEs",
        f"    local engine ({os.cpu_count()} torch threads): {local.timings.total:7.1f} s  {local_ips:6.2f} images/s"
        f"  {local.vectors / local.timings.total:6.1f} LoCEs/s  peak {local.peak_memory_mb:.0f} MB",
        f"    ray engine, {workers} workers:        {remote.timings.total:7.1f} s  {ray_ips:6.2f} images/s"
        f"  {remote.vectors / remote.timings.total:6.1f} LoCEs/s  peak/worker {remote.peak_memory_mb:.0f} MB"
        f"  (cluster start-up {startup:.1f} s, not included)",
        f"    ray start-up (first group computed {warmup:.1f} s after the pipeline started: worker processes "
        "import torch, Ray Data and the model package; the model is loaded in each actor), paid once per run",
        f"    ray / local time, whole run:              {remote.timings.total / local.timings.total:.2f}",
        f"    ray / local time per image after start-up: {steady / local.timings.total:.2f} (target <= 1.20)",
        f"    same rows: keys and statuses {'identical' if same_keys else 'DIFFER'}, "
        f"{int(ok.sum())} vectors, max |difference| {diff:.1e}",
        f"    store: {shard_bytes / max(1, len(a)):.0f} bytes per row (vector of {len(a['vector'][ok].iloc[0])} "
        f"floats, RLE mask, metadata; zstd Parquet)",
    ]


# ------------------------------------------------------------------------------------------- (b) analysis
def exact_tasks_part(X: np.ndarray, labels: np.ndarray, sample_tasks: int, rows_per_task: int) -> list[str]:
    import ray

    n = X.shape[0]
    index = ConceptIndex.from_labels(labels)
    clock = time.perf_counter()
    scorer = BlockScorer.build(X[index.order], "cosine")
    prepare = time.perf_counter() - clock
    block_bytes = rows_per_task * n * 4
    assert rows_per_block(n, block_bytes, 4) == rows_per_task
    options = {"extremes": True, "k": K, "average_precision": True, "block_bytes": block_bytes}
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        remote = ray.remote(num_cpus=1)(_scan_task)
        scorer_ref, index_ref = ray.put(scorer), ray.put(index)
        starts = (
            np.random.default_rng(0).choice(n // rows_per_task, size=sample_tasks, replace=False)
            * rows_per_task
        )
        clock = time.perf_counter()
        parts = ray.get([remote.remote(scorer_ref, index_ref, int(s), int(s) + rows_per_task, options)
                         for s in starts])  # fmt: skip
        wall = time.perf_counter() - clock
    finally:
        ray.shutdown()
    per_task = [sum(v for k, v in p.timings.items() if k != "peak_memory_mb") for p in parts]
    peak = max(p.timings["peak_memory_mb"] for p in parts)
    tasks_total = -(-n // rows_per_task)
    mean_task = float(np.mean(per_task))
    lines = [
        f"(b) exact pass over {n:,} x {DIM} LoCEs, {CONCEPTS} concepts (top-{K}, average precision, per-concept "
        f"nearest/farthest): {sample_tasks} sampled Ray tasks of {rows_per_task} query rows",
        f"    per task: {mean_task:.1f} s (min {min(per_task):.1f}, max {max(per_task):.1f}); {sample_tasks} tasks on "
        f"2 CPUs took {wall:.1f} s wall; peak memory per worker {peak / 1024:.2f} GB (target < 4 GB); "
        f"scorer prepared in {prepare:.1f} s",
        f"    all {tasks_total:,} tasks extrapolated (task time x tasks / workers):",
    ]
    for workers in (1, 8, 64):
        hours = mean_task * tasks_total / workers / 3600
        lines.append(f"      {workers:>3} workers: {hours:8.2f} h")
    return lines


def _approx_child(path: str, labels_path: str, queue) -> None:
    X = np.load(path, mmap_mode="r")
    labels = np.load(labels_path)
    clock = time.perf_counter()
    scan = approximate_scan(np.asarray(X), labels, k=K, extremes=False, recall_queries=1000)
    queue.put({"seconds": time.perf_counter() - clock, "peak_mb": peak_memory_mb(), "quality": scan.quality})


def approximate_part(X: np.ndarray, labels: np.ndarray, subset: int) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "X.npy", X)
        np.save(Path(tmp) / "labels.npy", labels)
        context = multiprocessing.get_context("spawn")
        queue = context.Queue()
        child = context.Process(target=_approx_child, args=(str(Path(tmp) / "X.npy"), str(Path(tmp) / "labels.npy"),
                                                            queue))  # fmt: skip
        child.start()
        full = queue.get()
        child.join()
    lines = [
        f"(b) approximate mode (faiss HNSW) end to end on all {X.shape[0]:,}: {full['seconds']:.0f} s, peak memory "
        f"{full['peak_mb'] / 1024:.2f} GB, recall@{K} {full['quality'][f'approximate_recall_at_{K}']:.3f} "
        "(1,000 random queries vs exact)",
    ]
    rows = np.random.default_rng(1).choice(X.shape[0], size=min(subset, X.shape[0]), replace=False)
    Xs, ls = X[np.sort(rows)], labels[np.sort(rows)]
    clock = time.perf_counter()
    exact = scan_neighbourhoods(Xs, ls, k=K, extremes=False)
    exact_s = time.perf_counter() - clock
    clock = time.perf_counter()
    approx = approximate_scan(Xs, ls, k=K, extremes=False, recall_queries=1)
    approx_s = time.perf_counter() - clock
    recall = recall_at_k(approx.neighbours, exact.neighbours)
    lines.append(
        f"(b) {Xs.shape[0]:,}-LoCE subset, top-{K} of every LoCE: exact {exact_s:.0f} s, approximate {approx_s:.0f} s "
        f"(speed-up {exact_s / approx_s:.1f}x), recall@{K} over all queries {recall:.3f} (target >= 0.95)"
    )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenes", type=int, default=200, help="(a) scenes to fit")
    parser.add_argument("--workers", type=int, default=2, help="(a) Ray model actors")
    parser.add_argument("--batch-size", type=int, default=16, help="(a) images per group / shard")
    parser.add_argument(
        "--loces", type=int, default=1_000_000, help="(b) synthetic LoCEs (quick mode: 100000)"
    )
    parser.add_argument(
        "--subset", type=int, default=100_000, help="(b) LoCEs of the exact vs approximate subset"
    )
    parser.add_argument("--sample-tasks", type=int, default=4, help="(b) exact block tasks run through Ray")
    parser.add_argument("--rows-per-task", type=int, default=64, help="(b) query rows per exact task")
    parser.add_argument("--parts", default="fit,exact,approximate", help="which parts to run")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    load = os.getloadavg()
    print(
        f"machine: {os.cpu_count()} CPUs, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at start"
    )
    lines: list[str] = []
    if "fit" in parts:
        lines += fit_part(args.scenes, args.workers, args.batch_size)
        print("\n".join(lines), flush=True)
    if parts & {"exact", "approximate"}:
        X, labels = planted_loces(args.loces)
        more = []
        if "exact" in parts:
            more += exact_tasks_part(X, labels, args.sample_tasks, args.rows_per_task)
            print("\n".join(more), flush=True)
        if "approximate" in parts:
            extra = approximate_part(X, labels, args.subset)
            print("\n".join(extra), flush=True)
    load = os.getloadavg()
    print(f"load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
