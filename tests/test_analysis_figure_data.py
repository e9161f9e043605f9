"""``loce analyze`` stores what the figures need, once, in open formats (RUN/analysis/layers/*)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from conftest_analysis_report import CONCEPTS, LAYERS, PER_CONCEPT, brute_force_top_k, make_run
from loce.analysis.errors import AnalysisError
from loce.analysis.figure_files import list_figure_data, read_figure_data
from loce.analysis.gmm import OVERALL
from loce.analysis.run import AnalysisSettings, analyze_run
from loce.cli.main import main

FAST = dict(map_method="pca", ks=(1, 5), neighbours=6)


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    run, vectors, labels = make_run(tmp_path_factory.mktemp("figure_data"))
    results, out = analyze_run(run, settings=AnalysisSettings(**FAST))
    return run, out, vectors, labels, results


def test_every_layer_gets_a_directory_listed_in_the_summary(analysed):
    run, out, _, _, results = analysed
    listed = list_figure_data(out)
    assert [(m, layer) for m, layer, _ in listed] == [("toy-model", layer) for layer in LAYERS]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["map_method"] == "pca" and summary["settings"]["neighbours"] == 6
    assert all("figure_data" in r["seconds"] for r in summary["results"])
    assert all(not r.details for r in results)  # large intermediate results are not kept around
    files = sorted(p.name for p in listed[0][2].iterdir())
    assert files == sorted(
        [
            "figure_data.json",
            "loces.parquet",
            "neighbours.parquet",
            "map_mixtures.parquet",
            "precision_per_query.parquet",
            "outliers_ranked.parquet",
            "mixed_clusters.parquet",
            "dendrogram_linkage.npy",
            "dendrogram_labels.npy",
        ]
    )
    assert np.load(listed[0][2] / "dendrogram_labels.npy", allow_pickle=False).dtype.kind == "U"


@pytest.mark.parametrize("layer", LAYERS)
def test_neighbours_equal_a_brute_force_cosine_top_k(analysed, layer):
    _, out, vectors, labels, _ = analysed
    data = read_figure_data(next(d for _, name, d in list_figure_data(out) if name == layer))
    assert data.loces["sample_id"].tolist() == [f"{c}{n:03d}" for n, c in enumerate(labels)]
    truth, sims = brute_force_top_k(vectors[layer], 6)
    cols, values = data.neighbour_table()
    np.testing.assert_array_equal(cols, truth)
    np.testing.assert_allclose(values, sims, atol=1e-5)
    assert data.neighbours["rank"].min() == 1 and data.neighbours["rank"].max() == 6


def test_map_mixtures_dendrogram_and_per_query_precision(analysed):
    _, out, vectors, labels, _ = analysed
    data = read_figure_data(list_figure_data(out)[0][2])
    n = len(labels)
    assert np.isfinite(data.loces[["map_x", "map_y"]].to_numpy()).all()  # n < map_points: every LoCE
    assert data.info["map"]["method"] == "pca" and not data.info["map"]["subsampled"]
    mixtures = data.map_mixtures
    assert set(mixtures["mixture"]) == {*CONCEPTS, OVERALL}
    for _, part in mixtures.groupby("mixture"):
        assert part["weight"].sum() == pytest.approx(1.0)
    cov = mixtures[["cov_xx", "cov_xy", "cov_xy", "cov_yy"]].to_numpy().reshape(-1, 2, 2)
    assert (np.linalg.eigvalsh(cov) > 0).all()
    # the planted "ball" sub-concepts are far apart, so the map keeps them as separate per-concept components
    assert (mixtures["mixture"] == "ball").sum() >= 2
    assert data.linkage.shape == (n - 1, 4) and data.leaf_labels.tolist() == labels
    leaves = data.loces.sort_values("dendrogram_leaf")
    assert leaves["dendrogram_leaf"].tolist() == list(range(n))
    assert data.info["purity"]["n_clusters"] == data.loces["purity_cluster"].nunique()
    retrieval = pd.read_parquet(out / "retrieval.parquet")
    layer_rows = retrieval[(retrieval["layer"] == "l1") & (retrieval["concept"] == "(all)")]
    assert data.queries["precision_at_5"].mean() == pytest.approx(layer_rows["precision_at_5"].iloc[0])
    ranks = data.outliers.groupby("concept")["summed_cosine_rank"].apply(sorted)
    assert all(r == list(range(1, PER_CONCEPT + 1)) for r in ranks)


def test_planted_subconcepts_are_recorded_per_loce(analysed):
    _, out, _, labels, _ = analysed
    data = read_figure_data(list_figure_data(out)[0][2])
    ball = data.loces[data.loces["concept"] == "ball"]
    planted = (np.arange(PER_CONCEPT) < PER_CONCEPT // 2).astype(int)
    assert adjusted_rand_score(planted, ball["subconcept"]) >= 0.9
    assert (data.loces["subconcept"] >= 0).all()
    mixed = data.mixed_clusters
    assert (mixed["n_concepts"] > 1).all() and list(mixed["minority_count"]) == sorted(
        mixed["minority_count"], reverse=True
    )


def test_map_is_capped_by_a_stratified_subsample_or_left_out(tmp_path):
    run, _, labels = make_run(tmp_path / "a")
    _, out = analyze_run(run, layers=["l1"], settings=AnalysisSettings(**{**FAST, "map_points": 9}))
    data = read_figure_data(list_figure_data(out)[0][2])
    on_map = data.map_rows()
    assert len(on_map) == 9 and sorted(on_map["concept"].value_counts().tolist()) == [3, 3, 3]
    assert data.info["map"]["subsampled"] and any("subsample of 9" in note for note in data.notes)
    _, out = analyze_run(run, layers=["l1"], settings=AnalysisSettings(**{**FAST, "map_method": "none"}))
    data = read_figure_data(list_figure_data(out)[0][2])
    assert data.map_rows().empty and data.map_mixtures is None and "map" not in data.info
    with pytest.raises(AnalysisError, match="map method"):
        AnalysisSettings(map_method="tsne")


def test_cli_options_and_figure_data_can_be_switched_off(tmp_path, capsys):
    run, _, _ = make_run(tmp_path / "b")
    args = ["analyze", str(run), "--no-progress", "--ks", "1,5", "--map-method", "pca", "--neighbours", "3"]
    assert main(args) == 0
    (_, _, directory), *_ = list_figure_data(run / "analysis")
    assert read_figure_data(directory).neighbours["rank"].max() == 3
    assert main([*args, "--no-figure-data"]) == 0
    assert list_figure_data(run / "analysis") == [] and not (run / "analysis" / "layers").exists()
    capsys.readouterr()
