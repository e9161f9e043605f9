"""Separation, overlap and confused pairs: hand-computed tiny cases and planted confusion."""

from __future__ import annotations

import numpy as np
import pytest

from analysis_helpers import planted_concepts
from loce.analysis import (
    SingleConceptError,
    TooFewSamplesError,
    concept_purity,
    confused_pairs,
    drop_small_concepts,
    separation_overlap,
)
from loce.analysis.separation import mean_off_diagonal, separation_chance


def points_1d():
    # A = {0, 1}, B = {3, 4}, C = {1, 6} on a line; A and C share the point 1
    X = np.array([[0.0], [1.0], [3.0], [4.0], [1.0], [6.0]])
    return X, ["A", "A", "B", "B", "C", "C"]


def test_separation_hand_computed_euclidean():
    X, labels = points_1d()
    result = separation_overlap(X, labels, metric="euclidean")
    assert result.concepts.tolist() == ["A", "B", "C"]
    # S_AB = 2 / 4 (gap 1..3, union spans 0..4); S_AC = 0 (shared point); S_BC = 2 / 5 (gap 1..3, span 1..6)
    expected = np.array([[0, 0.5, 0], [0.5, 0, 0.4], [0, 0.4, 0]])
    assert np.allclose(result.separation, expected)
    assert result.separation[0, 2] == 0.0  # exactly: the distributions touch
    assert np.allclose(result.min_distance, [[0, 2, 0], [2, 0, 2], [0, 2, 0]])
    assert np.allclose(result.max_distance[[0, 0, 1], [1, 2, 2]], [4, 6, 5])


def test_overlap_hand_computed_euclidean():
    X, labels = points_1d()
    overlap = separation_overlap(X, labels, metric="euclidean").overlap
    # A: 0 -> nearest C is 1 away, nearest other A 1 away: not closer; 1 -> C at 0 < 1: closer.  O_AC = 1/2
    # C: 1 -> A at 0 < other C at 5; 6 -> A at 5, other C at 5: not strictly closer.               O_CA = 1/2
    # C: 1 -> B at 2 < 5; 6 -> B at 2 < 5.                                                             O_CB = 1
    expected = np.array([[0, 0, 0.5], [0, 0, 0], [0.5, 1, 0]])
    assert np.allclose(overlap, expected)


def test_separation_and_overlap_hand_computed_cosine():
    # A = {(1,0), (1,1)}, B = {(0,1), (-1,0)}
    X = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [-1.0, 0.0]])
    result = separation_overlap(X, ["A", "A", "B", "B"])
    closest = 1 - 1 / np.sqrt(2)  # (1,1) vs (0,1)
    assert result.separation[0, 1] == pytest.approx(closest / 2.0, abs=1e-6)  # largest: (1,0) vs (-1,0) = 2
    # O_AB: (1,1) has B and A both at 1 - 1/sqrt(2): a tie is not "closer" -> 0; O_BA: (0,1) is closer to A -> 1/2
    assert result.overlap[0, 1] == pytest.approx(0.0)
    assert result.overlap[1, 0] == pytest.approx(0.5)
    frame = result.to_frame()
    assert set(frame.columns) >= {"concept_i", "concept_j", "separation", "overlap_ij", "overlap_ji"}
    assert result.separation_frame().loc["A", "B"] == pytest.approx(closest / 2.0, abs=1e-6)


def test_planted_confused_pair_ranks_first_and_touching_pair_has_zero_separation():
    X, labels = planted_concepts()
    X = np.concatenate([X, X[labels == "cat"][:1]])  # a "dog" LoCE equal to a "cat" LoCE: they touch
    labels = np.append(labels, "dog")
    separation = separation_overlap(X, labels)
    cat, dog = list(separation.concepts).index("cat"), list(separation.concepts).index("dog")
    assert separation.separation[cat, dog] == 0.0
    pairs = confused_pairs(separation)
    assert {pairs.table.concept_a[0], pairs.table.concept_b[0]} == {"bus", "car"}
    assert pairs.table.overlap[0] > 0.3
    with_clusters = confused_pairs(separation, concept_purity(X, labels))
    assert {with_clusters.table.concept_a[0], with_clusters.table.concept_b[0]} == {"bus", "car"}
    assert with_clusters.table.cluster_sharing[0] > 0.5
    assert list(pairs.table["rank"]) == list(range(1, 7))


def test_zero_vectors_give_no_nan():
    X, labels = planted_concepts()
    X[[0, 40, 70]] = 0.0
    result = separation_overlap(X, labels)
    assert not np.isnan(result.separation).any() and not np.isnan(result.overlap).any()


def test_small_concepts_and_single_concept_give_clear_errors_or_results():
    X, labels = points_1d()
    with pytest.raises(SingleConceptError, match="only 1 concept"):
        separation_overlap(X, ["A"] * 6)
    labels_single = ["A", "A", "B", "B", "C", "D"]  # C and D have one LoCE each
    with pytest.raises(TooFewSamplesError, match="only 1 LoCE for 'C', 'D'"):
        separation_overlap(X, labels_single)
    result = separation_overlap(X, labels_single, overlap=False, metric="euclidean")
    assert result.overlap is None and not np.isnan(result.separation).any()
    X2, labels2, kept = drop_small_concepts(X, labels_single, 2)
    assert kept.tolist() == [0, 1, 2, 3] and separation_overlap(X2, labels2).overlap.shape == (2, 2)


def test_separation_chance_is_the_mean_separation_of_shuffled_labels():
    # planted, well-apart concepts lie far above their chance level; labels drawn independently of the vectors
    # (the null the chance level describes) lie at it
    X, labels = planted_concepts()
    observed = mean_off_diagonal(separation_overlap(X, labels, metric="euclidean").separation)
    chance = separation_chance(X, labels, metric="euclidean", seed=1)
    assert chance < 0.15 < 0.5 < observed  # 0.08 and 0.64 here
    rng = np.random.default_rng(3)
    random_labels = rng.choice(["a", "b", "c"], size=X.shape[0])
    null = mean_off_diagonal(separation_overlap(X, random_labels, metric="euclidean").separation)
    assert separation_chance(X, random_labels, metric="euclidean", seed=1) == pytest.approx(null, abs=0.01)
    # by hand: one shuffle of 4 labels is one of the 6 partitions, drawn from the seed
    X4 = np.array([[0.0], [1.0], [5.0], [6.0]])
    permuted = np.random.default_rng(0).permutation(np.array(["a", "a", "b", "b"]))
    by_hand = mean_off_diagonal(separation_overlap(X4, permuted, metric="euclidean").separation)
    assert separation_chance(X4, ["a", "a", "b", "b"], metric="euclidean", shuffles=1) == pytest.approx(
        by_hand
    )
