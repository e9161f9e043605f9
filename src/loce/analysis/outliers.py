"""Outlier LoCEs per concept: summed cosine distance (paper default), LocalOutlierFactor, IsolationForest.

Every score is "higher = more outlying" and is computed within each concept. The summed cosine distance of a
LoCE ``a`` of concept ``c`` is ``sum over the other LoCEs b of c of (1 - cos(a, b))``; with unit vectors
``u`` and ``s = sum of u over c`` it equals ``(n_c - 1) - u_a . (s - u_a)``, so it costs O(N D), not O(N^2 D).
Zero vectors have cosine distance 1 to everything (they are not NaN).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from loce.analysis.distances import normalize_rows
from loce.analysis.errors import AnalysisError
from loce.analysis.inputs import ConceptIndex, prepare
from loce.reprs import short_repr

OUTLIER_METHODS = ("summed_cosine", "lof", "isolation_forest")


@dataclass
class OutlierResult:
    """Outlier scores of every LoCE within its concept.

    Attributes:
        labels: N concept names; ``concepts`` the K sorted names.
        methods: the methods computed, in order.
        scores: method -> N scores (higher = more outlying).
        ranks: method -> N ranks within the concept (1 = most outlying; ties: lower index first).
        ids: optional N sample ids.
        stability: optionally, :func:`isolation_forest_stability` of the same LoCEs (see
            :func:`loce.analysis.builtin.outlier_analysis`).
    """

    __repr__ = short_repr

    labels: np.ndarray = field(repr=False)
    concepts: np.ndarray
    methods: tuple[str, ...]
    scores: dict[str, np.ndarray] = field(repr=False)
    ranks: dict[str, np.ndarray] = field(repr=False)
    ids: np.ndarray | None = field(default=None, repr=False)
    stability: dict[str, object] | None = field(default=None, repr=False)

    def to_frame(self) -> pd.DataFrame:
        """One row per LoCE: index, id, concept, then ``<method>_score`` and ``<method>_rank`` per method;
        sorted by concept and the first method's rank."""
        frame = pd.DataFrame({"index": np.arange(self.labels.size), "concept": self.labels})
        if self.ids is not None:
            frame.insert(1, "id", self.ids)
        for method in self.methods:
            frame[f"{method}_score"] = self.scores[method]
            frame[f"{method}_rank"] = self.ranks[method]
        return frame.sort_values(["concept", f"{self.methods[0]}_rank"], kind="stable").reset_index(drop=True)

    def top(self, n: int = 5, method: str | None = None) -> pd.DataFrame:
        """The ``n`` most outlying LoCEs of each concept by ``method`` (default: the first)."""
        method = method or self.methods[0]
        if method not in self.scores:
            raise AnalysisError(f"method {method!r} was not computed; computed: {', '.join(self.methods)}.")
        frame = self.to_frame()
        return (
            frame[frame[f"{method}_rank"] <= n]
            .sort_values(["concept", f"{method}_rank"])
            .reset_index(drop=True)
        )


def summed_cosine_distance(X: object, labels: object) -> np.ndarray:
    """Per LoCE, the sum of cosine distances to the other LoCEs of its concept, in O(N D).

    Example:
        >>> summed_cosine_distance(np.array([[1.0, 0], [1, 0], [0, 1]]), ["a", "a", "a"]).tolist()
        [1.0, 1.0, 2.0]
    """
    X, labels = prepare(
        X, labels, dtype=np.float32 if getattr(X, "dtype", None) == np.float32 else np.float64
    )
    index = ConceptIndex.from_labels(labels)
    summed = np.empty(labels.size)
    for k in range(index.n_concepts):  # one concept at a time: float64 memory O(n_c D), not O(N D)
        members = index.members(k)
        unit = normalize_rows(X[members]).astype(np.float64)
        to_others = unit @ unit.sum(axis=0) - np.einsum("ij,ij->i", unit, unit)
        summed[members] = np.maximum(0.0, (members.size - 1) - to_others)
    return summed


def _ranks_within(scores: np.ndarray, index: ConceptIndex) -> np.ndarray:
    ranks = np.empty(scores.size, dtype=np.int64)
    for k in range(index.n_concepts):
        members = index.members(k)
        order = np.lexsort((members, -scores[members]))
        ranks[members[order]] = np.arange(1, members.size + 1)
    return ranks


