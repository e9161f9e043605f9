"""Figures of concept localisation: heat-map grids (images x vectors / models) and metric comparisons.

Example:
    >>> rows = [HeatmapRow("000003.png", image, mask, {"mean": heat, "Loc-CBM": cbm_heat})]  # doctest: +SKIP
    >>> fig = heatmap_grid(rows, ["mean", "Loc-CBM"], suptitle="mug")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from loce.figures._base import new_figure, short_label, styled
from loce.figures.gallery import Tile, draw_tile

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.figure import Figure


@dataclass
class HeatmapRow:
    """One image of a heat-map grid.

    Attributes:
        label: row label (usually the image's file name).
        image: ``H x W x 3`` uint8 RGB.
        mask: the concept's ground-truth mask (outlined in every cell), or ``None``.
        heatmaps: column name -> map in [0, 1] (any resolution, stretched over the image).
        peaks: column name -> ``(row, col)`` of the map's peak in image pixels (drawn as a cross).
    """

    label: str
    image: np.ndarray
    mask: np.ndarray | None = None
    heatmaps: Mapping[str, np.ndarray] = field(default_factory=dict)
    peaks: Mapping[str, tuple[float, float]] = field(default_factory=dict)


@styled
def heatmap_grid(
    rows: Sequence[HeatmapRow],
    columns: Sequence[str],
    *,
    show_image: bool = True,
    color: str = "#00e5ff",
    tile_size: float = 1.6,
    heat_alpha: float = 0.7,
    cmap: str = "turbo",
    suptitle: str | None = None,
    fig: Figure | None = None,
) -> Figure:
    """A grid of heat maps: one row per image, one column per vector or model, masks outlined, peaks marked.

    Args:
        rows: the images with their maps (:class:`HeatmapRow`).
        columns: the map names to show, in order (a row without a map of a column leaves the cell blank).
        show_image: add a first column with the plain image and its mask.
        color: mask outline colour (e.g. the concept's colour).
        tile_size: inches per cell.
        heat_alpha: opacity of a map where its value is 1.
        cmap: colour map of the heat maps.
        suptitle: figure title.
        fig: draw into this (empty) figure.

    Returns:
        The figure.

    Raises:
        ValueError: with no rows or no columns to show.
    """
    if not rows:
        raise ValueError("heatmap_grid needs at least one row")
    names = (["image"] if show_image else []) + [str(c) for c in columns]
    if not names:
        raise ValueError("heatmap_grid needs at least one column")
    if fig is None:
        fig = new_figure((tile_size * len(names) + 1.3, len(rows) * (tile_size + 0.1) + 0.5))
    axes = fig.subplots(len(rows), len(names), squeeze=False)
    for r, row in enumerate(rows):
        for c, name in enumerate(names):
            ax = axes[r, c]
            if name == "image" and show_image and c == 0:
                draw_tile(ax, Tile(row.image, row.mask, None, color=None), linewidth=1.2)
            elif name in row.heatmaps:
                draw_tile(
                    ax,
                    Tile(row.image, row.mask, row.heatmaps[name], color=None),
                    heat_alpha=heat_alpha,
                    cmap=cmap,
                    linewidth=1.0,
                )
                if name in row.peaks:
                    pr, pc = row.peaks[name]
                    ax.plot([pc], [pr], marker="x", markersize=7, mew=2.2, color="white")
                    ax.plot([pc], [pr], marker="x", markersize=5, mew=1.2, color=color)
            else:
                ax.set_axis_off()
                continue
            if r == 0:
                ax.set_title(short_label(name, 22), fontsize=8)
        axes[r, 0].set_ylabel(short_label(row.label, 18), rotation=0, ha="right", va="center", fontsize=7.5)
    if suptitle:
        fig.suptitle(suptitle, fontweight="bold")
    return fig


@styled
def metric_comparison(
    table: pd.DataFrame,
    *,
    group: str = "method",
    metrics: Sequence[str] = ("alignment_error", "activation_l1", "pointing_game"),
    labels: Mapping[str, str] | None = None,
    suptitle: str | None = None,
    fig: Figure | None = None,
) -> Figure:
    """One bar panel per metric, one bar per group (method / model / vector kind), values written on the bars.

    Args:
        table: one row per group with a column per metric (NaN values are left out).
        group: the column naming the bars.
        metrics: the metric columns, one panel each.
        labels: panel titles per metric (default: the column names with ``_`` as spaces).
        suptitle: figure title.
        fig: draw into this (empty) figure.

    Example:
        >>> fig = metric_comparison(comparison, group="method")  # doctest: +SKIP
    """
    metrics = [m for m in metrics if m in table.columns]
    if not metrics:
        raise ValueError("metric_comparison: none of the metrics is a column of the table")
    names = [str(v) for v in table[group]]
    if fig is None:
        fig = new_figure((2.4 * len(metrics) + 0.4, 2.2 + 0.12 * max(len(n) for n in names)))
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    palette = ["#7f7f7f", "#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e"]
    for ax, metric in zip(axes, metrics):
        values = table[metric].to_numpy(dtype=float)
        xs = np.arange(len(names))
        ok = np.isfinite(values)
        ax.bar(xs[ok], values[ok], color=[palette[i % len(palette)] for i in xs[ok]], width=0.7)
        for x, v in zip(xs[ok], values[ok]):
            ax.text(x, v, f"{v:.3f}", ha="center", va="bottom", fontsize=7)
        ax.set_xticks(
            xs, [short_label(n, 16) for n in names], rotation=30, ha="right", rotation_mode="anchor"
        )
        ax.set_title((labels or {}).get(metric, metric.replace("_", " ")))
        top = float(np.nanmax(values)) if ok.any() else 1.0
        ax.set_ylim(0, top * 1.2 if top > 0 else 1.0)
    if suptitle:
        fig.suptitle(suptitle, fontweight="bold")
    return fig
