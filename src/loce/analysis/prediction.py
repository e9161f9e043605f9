"""Prediction of a new LoCE's concept (METHOD.md section 2a): nearest cluster centroid and k-NN voting.

- ``method="centroid"``: the LoCEs are L2-normalised and grouped into clusters (by default each concept is one
  cluster; pass e.g. the purity clusters to use the dendrogram's clusters). Each cluster has a centroid (mean of
  its normalised LoCEs) and a concept distribution (the share of each concept among its members). A new LoCE,
  normalised, gets the distribution of the cluster whose centroid is nearest (Euclidean; ties: lower cluster).
- ``method="knn"``: the ``k`` nearest fitted LoCEs by cosine similarity vote; the distribution is the share of
  each concept among them (ties of the vote: the concept first in sorted order).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from loce.analysis.distances import normalize_rows
from loce.analysis.errors import AnalysisError, TooFewSamplesError
from loce.analysis.inputs import ConceptIndex, as_vectors, prepare
from loce.analysis.retrieval import knn

PREDICTION_METHODS = ("centroid", "knn")


class ConceptPredictor:
    """Predicts concepts of new LoCEs from labelled ones (a scikit-learn style estimator).

    Example:
        >>> X = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
        >>> model = ConceptPredictor("centroid").fit(X, ["a", "a", "b", "b"])
        >>> model.predict(np.array([[2.0, 0.5]])).tolist()
        ['a']
    """

    def __init__(self, method: str = "centroid", k: int = 5) -> None:
        if method not in PREDICTION_METHODS:
            raise AnalysisError(f"unknown prediction method {method!r}; use {', '.join(PREDICTION_METHODS)}.")
        if k < 1:
            raise AnalysisError(f"k must be at least 1, got {k}.")
        self.method, self.k = method, int(k)

    def fit(self, X: object, labels: object, clusters: Sequence[int] | None = None) -> ConceptPredictor:
        """Learn from N labelled LoCEs; ``clusters`` (N cluster ids) for the centroid method (default: concept)."""
        X, labels = prepare(X, labels, dtype=np.float64)
        index = ConceptIndex.from_labels(labels)
        self.concepts_ = index.concepts
        self.units_ = normalize_rows(X)
        self.codes_ = index.codes
        if self.method == "knn" and X.shape[0] < self.k:
            raise TooFewSamplesError(f"k-NN with k={self.k} needs at least {self.k} LoCEs, got {X.shape[0]}.")
        groups = index.codes if clusters is None else np.asarray(clusters)
        if groups.shape != labels.shape:
            raise AnalysisError(
                f"clusters must give one id per LoCE ({labels.size}), got shape {groups.shape}."
            )
        ids, cluster_of = np.unique(groups, return_inverse=True)
        self.centroids_ = np.stack([self.units_[cluster_of == c].mean(axis=0) for c in range(ids.size)])
        counts = np.zeros((ids.size, index.n_concepts))
        np.add.at(counts, (cluster_of, index.codes), 1.0)
        self.distributions_ = counts / counts.sum(axis=1, keepdims=True)
        return self

    def predict_proba(self, X: object) -> np.ndarray:
        """Q x K concept distribution of each query (columns: ``concepts_``)."""
        if not hasattr(self, "concepts_"):
            raise AnalysisError("call fit() before predict().")
        Q = normalize_rows(as_vectors(X, dtype=np.float64))
        if Q.shape[1] != self.units_.shape[1]:
            raise AnalysisError(
                f"queries have {Q.shape[1]} dimensions, the fitted LoCEs {self.units_.shape[1]}."
            )
        if self.method == "centroid":
            sq = (Q**2).sum(1)[:, None] - 2 * Q @ self.centroids_.T + (self.centroids_**2).sum(1)[None, :]
            return self.distributions_[np.argmin(sq, axis=1)]
        found = knn(self.units_, Q, k=self.k, metric="cosine")
        votes = np.zeros((Q.shape[0], self.concepts_.size))
        np.add.at(votes, (np.repeat(np.arange(Q.shape[0]), self.k), self.codes_[found.indices].ravel()), 1.0)
        return votes / self.k

    def predict(self, X: object) -> np.ndarray:
        """The most likely concept of each query (ties: the concept first in sorted order)."""
        proba = self.predict_proba(X)
        return self.concepts_[np.argmax(proba, axis=1)]

    def score(self, X: object, labels: object) -> float:
        """Share of queries whose predicted concept is their label."""
        truth = np.asarray(labels).astype(str)
        return float((self.predict(X) == truth).mean())
