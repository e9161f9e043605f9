"""Retrieval: hand-computed precision@k and AP, ties, duplicates, zero vectors, faiss, small concepts."""

from __future__ import annotations

import numpy as np
import pytest

from analysis_helpers import brute_force_average_precision, brute_force_ranking
from loce.analysis import TooFewSamplesError, knn, retrieval_scores


def angles(degrees):
    radians = np.deg2rad(np.asarray(degrees, dtype=np.float64))
    return np.stack([np.cos(radians), np.sin(radians)], axis=1)


def test_precision_at_k_and_average_precision_hand_computed():
    # a at 0, 10, 50 degrees; b at 35, 85 degrees (cosine ranks by angle difference, no ties)
    # query 0 : 10a 35b 50a 85b -> p@1 1, p@2 1/2, p@3 2/3; AP (1 + 2/3) / 2 = 5/6
    # query 10: 0a 35b 50a 85b  -> same, AP 5/6
    # query 50: 35b 85b 10a 0a  -> p@1 0, p@2 0, p@3 1/3; AP (1/3 + 2/4) / 2 = 5/12
    # query 35: 50a 10a 0a 85b  -> 0, 0, 0; AP 1/4
    # query 85: 50a 35b 10a 0a  -> 0, 1/2, 1/3; AP 1/2
    X = angles([0, 10, 50, 35, 85])
    result = retrieval_scores(X, ["a", "a", "a", "b", "b"], ks=[1, 2, 3])
    assert result.precision[:, 0].tolist() == [1, 1, 0, 0, 0]
    assert np.allclose(result.precision[:, 1], [0.5, 0.5, 0, 0, 0.5])
    assert np.allclose(result.precision[:, 2], [2 / 3, 2 / 3, 1 / 3, 0, 1 / 3])
    assert np.allclose(result.average_precision, [5 / 6, 5 / 6, 5 / 12, 1 / 4, 1 / 2])
    assert result.precision_at(1) == pytest.approx(0.4)
    assert result.precision_at(2) == pytest.approx(0.3)
    assert result.mean_average_precision == pytest.approx(34 / 60)
    frame = result.to_frame().set_index("concept")
    assert frame.loc["a", "precision_at_1"] == pytest.approx(2 / 3)
    assert frame.loc["(all)", "mean_average_precision"] == pytest.approx(34 / 60)
    assert frame.loc["(mean of concepts)", "precision_at_1"] == pytest.approx(1 / 3)


def test_ties_are_broken_by_lower_index():
    X = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])  # 0 and 3 point the same way
    result = knn(X, np.array([[1.0, 1.0]]), k=4)
    # [1,1] itself first; then 0, 1, 3 all at 45 degrees -> ascending index
    assert result.indices.tolist() == [[2, 0, 1, 3]]
    assert np.allclose(result.distances[0, 1:], 1 - np.sqrt(0.5))


def test_duplicate_vectors_are_deterministic():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 5)).astype(np.float32)
    X[[11, 23]] = X[4]
    loo = knn(X, k=3)
    assert loo.indices[4, :2].tolist() == [11, 23] and loo.distances[4, :2].tolist() == [0.0, 0.0]
    assert loo.indices[23, :2].tolist() == [4, 11]
    hits = knn(X, X[[4]] * 2.0, k=3)  # same direction: the three copies tie exactly
    assert hits.indices.tolist() == [[4, 11, 23]]
    for backend in ("numpy", "faiss"):
        other = knn(X, k=3, backend=backend)
        assert (other.indices == loo.indices).all()
        assert np.allclose(other.distances, loo.distances, atol=1e-6)


def test_zero_vectors_never_give_nan():
    X = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    hits = knn(X, np.zeros((1, 2)), k=5)
    assert hits.indices.tolist() == [[0, 1, 2, 3, 4]]  # similarity 0 to everything -> by index
    assert hits.distances.tolist() == [[1.0] * 5]
    result = retrieval_scores(X, ["z", "a", "z", "a", "a"], ks=[1, 2])
    assert not np.isnan(result.precision).any() and not np.isnan(result.average_precision).any()
    # the zero LoCE 0 ranks everything at similarity 0: 1 (a), 2 (z) ... -> AP 1/2
    assert result.average_precision[0] == pytest.approx(0.5)


def test_matches_brute_force_and_faiss_on_random_data():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(120, 8)).astype(np.float32)
    labels = np.array(list("abcd"))[rng.integers(0, 4, size=120)]
    result = retrieval_scores(X, labels, ks=[1, 5, 10], block_bytes=120 * 4 * 16)
    unit = X / np.linalg.norm(X, axis=1, keepdims=True)
    sims = unit.astype(np.float64) @ unit.T.astype(np.float64)
    for q in range(0, 120, 7):
        row = sims[q].copy()
        row[q] = -np.inf
        ranking = brute_force_ranking(row, np.arange(120))[:-1]
        relevant = labels[ranking] == labels[q]
        assert result.precision[q, 1] == pytest.approx(relevant[:5].mean())
        assert result.average_precision[q] == pytest.approx(brute_force_average_precision(relevant), abs=1e-9)
    queries = rng.normal(size=(9, 8))
    for metric in ("cosine", "euclidean"):
        exact = knn(X, queries, k=7, metric=metric)
        with_faiss = knn(X, queries, k=7, metric=metric, backend="faiss")
        assert (with_faiss.indices == exact.indices).all()
        assert np.allclose(with_faiss.distances, exact.distances, atol=1e-5)
    euclid = knn(X, queries, k=3, metric="euclidean")
    true = np.sqrt(((queries[:, None, :] - X[None].astype(np.float64)) ** 2).sum(-1))
    assert (euclid.indices == np.argsort(true, axis=1)[:, :3]).all()
    assert np.allclose(euclid.distances, np.sort(true, axis=1)[:, :3], atol=1e-4)


def test_small_concepts_and_k_limits():
    X = angles([0, 10, 50, 35])
    result = retrieval_scores(X, ["a", "a", "a", "b"], ks=[1, 3])
    b = 3
    assert result.precision[b].tolist() == [0.0, 0.0]  # no other "b": precision 0 ...
    assert np.isnan(result.average_precision[b])  # ... and AP undefined, left out of the mean
    assert result.mean_average_precision == pytest.approx(np.nanmean(result.average_precision))
    with pytest.raises(TooFewSamplesError, match="precision@4"):
        retrieval_scores(X, ["a", "a", "a", "b"], ks=[1, 4])
    with pytest.raises(TooFewSamplesError):
        knn(X, k=4)
    assert retrieval_scores(X, ["a"] * 4, ks=[1]).precision_at(1) == 1.0  # one concept: everything relevant
