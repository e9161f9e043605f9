"""Ground truth used: planted outliers, planted sub-concepts and planted attribute encodings are found."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from loce.analysis.attributes import (
    attribute_encoding,
    attribute_tables,
    loce_attributes,
    outlier_hits,
    subconcept_alignment,
)
from loce.analysis.outliers import find_outliers


def test_instance_attributes_become_one_value_per_loce():
    raw = [
        json.dumps([{"distance": 1.0, "pose": "upright", "outlier": False, "position": [1, 2]}]),
        json.dumps([{"distance": 2.0, "pose": "upright", "outlier": False}, {"distance": 4.0, "pose": "lying", "outlier": True}]),
        None,
    ]  # fmt: skip
    frame = loce_attributes(raw)
    assert "position" not in frame.columns
    assert frame["distance"].tolist()[:2] == [1.0, 3.0] and np.isnan(frame["distance"].iloc[2])
    assert frame["pose"].tolist()[:2] == ["upright", "mixed"]
    assert frame["outlier"].tolist()[:2] == [False, True]
    assert frame["n_instances"].tolist() == [1, 2, 0]


def test_outlier_hits_count_planted_outliers_in_each_concepts_top_k_against_the_base_rate():
    labels = np.array(["a"] * 10 + ["b"] * 5)
    planted = np.zeros(15, bool)
    planted[[0, 1, 10]] = True  # a: 2 of 10, b: 1 of 5
    perfect = np.r_[np.arange(1, 11), np.arange(1, 6)]  # the planted ones rank first in a and in b
    worst = np.r_[np.arange(10, 0, -1), np.arange(5, 0, -1)]
    table = outlier_hits({"perfect": perfect, "worst": worst}, labels, planted, k=2).set_index("method")
    assert table.at["perfect", "n_top"] == 4 and table.at["perfect", "hits"] == 3
    assert table.at["perfect", "hit_rate"] == 0.75 and table.at["worst", "hits"] == 0
    assert np.isclose(table.at["perfect", "base_rate"], (2 * 0.2 + 2 * 0.2) / 4)
    from scipy.stats import binom

    assert np.isclose(table.at["perfect", "p_value"], binom.sf(2, 4, 0.2))  # P(hits >= 3)
    assert table.at["worst", "p_value"] == 1.0


def test_summed_cosine_outliers_find_planted_outliers_well_above_chance():
    rng = np.random.default_rng(0)
    direction = {c: rng.normal(size=16) for c in "abc"}
    X, labels, planted = [], [], []
    for c in "abc":
        for i in range(30):
            odd = i < 3
            X.append((-direction[c] if odd else direction[c]) + rng.normal(scale=0.3, size=16))
            labels.append(c)
            planted.append(odd)
    result = find_outliers(np.array(X), np.array(labels), seed=0)
    table = outlier_hits(result.ranks, result.labels, np.array(planted), k=3).set_index("method")
    assert table.at["summed_cosine", "hit_rate"] == 1.0 and np.isclose(
        table.at["summed_cosine", "base_rate"], 0.1
    )


def test_subconcept_alignment_against_its_permutation_baseline():
    truth = ["near"] * 12 + ["far"] * 12
    exact = subconcept_alignment(truth, [0] * 12 + [1] * 12, permutations=200)
    assert exact["ari"] == 1.0 and exact["chance_95"] < 0.2 and abs(exact["chance_mean"]) < 0.05
    noisy = [0] * 10 + [1] * 4 + [1] * 10
    out = subconcept_alignment(truth, noisy, permutations=200)
    assert np.isclose(out["ari"], adjusted_rand_score(truth, noisy))


def test_attribute_encoding_reads_planted_attributes_and_reports_chance():
    rng = np.random.default_rng(1)
    n = 200
    X = rng.normal(size=(n, 12))
    distance = X[:, 0] * 2 + 0.1 * rng.normal(size=n)  # linearly encoded
    noise = rng.normal(size=n)  # not encoded
    pose = np.where(X[:, 1] > 0, "upright", "lying")
    frame = pd.DataFrame(
        {"distance": distance, "noise": noise, "pose": pose, "constant": "x", "n_instances": 1}
    )
    table = attribute_encoding(X, frame, seed=0).set_index("attribute")
    assert set(table.index) == {"distance", "noise", "pose"}
    assert table.at["distance", "metric"] == "R^2" and table.at["distance", "score"] > 0.95
    assert table.at["noise", "score"] < 0.1 and -0.3 < table.at["distance", "chance"] < 0.1
    assert table.at["pose", "metric"] == "accuracy" and table.at["pose", "score"] >= 0.85
    assert np.isclose(table.at["pose", "chance"], max((pose == "upright").mean(), (pose == "lying").mean()))


def test_attribute_encoding_equals_one_cross_validation_per_attribute():
    """Reading attributes out together gives sklearn's per-attribute cross_val_score numbers exactly."""
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import KFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from loce.analysis.attributes import CHANCE_SHUFFLES, RIDGE_ALPHAS

    rng = np.random.default_rng(3)
    n = 90
    X = rng.normal(size=(n, 6))
    occlusion = np.where(rng.random(n) < 0.3, np.nan, X[:, 2] - 0.5 * X[:, 3])  # carried by fewer rows
    frame = pd.DataFrame(
        {"distance": X[:, 0] + 0.3 * rng.normal(size=n), "yaw": 50 * X[:, 1] + rng.normal(size=n),
         "occlusion": occlusion, "n_instances": 1}
    )  # fmt: skip
    table = attribute_encoding(X, frame, seed=4).set_index("attribute")
    assert list(table.index) == ["distance", "yaw", "occlusion"]
    model = make_pipeline(StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS))
    cv = KFold(5, shuffle=True, random_state=4)
    for name in ["distance", "yaw", "occlusion"]:
        present = frame[name].notna().to_numpy()
        y, Xp = frame[name].to_numpy(float)[present], X[present]
        shuffle = np.random.default_rng(4)
        chance = np.mean([cross_val_score(model, Xp, shuffle.permutation(y), cv=cv, scoring="r2").mean()
                          for _ in range(CHANCE_SHUFFLES)])  # fmt: skip
        assert table.at[name, "score"] == pytest.approx(cross_val_score(model, Xp, y, cv=cv, scoring="r2").mean(),
                                                        abs=1e-9)  # fmt: skip
        assert table.at[name, "chance"] == pytest.approx(chance, abs=1e-9)
        assert table.at[name, "n"] == present.sum()


def test_attribute_tables_are_empty_without_recorded_attributes():
    meta = pd.DataFrame({"concept": ["a", "b"], "attributes": [None, None]})
    assert attribute_tables(np.zeros((2, 3)), meta, {}) == {}
