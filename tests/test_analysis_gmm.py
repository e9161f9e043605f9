"""GMMs (BIC, small components) and sub-concepts with planted sub-clusters (adjusted Rand index)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from analysis_helpers import clusters
from loce.analysis import TooFewSamplesError, find_subconcepts, fit_gmms, fit_reducer


def concept_with_subclusters(seed=0, dim=24):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, dim)) * 4
    X, truth = clusters(centres, [40, 30, 20], spread=0.6, seed=seed)
    other, _ = clusters(rng.normal(size=(1, dim)) * 4, [25], spread=0.6, seed=seed + 7)
    return np.concatenate([X, other]), np.array(["car"] * 90 + ["bus"] * 25), truth


@pytest.mark.parametrize("method", ["dendrogram", "gmm"])
def test_planted_subconcepts_are_recovered(method):
    X, labels, truth = concept_with_subclusters()
    result = find_subconcepts(X, labels, "car", method=method, ids=[f"s{i}" for i in range(len(labels))])
    assert adjusted_rand_score(truth, result.assignment) >= 0.9
    assert result.n_subconcepts == 3 and result.counts.tolist() == [40, 30, 20]
    assert result.shares.sum() == pytest.approx(1.0)
    for s in range(3):  # centroid LoCE = mean of the members, in the original space
        assert np.allclose(result.centroids[s], X[result.members[result.assignment == s]].mean(axis=0))
    assert result.to_frame()["n_members"].tolist() == [40, 30, 20]
    assert result.members_frame()["id"].iloc[0] == "s0"


def test_forced_number_and_small_concepts():
    X, labels, _ = concept_with_subclusters()
    assert find_subconcepts(X, labels, "car", n_subconcepts=2).n_subconcepts == 2
    with pytest.raises(TooFewSamplesError):
        find_subconcepts(X[:1], ["car"], "car")
    assert find_subconcepts(X[:2], ["car", "car"], "car").n_subconcepts == 1


def test_gmms_choose_components_by_bic_and_flag_small_ones():
    rng = np.random.default_rng(1)
    main = rng.normal(size=(2, 12)) * 5
    X, which = clusters(np.concatenate([main, main[:1] + 12]), [60, 60, 6], spread=0.5, seed=2)
    labels = np.array(["plane"] * 126)
    result = fit_gmms(X, labels, n_dims=4, min_weight=0.08, label_agnostic=False)
    fit = result.per_concept["plane"]
    assert fit.n_components == 3
    assert fit.bic[list(fit.candidates).index(3)] == fit.bic.min()
    assert fit.small.sum() == 1 and fit.weights[fit.small][0] == pytest.approx(6 / 126, abs=0.01)
    assert sorted(fit.outlier_members.tolist()) == list(range(120, 126))
    assert sorted(result.outliers()["index"]) == list(range(120, 126))
    assert fit.covariances.shape == (3, 4, 4) and fit.means.shape == (3, 4)


def test_label_agnostic_mixture_mixes_confused_concepts():
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(2, 10)) * 6
    X, blob = clusters(centres[[0, 0, 1]], [40, 40, 40], spread=0.5, seed=4)
    labels = np.array(["car", "bus", "cat"])[blob]
    result = fit_gmms(X, labels, n_dims=3, overall_max_components=4)
    table = result.to_frame()
    overall = table[table["mixture"] == "(all)"]
    assert len(overall) == 2  # car+bus share one component
    assert sorted(overall["majority_share"].round(2)) == [0.5, 1.0]
    assert set(result.bic_frame()["mixture"]) == {"bus", "car", "cat", "(all)"}


def test_pca_reducer_clips_dimensions():
    reducer, Y = fit_reducer(np.random.default_rng(0).normal(size=(5, 3)), n_components=10)
    assert Y.shape == (5, 3) and reducer.explained_variance_ratio.shape == (3,)
    assert np.allclose(reducer.transform(np.zeros((2, 3))).shape, (2, 3))


@pytest.mark.slow
def test_umap_space_for_figures():
    pytest.importorskip("umap")
    X, labels, truth = concept_with_subclusters()
    result = fit_gmms(X, labels, space="umap", max_components=4, label_agnostic=False)
    assert result.space == "umap" and result.embedding.shape == (115, 2)
    assert result.per_concept["car"].means.shape[1] == 2
    assert result.per_concept["car"].n_components == 3


def test_mixture_components_hold_more_points_than_dimensions():
    # 15 LoCEs of one Gaussian in 10 dimensions: plain BIC selection picks singular components of 1-3 points
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(15, 30)), rng.normal(size=(60, 30)) + 4])
    labels = np.array(["small"] * 15 + ["big"] * 60)
    result = fit_gmms(X, labels, n_dims=10, label_agnostic=False)
    for fit in result.per_concept.values():
        sizes = np.bincount(fit.assignment, minlength=fit.n_components)
        assert fit.n_components == 1 or sizes.min() >= 11
        eigenvalues = np.linalg.eigvalsh(fit.covariances)
        assert eigenvalues.min() > 1e-3
    assert result.per_concept["small"].n_components == 1
    plain = fit_gmms(X, labels, n_dims=10, label_agnostic=False, min_component_size=1)
    assert plain.per_concept["small"].n_components > 1  # what the limit prevents


def test_exact_duplicates_are_not_a_subconcept_of_their_own():
    for seed in range(3):
        rng = np.random.default_rng(seed)
        X = rng.normal(size=(40, 6))
        X = np.concatenate([X, np.repeat(X[:1], 8, axis=0)])
        for method in ("gmm", "dendrogram"):
            split = find_subconcepts(X, ["a"] * 48, "a", method=method, n_dims=2, max_subconcepts=4)
            for s in range(split.n_subconcepts):
                members = split.members[split.assignment == s]
                assert np.unique(X[members], axis=0).shape[0] > 1, (seed, method, s)
            copies = split.assignment[[0, *range(40, 48)]]
            assert (copies == copies[0]).all()  # copies follow their original


def test_dendrogram_distance_cut():
    X = np.array([[0.0], [0.1], [5.0], [5.1], [20.0], [20.1]])
    split = find_subconcepts(X, ["car"] * 6, "car", method="dendrogram", distance_threshold=3.0)
    assert split.counts.tolist() == [2, 2, 2]
    split = find_subconcepts(X, ["car"] * 6, "car", method="dendrogram", distance_threshold=100.0)
    assert split.counts.tolist() == [6]
