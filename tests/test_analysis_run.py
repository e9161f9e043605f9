"""``loce analyze`` end to end on a small store with planted structure."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analysis_helpers import planted_concepts
from loce.analysis.run import AnalysisSettings, analyze_run
from loce.cli.main import main
from loce.store import JobSpec, LoCEStore


@pytest.fixture()
def run_dir(tmp_path):
    X, labels = planted_concepts(dim=8)
    noisy = X + np.random.default_rng(1).normal(scale=15, size=X.shape)
    run = tmp_path / "RUN"
    with LoCEStore.create(run) as store:
        store.register_job(JobSpec("j", model="toy", layers=["good", "noisy"]))
        rows = []
        for i, concept in enumerate(labels):
            for layer, vectors in (("good", X), ("noisy", noisy)):
                rows.append(
                    {
                        "sample_id": f"s{i:03d}",
                        "image": f"images/s{i:03d}.png",
                        "concept": concept,
                        "layer": layer,
                        "status": "ok",
                        "vector": vectors[i].astype(np.float32),
                        "iou": 0.5,
                    }
                )
        rows.append(
            {
                "sample_id": "s999",
                "image": "images/s999.png",
                "concept": "kite",
                "layer": "good",
                "status": "ok",
                "vector": np.ones(8, np.float32),
                "iou": 0.5,
            }
        )
        store.append("j", rows)
    return run


def test_cli_writes_tables_and_summary(run_dir, capsys):
    assert main(["analyze", str(run_dir), "--no-progress", "--ks", "1,5", "--map-method", "pca"]) == 0
    printed = capsys.readouterr().out
    assert "precision_at_1" in printed and "good" in printed and "noisy" in printed
    out = run_dir / "analysis"
    summary = json.loads((out / "summary.json").read_text())
    results = {r["layer"]: r for r in summary["results"]}
    assert results["good"]["dropped_concepts"] == {"kite": 1}
    assert results["good"]["headline"]["precision_at_1"] > results["noisy"]["headline"]["precision_at_1"]
    assert results["good"]["headline"]["most_confused_pair"] in ("bus / car", "car / bus")
    for name in (
        "headline",
        "retrieval",
        "separation",
        "confused_pairs",
        "purity_clusters",
        "outliers",
        "gmm_components",
        "subconcepts",
    ):
        csv = pd.read_csv(out / f"{name}.csv")
        parquet = pd.read_parquet(out / f"{name}.parquet")
        assert len(csv) == len(parquet) > 0
        assert list(csv.columns[:3]) == ["run", "model", "layer"]
    retrieval = pd.read_csv(out / "retrieval.csv")
    assert set(retrieval["layer"]) == {"good", "noisy"} and "mean_average_precision" in retrieval.columns


def test_selection_and_clear_errors(run_dir, tmp_path):
    results, out = analyze_run(
        run_dir,
        layers=["good"],
        settings=AnalysisSettings(analyses=("retrieval",), ks=(1,), figure_data=False),
        out_dir=tmp_path / "a",
    )
    assert [r.layer for r in results] == ["good"] and sorted(p.name for p in out.iterdir()) == [
        "headline.csv",
        "headline.parquet",
        "retrieval.csv",
        "retrieval.parquet",
        "summary.json",
    ]
    assert main(["analyze", str(run_dir), "--layers", "missing", "--no-progress"]) == 1
    assert main(["analyze", str(run_dir), "--analyses", "tsne", "--no-progress"]) == 1
