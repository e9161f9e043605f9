"""The publication's protocol (METHOD.md 2a) on hand-computed cases, and ``loce analyze --protocol paper``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis_helpers import planted_concepts
from loce.analysis import AnalysisError, analysis_dir, read_summary, read_table
from loce.analysis.paper import analyse_seed, group_size, protocol_sample
from loce.analysis.prediction import ConceptPredictor
from loce.analysis.purity import concept_purity
from loce.analysis.run import AnalysisSettings, analyze_run, analyze_vectors
from loce.analysis.separation import separation_index, separation_overlap
from loce.cli.main import main
from test_analysis_output import make_run


def test_protocol_sample_takes_the_first_per_concept_of_one_seeded_shuffle_per_concept():
    labels = np.array(["b", "a", "b", "a", "a", "b", "a"])  # a: rows 1, 3, 4, 6; b: rows 0, 2, 5
    rng = np.random.default_rng(7)
    first_a = rng.permutation(np.array([1, 3, 4, 6]))[:2]  # concepts in sorted order, one generator
    first_b = rng.permutation(np.array([0, 2, 5]))[:2]
    expected = np.sort(np.concatenate([first_a, first_b]))
    assert protocol_sample(labels, seed=7, per_concept=2).tolist() == expected.tolist()
    assert protocol_sample(labels, seed=7, per_concept=100).tolist() == list(range(7))  # small concepts: all
    assert protocol_sample(labels, seed=7, per_concept=2).tolist() == expected.tolist()  # reproducible
    picks = {tuple(protocol_sample(labels, seed=s, per_concept=2)) for s in range(20)}
    assert len(picks) > 1


def test_group_size_comes_from_all_loaded_loces_not_the_sample():
    assert group_size(0.05, 2000) == 100 and group_size(0.025, 2000) == 50 and group_size(0.05, 39) == 1
    # 4 concepts of 250 LoCEs each: the sample holds 100 per concept, the limit is int(0.05 * 1000) = 50
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(c * 10, 1, (250, 4)) for c in range(4)])
    labels = np.repeat(["a", "b", "c", "d"], 250)
    seed = analyse_seed(
        X, labels, np.arange(1000).astype(str), 0, per_concept=100, ks=(1,), n_loaded=1000, with_map=False
    )
    assert seed.numbers["n_sampled"] == 400
    sample = protocol_sample(labels, 0, 100)
    by_hand = concept_purity(X[sample], labels[sample], max_size=50, min_purity=0.8)
    assert seed.numbers["purity"] == by_hand.purity and seed.numbers["n_clusters"] == by_hand.n_clusters
    strict = concept_purity(X[sample], labels[sample], max_size=25, min_purity=0.9)
    assert seed.numbers["n_clusters_strict"] == strict.n_clusters


def test_purity_size_limit_is_absolute_when_given():
    # a mixed node of 4 (2 a, 2 b) is a cluster when max_size >= 4, else it splits into pure pairs
    X = np.array([[0.0], [0.1], [1.0], [1.1]])
    labels = ["a", "a", "b", "b"]
    assert concept_purity(X, labels, max_size=4, min_purity=0.9).purity == 0.5
    assert concept_purity(X, labels, max_size=3, min_purity=0.9).purity == 1.0


def test_per_concept_separation_index_by_hand():
    # a: (0,0), (3,0), (0,4): pairwise 3, 4, 5 -> intra 4; b: (10,0), (12,0): intra 2; nearest a-b: 7
    X = np.array([[0.0, 0], [3, 0], [0, 4], [10, 0], [12, 0]])
    table = separation_index(X, ["a", "a", "a", "b", "b"]).set_index("concept")
    assert table.loc["a", "intra"] == pytest.approx(4.0) and table.loc["b", "intra"] == pytest.approx(2.0)
    assert table.loc["a", "inter"] == pytest.approx(7.0) and table.loc["b", "inter"] == pytest.approx(7.0)
    assert table["separation_index"].tolist() == pytest.approx([7 / 4, 7 / 2])


def test_nearest_centroid_prediction_by_hand():
    # normalised: a -> (1,0), (0.6,0.8); b -> (0,1). Clusters: {0, 1} (a, a) and {2, 3} (a, b)
    X = np.array([[2.0, 0.0], [3.0, 4.0], [0.6, 0.8], [0.0, 5.0]])
    labels = ["a", "a", "a", "b"]
    model = ConceptPredictor("centroid").fit(X, labels, clusters=[0, 0, 1, 1])
    # centroids (0.8, 0.4) and (0.3, 0.9); the query (1, 0) is nearer the first -> distribution (1, 0)
    assert model.predict_proba(np.array([[5.0, 0.0]])).tolist() == [[1.0, 0.0]]
    # (0, 1) is nearer the second, whose members are half a, half b
    assert model.predict_proba(np.array([[0.0, 2.0]])).tolist() == [[0.5, 0.5]]
    knn = ConceptPredictor("knn", k=3).fit(X, labels)
    assert knn.predict_proba(np.array([[0.0, 1.0]])).tolist() == [[2 / 3, 1 / 3]]
    assert knn.predict(np.array([[1.0, 0.0]])).tolist() == ["a"]
    with pytest.raises(AnalysisError, match="fit"):
        ConceptPredictor().predict(X)


def test_separation_and_retrieval_metrics_are_set_apart():
    # cosine and euclidean disagree: "b" points are parallel to "a" but far out
    X, labels = planted_concepts(dim=6)
    X[labels == "dog"] = X[labels == "cat"] * 3.0 + 0.01
    ids = np.arange(len(labels)).astype(str)
    settings = AnalysisSettings(
        analyses=("retrieval", "separation"),
        separation_metric="euclidean",
        retrieval_metric="cosine",
        bootstrap=0,
        map_method="none",
    )
    result = analyze_vectors(X, labels, ids, settings)
    euclid = separation_overlap(X, labels, metric="euclidean")
    cosine = separation_overlap(X, labels, metric="cosine")
    table = result.tables["separation"]
    assert np.allclose(table["separation"], euclid.to_frame()["separation"])
    assert not np.allclose(table["separation"], cosine.to_frame()["separation"])
    everything_cosine = analyze_vectors(
        X, labels, ids, AnalysisSettings(**{**settings.__dict__, "separation_metric": "cosine"})
    )
    assert result.headline["precision_at_1"] == everything_cosine.headline["precision_at_1"]
    with pytest.raises(AnalysisError, match="separation_metric"):
        AnalysisSettings(separation_metric="manhattan")


def test_euclidean_gap_of_1e_3_is_not_reported_as_zero():
    # a wide spread (1000 along one axis) makes the centred squared norms ~5e5: float32 scores lose a 1e-3 gap
    p, e = np.random.default_rng(0).normal(size=64), np.eye(64)
    X = np.stack([p, p + 1000 * e[0], p + 1e-3 * e[1], p + 2000 * e[0]])
    result = separation_overlap(X, ["a", "a", "b", "b"], metric="euclidean")
    assert result.min_distance[0, 1] == pytest.approx(1e-3, rel=1e-3)
    assert result.separation[0, 1] == pytest.approx(1e-3 / 2000, rel=1e-3)
    settings = AnalysisSettings(analyses=("separation",), metric="euclidean", bootstrap=0, map_method="none")
    table = analyze_vectors(X, np.array(["a", "a", "b", "b"]), np.arange(4), settings).tables["separation"]
    assert table["min_distance"].iloc[0] == pytest.approx(1e-3, rel=1e-3)


def _paper_run(tmp_path, n_per=12):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 6)) * 4
    X = np.concatenate([c + rng.normal(size=(n_per, 6)) for c in centres])
    labels = np.repeat(["cat", "dog", "cow"], n_per)
    return make_run(tmp_path / "RUN", X, labels)


def test_paper_protocol_run_writes_its_own_folder_with_seed_spread(tmp_path):
    run = _paper_run(tmp_path)
    settings = AnalysisSettings(seeds=6, map_seeds=0, per_concept=8)
    results, out = analyze_run(run, settings=settings, protocol="paper")
    assert out == analysis_dir(run, "paper") and not (run / "analysis").exists()
    headline = read_table(out / "headline.parquet")
    assert headline["protocol"].tolist() == ["paper"]
    assert headline["interval"].iloc[0].startswith("spread over 6 seeds, 95%")
    seeds = read_table(out / "seeds.parquet")
    assert len(seeds) == 6 and (seeds["n_sampled"] == 24).all()
    for metric in (
        "precision_at_1",
        "purity",
        "purity_strict",
        "mean_separation",
        "mean_separation_index",
        "centroid_accuracy",
        "knn_accuracy",
    ):
        values = seeds[metric].to_numpy()
        assert headline[metric].iloc[0] == pytest.approx(values.mean())
        low, high = np.percentile(values, [2.5, 97.5])
        assert headline[f"{metric}_ci_low"].iloc[0] == pytest.approx(low)
        assert headline[f"{metric}_ci_high"].iloc[0] == pytest.approx(high)
    assert headline["group_size"].iloc[0] == 1 and headline["group_size_strict"].iloc[0] == 0  # of 36 LoCEs
    assert read_summary(out)["protocol"] == "paper"
    for name in ("separation_index", "confused_pairs", "separation", "retrieval", "purity_clusters"):
        assert "protocol" in read_table(out / f"{name}.parquet").columns
    assert set(read_table(out / "purity_clusters.parquet")["preset"]) == {"relaxed", "strict"}


def test_paper_protocol_from_the_cli(tmp_path, capsys):
    run = _paper_run(tmp_path)
    argv = ["analyze", str(run), "--protocol", "paper", "--seeds", "3", "--map-seeds", "0", "--no-progress"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "paper" in printed and "spread over 3 seeds" in printed
    assert len(pd.read_csv(analysis_dir(run, "paper") / "seeds.csv")) == 3


@pytest.mark.slow
def test_paper_protocol_umap_mixtures_drop_light_components(tmp_path):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(2, 6)) * 6
    X = np.concatenate([centres[0] + rng.normal(size=(40, 6)), centres[1] + rng.normal(size=(40, 6))])
    labels = np.repeat(["cat", "dog"], 40)
    run = make_run(tmp_path / "RUN", X, labels)
    settings = AnalysisSettings(seeds=2, map_seeds=1, per_concept=100, subconcept_distance=5.0)
    _, out = analyze_run(run, settings=settings, protocol="paper")
    mixtures = read_table(out / "gmm_components.parquet")
    assert set(mixtures["seed"]) == {0}
    assert ((mixtures["weight"] <= 0.1) == mixtures["outlier"]).all()
    assert (mixtures.loc[mixtures["outlier"], "component"] == -1).all()
    overall = mixtures[mixtures["mixture"] == "(all)"]
    assert overall["n_components"].iloc[0] <= 10 and (~overall["outlier"]).sum() >= 2
    sub = read_table(out / "subconcepts.parquet")
    assert {"umap_gmm", "dendrogram_cut_5"} <= set(sub["method"])


def test_demo_runs_the_paper_protocol_after_the_default_analysis(tmp_path):
    from loce.cli.demo import demo_commands

    steps = [argv for _, argv in demo_commands(tmp_path, 20, 0)]
    default = steps.index(["analyze", str(tmp_path / "run")])
    paper = steps[default + 1]
    assert paper[:4] == ["analyze", str(tmp_path / "run"), "--protocol", "paper"] and "--seeds" in paper
    assert steps.index(next(s for s in steps if s[0] == "report")) > default + 1


def test_seeds_that_draw_the_same_sample_are_analysed_once(tmp_path, monkeypatch):
    from loce.analysis import paper

    run = _paper_run(tmp_path, n_per=5)  # every concept has fewer than per_concept LoCEs: one sample for all
    calls = []
    original = paper.analyse_seed
    monkeypatch.setattr(paper, "analyse_seed", lambda *a, **k: calls.append(a[3]) or original(*a, **k))
    results, out = analyze_run(run, settings=AnalysisSettings(seeds=4, map_seeds=0), protocol="paper")
    assert calls == [0]
    assert len(read_table(out / "seeds.parquet")) == 4
    assert results[0].headline["n_distinct_samples"] == 1
    assert results[0].headline["purity_ci_low"] == results[0].headline["purity_ci_high"]
    assert any("drew 1 distinct sample" in note for note in results[0].notes)
