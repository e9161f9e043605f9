"""`loce analyze --engine ray`: the exact pass as Ray tasks gives the local results; the approximate mode's recall."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import ray_helpers
from analysis_helpers import clusters
from conftest_analysis_report import make_run
from loce.analysis.neighbours import scan_neighbourhoods
from loce.cli.main import main
from loce.engines import RayOptions
from loce.engines.ray_analysis import (
    approximate_scan,
    clustering_spread,
    exact_neighbours_of,
    hnsw_neighbours,
    ray_scan_neighbourhoods,
    recall_at_k,
    task_ranges,
)

pytestmark = pytest.mark.xdist_group("ray")
ray_cluster = ray_helpers.ray_cluster  # the module-scoped local cluster


def planted(
    n_per: int = 60, concepts: int = 6, dim: int = 12, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping Gaussian concepts (so separation, overlap and AP are not trivial), two exact duplicates."""
    rng = np.random.default_rng(seed)
    X, blob = clusters(rng.normal(size=(concepts, dim)) * 2, [n_per] * concepts, spread=1.0, seed=seed + 1)
    X[5] = X[200]  # a duplicate across concepts: tie handling must match too
    labels = np.array([f"c{b}" for b in blob])
    perm = rng.permutation(len(X))  # concepts interleaved: the sorted order differs from the input order
    return X[perm].astype(np.float32), labels[perm]


def test_task_ranges_cover_the_rows_in_whole_blocks():
    for n, rows, tasks in [(10, 3, 2), (100, 7, 8), (5, 10, 4), (64, 8, 8)]:
        ranges = task_ranges(n, rows, tasks)
        assert ranges[0][0] == 0 and ranges[-1][1] == n and len(ranges) <= tasks
        assert all(a % rows == 0 and b > a for a, b in ranges)
        assert all(ranges[i][1] == ranges[i + 1][0] for i in range(len(ranges) - 1))


def test_recall_of_a_hand_made_case():
    assert recall_at_k(np.array([[1, 2, 3], [4, 5, 6]]), np.array([[3, 2, 1], [4, 0, 9]])) == pytest.approx(
        4 / 6
    )


@pytest.mark.slow
@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_ray_exact_pass_equals_the_local_pass(ray_cluster, metric):
    X, labels = planted()
    dtype = np.float64 if metric == "euclidean" else np.float32
    kwargs = {
        "metric": metric,
        "extremes": True,
        "k": 10,
        "average_precision": True,
        "dtype": dtype,
        "block_bytes": 37 * X.shape[0] * np.dtype(dtype).itemsize,
    }  # fmt: skip  -- 37-row blocks, 10 ranges
    local = scan_neighbourhoods(X, labels, **kwargs)
    ray_scan = ray_scan_neighbourhoods(X, labels, ray_options=RayOptions(workers=2), tasks=5, **kwargs)
    np.testing.assert_array_equal(ray_scan.neighbours, local.neighbours)
    for name in ("neighbour_distances", "nearest", "farthest", "average_precision"):
        np.testing.assert_allclose(getattr(ray_scan, name), getattr(local, name), atol=1e-6, err_msg=name)
    assert 0 < ray_scan.timings["peak_memory_mb"] < 4096


@pytest.mark.slow
def test_cli_analyze_with_the_ray_engine_writes_the_local_tables(ray_cluster, tmp_path, capsys):
    run, _, _ = make_run(tmp_path)
    common = ["analyze", str(run), "--analyses", "retrieval,separation", "--bootstrap", "0", "--no-figure-data",
              "--ks", "1,5,10", "--no-progress"]  # fmt: skip
    assert main([*common, "--out", str(tmp_path / "local")]) == 0
    assert main([*common, "--out", str(tmp_path / "ray"), "--engine", "ray", "--workers", "2"]) == 0
    for table in ("retrieval", "separation"):
        a = pd.read_csv(tmp_path / "ray" / f"{table}.csv")
        b = pd.read_csv(tmp_path / "local" / f"{table}.csv")
        pd.testing.assert_frame_equal(a, b, atol=1e-6)
    assert main([*common, "--out", str(tmp_path / "approx"), "--approximate"]) == 0
    summary = json.loads((tmp_path / "approx" / "summary.json").read_text())
    headline = summary["results"][0]["headline"]
    assert headline["approximate_recall_at_10"] >= 0.95
    assert any("recall@10" in note for note in summary["results"][0]["notes"])


