"""Outliers per concept: the O(N D) summed cosine distance and planted outliers for every method."""

from __future__ import annotations

import numpy as np
import pytest

from loce.analysis import TooFewSamplesError, cosine_distances, find_outliers, summed_cosine_distance


def test_summed_cosine_equals_the_pairwise_sum_including_zero_vectors():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(25, 6))
    X[[3, 9]] = 0.0
    labels = np.array(["a"] * 10 + ["b"] * 15)
    fast = summed_cosine_distance(X, labels)
    for i in range(25):
        same = np.flatnonzero((labels == labels[i]) & (np.arange(25) != i))
        assert fast[i] == pytest.approx(cosine_distances(X[[i]], X[same]).sum(), abs=1e-9)
    assert fast[3] == pytest.approx(9.0)  # a zero vector is at distance 1 from each of the 9 others


def planted(seed=0):
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=16)
    X, labels, planted_rows = [], [], []
    for concept, sign in (("a", 1.0), ("b", -1.0)):
        inliers = sign * direction * 3 + rng.normal(scale=0.3, size=(60, 16))
        outliers = rng.normal(scale=3.0, size=(3, 16))
        planted_rows.extend(range(len(X) * 0 + sum(len(x) for x in X) + 60, sum(len(x) for x in X) + 63))
        X.append(np.concatenate([inliers, outliers]))
        labels += [concept] * 63
    return np.concatenate(X), np.array(labels), np.array(planted_rows)


@pytest.mark.parametrize("method", ["summed_cosine", "lof", "isolation_forest"])
def test_planted_outliers_rank_at_the_top(method):
    X, labels, planted_rows = planted()
    result = find_outliers(X, labels, methods=[method], ids=[f"img{i}" for i in range(len(labels))])
    top = result.top(3)
    assert sorted(top["index"]) == sorted(planted_rows.tolist())
    assert set(top["id"]) == {f"img{i}" for i in planted_rows}
    ranks = result.ranks[method]
    assert sorted(ranks[labels == "a"].tolist()) == list(range(1, 64))


def test_all_methods_in_one_table_and_small_concepts():
    X, labels, _ = planted()
    frame = find_outliers(X, labels).to_frame()
    assert {"summed_cosine_rank", "lof_rank", "isolation_forest_rank"} <= set(frame.columns)
    assert not frame.isna().any().any()
    with pytest.raises(TooFewSamplesError, match="'c' \\(1\\)"):
        find_outliers(np.concatenate([X, X[:1]]), np.append(labels, "c"))
