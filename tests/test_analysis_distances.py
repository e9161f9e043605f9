"""Tests of the exact blocked neighbour machinery: normalisation, duplicates, top-k and AP kernels, the scan."""

from __future__ import annotations

import numpy as np
import pytest

from analysis_helpers import brute_force_average_precision, brute_force_ranking
from loce.analysis import AnalysisError, cosine_distances, normalize_rows, scan_neighbourhoods
from loce.analysis.distances import BlockScorer, duplicate_groups
from loce.analysis.ranking import average_precision_block, top_k_block


def test_zero_vectors_have_cosine_distance_one_and_never_nan():
    X = np.array([[0.0, 0.0], [3.0, 4.0], [0.0, 0.0]])
    assert np.allclose(normalize_rows(X), [[0, 0], [0.6, 0.8], [0, 0]])
    D = cosine_distances(X, X)
    assert not np.isnan(D).any()
    assert D[0].tolist() == [1.0, 1.0, 1.0]  # even to another zero vector (and itself, for the dense helper)
    assert D[1, 1] == pytest.approx(0.0)


def test_duplicate_groups_are_exact_and_treat_negative_zero_as_zero():
    X = np.array([[1.0, 2.0], [0.0, 0.0], [1.0, 2.0], [-0.0, 0.0], [1.0, 2.0000001]])
    assert [g.tolist() for g in duplicate_groups(X)] == [[0, 2], [1, 3]]
    assert [g.tolist() for g in duplicate_groups(X, ignore_zero=True)] == [[0, 2]]


def test_duplicate_vectors_get_bit_identical_scores_and_zero_distance():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 7)).astype(np.float32)
    X[[5, 17, 33]] = X[2]
    for metric in ("cosine", "euclidean"):
        scorer = BlockScorer.build(X, metric)
        S = scorer.scores(slice(0, 40))
        assert (S[:, [5, 17, 33]] == S[:, [2]]).all()
        d = scorer.to_distance(S[2, [2, 5, 17, 33]], scorer.self_score[[2, 2, 2, 2]])
        assert d.tolist() == [0.0, 0.0, 0.0, 0.0]


@pytest.mark.parametrize("n", [5, 30, 200])
def test_top_k_matches_a_full_sort_with_many_ties(n):
    rng = np.random.default_rng(n)
    S = rng.integers(0, 4, size=(25, n)).astype(np.float32)  # heavy ties
    key = rng.permutation(n)
    for k in sorted({1, 3, n - 1}):
        cols, values = top_k_block(S, k, key)
        for i in range(S.shape[0]):
            expected = brute_force_ranking(S[i], key)[:k]
            assert cols[i].tolist() == expected.tolist()
            assert values[i].tolist() == S[i, expected].tolist()


@pytest.mark.parametrize("n_cells", [None, 1, 2, 7])
def test_average_precision_kernel_matches_brute_force(n_cells):
    rng = np.random.default_rng(0 if n_cells is None else n_cells)
    for trial in range(60):
        n = int(rng.integers(3, 50))
        a = int(rng.integers(0, n - 1))
        b = int(rng.integers(a + 1, n + 1))
        m = int(rng.integers(1, 5))
        if trial % 2:  # ties between relevant and irrelevant scores
            S = (rng.integers(0, 4, size=(m, n)) / 4).astype(np.float32)
        else:
            S = rng.normal(size=(m, n)).astype(np.float32)
        key = rng.permutation(n)
        key[a:b] = np.sort(key[a:b])
        selves = rng.integers(a, b, size=m)
        S[np.arange(m), selves] = -np.inf
        got = average_precision_block(S, a, b, key, n_cells=n_cells)
        for i in range(m):
            ranking = [c for c in brute_force_ranking(S[i], key) if c != selves[i]]
            relevant = np.array([(a <= c < b) for c in ranking])
            expected = brute_force_average_precision(relevant)
            if np.isnan(expected):
                assert np.isnan(got[i])
            else:
                assert got[i] == pytest.approx(expected, abs=1e-12)