def test_approximate_neighbours_recall_is_measured_against_the_exact_ones():
    X, labels = planted(n_per=400, concepts=5, dim=16)
    scan = approximate_scan(X, labels, k=10, extremes=True, average_precision=True, recall_queries=300)
    queries = np.arange(0, len(X), 7)
    exact = exact_neighbours_of(X, queries, 10)
    local = scan_neighbourhoods(X, labels, k=10, extremes=False)
    np.testing.assert_array_equal(
        exact, local.neighbours[queries]
    )  # the recall's reference is the exact pass
    measured = recall_at_k(scan.neighbours[queries], exact)
    assert measured >= 0.95 and abs(scan.quality["approximate_recall_at_10"] - measured) < 0.05
    assert np.isnan(scan.nearest).all() and np.isnan(scan.average_precision).all()
    assert any("not computed" in note for note in scan.notes)


def test_the_chunk_size_of_the_approximate_search_does_not_change_its_graph():
    # all rows go into the HNSW index in one add: adding them in chunks built another, poorer graph (recall@10
    # 0.67 instead of 0.97 at 1M planted LoCEs); the chunks only bound the search's temporaries
    faiss = pytest.importorskip("faiss")
    X, _ = planted(n_per=400, concepts=5, dim=16)
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # one thread: the graph is built the same way twice
    try:
        whole, whole_d = hnsw_neighbours(X, 10, chunk_rows=len(X))
        chunked, chunked_d = hnsw_neighbours(X, 10, chunk_rows=300)
    finally:
        faiss.omp_set_num_threads(threads)
    np.testing.assert_array_equal(chunked, whole)
    np.testing.assert_array_equal(chunked_d, whole_d)


@pytest.mark.slow
def test_clustering_on_stratified_samples_reports_its_spread(ray_cluster):
    from loce.analysis.purity import concept_purity

    X, labels = planted(n_per=150, concepts=4, dim=8)
    figures, note = clustering_spread(X, labels, sample_size=200, seeds=4, ray_options=RayOptions(workers=2))
    # the four samples' values are those of the same analysis run directly on each stratified sample
    from loce.analysis.inputs import stratified_subsample

    direct = [concept_purity(X[r], labels[r]).purity for r in (stratified_subsample(labels, 200, seed=s)
                                                                for s in range(4))]  # fmt: skip
    assert figures["purity"] == pytest.approx(np.mean(direct))
    assert figures["purity_ci_low"] <= figures["purity"] <= figures["purity_ci_high"]
    assert (
        figures["purity_ci_low"] >= min(direct) - 1e-12 and figures["purity_ci_high"] <= max(direct) + 1e-12
    )
    assert "4 stratified samples of 200 of 600 LoCEs" in note


@pytest.mark.slow
def test_cli_analyze_with_ray_reports_clustering_over_stratified_samples(ray_cluster, tmp_path):
    from loce.analysis.builtin import subconcepts_of_concepts
    from loce.analysis.inputs import stratified_subsample
    from loce.analysis.purity import concept_purity
    from loce.store import LoCEStore

    run, _, _ = make_run(tmp_path)
    common = ["analyze", str(run), "--analyses", "purity,gmm,subconcepts", "--bootstrap", "0", "--no-figure-data",
              "--max-samples", "40", "--layers", "l1", "--no-progress"]  # fmt: skip
    assert main([*common, "--out", str(tmp_path / "ray"), "--engine", "ray", "--workers", "2"]) == 0
    result = json.loads((tmp_path / "ray" / "summary.json").read_text())["results"][0]
    X, meta = LoCEStore.open(run).vectors(layer="l1")
    labels = meta["concept"].to_numpy().astype(str)
    # the CLI asks for 10 samples, seeds 0..9 (--seed 0)
    samples = [stratified_subsample(labels, 40, seed=s) for s in range(10)]
    purity = [concept_purity(X[r], labels[r]).purity for r in samples]
    splits = [subconcepts_of_concepts(X[r], labels[r], seed=s) for s, r in enumerate(samples)]
    per_concept = [np.mean([split.n_subconcepts for split in found]) for found in splits]
    headline = result["headline"]
    assert headline["purity"] == pytest.approx(np.mean(purity))
    assert headline["purity_ci_low"] <= headline["purity"] <= headline["purity_ci_high"]
    assert headline["subconcepts_per_concept"] == pytest.approx(np.mean(per_concept))
    assert "gmm_components_ci_high" in headline
    assert any("10 stratified samples of 40 of 60 LoCEs" in note for note in result["notes"])
    assert "spread over stratified samples" in result["interval"]
    # the local engine keeps one stratified sample and says so
    assert main([*common, "--out", str(tmp_path / "local")]) == 0
    local = json.loads((tmp_path / "local" / "summary.json").read_text())["results"][0]
    assert "purity_ci_low" not in local["headline"] and "subconcepts_per_concept" not in local["headline"]
    assert any("purity on a stratified subsample of 40" in note for note in local["notes"])
