"""Sub-concepts: clusters inside one concept (paper: near vs far cars, flying vs landed planes).

Each sub-concept gets its members, their share of the concept and a centroid LoCE in the original space (the
mean of its members), which can be projected onto new images like any LoCE.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from loce.analysis.errors import AnalysisError, TooFewSamplesError
from loce.analysis.gmm import default_min_component_size, fit_mixture
from loce.analysis.inputs import prepare
from loce.analysis.purity import linkage_matrix
from loce.analysis.reduce import fit_reducer
from loce.reprs import short_repr

METHODS = ("dendrogram", "gmm")
# the defaults of find_subconcepts, AnalysisSettings and `loce analyze` (a BIC-selected mixture in a 2-D PCA:
# see AnalysisSettings for why few dimensions)
DEFAULT_METHOD = "gmm"
DEFAULT_DIMS = 2
SILHOUETTE_SAMPLE = 3000  # larger concepts: silhouette on a seeded random sample of this many LoCEs


@dataclass
class SubConcepts:
    """Sub-concepts of one concept.

    Attributes:
        concept: the concept.
        method: ``"dendrogram"`` or ``"gmm"``.
        members: indices (into the analysed LoCEs) of the concept's LoCEs.
        assignment: sub-concept id of each member (0 = largest sub-concept).
        centroids: n_subconcepts x D mean LoCE of each sub-concept, in the original space.
        counts, shares: members per sub-concept and their share of the concept.
        selection: score per candidate number of sub-concepts (silhouette, higher is better, for the dendrogram;
            BIC, lower is better, for the GMM); empty when the number was given.
        ids: optional sample ids of the members.
    """

    __repr__ = short_repr

    concept: str
    method: str
    members: np.ndarray
    assignment: np.ndarray
    centroids: np.ndarray = field(repr=False)
    counts: np.ndarray
    shares: np.ndarray
    selection: dict[int, float]
    ids: np.ndarray | None = None

    @property
    def n_subconcepts(self) -> int:
        return int(self.counts.size)

    def to_frame(self) -> pd.DataFrame:
        """One row per sub-concept: size, share, centroid norm and the first member ids."""
        named = self.ids if self.ids is not None else self.members
        return pd.DataFrame(
            {
                "concept": self.concept,
                "subconcept": np.arange(self.n_subconcepts),
                "n_members": self.counts,
                "share": self.shares,
                "centroid_norm": np.linalg.norm(self.centroids, axis=1),
                "examples": [
                    ", ".join(map(str, named[self.assignment == s][:5])) for s in range(self.n_subconcepts)
                ],
            }
        )

    def members_frame(self) -> pd.DataFrame:
        """One row per member LoCE: its index, id (if given) and sub-concept."""
        frame = pd.DataFrame({"index": self.members, "subconcept": self.assignment})
        if self.ids is not None:
            frame.insert(1, "id", self.ids)
        return frame


def _relabel_by_size(assignment: np.ndarray) -> np.ndarray:
    """Renumber clusters 0.. by decreasing size (ties: the cluster whose first member comes first)."""
    clusters, first, sizes = np.unique(assignment, return_index=True, return_counts=True)
    ranking = np.lexsort((first, -sizes))
    new_id = np.empty(clusters.size, dtype=np.int64)
    new_id[ranking] = np.arange(clusters.size)
    return new_id[np.searchsorted(clusters, assignment)]


def find_subconcepts(
    X: object,
    labels: object,
    concept: str,
    *,
    method: str = DEFAULT_METHOD,
    n_subconcepts: int | None = None,
    distance_threshold: float | None = None,
    max_subconcepts: int = 8,
    linkage: str = "ward",
    metric: str = "euclidean",
    min_silhouette: float = 0.1,
    n_dims: int = DEFAULT_DIMS,
    ids: Sequence | None = None,
    seed: int = 0,
) -> SubConcepts:
    """Split the LoCEs of ``concept`` into sub-concepts.

    Args:
        X: N x D LoCEs (all concepts; only ``concept``'s rows are used).
        labels: N concept names.
        concept: the concept to split.
        method: ``"gmm"`` (the default, as in ``loce analyze``) or ``"dendrogram"`` (cut of a hierarchical clustering; the number chosen by the best silhouette,
            one sub-concept if no cut reaches ``min_silhouette``; above 3000 LoCEs the silhouette is estimated
            on a seeded sample); ``"gmm"`` is a BIC-selected Gaussian mixture in a
            PCA of the concept's LoCEs with ``n_dims`` dimensions; few dimensions keep the full covariances
            well determined for concepts of a few dozen LoCEs.
        n_subconcepts: force this number instead of choosing it.
        distance_threshold: dendrogram only: cut the tree at this merge distance (the publication's hand-chosen
            cut, e.g. three "car" clusters) instead of choosing the number by silhouette.
        max_subconcepts: largest number tried.
        linkage, metric: for the dendrogram (see :func:`loce.analysis.purity.linkage_matrix`).
        ids: optional N sample ids.
        seed: random state (GMM / PCA).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> X = np.concatenate([rng.normal(0, 0.1, (10, 3)), rng.normal(5, 0.1, (6, 3))])
        >>> find_subconcepts(X, ["car"] * 16, "car").counts.tolist()
        [10, 6]
    """
    from scipy.cluster.hierarchy import fcluster
    from sklearn.metrics import silhouette_score

    X, labels = prepare(X, labels, dtype=np.float64)
    if method not in METHODS:
        raise AnalysisError(f"unknown sub-concept method {method!r}; use one of {', '.join(METHODS)}.")
    members = np.flatnonzero(labels == concept)
    if members.size == 0:
        raise AnalysisError(
            f"concept {concept!r} has no LoCEs here; known concepts: {sorted(set(labels))[:20]}."
        )
    if members.size < 2:
        raise TooFewSamplesError(
            f"concept {concept!r} has {members.size} LoCE; sub-concepts need at least 2."
        )
    if distance_threshold is not None and (method != "dendrogram" or not distance_threshold > 0):
        raise AnalysisError(
            f"distance_threshold needs method='dendrogram' and a positive distance, got {distance_threshold!r}."
        )
    if n_subconcepts is not None and not 1 <= n_subconcepts <= members.size:
        raise AnalysisError(
            f"n_subconcepts must be in 1..{members.size} for {concept!r}, got {n_subconcepts}."
        )
    Xc = X[members]
    # exact duplicates are one point for the clustering (else a pile of copies is a "sub-concept" of its own)
    _, first, copy_of = np.unique(Xc + 0.0, axis=0, return_index=True, return_inverse=True)
    distinct = np.sort(first)
    position = np.empty(first.size, dtype=np.int64)
    position[np.argsort(first)] = np.arange(first.size)
    copy_of = position[np.asarray(copy_of).ravel()]  # member -> index into `distinct`
    Xd = Xc[distinct]
    if n_subconcepts is not None and n_subconcepts > distinct.size:
        raise AnalysisError(
            f"n_subconcepts={n_subconcepts} but {concept!r} has only {distinct.size} distinct LoCEs."
        )
    selection: dict[int, float] = {}
    if distinct.size < 2:
        assignment = np.ones(distinct.size, dtype=np.int64)
    elif method == "dendrogram":
        Z = linkage_matrix(Xd, linkage, metric)
        if distance_threshold is not None:
            assignment = fcluster(Z, float(distance_threshold), criterion="distance")
        elif n_subconcepts is not None:
            assignment = fcluster(Z, n_subconcepts, criterion="maxclust")
        else:
            assignment = np.ones(distinct.size, dtype=np.int64)
            best = min_silhouette
            for k in range(2, min(max_subconcepts, distinct.size - 1) + 1):
                candidate = fcluster(Z, k, criterion="maxclust")
                if np.unique(candidate).size < 2:
                    continue
                sample = None if distinct.size <= SILHOUETTE_SAMPLE else SILHOUETTE_SAMPLE
                score = float(
                    silhouette_score(Xd, candidate, metric=metric, sample_size=sample, random_state=seed)
                )
                selection[k] = score
                if score > best:
                    best, assignment = score, candidate
    else:
        dims = int(min(n_dims, distinct.size - 1, Xd.shape[1]))
        reducer, Y = fit_reducer(Xd, "pca", dims, seed=seed)
        candidates = [n_subconcepts] if n_subconcepts is not None else range(1, max_subconcepts + 1)
        smallest = 1 if n_subconcepts is not None else default_min_component_size(dims)
        model, tried, bics = fit_mixture(Y, candidates, min_component_size=smallest, seed=seed)
        if n_subconcepts is None:
            selection = dict(zip(tried.tolist(), bics.tolist()))
        assignment = model.predict(Y)
    assignment = _relabel_by_size(np.asarray(assignment)[copy_of])
    counts = np.bincount(assignment)
    centroids = np.stack([Xc[assignment == s].mean(axis=0) for s in range(counts.size)])
    return SubConcepts(
        concept=concept,
        method=method,
        members=members,
        assignment=assignment,
        centroids=centroids,
        counts=counts,
        shares=counts / members.size,
        selection=selection,
        ids=None if ids is None else np.asarray(ids)[members],
    )
