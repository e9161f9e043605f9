"""Figures of the distribution analyses, drawn from what ``loce analyze`` stored (nothing is recomputed).

Each function turns stored figure data (:class:`loce.analysis.figure_data.FigureData`) or analysis tables into
the inputs of one :mod:`loce.figures` function: the 2-D map with its Gaussian mixtures (per concept and
label-agnostic, like the LoCE paper's UMAP figures), the dendrogram, the separation / overlap matrices and the
precision@k curves. Decision regions are evaluated from the stored mixture parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from loce.analysis.gmm import OVERALL
from loce.figures import concept_mixture_panels, dendrogram_figure, embedding_map
from loce.figures._base import new_figure, styled
from loce.figures.dendrogram import cluster_dendrogram_figure
from loce.report.data import natural_key

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from loce.analysis.figure_data import FigureData


def log_gaussians(points: np.ndarray, means: np.ndarray, covariances: np.ndarray) -> np.ndarray:
    """``P x K`` log densities of ``P`` 2-D points under ``K`` Gaussians.

    Example:
        >>> float(log_gaussians(np.zeros((1, 2)), np.zeros((1, 2)), np.eye(2)[None])[0, 0]).__round__(4)
        -1.8379
    """
    covariances = np.asarray(covariances, dtype=float)
    inverse = np.linalg.inv(covariances)
    _, logdet = np.linalg.slogdet(covariances)
    delta = np.asarray(points, dtype=float)[:, None, :] - np.asarray(means, dtype=float)[None]
    mahalanobis = np.einsum("pki,kij,pkj->pk", delta, inverse, delta)
    return -0.5 * (mahalanobis + logdet[None] + means.shape[1] * np.log(2 * np.pi))


def _params(mixture: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    means = mixture[["mean_x", "mean_y"]].to_numpy(float)
    cov = np.stack(
        [mixture["cov_xx"], mixture["cov_xy"], mixture["cov_xy"], mixture["cov_yy"]], axis=1
    ).reshape(-1, 2, 2)
    return means, cov.astype(float), mixture["weight"].to_numpy(float)


def concept_regions(
    mixtures: pd.DataFrame, priors: Mapping[str, float]
) -> Callable[[np.ndarray], np.ndarray]:
    """``predict(points) -> concept names``: the concept whose mixture (times its share) is densest."""
    concepts = [c for c in priors if (mixtures["mixture"] == c).any()]
    parts = [_params(mixtures[mixtures["mixture"] == c]) for c in concepts]

    def predict(points: np.ndarray) -> np.ndarray:
        scores = np.stack(
            [
                np.log(priors[c]) + np.logaddexp.reduce(np.log(w)[None] + log_gaussians(points, m, s), axis=1)
                for c, (m, s, w) in zip(concepts, parts)
            ],
            axis=1,
        )
        return np.asarray(concepts)[scores.argmax(axis=1)]

    return predict


def component_regions(mixture: pd.DataFrame) -> Callable[[np.ndarray], np.ndarray]:
    """``predict(points) -> component ids`` of one mixture (its most likely component)."""
    means, cov, weights = _params(mixture)
    return lambda points: (np.log(weights)[None] + log_gaussians(points, means, cov)).argmax(axis=1)


@styled
def distribution_figure(data: FigureData, colors: Mapping[str, str], title: str) -> Figure | None:
    """Two panels: the map with per-concept mixtures and concept regions, and with the label-agnostic mixture.

    Returns ``None`` when the figure data has no map.
    """
    points = data.map_rows()
    if points.empty or data.map_mixtures is None:
        return None
    xy = points[["map_x", "map_y"]].to_numpy(float)
    labels = points["concept"].astype(str).tolist()
    mixtures = data.map_mixtures
    per_concept = mixtures[mixtures["mixture"] != OVERALL]
    overall = mixtures[mixtures["mixture"] == OVERALL]
    shares = points["concept"].value_counts(normalize=True)
    fig = new_figure((12.5, 5.0))
    left, right = fig.subplots(1, 2)
    method = str(data.info.get("map", {}).get("method", "")).upper()
    embedding_map(
        xy,
        labels,
        predict=concept_regions(per_concept, shares.to_dict()) if len(per_concept) else None,
        colors=colors,
        title=f"{title}: per-concept GMM regions ({method})",
        legend=False,
        resolution=160,
        ax=left,
    )
    embedding_map(
        xy,
        labels,
        means=overall[["mean_x", "mean_y"]].to_numpy(float) if len(overall) else None,
        covariances=_params(overall)[1] if len(overall) else None,
        weights=overall["weight"].to_numpy(float) if len(overall) else None,
        predict=component_regions(overall) if len(overall) else None,
        colors=colors,
        title=f"label-agnostic GMM, {len(overall)} components",
        legend=True,
        resolution=160,
        ax=right,
    )
    return fig


MAX_PANELS = 30  # above this many concepts, only the concepts of the most confused pairs get a panel


def mixture_panels(
    data: FigureData, colors: Mapping[str, str], title: str, confused: Sequence[str] = ()
) -> Figure | None:
    """Small multiples of the per-concept mixtures on the 2-D map (:func:`loce.figures.concept_mixture_panels`).

    Every concept gets a panel up to :data:`MAX_PANELS` concepts; above that, the concepts named in ``confused``
    (the layer's most confused pairs, in rank order) do. ``None`` without per-concept mixtures.
    """
    points = data.map_rows()
    if points.empty or data.map_mixtures is None:
        return None
    mixtures = data.map_mixtures[data.map_mixtures["mixture"] != OVERALL]
    if mixtures.empty:
        return None
    present = sorted(set(points["concept"].astype(str)), key=natural_key)
    concepts = present
    if len(present) > MAX_PANELS:
        concepts = [c for c in dict.fromkeys(map(str, confused)) if c in set(present)][:MAX_PANELS]
        if not concepts:
            concepts = present[:MAX_PANELS]
    return concept_mixture_panels(
        points[["map_x", "map_y"]].to_numpy(float),
        points["concept"].astype(str).tolist(),
        means=mixtures[["mean_x", "mean_y"]].to_numpy(float),
        covariances=_params(mixtures)[1],
        component_labels=mixtures["mixture"].astype(str).tolist(),
        weights=mixtures["weight"].to_numpy(float),
        concepts=concepts,
        colors=colors,
        title=f"{title}: per-concept GMMs",
    )


def dendrogram_of(data: FigureData, colors: Mapping[str, str], title: str) -> Figure | None:
    """The purity clustering's tree cut at its clusters (each a bar of concept shares), or the full dendrogram
    with concept and cluster strips when the clusters are not subtrees; ``None`` without a clustering."""
    if data.linkage is None or data.leaf_labels is None or len(data.leaf_labels) < 2:
        return None
    leaves = data.loces[data.loces["dendrogram_leaf"] >= 0].sort_values("dendrogram_leaf")
    purity = data.info.get("purity", {})
    if len(leaves) == len(data.leaf_labels):  # cut at the purity clusters: one leaf per cluster
        figure = cluster_dendrogram_figure(
            data.linkage,
            data.leaf_labels.tolist(),
            leaves["purity_cluster"].tolist(),
            purity=purity.get("purity"),
            colors=colors,
            title=title,
            log_height=len(data.leaf_labels) > 500,
        )
        if figure is not None:
            return figure
    return dendrogram_figure(
        data.linkage,
        data.leaf_labels.tolist(),
        purity=purity.get("purity"),
        n_clusters=purity.get("n_clusters"),
        clusters=leaves["purity_cluster"].tolist() if len(leaves) == len(data.leaf_labels) else None,
        colors=colors,
        title=title,
        log_height=len(data.leaf_labels) > 500,
    )


def concept_matrices(separation: pd.DataFrame, concepts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Separation and overlap ``K x K`` matrices of one (model, layer) from the long ``separation`` table.

    Cells of pairs the table lacks (a concept absent from this layer) and the diagonal are NaN. Overlap row i
    is the share of i's LoCEs closer to concept j.
    """
    position = {c: i for i, c in enumerate(concepts)}
    sep = np.full((len(concepts), len(concepts)), np.nan)
    overlap = np.full_like(sep, np.nan)
    for row in separation.itertuples(index=False):
        i, j = position.get(row.concept_i), position.get(row.concept_j)
        if i is None or j is None:
            continue
        sep[i, j] = row.separation
        if hasattr(row, "overlap_ij"):
            overlap[i, j] = row.overlap_ij
    return sep, overlap


def precision_frame(layers: Sequence[tuple[str, str, FigureData]]) -> tuple[pd.DataFrame, dict]:
    """Long table ``model, layer, k, precision`` (one row per query and k) and the class prior per layer.

    The class prior of a (model, layer) is the precision@k of a random ranking: the mean over queries of
    ``(n_c - 1) / (N - 1)``.
    """
    frames, priors = [], {}
    for model, layer, data in layers:
        if data.queries is None:
            continue
        columns = [c for c in data.queries.columns if c.startswith("precision_at_")]
        long = data.queries.melt(id_vars=["row"], value_vars=columns, var_name="k", value_name="precision")
        long["k"] = long["k"].str.removeprefix("precision_at_").astype(int)
        long.insert(0, "layer", layer)
        long.insert(0, "model", model)
        frames.append(long)
        counts = data.queries["concept"].map(data.queries["concept"].value_counts()).to_numpy(float)
        priors[(model, layer)] = float(((counts - 1) / max(1, len(counts) - 1)).mean())
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return frame, priors
