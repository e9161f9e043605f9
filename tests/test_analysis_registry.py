"""The one analysis registry: an analysis registered once shows up in ``analyze_run``, ``compare`` and
``compare-methods`` with no other change; needs, shared neighbour passes and headline names."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analysis_helpers import planted_concepts
from loce.analysis import ANALYSES, AnalysisError, compare
from loce.analysis.registry import (
    ScanNeed,
    current_headline_names,
    register_analysis,
    unregister_analysis,
    with_needs,
)
from loce.analysis.run import AnalysisSettings, analyze_run, analyze_vectors, run_analyses
from loce.analysis.separation import CHANCE_SHUFFLES
from loce.baselines import compare_methods
from loce.store import JobSpec, LoCEStore


def centroid_norms(X, labels):
    """Norm of each concept's mean vector (a toy analysis with a hand-checkable answer)."""
    X, labels = np.asarray(X, dtype=np.float64), np.asarray(labels).astype(str)
    concepts = sorted(set(labels.tolist()))
    return pd.DataFrame(
        {"concept": concepts, "norm": [float(np.linalg.norm(X[labels == c].mean(axis=0))) for c in concepts]}
    )


@pytest.fixture()
def toy_analysis():
    register_analysis(
        "centroid_norm",
        summary=lambda frame: {"largest_centroid_norm": float(frame["norm"].max())},
        tables=lambda frame: {"centroid_norms": frame},
    )(centroid_norms)
    try:
        yield ANALYSES["centroid_norm"]
    finally:
        unregister_analysis("centroid_norm")
    assert "centroid_norm" not in ANALYSES


def write_store(run, methods=("loce", "crop")):
    """Two methods over the same 40 samples of two concepts at one layer: centroids at 3 and at 5 on axis 0."""
    rng = np.random.default_rng(0)
    with LoCEStore.create(run) as store:
        for method in methods:
            store.register_job(JobSpec(method, model="toy", layers=["l"], method=method))
            rows = []
            for i in range(40):
                concept = "a" if i < 20 else "b"
                vector = rng.normal(scale=0.01, size=4)
                vector[0] += 3.0 if concept == "a" else 5.0
                rows.append({"sample_id": f"s{i:02d}", "image": f"s{i:02d}.png", "concept": concept, "layer": "l",
                             "method": method, "status": "ok", "vector": vector.astype(np.float32),
                             "iou": 0.5})  # fmt: skip
            store.append(method, rows)
    return run


def test_a_registered_analysis_runs_in_analyze_run_and_compare_methods(toy_analysis, tmp_path):
    run = write_store(tmp_path / "RUN")
    assert "centroid_norm" in run_analyses() and "centroid_norm" in AnalysisSettings().analyses
    results, out = analyze_run(run, settings=AnalysisSettings(bootstrap=0, figure_data=False))
    headline = pd.read_csv(out / "headline.csv")
    # planted: concept b's centroid is (5, ~0, ~0, ~0)
    assert headline["largest_centroid_norm"].iloc[0] == pytest.approx(5.0, abs=0.01)
    table = pd.read_csv(out / "centroid_norms.csv")
    assert list(table.columns[:4]) == ["run", "model", "layer", "protocol"]
    assert table["norm"].round(1).tolist() == [3.0, 5.0]
    summary = json.loads((out / "summary.json").read_text())
    assert "centroid_norm" in summary["analyses"] and "centroid_norms" in ",".join(summary["tables"])
    assert "centroid_norm" in results[0].seconds
    # the built-in numbers are still there, in their order
    assert list(headline.columns).index("precision_at_1") < list(headline.columns).index(
        "largest_centroid_norm"
    )
    comparison = compare_methods(run, ks=(1,)).table.set_index("method")
    assert comparison.at["crop", "largest_centroid_norm"] == pytest.approx(5.0, abs=0.01)
    assert list(comparison.columns[-3:]) == ["largest_centroid_norm", "mean_iou", "note"]
    side_by_side = compare({("toy", "l"): (np.eye(2), ["a", "b"])}, "centroid_norm")
    assert side_by_side["largest_centroid_norm"].tolist() == [1.0]


