"""One-vs-one separation and overlap of concept distributions, and the ranked list of confused concept pairs.

Definitions (METHOD.md section 2), for concepts i and j:

- separation ``S_ij`` = (smallest distance between a LoCE of i and a LoCE of j) / (largest distance between two
  LoCEs of the union of i and j). 0 means the distributions touch; the diagonal is 0. When all LoCEs of the
  union coincide (largest distance 0) ``S_ij`` is 0.
- overlap ``O_ij`` = share of i's LoCEs whose nearest LoCE of j is strictly closer than their nearest other LoCE of
  i. Not symmetric; the diagonal is 0. Needs at least 2 LoCEs in concept i.

Both come from one exact pass (:func:`loce.analysis.neighbours.scan_neighbourhoods`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from loce.analysis.errors import AnalysisError, TooFewSamplesError
from loce.analysis.inputs import ConceptIndex
from loce.analysis.neighbours import NeighbourhoodScan, scan_neighbourhoods
from loce.reprs import short_repr

if TYPE_CHECKING:
    from loce.analysis.purity import PurityResult

DEFAULT_CONFUSION_WEIGHTS = {"overlap": 2.0, "closeness": 1.0, "cluster_sharing": 1.0}


@dataclass
class ConceptSeparation:
    """Separation and overlap matrices (K x K, rows/columns = ``concepts``).

    Attributes:
        concepts: K concept names.
        counts: LoCEs per concept.
        metric: distance used.
        separation: ``S_ij`` (symmetric).
        overlap: ``O_ij`` (row i = share of i's LoCEs), or None when not computed.
        min_distance: smallest distance between a LoCE of i and one of j (diagonal: 0).
        max_distance: largest distance within the union of i and j (diagonal: the diameter of i).
        overlap_any: K, share of each concept's LoCEs whose nearest other LoCE has another concept
            (1 - leave-one-out 1-NN accuracy), or None.
        chance: the chance level of the mean separation (:func:`separation_chance`), or None when not computed.
    """

    __repr__ = short_repr

    concepts: np.ndarray
    counts: np.ndarray
    metric: str
    separation: np.ndarray
    overlap: np.ndarray | None
    min_distance: np.ndarray
    max_distance: np.ndarray
    overlap_any: np.ndarray | None = None
    chance: float | None = None

    def separation_frame(self) -> pd.DataFrame:
        """K x K table of ``S_ij`` with concept names as index and columns."""
        return pd.DataFrame(self.separation, index=self.concepts, columns=self.concepts)

    def overlap_frame(self) -> pd.DataFrame:
        """K x K table of ``O_ij`` (row = the concept whose LoCEs are counted)."""
        if self.overlap is None:
            raise AnalysisError("overlap was not computed; call separation_overlap(..., overlap=True).")
        return pd.DataFrame(self.overlap, index=self.concepts, columns=self.concepts)

    def to_frame(self) -> pd.DataFrame:
        """Long table, one row per ordered pair (i, j), i != j."""
        i, j = np.nonzero(~np.eye(self.concepts.size, dtype=bool))
        frame = pd.DataFrame(
            {
                "concept_i": self.concepts[i],
                "concept_j": self.concepts[j],
                "separation": self.separation[i, j],
                "min_distance": self.min_distance[i, j],
                "max_distance": self.max_distance[i, j],
                "n_i": self.counts[i],
                "n_j": self.counts[j],
            }
        )
        if self.overlap is not None:
            frame.insert(3, "overlap_ij", self.overlap[i, j])
            frame.insert(4, "overlap_ji", self.overlap[j, i])
        return frame

    @classmethod
    def from_scan(
        cls,
        scan: NeighbourhoodScan,
        overlap: bool = True,
        *,
        eps: float = 0.0,
        weights: np.ndarray | None = None,
    ) -> ConceptSeparation:
        """Build the matrices from a scan made with ``extremes=True``.

        Args:
            scan: the neighbourhood scan.
            overlap: also compute the overlap matrix (needs 2 LoCEs per concept).
            eps: added to the denominator of ``S_ij`` (the publication's protocol uses 1e-6).
            weights: per LoCE of the scan, its multiplicity (a bootstrap resample); the overlap shares count it.
        """
        if scan.nearest is None or scan.farthest is None:
            raise AnalysisError("the neighbourhood scan was made without extremes=True.")
        index = scan.index
        index.require(1, "separation", min_concepts=2)
        if overlap:
            alone = index.counts < 2
            if alone.any():
                raise TooFewSamplesError(
                    "overlap needs at least 2 LoCEs per concept (a nearest other LoCE of the same concept); "
                    f"only 1 LoCE for {', '.join(map(repr, index.concepts[alone].tolist()))}. Drop such concepts "
                    "with drop_small_concepts(X, labels, min_count=2), or pass overlap=False for separation only."
                )
        order, starts = index.order, index.starts
        near, far = scan.nearest[order], scan.farthest[order]
        min_cross = np.minimum.reduceat(near, starts, axis=0)
        max_cross = np.maximum.reduceat(far, starts, axis=0)
        min_distance = np.minimum(min_cross, min_cross.T)
        max_cross = np.maximum(max_cross, max_cross.T)
        diameter = np.diag(max_cross).copy()
        max_distance = np.maximum(max_cross, np.maximum(diameter[:, None], diameter[None, :]))
        denominator = max_distance + eps
        separation = np.divide(
            min_distance, denominator, out=np.zeros_like(min_distance), where=denominator > 0
        )
        np.fill_diagonal(separation, 0.0)
        np.fill_diagonal(min_distance, 0.0)
        overlap_matrix = overlap_any = None
        if overlap:
            codes = index.codes[order]
            own = near[np.arange(near.shape[0]), codes]
            closer = near < own[:, None]
            closer[np.arange(near.shape[0]), codes] = False
            w = np.ones(near.shape[0]) if weights is None else np.asarray(weights, np.float64)[order]
            totals = np.add.reduceat(w, starts)
            overlap_matrix = np.add.reduceat(closer * w[:, None], starts, axis=0) / totals[:, None]
            overlap_any = np.add.reduceat(closer.any(axis=1) * w, starts) / totals
        return cls(
            index.concepts,
            index.counts,
            scan.metric,
            separation,
            overlap_matrix,
            min_distance,
            max_distance,
            overlap_any,
        )


def separation_overlap(
    X: object,
    labels: object,
    *,
    metric: str = "cosine",
    overlap: bool = True,
    eps: float = 0.0,
    **scan_options,
) -> ConceptSeparation:
    """Separation (and overlap) matrices of the concepts in ``labels``, from one exact chunked pass.

    Euclidean distances are computed in float64 (a float32 score ``2 x.y - |y|^2`` of LoCEs with norms near 100
    cannot resolve gaps below about 2e-3); ``eps`` is added to the denominator of ``S_ij`` (paper: 1e-6).
    ``scan_options`` (``block_bytes``, ``backend``, ``progress``) go to
    :func:`~loce.analysis.neighbours.scan_neighbourhoods`.

    Example:
        >>> X = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [4.0, 0.0]])
        >>> result = separation_overlap(X, ["a", "a", "b", "b"], metric="euclidean")
        >>> round(float(result.separation[0, 1]), 3)  # gap 2 / largest distance 4
        0.5
    """
    index = ConceptIndex.from_labels(np.asarray(labels).astype(str))
    index.require(1, "separation", min_concepts=2)
    scan = scan_neighbourhoods(
        X, labels, metric=metric, extremes=True, dtype=scan_dtype(metric), **scan_options
    )
    return ConceptSeparation.from_scan(scan, overlap=overlap, eps=eps)


def mean_off_diagonal(matrix: np.ndarray) -> float:
    """Mean of the off-diagonal entries of a square matrix (NaN for 1 x 1).

    Example:
        >>> mean_off_diagonal(np.array([[0.0, 1.0], [3.0, 0.0]]))
        2.0
    """
    off = ~np.eye(matrix.shape[0], dtype=bool)
    return float(matrix[off].mean()) if off.any() else float("nan")


CHANCE_SHUFFLES = 3
"""Shuffles of the concept labels averaged by :func:`separation_chance`."""


def separation_chance(
    X: object,
    labels: object,
    *,
    metric: str = "cosine",
    shuffles: int = CHANCE_SHUFFLES,
    seed: int = 0,
    eps: float = 0.0,
    scan_with=None,
) -> float:
    """Chance level of the mean separation: its value with the concept labels shuffled (concept sizes kept).

    The mean over ``shuffles`` permutations of ``labels`` (drawn from ``seed``) of the mean off-diagonal ``S_ij``.
    Concepts whose LoCEs are no better separated than random groups of the same sizes score about this level;
    ``scan_with`` is the neighbour pass to use (default :func:`~loce.analysis.neighbours.scan_neighbourhoods`).

    Example:
        >>> X = np.array([[0.0, 0.0], [0.0, 1.0], [10.0, 0.0], [10.0, 1.0]])
        >>> labels = ["a", "a", "b", "b"]
        >>> observed = mean_off_diagonal(separation_overlap(X, labels, metric="euclidean").separation)
        >>> round(observed, 3), separation_chance(X, labels, metric="euclidean") < observed
        (0.995, True)
    """
    scan_with = scan_with or scan_neighbourhoods
    labels = np.asarray(labels).astype(str)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(shuffles):
        scan = scan_with(X, rng.permutation(labels), metric=metric, extremes=True, dtype=scan_dtype(metric))
        values.append(mean_off_diagonal(ConceptSeparation.from_scan(scan, overlap=False, eps=eps).separation))
    return float(np.mean(values))


def scan_dtype(metric: str) -> type:
    """float64 for Euclidean extremes (exact small gaps), float32 for cosine (its distances are bounded)."""
    return np.float64 if metric == "euclidean" else np.float32


@dataclass
class ConfusedPairs:
    """Concept pairs ranked by how confused their distributions are (most confused first).

    Components of a pair {i, j}, each in [0, 1]:

    - ``overlap``: ``(O_ij + O_ji) / 2``, the mean share of either concept's LoCEs lying closer to the other;
    - ``closeness``: ``1 - S_ij``, 1 when the distributions touch;
    - ``cluster_sharing`` (only with a purity result): ``sum over clusters of min(n_ci, n_cj) / min(n_i, n_j)``,
      1 when every LoCE of the smaller concept shares its dendrogram cluster with as many LoCEs of the other.

    The score is the weighted mean of the components, each first divided by its largest value over all pairs
    (so each says how strong the evidence is relative to the most confused pair; a single shared point, which
    makes ``closeness`` 1, cannot outweigh a large overlap). Default weights ``overlap: 2, closeness: 1,
    cluster_sharing: 1``: overlap counts many LoCEs, separation only the closest two.

    Attributes:
        table: one row per unordered pair: ``rank, concept_a, concept_b, score``, the components and
            ``overlap_ab``, ``overlap_ba``, ``separation``.
        weights: the weights used.
    """

    __repr__ = short_repr

    table: pd.DataFrame
    weights: dict[str, float]

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    def top(self, n: int = 10) -> pd.DataFrame:
        return self.table.head(n).copy()


def confused_pairs(
    separation: ConceptSeparation,
    purity: PurityResult | None = None,
    *,
    weights: dict[str, float] | None = None,
) -> ConfusedPairs:
    """Rank all concept pairs by a documented combination of overlap, separation and shared clusters.

    Args:
        separation: result of :func:`separation_overlap` with overlap.
        purity: optional result of :func:`loce.analysis.purity` on the same LoCEs (adds ``cluster_sharing``).
        weights: component weights (see :class:`ConfusedPairs`); missing components are left out.

    Example:
        >>> X = np.array([[0.0, 1], [0.1, 1], [1, 0.0], [1, 0.1], [1, 0.05], [0.05, 1]])
        >>> sep = separation_overlap(X, ["a", "a", "b", "b", "c", "c"])
        >>> confused_pairs(sep).table[["concept_a", "concept_b"]].iloc[0].tolist()
        ['a', 'c']
    """
    if separation.overlap is None:
        raise AnalysisError(
            "confused_pairs needs the overlap matrix; call separation_overlap(..., overlap=True)."
        )
    weights = dict(DEFAULT_CONFUSION_WEIGHTS if weights is None else weights)
    unknown = set(weights) - set(DEFAULT_CONFUSION_WEIGHTS)
    if unknown:
        raise AnalysisError(
            f"unknown confusion components {sorted(unknown)}; use {sorted(DEFAULT_CONFUSION_WEIGHTS)}."
        )
    concepts = separation.concepts
    a, b = np.triu_indices(concepts.size, k=1)
    components = {
        "overlap": (separation.overlap[a, b] + separation.overlap[b, a]) / 2,
        "closeness": 1.0 - separation.separation[a, b],
    }
    if purity is not None:
        sharing = purity.cluster_sharing(concepts)
        components["cluster_sharing"] = sharing[a, b]
    used = {name: w for name, w in weights.items() if name in components and w > 0}
    if not used:
        raise AnalysisError("all confusion weights are zero or refer to components that were not computed.")
    scaled = {
        name: values / values.max() if values.max() > 0 else values for name, values in components.items()
    }
    score = sum(w * scaled[name] for name, w in used.items()) / sum(used.values())
    table = pd.DataFrame({"concept_a": concepts[a], "concept_b": concepts[b], "score": score})
    for name, values in components.items():
        table[name] = values
    table["overlap_ab"] = separation.overlap[a, b]
    table["overlap_ba"] = separation.overlap[b, a]
    table["separation"] = separation.separation[a, b]
    table = table.sort_values(
        ["score", "overlap", "concept_a", "concept_b"], ascending=[False, False, True, True], kind="stable"
    ).reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return ConfusedPairs(table, used)


def separation_index(
    X: object,
    labels: object,
    *,
    metric: str = "euclidean",
    scan: NeighbourhoodScan | None = None,
) -> pd.DataFrame:
    """Per-concept separation index (METHOD.md section 2a): ``inter / intra``.

    ``intra`` = mean distance between two different LoCEs of the concept (all pairs), ``inter`` = smallest
    distance from a LoCE of the concept to a LoCE of any other concept. Larger is better separated; a concept
    whose LoCEs coincide (intra 0) has index ``inf`` (0 if it also touches another concept).

    Args:
        X: N x D LoCEs; labels: N concept names (each concept needs 2 LoCEs, at least 2 concepts).
        metric: ``"euclidean"`` (the publication's) or ``"cosine"``.
        scan: a neighbourhood scan of the same LoCEs with ``extremes=True`` under ``metric`` (saves a pass).

    Returns:
        one row per concept: ``concept, n, intra, inter, separation_index``.

    Example:
        >>> X = np.array([[0.0, 0], [1, 0], [4, 0], [6, 0]])
        >>> separation_index(X, ["a", "a", "b", "b"])["separation_index"].tolist()  # a: 3 / 1, b: 3 / 2
        [3.0, 1.5]
    """
    from scipy.spatial.distance import pdist

    from loce.analysis.inputs import prepare

    X, labels = prepare(X, labels, dtype=np.float64)
    index = ConceptIndex.from_labels(labels)
    index.require(2, "the separation index", min_concepts=2)
    if scan is None:
        scan = scan_neighbourhoods(X, labels, metric=metric, extremes=True, dtype=np.float64)
    elif scan.nearest is None or scan.metric != metric:
        raise AnalysisError(f"the scan needs extremes=True and metric {metric!r}.")
    rows = []
    for k, concept in enumerate(index.concepts.tolist()):
        members = index.members(k)
        if metric == "cosine":
            from loce.analysis.purity import condensed_cosine_distances

            intra = float(condensed_cosine_distances(X[members]).mean())
        else:
            intra = float(pdist(X[members], "euclidean").mean())
        others = np.delete(scan.nearest[members], k, axis=1)
        inter = float(others.min())
        value = inter / intra if intra > 0 else (np.inf if inter > 0 else 0.0)
        rows.append(
            {
                "concept": concept,
                "n": int(members.size),
                "intra": intra,
                "inter": inter,
                "separation_index": value,
            }
        )
    return pd.DataFrame(rows)