def test_average_precision_hand_computed_with_a_tie():
    # columns 0..3; relevant block = columns 2, 3 (3 is the query itself); scores: [0.5, 0.9, 0.5, -inf]
    # ranking: col 1 (0.9), then cols 0 and 2 tie at 0.5 -> lower key first: col 0, then col 2 (relevant) at rank 3
    S = np.array([[0.5, 0.9, 0.5, -np.inf]], np.float32)
    assert average_precision_block(S, 2, 4, np.arange(4))[0] == pytest.approx(1 / 3)
    # with keys that put column 2 before column 0, it ranks 2nd
    assert average_precision_block(S, 2, 4, np.array([3, 0, 1, 2]))[0] == pytest.approx(1 / 2)


def exact_vectors(seed: int, n: int) -> np.ndarray:
    """Unit vectors with entries in {0, +-0.5, +-1} and a zero mean: every product, norm and centring is exact in
    float32, so block shapes and backends cannot change any score (many exact ties, too)."""
    rng = np.random.default_rng(seed)
    pool = np.concatenate([np.eye(4), -np.eye(4), np.array(np.meshgrid(*[[-0.5, 0.5]] * 4)).reshape(4, -1).T])
    half = pool[rng.integers(0, pool.shape[0], size=n // 2)]
    return np.concatenate([half, -half]).astype(np.float32)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_scan_results_do_not_depend_on_block_size_or_backend(metric):
    X = exact_vectors(3, 90)
    X[7] = X[52] = 0.0
    labels = np.array(list("abc"))[np.random.default_rng(3).integers(0, 3, size=90)]
    reference = scan_neighbourhoods(X, labels, metric=metric, k=10, average_precision=True)
    for options in ({"block_bytes": 90 * 4 * 7}, {"backend": "numpy"}):
        other = scan_neighbourhoods(X, labels, metric=metric, k=10, average_precision=True, **options)
        assert (other.neighbours == reference.neighbours).all()
        assert np.array_equal(other.average_precision, reference.average_precision, equal_nan=True)
        assert np.array_equal(other.nearest, reference.nearest)
        assert np.array_equal(other.farthest, reference.farthest)
    assert not np.isnan(reference.nearest).any() and not np.isnan(reference.average_precision).any()


def test_scan_matches_brute_force_on_exact_data():
    X = exact_vectors(5, 60)
    X[[3, 40, 41]] = 0.0  # zero queries: every score ties at 0
    labels = np.array(list("ab"))[np.random.default_rng(5).integers(0, 2, size=60)]
    scan = scan_neighbourhoods(X, labels, k=5, average_precision=True)
    sims = X.astype(np.float64) @ X.T.astype(np.float64)
    for q in range(60):
        row = sims[q].copy()
        row[q] = -np.inf
        ranking = brute_force_ranking(row, np.arange(60))[:-1]
        assert scan.neighbours[q].tolist() == ranking[:5].tolist()
        relevant = labels[ranking] == labels[q]
        assert scan.average_precision[q] == pytest.approx(brute_force_average_precision(relevant), abs=1e-12)
        for k, concept in enumerate(scan.concepts):
            others = (labels == concept) & (np.arange(60) != q)
            assert scan.nearest[q, k] == pytest.approx(1 - sims[q, others].max(), abs=1e-6)
            members = labels == concept
            assert scan.farthest[q, k] == pytest.approx(1 - np.append(sims[q, members], 1.0).min(), abs=1e-6)


def test_scan_rejects_bad_input_with_clear_errors():
    with pytest.raises(AnalysisError, match="non-finite"):
        scan_neighbourhoods(np.array([[0.0, np.nan], [1.0, 1.0]]), ["a", "b"])
    with pytest.raises(AnalysisError, match="labels has 1 entries"):
        scan_neighbourhoods(np.eye(2), ["a"])
    with pytest.raises(AnalysisError, match="Unknown metric"):
        scan_neighbourhoods(np.eye(2), ["a", "b"], metric="manhattan")
    with pytest.raises(AnalysisError, match="k=5"):
        scan_neighbourhoods(np.eye(3), ["a", "b", "c"], k=5)