def find_outliers(
    X: object,
    labels: object,
    *,
    methods: Sequence[str] = OUTLIER_METHODS,
    n_neighbors: int = 20,
    n_estimators: int = 100,
    ids: Sequence | None = None,
    seed: int = 0,
) -> OutlierResult:
    """Score every LoCE's outlyingness within its concept.

    Args:
        X: N x D LoCEs.
        labels: N concept names (every concept needs at least 2 LoCEs).
        methods: any of ``"summed_cosine"`` (paper default), ``"lof"`` (``LocalOutlierFactor`` with cosine
            distance, ``min(n_neighbors, n_c - 1)`` neighbours), ``"isolation_forest"``.
        n_neighbors: LOF neighbours.
        n_estimators: trees of the isolation forest.
        ids: optional N sample ids.
        seed: random state of the isolation forest.

    Example:
        >>> X = np.array([[1.0, 0], [1, 0.1], [1, -0.1], [0, 1]])
        >>> find_outliers(X, ["a"] * 4, methods=["summed_cosine"]).ranks["summed_cosine"].tolist()
        [3, 4, 2, 1]
    """
    from sklearn.ensemble import IsolationForest
    from sklearn.neighbors import LocalOutlierFactor

    X, labels = prepare(X, labels, dtype=np.float64)
    methods = tuple(methods)
    unknown = [m for m in methods if m not in OUTLIER_METHODS]
    if unknown or not methods:
        raise AnalysisError(f"unknown outlier methods {unknown}; use any of {', '.join(OUTLIER_METHODS)}.")
    index = ConceptIndex.from_labels(labels)
    index.require(2, "outlier detection")
    scores: dict[str, np.ndarray] = {}
    if "summed_cosine" in methods:
        scores["summed_cosine"] = summed_cosine_distance(X, labels)
    for method in ("lof", "isolation_forest"):
        if method not in methods:
            continue
        values = np.empty(labels.size)
        for k in range(index.n_concepts):
            members = index.members(k)
            Xc = X[members]
            if method == "lof":
                lof = LocalOutlierFactor(n_neighbors=int(min(n_neighbors, members.size - 1)), metric="cosine")
                lof.fit(Xc)
                values[members] = -lof.negative_outlier_factor_
            else:
                forest = IsolationForest(n_estimators=n_estimators, random_state=seed).fit(Xc)
                values[members] = -forest.score_samples(Xc)
        scores[method] = values
    ordered = {m: scores[m] for m in methods}
    return OutlierResult(
        labels,
        index.concepts,
        methods,
        ordered,
        {m: _ranks_within(s, index) for m, s in ordered.items()},
        None if ids is None else np.asarray(ids),
    )


def isolation_forest_stability(
    X: object,
    labels: object,
    *,
    seeds: Sequence[int] = range(5),
    top: int = 5,
    n_estimators: int = 100,
) -> dict[str, object]:
    """How much the IsolationForest ranking within each concept depends on the forest's seed.

    For every pair of seeds and every concept with at least 3 LoCEs: the Spearman correlation of the two
    seeds' scores and the overlap of their ``top`` most outlying LoCEs (shared / ``top``). The reference
    implementation leaves the forest unseeded, so its ranking carries this much seed noise.

    Returns:
        ``{"spearman": mean over concepts, "top_overlap": mean over concepts, "per_concept": DataFrame}``
        (NaN means when no concept has 3 LoCEs).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> X = np.concatenate([rng.normal(size=(30, 4)), [[9.0, 9, 9, 9]]])
        >>> stable = isolation_forest_stability(X, ["a"] * 31, seeds=[0, 1, 2], top=1)
        >>> stable["top_overlap"]  # the planted outlier is the first for every seed
        1.0
    """
    from scipy.stats import spearmanr
    from sklearn.ensemble import IsolationForest

    X, labels = prepare(X, labels, dtype=np.float64)
    seeds = [int(s) for s in seeds]
    if len(seeds) < 2:
        raise AnalysisError(f"stability needs at least 2 seeds, got {seeds}.")
    index = ConceptIndex.from_labels(labels)
    rows = []
    for k, concept in enumerate(index.concepts.tolist()):
        members = index.members(k)
        if members.size < 3:
            continue
        Xc = X[members]
        scores = [
            -IsolationForest(n_estimators=n_estimators, random_state=s).fit(Xc).score_samples(Xc)
            for s in seeds
        ]
        n_top = int(min(top, members.size))
        tops = [set(np.lexsort((np.arange(members.size), -sc))[:n_top].tolist()) for sc in scores]
        rho, shared = [], []
        for a in range(len(seeds)):
            for b in range(a + 1, len(seeds)):
                rho.append(float(spearmanr(scores[a], scores[b])[0]))
                shared.append(len(tops[a] & tops[b]) / n_top)
        rows.append(
            {
                "concept": concept,
                "n": int(members.size),
                "spearman": float(np.mean(rho)),
                "top_overlap": float(np.mean(shared)),
            }
        )
    table = pd.DataFrame(rows, columns=["concept", "n", "spearman", "top_overlap"])
    return {
        "spearman": float(table["spearman"].mean()) if len(table) else float("nan"),
        "top_overlap": float(table["top_overlap"].mean()) if len(table) else float("nan"),
        "per_concept": table,
    }