def test_only_the_selected_analyses_and_what_they_need_run(toy_analysis):
    X, labels = planted_concepts()
    ids = np.arange(len(labels))
    result = analyze_vectors(X, labels, ids, AnalysisSettings(analyses=("confusion",), bootstrap=0))
    # confusion needs separation and purity: they run (and report) too; nothing else does
    assert set(result.tables) == {"separation", "purity_clusters", "confused_pairs"}
    assert "largest_centroid_norm" not in result.headline and "precision_at_1" not in result.headline
    assert with_needs(["confusion", "retrieval"]) == ["retrieval", "separation", "purity", "confusion"]


def test_retrieval_and_separation_share_one_neighbour_pass_per_metric():
    X, labels = planted_concepts()
    calls, shuffled = [], []

    def counting_scan(X, given, **options):
        from loce.analysis.neighbours import scan_neighbourhoods

        # the passes of the separation's chance level see the concept labels shuffled (same concept sizes)
        same = np.array_equal(np.asarray(given), labels)
        assert same or sorted(given) == sorted(labels)
        (calls if same else shuffled).append(options)
        return scan_neighbourhoods(X, given, **options)

    ids = np.arange(len(labels))
    settings = AnalysisSettings(analyses=("retrieval", "separation"), bootstrap=0, ks=(1, 5))
    analyze_vectors(X, labels, ids, settings, scan_with=counting_scan)
    assert [(c["metric"], c["extremes"], c["k"], c["average_precision"]) for c in calls] == [
        ("cosine", True, 5, True)
    ]
    assert [(c["metric"], c["extremes"]) for c in shuffled] == [("cosine", True)] * CHANCE_SHUFFLES
    calls.clear()
    shuffled.clear()
    analyze_vectors(X, labels, ids, AnalysisSettings(**{**settings.__dict__, "separation_metric": "euclidean"}),
                    scan_with=counting_scan)  # fmt: skip
    assert [(c["metric"], c["extremes"], c["k"]) for c in calls] == [
        ("cosine", False, 5),
        ("euclidean", True, 0),
    ]
    assert calls[1]["dtype"] is np.float64  # exact small gaps for Euclidean extremes
    assert [(c["metric"], c["dtype"]) for c in shuffled] == [("euclidean", np.float64)] * CHANCE_SHUFFLES


def test_headline_names_are_the_same_in_compare_and_analyze():
    X, labels = planted_concepts()
    ids = np.arange(len(labels))
    result = analyze_vectors(X, labels, ids, AnalysisSettings(bootstrap=0, figure_data=False))
    for name in ("separation", "purity", "gmm", "outliers"):
        row = compare({("m", "l"): (X, labels)}, name).drop(columns=["model", "layer"]).iloc[0]
        assert set(row.index) <= set(result.headline), name
    pair = compare({("m", "l"): (X, labels)}, "confusion", with_purity=True).iloc[0]
    assert pair["most_confused_pair"] == result.headline["most_confused_pair"]
    assert pair["most_confused_score"] == pytest.approx(result.headline["most_confused_score"])
    old = pd.DataFrame({"top_pair": ["bus / car"], "top_score": [1.0], "overall_components": [3]})
    assert current_headline_names(old).columns.tolist() == [
        "most_confused_pair",
        "most_confused_score",
        "gmm_components",
    ]


def test_scan_needs_merge_and_registration_errors():
    merged = ScanNeed("cosine", k=5, average_precision=True).merge(ScanNeed("cosine", extremes=True, k=2))
    assert merged == ScanNeed("cosine", extremes=True, k=5, average_precision=True)
    with pytest.raises(AnalysisError, match="not registered"):
        register_analysis("needy", summary=dict, needs=("nonexistent",))(centroid_norms)
    with pytest.raises(AnalysisError, match="needed by"):
        unregister_analysis("purity")
    with pytest.raises(AnalysisError, match="unknown analyses"):
        AnalysisSettings(analyses=("tsne",))
