"""95% intervals of the headline numbers: reproducible, contain the estimate, shrink with more data."""

from __future__ import annotations

import numpy as np
import pytest

from analysis_helpers import planted_concepts
from loce.analysis.intervals import METRIC_RANGES, ImageBootstrap, centred_interval, percentile_interval
from loce.analysis.outliers import isolation_forest_stability
from loce.analysis.run import AnalysisSettings, analyze_vectors

SETTINGS = {"map_method": "none", "analyses": ("retrieval", "separation", "confusion", "purity")}


def noisy_concepts(n_per: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, 8)) * 1.5
    X = np.concatenate([c + rng.normal(size=(n_per, 8)) for c in centres])
    labels = np.repeat(["a", "b", "c"], n_per)
    return X, labels, np.array([f"img{i}" for i in range(labels.size)])


def intervals(result):
    return {k: v for k, v in result.headline.items() if k.endswith(("_ci_low", "_ci_high"))}


def test_bootstrap_intervals_are_reproducible_with_a_fixed_seed():
    X, labels, ids = noisy_concepts(20)
    first = analyze_vectors(X, labels, ids, AnalysisSettings(**SETTINGS, bootstrap=50, seed=3))
    again = analyze_vectors(X, labels, ids, AnalysisSettings(**SETTINGS, bootstrap=50, seed=3))
    other = analyze_vectors(X, labels, ids, AnalysisSettings(**SETTINGS, bootstrap=50, seed=4))
    assert intervals(first) == intervals(again) and len(intervals(first)) >= 12
    assert intervals(first) != intervals(other)
    assert first.tables["retrieval"].equals(again.tables["retrieval"])


def test_intervals_contain_the_estimate_and_shrink_with_more_images():
    widths = {}
    for n_per in (15, 120):
        X, labels, ids = noisy_concepts(n_per)
        result = analyze_vectors(X, labels, ids, AnalysisSettings(**SETTINGS, bootstrap=100))
        h = result.headline
        for metric in (
            "precision_at_1",
            "mean_average_precision",
            "mean_separation",
            "mean_overlap",
            "purity",
        ):
            assert h[f"{metric}_ci_low"] <= h[metric] <= h[f"{metric}_ci_high"], (n_per, metric)
        widths[n_per] = {
            m: h[f"{m}_ci_high"] - h[f"{m}_ci_low"]
            for m in ("precision_at_1", "mean_average_precision", "mean_overlap")
        }
    for metric, wide in widths[15].items():
        assert widths[120][metric] < wide, metric


def test_images_are_resampled_as_a_whole():
    # two LoCEs per image (two concepts of one image) are always drawn together
    boot = ImageBootstrap.draw(["x", "x", "y", "z"], n_resamples=30, seed=0)
    weights = np.stack([boot.loce_weights(b) for b in range(30)])
    assert (weights[:, 0] == weights[:, 1]).all() and (
        weights.sum(axis=1) == boot.counts.sum(axis=1) + weights[:, 0]
    ).all()
    # a weighted mean of the per-LoCE values, by hand for resample 0
    values = np.array([1.0, 0.0, 0.5, 1.0])
    w = boot.loce_weights(0)
    assert boot.weighted_means(values)[0] == pytest.approx((w * values).sum() / w.sum())


def test_percentile_and_centred_intervals():
    assert percentile_interval([np.nan, np.nan]) != percentile_interval([1.0])
    low, high = centred_interval(np.arange(101.0) + 10, estimate=50.0)
    assert (low, high) == pytest.approx((2.5, 97.5))


def test_centred_interval_is_clipped_to_the_metric_range():
    # resamples 0.5 .. 1.0 with median 0.75, estimate 0.875: shifted by 0.125, the high end 1.125 becomes 1
    low, high = centred_interval(np.linspace(0.5, 1.0, 101), 0.875, level=1.0, bounds=(0.0, 1.0))
    assert (low, high) == pytest.approx((0.625, 1.0))
    low, high = centred_interval(np.linspace(0.0, 0.4, 101), 0.05, level=1.0, bounds=(0.0, np.inf))
    assert (low, high) == pytest.approx((0.0, 0.25))


def test_centred_intervals_of_an_analysis_stay_in_each_metric_range():
    # four overlapping concepts of 15: the top confused pair scores near 1 and its resamples lower, so the
    # centred interval of its score (and of overlaps near 0) ran past the range before it was clipped
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 8))
    X = np.concatenate([c + rng.normal(size=(15, 8)) for c in centres])
    labels = np.repeat(["a", "b", "c", "d"], 15)
    result = analyze_vectors(X, labels, np.arange(labels.size), AnalysisSettings(**SETTINGS, bootstrap=30))
    columns = {
        "confused_pairs": ["score"],
        "separation": ["separation", "overlap_ij"],
    }
    for table, metrics in columns.items():
        frame = result.tables[table]
        for metric in metrics:
            lower, upper = METRIC_RANGES[metric]
            assert (frame[f"{metric}_ci_low"] >= lower).all() and (frame[f"{metric}_ci_high"] <= upper).all()
            assert (frame[f"{metric}_ci_low"] <= frame[metric]).all()
            assert (frame[metric] <= frame[f"{metric}_ci_high"]).all()
    assert result.tables["confused_pairs"]["score_ci_high"].max() == 1.0  # the clipped end
    for metric in ("mean_separation", "mean_overlap", "purity", "n_clusters", "most_confused_score"):
        lower, upper = METRIC_RANGES[metric]
        assert lower <= result.headline[f"{metric}_ci_low"] <= result.headline[metric]
        assert result.headline[metric] <= result.headline[f"{metric}_ci_high"] <= upper


def test_default_analysis_headline_has_an_interval_per_headline_number():
    X, labels = planted_concepts(dim=8)
    ids = np.arange(labels.size)
    result = analyze_vectors(X, labels, ids, AnalysisSettings(map_method="none", bootstrap=20))
    for metric in (
        "precision_at_1",
        "precision_at_40",
        "mean_average_precision",
        "mean_separation",
        "mean_overlap",
        "purity",
        "n_clusters",
        "most_confused_score",
    ):
        assert f"{metric}_ci_low" in result.headline and f"{metric}_ci_high" in result.headline, metric
    assert result.interval.startswith("bootstrap over images, 95% (20 resamples of 120 images")
    pairs = result.tables["confused_pairs"]
    assert {"score_ci_low", "score_ci_high"} <= set(pairs.columns)
    assert {"separation_ci_low", "overlap_ij_ci_high"} <= set(result.tables["separation"].columns)
    assert 0 <= result.headline["isolation_forest_top5_overlap"] <= 1


def test_isolation_forest_stability_over_seeds():
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(40, 5)), [[8.0] * 5, [-8.0] * 5]])
    labels = ["a"] * 42
    stable = isolation_forest_stability(X, labels, seeds=[0, 0, 0], top=2)
    assert (
        stable["spearman"] == pytest.approx(1.0) and stable["top_overlap"] == 1.0
    )  # same seed: same ranking
    varied = isolation_forest_stability(X, labels, seeds=range(5), top=2)
    assert varied["top_overlap"] == 1.0  # the two planted outliers lead for every seed
    assert varied["spearman"] < 1.0  # the rest of the ranking is seed noise
