"""The analysis folder: its name per protocol, the atomic swap, the headline contract, damaged tables."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analysis_helpers import planted_concepts
from loce.analysis import AnalysisError, analysis_dir, read_table
from loce.analysis import run as run_module
from loce.analysis.output import AtomicOutput, read_summary
from loce.analysis.run import AnalysisSettings, analyze_run
from loce.store import JobSpec, LoCEStore

FAST = {"map_method": "none", "bootstrap": 20, "analyses": ("retrieval", "separation", "confusion", "purity")}


def make_run(path, X, labels, layer="l"):
    with LoCEStore.create(path) as store:
        store.register_job(JobSpec("j", model="toy", layers=[layer]))
        store.append(
            "j",
            [
                {
                    "sample_id": f"s{i:03d}",
                    "image": f"images/s{i:03d}.png",
                    "concept": str(c),
                    "layer": layer,
                    "status": "ok",
                    "vector": np.asarray(v, np.float32),
                    "iou": 0.5,
                }
                for i, (v, c) in enumerate(zip(X, labels))
            ],
        )
    return path


@pytest.fixture()
def run_dir(tmp_path):
    X, labels = planted_concepts(dim=8)
    return make_run(tmp_path / "RUN", X, labels)


def test_analysis_dir_names_one_folder_per_protocol(tmp_path):
    assert analysis_dir(tmp_path, "default") == tmp_path / "analysis"
    assert analysis_dir(tmp_path, "paper") == tmp_path / "analysis_paper"
    with pytest.raises(AnalysisError, match="unknown analysis protocol"):
        analysis_dir(tmp_path, "papers")


def test_headline_contract_and_protocol_column_in_every_table(run_dir):
    analyze_run(run_dir, settings=AnalysisSettings(**FAST))
    out = analysis_dir(run_dir)
    headline = read_table(out / "headline.parquet")
    assert headline["protocol"].tolist() == ["default"]
    assert headline["interval"].str.startswith("bootstrap over images, 95%").all()
    for metric in (
        "precision_at_1",
        "mean_average_precision",
        "purity",
        "mean_separation",
        "mean_overlap",
        "most_confused_score",
    ):
        low, high = headline[f"{metric}_ci_low"].iloc[0], headline[f"{metric}_ci_high"].iloc[0]
        assert low <= headline[metric].iloc[0] <= high, metric
    assert (
        0 <= headline["mean_separation_chance"].iloc[0] < headline["mean_separation"].iloc[0]
    )  # planted apart
    for name in json.loads((out / "summary.json").read_text())["tables"]:
        assert "protocol" in read_table(out / name).columns, name
    pairs = read_table(out / "confused_pairs.parquet")
    assert (pairs["score_ci_low"] <= pairs["score"] + 1e-12).all()


def test_a_narrower_analysis_replaces_the_whole_folder(run_dir):
    analyze_run(run_dir, settings=AnalysisSettings(**FAST))
    assert (analysis_dir(run_dir) / "purity_clusters.parquet").is_file()
    analyze_run(
        run_dir, concepts=["cat", "dog"], settings=AnalysisSettings(**{**FAST, "analyses": ("retrieval",)})
    )
    out = analysis_dir(run_dir)
    summary = read_summary(out)
    assert summary["analyses"] == ["retrieval"]
    assert summary["concepts"] == ["cat", "dog"]
    assert summary["layers"] == [{"model": "toy", "layer": "l"}]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["summary.json", "headline.csv", "headline.parquet", "retrieval.csv", "retrieval.parquet", "layers"]
    )
    assert [p.name for p in run_dir.iterdir() if p.name.startswith(".loce-analysis")] == []


def test_a_new_analysis_keeps_what_other_steps_wrote_inside_the_folder(run_dir):
    from loce.run_layout import RunLayout

    analyze_run(run_dir, settings=AnalysisSettings(**{**FAST, "analyses": ("retrieval",)}))
    methods = RunLayout(run_dir).methods  # `loce compare-methods` writes inside analysis/
    methods.directory.mkdir()
    methods.index.write_text('{"version": 1, "table": "comparison.csv", "figures": []}')
    methods.location.directory.mkdir()
    methods.location.index.write_text('{"version": 1, "table": "scores.csv", "figures": []}')
    written = {p.relative_to(methods.directory): p.read_bytes() for p in methods.directory.rglob("*.json")}
    analyze_run(run_dir, settings=AnalysisSettings(**{**FAST, "analyses": ("retrieval",)}))
    kept = {p.relative_to(methods.directory): p.read_bytes() for p in methods.directory.rglob("*.json")}
    assert kept == written and len(kept) == 2
    assert read_summary(analysis_dir(run_dir))["analyses"] == ["retrieval"]


def test_a_failing_analysis_leaves_the_previous_output_intact(run_dir, monkeypatch):
    analyze_run(run_dir, settings=AnalysisSettings(**FAST))
    before = {p.name: p.read_bytes() for p in analysis_dir(run_dir).iterdir() if p.is_file()}

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(run_module, "write_results", broken)
    with pytest.raises(OSError, match="disk full"):
        analyze_run(run_dir, settings=AnalysisSettings(**{**FAST, "analyses": ("retrieval",)}))
    after = {p.name: p.read_bytes() for p in analysis_dir(run_dir).iterdir() if p.is_file()}
    assert after == before
    assert [p.name for p in run_dir.iterdir() if p.name.startswith(".loce-analysis")] == []


def test_out_refuses_a_folder_of_the_users_own(run_dir, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(AnalysisError, match="not a loce analysis"):
        analyze_run(run_dir, settings=AnalysisSettings(**FAST), out_dir=mine)
    assert (mine / "notes.txt").read_text() == "keep me"


def test_damaged_tables_raise_a_clear_error_naming_the_file(run_dir):
    analyze_run(run_dir, settings=AnalysisSettings(**FAST))
    path = analysis_dir(run_dir) / "headline.parquet"
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(AnalysisError, match="headline.parquet is damaged"):
        read_table(path)
    with AtomicOutput(analysis_dir(run_dir)):  # an analysis folder may be replaced
        pass
    (analysis_dir(run_dir) / "summary.json").write_text("{not json")
    with pytest.raises(AnalysisError, match="summary.json cannot be read"):
        read_summary(analysis_dir(run_dir))


def test_zero_vectors_are_left_out_and_counted(tmp_path):
    X, labels = planted_concepts(dim=8)
    X = np.concatenate([X, np.zeros((3, 8))])
    labels = np.concatenate([labels, ["car", "car", "cat"]])
    results, out = analyze_run(make_run(tmp_path / "R", X, labels), settings=AnalysisSettings(**FAST))
    assert results[0].n_loces == 120 and results[0].zero_vectors == 3
    headline = pd.read_parquet(out / "headline.parquet")
    assert headline["zero_vectors"].tolist() == [3] and headline["n_loces"].tolist() == [120]
    assert read_summary(out)["results"][0]["zero_vectors"] == 3
