"""Purity of the adaptive hierarchical clustering: hand-computed walk and planted concepts."""

from __future__ import annotations

import numpy as np
import pytest

from analysis_helpers import planted_concepts
from loce.analysis import TooFewSamplesError, TooManySamplesError, concept_purity, stratified_subsample


def test_walk_stops_by_size_and_by_purity_hand_computed():
    # {0, 0.1} holds one "a" and one "b"; {10, 10.1} two "a". Root: 3/4 "a" < 0.8 and 4 > 0.5 * 4 -> split.
    # {0, 0.1}: 2 <= 0.5 * 4 -> stops by size (majority 1); {10, 10.1}: pure. Purity (1 + 2) / 4.
    X = np.array([[0.0], [0.1], [10.0], [10.1]])
    result = concept_purity(X, ["a", "b", "a", "a"], max_share=0.5)
    assert result.purity == pytest.approx(0.75)
    assert result.n_clusters == 2
    assert result.assignment[0] == result.assignment[1] != result.assignment[2] == result.assignment[3]
    table = result.to_frame().set_index("size")
    assert table.loc[2, "stopped_by"].tolist() == ["size", "pure"] or set(table["stopped_by"]) == {
        "size",
        "pure",
    }
    assert sorted(table["majority_share"].tolist()) == [0.5, 1.0]
    # with a smaller size limit the mixed node splits into two pure leaves
    finer = concept_purity(X, ["a", "b", "a", "a"], max_share=0.25)
    assert finer.purity == 1.0 and finer.n_clusters == 3


@pytest.mark.parametrize(
    "linkage,metric", [("ward", "euclidean"), ("average", "cosine"), ("complete", "cosine")]
)
def test_planted_concepts_purity(linkage, metric):
    X, labels = planted_concepts()
    X[5] = 0.0  # a zero vector: cosine distance 1, no NaN in the linkage
    result = concept_purity(X, labels, linkage=linkage, metric=metric)
    # cat and dog are separate (pure); car and bus are one distribution: at best half of them are "right"
    assert 0.6 <= result.purity < 0.95
    assert result.contingency.sum() == len(labels) and result.assignment.shape == (120,)
    sharing = result.cluster_sharing(["bus", "car", "cat", "dog"])
    assert sharing[0, 1] > 0.5 and sharing[2, 3] < 0.2
    members = result.members_frame()
    assert (members["cluster"].to_numpy() == result.assignment).all()


def test_purity_limits_are_clear():
    with pytest.raises(TooFewSamplesError):
        concept_purity(np.zeros((1, 3)), ["a"])
    with pytest.raises(TooManySamplesError, match="stratified_subsample"):
        concept_purity(np.zeros((30, 3)), ["a"] * 30, max_samples=20)
    assert concept_purity(np.eye(3), ["a"] * 3).purity == 1.0  # a single concept is trivially pure


def test_stratified_subsample_keeps_shares():
    labels = np.array(["a"] * 900 + ["b"] * 90 + ["c"] * 10)
    idx = stratified_subsample(labels, 100, seed=1)
    assert len(idx) == 100 and len(set(idx)) == 100
    counts = {c: int((labels[idx] == c).sum()) for c in "abc"}
    assert counts == {"a": 90, "b": 9, "c": 1}
