"""What the figures and the report draw for one (model, layer), computed once by ``loce analyze``.

The report never recomputes an analysis. After the analyses of a (model, layer), :func:`build_figure_data`
collects what the figures need from their results and adds the 2-D map (UMAP, as in the LoCE paper, or PCA) with
its Gaussian mixtures; :func:`loce.analysis.figure_files.write_figure_data` stores it under
``RUN/analysis/layers/<model>__<layer>/`` in open formats (layout: ``docs/ANALYSIS.md``).

Rows: every table refers to the analysed LoCEs by ``row``, their position among the LoCEs of the (model, layer)
that the analyses kept (concepts with too few LoCEs dropped); ``loces.parquet`` maps each row to its
``sample_id``, ``concept`` and ``image``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from loce.analysis.gmm import GMMResult, fit_gmms
from loce.analysis.inputs import stratified_subsample
from loce.analysis.neighbours import scan_neighbourhoods
from loce.errors import LoceError
from loce.reprs import short_repr

if TYPE_CHECKING:  # pragma: no cover
    from loce.analysis.purity import PurityResult
    from loce.analysis.run import AnalysisSettings, LayerAnalysis

MAP_METHODS = ("umap", "pca", "none")


@dataclass
class FigureData:
    """What the figures of one (model, layer) need, as plain tables and arrays.

    Attributes:
        model, layer: what the LoCEs belong to.
        loces: one row per analysed LoCE: ``row, sample_id, concept, image, iou, job``, its 2-D map position
            ``map_x, map_y`` (NaN when it is not in the map's subsample), ``subconcept`` (-1: not split),
            ``purity_cluster`` and ``dendrogram_leaf`` (its leaf index in the linkage; -1: not clustered).
        neighbours: ``row, rank, neighbour, distance, similarity``: the nearest other LoCEs of each row (nearest
            first, ties by lower row; ``similarity`` is the cosine similarity, NaN for the Euclidean metric).
        map_mixtures: ``mixture, component, weight, mean_x, mean_y, cov_xx, cov_xy, cov_yy, small, n_members,
            majority_concept``: the Gaussian mixtures fitted in the 2-D map (per concept and ``"(all)"``).
        linkage: the purity clustering's scipy linkage matrix ((n - 1) x 4 float64).
        leaf_labels: the concept of each of its n leaves (unicode array).
        queries: ``row, concept, precision_at_<k>..., average_precision``: retrieval quality of each query.
        outliers: ``row, sample_id, concept, <method>_score, <method>_rank`` for every LoCE (rank 1 = most
            outlying within its concept).
        mixed_clusters: purity clusters holding several concepts, most mixed first (``minority_count``).
        info: settings and facts (map method, subsample sizes, purity, files); JSON-able.
        notes: what was left out or replaced, in sentences.

    Example:
        >>> data = read_figure_data("RUN/analysis/layers/efficientnet-lite0___blocks.10")  # doctest: +SKIP
        >>> data.loces.dropna(subset=["map_x"]).groupby("concept").size()  # doctest: +SKIP
    """

    __repr__ = short_repr

    model: str
    layer: str
    loces: pd.DataFrame
    neighbours: pd.DataFrame
    map_mixtures: pd.DataFrame | None = None
    linkage: np.ndarray | None = None
    leaf_labels: np.ndarray | None = None
    queries: pd.DataFrame | None = None
    outliers: pd.DataFrame | None = None
    mixed_clusters: pd.DataFrame | None = None
    info: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def map_rows(self) -> pd.DataFrame:
        """The LoCEs placed on the 2-D map."""
        return self.loces[np.isfinite(self.loces["map_x"].to_numpy(float))]

    def neighbour_table(self, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(rows x k neighbour rows, rows x k similarities or distances)`` in row order."""
        table = self.neighbours.sort_values(["row", "rank"], kind="stable")
        width = int(table["rank"].max()) if len(table) else 0
        n = len(self.loces)
        cols = table["neighbour"].to_numpy(np.int64).reshape(n, width)
        metric = "similarity" if table["similarity"].notna().all() else "distance"
        values = table[metric].to_numpy(float).reshape(n, width)
        return (cols, values) if k is None else (cols[:, :k], values[:, :k])


def mixed_clusters(purity: PurityResult) -> pd.DataFrame:
    """Purity clusters holding more than one concept, most mixed first (most LoCEs outside the majority).

    Example:
        >>> mixed_clusters(concept_purity(X, labels)).head(3)  # doctest: +SKIP
    """
    table = purity.to_frame()
    table["minority_count"] = table["size"] - table["majority_count"]
    table = table[table["n_concepts"] > 1]
    table = table.sort_values(
        ["minority_count", "size", "cluster"], ascending=[False, False, True], kind="stable"
    )
    return table.reset_index(drop=True)


def mixture_frame(gmms: GMMResult) -> pd.DataFrame:
    """One row per component of every 2-D mixture: weight, mean, covariance entries, members, majority."""
    records = []
    for fit in gmms.mixtures():
        sizes = np.bincount(fit.assignment, minlength=fit.n_components)
        for c in range(fit.n_components):
            counts = fit.composition[c]
            records.append(
                {
                    "mixture": fit.name,
                    "component": c,
                    "weight": float(fit.weights[c]),
                    "mean_x": float(fit.means[c, 0]),
                    "mean_y": float(fit.means[c, 1]),
                    "cov_xx": float(fit.covariances[c, 0, 0]),
                    "cov_xy": float(fit.covariances[c, 0, 1]),
                    "cov_yy": float(fit.covariances[c, 1, 1]),
                    "small": bool(fit.small[c]),
                    "n_members": int(sizes[c]),
                    "majority_concept": str(gmms.concepts[int(counts.argmax())]) if counts.sum() else "",
                }
            )
    return pd.DataFrame(records)


def _map(X: np.ndarray, labels: np.ndarray, settings: AnalysisSettings, data: FigureData) -> None:
    """Fill the map columns and mixtures of ``data`` (stratified subsample of ``settings.map_points``)."""
    rows = stratified_subsample(labels, settings.map_points, seed=settings.seed)
    method = settings.map_method
    options = {"n_dims": 2, "normalize": settings.metric == "cosine", "seed": settings.seed}
    from threadpoolctl import threadpool_limits

    try:
        with threadpool_limits(limits=1):  # small 2-D mixtures: 20-50x faster on one thread (see run.py)
            try:
                gmms = fit_gmms(X[rows], labels[rows], space=method, **options)
            except ImportError:
                data.notes.append(
                    "umap-learn is not installed: the 2-D map is a PCA (pip install 'loce[umap]')"
                )
                method = "pca"
                gmms = fit_gmms(X[rows], labels[rows], space=method, **options)
    except (LoceError, ValueError) as exc:
        data.notes.append(f"no 2-D map: {exc}")
        return
    data.loces.loc[rows, "map_x"] = gmms.embedding[:, 0]
    data.loces.loc[rows, "map_y"] = gmms.embedding[:, 1]
    data.map_mixtures = mixture_frame(gmms)
    ratio = gmms.reducer.explained_variance_ratio
    data.info["map"] = {
        "method": method,
        "n_points": int(rows.size),
        "n_loces": int(labels.size),
        "subsampled": bool(rows.size < labels.size),
        "normalized": options["normalize"],
        "explained_variance": None if ratio is None else [round(float(v), 6) for v in ratio],
        "min_weight": gmms.min_weight,
        "overall_components": None if gmms.overall is None else gmms.overall.n_components,
    }
    if rows.size < labels.size:
        data.notes.append(f"2-D map of a stratified subsample of {rows.size} of {labels.size} LoCEs")


def build_figure_data(
    X: np.ndarray, meta: pd.DataFrame, result: LayerAnalysis, settings: AnalysisSettings
) -> FigureData:
    """Collect the figure data of one (model, layer) from its analyses and add the 2-D map.

    Args:
        X: the N x D LoCEs the analyses were given (all rows read from the store).
        meta: their store metadata (``sample_id``, ``concept``, ``image``, ``iou``, ``job``...).
        result: the :class:`~loce.analysis.run.LayerAnalysis` of ``analyze_vectors`` (with ``details``).
        settings: the analysis settings (map method and size, neighbours, metric, seed).

    Returns:
        The :class:`FigureData`; nothing is written.

    Example:
        >>> result = analyze_vectors(X, meta["concept"], meta["sample_id"], settings)  # doctest: +SKIP
        >>> data = build_figure_data(X, meta, result, settings)  # doctest: +SKIP
    """
    details = result.details
    kept = np.asarray(details.get("kept", np.arange(len(meta))))
    X = np.asarray(X)[kept]
    rows_meta = meta.iloc[kept].reset_index(drop=True)
    labels = rows_meta["concept"].to_numpy().astype(str)
    n = labels.size
    loces = pd.DataFrame({"row": np.arange(n), "sample_id": rows_meta["sample_id"].astype(str).to_numpy()})
    loces["concept"] = labels
    for column in ("image", "iou", "job"):
        if column in rows_meta.columns:
            loces[column] = rows_meta[column].to_numpy()
    loces["map_x"], loces["map_y"] = np.nan, np.nan
    loces["subconcept"], loces["purity_cluster"], loces["dendrogram_leaf"] = -1, -1, -1
    data = FigureData(result.model, result.layer, loces, pd.DataFrame())
    data.info.update(model=result.model, layer=result.layer, n_loces=n, metric=settings.metric)

    k = int(min(settings.neighbours, n - 1))
    scan = details.get("scan")
    if scan is None or scan.neighbours is None or scan.neighbours.shape[1] < k:
        scan = scan_neighbourhoods(X, labels, metric=settings.metric, extremes=False, k=k)
    distance = scan.neighbour_distances[:, :k].astype(np.float64)
    data.neighbours = pd.DataFrame(
        {
            "row": np.repeat(np.arange(n), k),
            "rank": np.tile(np.arange(1, k + 1), n),
            "neighbour": scan.neighbours[:, :k].ravel(),
            "distance": distance.ravel(),
            "similarity": (1.0 - distance).ravel() if settings.metric == "cosine" else np.nan,
        }
    )
    data.info["neighbours"] = k

    if settings.map_method != "none":
        _map(X, labels, settings, data)
    purity = details.get("purity")
    if purity is not None:
        subset = np.asarray(details["purity_rows"])
        loces.loc[subset, "purity_cluster"] = purity.assignment
        loces.loc[subset, "dendrogram_leaf"] = np.arange(subset.size)
        data.linkage = np.asarray(purity.linkage_matrix, dtype=np.float64)
        data.leaf_labels = np.asarray(purity.labels).astype(str)
        data.mixed_clusters = mixed_clusters(purity)
        data.info["purity"] = {
            "purity": purity.purity,
            "n_clusters": purity.n_clusters,
            "n_leaves": int(subset.size),
            "linkage": purity.linkage,
            "metric": purity.metric,
            "max_share": purity.max_share,
            "min_purity": purity.min_purity,
        }
    splits = details.get("subconcepts") or []
    for split in splits:
        loces.loc[split.members, "subconcept"] = split.assignment
    if splits:
        data.info["subconcepts"] = {
            "method": splits[0].method,
            "counts": {s.concept: [int(c) for c in s.counts] for s in splits},
        }
    retrieval = details.get("retrieval")
    if retrieval is not None:
        queries = pd.DataFrame({"row": np.arange(n), "concept": labels})
        for j, kk in enumerate(retrieval.ks):
            queries[f"precision_at_{kk}"] = retrieval.precision[:, j]
        if retrieval.average_precision is not None:
            queries["average_precision"] = retrieval.average_precision
        data.queries = queries
        data.info["ks"] = list(retrieval.ks)
    outliers = details.get("outliers")
    if outliers is not None:
        data.outliers = outliers.to_frame().rename(columns={"index": "row", "id": "sample_id"})
        data.info["outlier_methods"] = list(outliers.methods)
    return data
