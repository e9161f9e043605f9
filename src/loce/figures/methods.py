"""Figures of the object-embedding baselines: the method comparison, k-NN grids of object crops, location maps.

Example:
    >>> fig = method_comparison_figure(comparison.table)  # doctest: +SKIP
    >>> fig = location_maps(result.coords, result.scores, layer="_blocks.10")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from loce.figures._base import new_figure, short_label, styled
from loce.figures.gallery import Tile, image_grid, retrieval_gallery

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.figure import Figure

METHOD_COLORS: dict[str, str] = {
    "loce": "#1f77b4",
    "crop": "#ff7f0e",
    "window": "#2ca02c",
    "masked-pool": "#9467bd",
    "global": "#7f7f7f",
}
"""One colour per embedding method, the same in every figure."""

METRIC_LABELS: dict[str, str] = {
    "mean_average_precision": "mean average precision",
    "purity": "purity",
    "mean_separation": "mean separation",
    "mean_iou": "mean IoU (projection)",
}


def method_color(method: str) -> str:
    """The colour of ``method`` (grey for methods without one)."""
    return METHOD_COLORS.get(method, "#444444")


@styled
def method_comparison_figure(
    table: pd.DataFrame,
    metrics: Sequence[str] | None = None,
    *,
    title: str | None = None,
    fig: Figure | None = None,
) -> Figure:
    """Grouped bars: one panel per metric, one group per (model, layer), one bar per method.

    Args:
        table: the comparison table (:attr:`loce.baselines.MethodComparison.table`): columns ``model``,
            ``method``, ``layer`` and the metrics. Missing values (e.g. retrieval of ``global``) leave gaps.
        metrics: the columns to plot; default every ``precision_at_<k>`` with the smallest and largest k, mean
            average precision, purity, mean separation and mean IoU that the table has.
        title: figure title.
        fig: draw into this (empty) figure.

    Example:
        >>> fig = method_comparison_figure(comparison.table, ["precision_at_1", "purity"])  # doctest: +SKIP
    """
    if metrics is None:
        ks = sorted(int(c.rsplit("_", 1)[1]) for c in table.columns if c.startswith("precision_at_"))
        metrics = [f"precision_at_{k}" for k in dict.fromkeys(ks[:1] + ks[-1:])]
        metrics += [m for m in METRIC_LABELS if m in table.columns]
    metrics = [m for m in metrics if m in table.columns and table[m].notna().any()]
    if not metrics:
        raise ValueError("the comparison table has no metric values to plot")
    multi_model = table["model"].nunique() > 1
    groups = list(dict.fromkeys(zip(table["model"], table["layer"])))
    methods = list(dict.fromkeys(table["method"]))
    ncols = min(3, len(metrics))
    nrows = int(np.ceil(len(metrics) / ncols))
    if fig is None:
        fig = new_figure((3.3 * ncols + 0.6, 2.6 * nrows + 0.5))
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    width = 0.8 / max(1, len(methods))
    for ax, metric in zip(axes, metrics):
        for m, method in enumerate(methods):
            rows = table[table["method"] == method].set_index(["model", "layer"])
            values = [float(rows.at[g, metric]) if g in rows.index else np.nan for g in groups]
            positions = np.arange(len(groups)) - 0.4 + (m + 0.5) * width
            ax.bar(positions, values, width=width * 0.92, color=method_color(method), label=method)
        ax.set_xticks(np.arange(len(groups)))
        ax.set_xticklabels(
            [short_label(f"{mo} · {la}" if multi_model else la, 18) for mo, la in groups],
            rotation=20,
            ha="right",
        )
        ax.set_title(METRIC_LABELS.get(metric, metric.replace("_", " ").replace("at ", "@")))
        ax.set_ylim(0, max(1.0, float(np.nanmax(table[metric].to_numpy(dtype=float))) * 1.05))
        ax.grid(axis="y")
    for ax in axes[len(metrics) :]:
        ax.set_axis_off()
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(methods))
    if title:
        fig.suptitle(title, fontweight="bold")
    return fig


def knn_grid(
    rows: Sequence[tuple[Tile, Sequence[Tile]]],
    *,
    suptitle: str | None = None,
    tile_size: float = 1.3,
    **kwargs,
) -> Figure:
    """The seed paper's nearest-neighbour figure: per row a query object and its k nearest objects, nearest first.

    Args:
        rows: ``(query, neighbours)`` tiles, typically object crops on black
            (:func:`loce.baselines.crop.crop_canvas`) titled with concept and distance, framed in concept colours.
        suptitle: figure title (e.g. the method and layer).
        tile_size: inches per tile.
        **kwargs: passed to :func:`loce.figures.retrieval_gallery`.

    Example:
        >>> fig = knn_grid([(Tile(q, title="query: mug"), [Tile(n1, title="mug 0.12")])])  # doctest: +SKIP
    """
    if not rows:
        raise ValueError("knn_grid needs at least one query row")
    return retrieval_gallery(list(rows), suptitle=suptitle, tile_size=tile_size, **kwargs)


@styled
def location_maps(
    coords: pd.DataFrame,
    scores: pd.DataFrame | None = None,
    *,
    layer: str | None = None,
    reducers: Sequence[str] = ("pca", "tsne"),
    point_size: float = 16.0,
    fig: Figure | None = None,
) -> Figure:
    """2-D maps of the embeddings of one object at many positions, coloured by its x (reds) and y (blues).

    One row per method; per reducer two panels, coloured by x and by y. A smooth colour gradient across a map
    means the embedding changes steadily with position; a mixed-up map, that position is not what varies.

    Args:
        coords: rows ``method, layer, reducer, x, y, c1, c2`` (:attr:`loce.baselines.LocationResult.coords`).
        scores: rows ``method, layer, r2`` to print each method's location R^2 in its row label.
        layer: the layer to draw (default: the first in ``coords``).
        reducers: which reducers' maps to draw, in order.
        point_size: marker size.
        fig: draw into this (empty) figure.
    """
    layer = layer if layer is not None else str(coords["layer"].iloc[0])
    data = coords[coords["layer"] == layer]
    methods = list(dict.fromkeys(data["method"]))
    reducers = [r for r in reducers if (data["reducer"] == r).any()]
    if not methods or not reducers:
        raise ValueError(f"no coordinates for layer {layer!r}")
    ncols = 2 * len(reducers)
    if fig is None:
        fig = new_figure((2.1 * ncols + 1.2, 2.0 * len(methods) + 0.6))
    axes = fig.subplots(len(methods), ncols, squeeze=False)
    for r, method in enumerate(methods):
        for j, reducer in enumerate(reducers):
            part = data[(data["method"] == method) & (data["reducer"] == reducer)]
            for t, (axis_name, cmap) in enumerate((("x", "Reds"), ("y", "Blues"))):
                ax = axes[r, 2 * j + t]
                ax.scatter(
                    part["c1"], part["c2"], c=part[axis_name], cmap=cmap, s=point_size, edgecolors="#333333",
                    linewidths=0.3,
                )  # fmt: skip
                ax.set_xticks([])
                ax.set_yticks([])
                if r == 0:
                    ax.set_title(f"{'PCA' if reducer == 'pca' else 't-SNE'} · colour = {axis_name}")
        label = method
        if scores is not None:
            hit = scores[(scores["method"] == method) & (scores["layer"] == layer)]
            if len(hit):
                label += f"\nR² = {float(hit['r2'].iloc[0]):.2f}"
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontweight="bold")
    fig.suptitle(f"Position in the embeddings · {layer}", fontweight="bold")
    return fig


def location_examples(images: Sequence[np.ndarray], positions: np.ndarray, n: int = 6) -> Figure:
    """A few of the positioned images (evenly chosen), titled with the object's position."""
    picks = np.unique(np.linspace(0, len(images) - 1, min(n, len(images))).round().astype(int))
    tiles = [Tile(images[i], title=f"x={positions[i, 0]:.0f}, y={positions[i, 1]:.0f}") for i in picks]
    return image_grid(tiles, ncols=len(tiles), tile_size=1.4)
