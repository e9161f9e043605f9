"""Distributions of LoCE quality (IoU of the projection with the mask) per concept and layer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from loce.figures._base import new_figure, short_label, styled
from loce.figures.colors import concept_colors

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.figure import Figure


@styled
def iou_distributions(
    frame: pd.DataFrame,
    *,
    value: str = "iou",
    kind: str = "violin",
    layer_order: Sequence[str] | None = None,
    colors: Mapping[str, str] | None = None,
    max_points: int = 300,
    seed: int = 0,
    title: str | None = None,
    fig: Figure | None = None,
) -> Figure:
    """Violins (or boxes) of IoU per concept with the individual values as a jittered strip, one row per layer.

    Tick labels give the number of LoCEs and how many have IoU 0 (the paper's "not converged").

    Args:
        frame: one row per LoCE with columns ``concept``, ``layer`` and ``value``.
        value: the column to plot.
        kind: ``"violin"`` or ``"box"``.
        layer_order: row order; default first appearance.
        colors: concept -> hex colour; default :func:`concept_colors`.
        max_points: at most this many strip points per concept and layer (a seeded random subset).
        seed: seed of that subset and of the jitter.
        title: figure title.
        fig: draw into this (empty) figure.

    Returns:
        The figure: one axes per layer; each has one violin body (or box) per concept with at least two values.

    Example:
        >>> fig = iou_distributions(store_frame[["concept", "layer", "iou"]])  # doctest: +SKIP
    """
    import pandas as pd

    if kind not in ("violin", "box"):
        raise ValueError(f"kind must be 'violin' or 'box', got {kind!r}")
    data = frame[["concept", "layer", value]].copy()
    data["concept"] = data["concept"].astype(str)
    data["layer"] = data["layer"].astype(str)
    data = data[np.isfinite(data[value].to_numpy(dtype=float))]
    concepts = sorted(data["concept"].unique())
    layers = list(layer_order) if layer_order is not None else list(pd.unique(data["layer"]))
    colors = dict(colors) if colors is not None else concept_colors(concepts)
    rng = np.random.default_rng(seed)

    if fig is None:
        fig = new_figure((max(4.5, 0.75 * len(concepts) + 1.5), 2.9 * len(layers) + 0.4))
    axes = fig.subplots(len(layers), 1, squeeze=False)[:, 0]  # own tick labels: counts differ per layer
    for ax, layer in zip(axes, layers):
        tick_labels = []
        for pos, concept in enumerate(concepts):
            vals = data.loc[(data["layer"] == layer) & (data["concept"] == concept), value].to_numpy(
                dtype=float
            )
            zeros = int((vals == 0).sum())
            tick_labels.append(
                f"{short_label(concept, 18)}\nn={len(vals)}" + (f", {zeros} at 0" if zeros else "")
            )
            if len(vals) == 0:
                continue
            color = colors[concept]
            if len(vals) >= 2 and np.ptp(vals) > 0:
                if kind == "violin":
                    parts = ax.violinplot([vals], positions=[pos], widths=0.8, showextrema=False)
                    for body in parts["bodies"]:
                        body.set_facecolor(color)
                        body.set_edgecolor("none")
                        body.set_alpha(0.35)
                else:
                    ax.boxplot(
                        [vals],
                        positions=[pos],
                        widths=0.5,
                        showfliers=False,
                        patch_artist=True,
                        boxprops={"facecolor": color, "alpha": 0.35, "edgecolor": color},
                        medianprops={"color": color},
                        whiskerprops={"color": color},
                        capprops={"color": color},
                    )
            shown = vals if len(vals) <= max_points else rng.choice(vals, max_points, replace=False)
            jitter = rng.uniform(-0.18, 0.18, len(shown))
            ax.scatter(pos + jitter, shown, s=6, color=color, alpha=0.7, linewidths=0, zorder=3)
            ax.hlines(np.median(vals), pos - 0.3, pos + 0.3, color="#222222", linewidth=1.2, zorder=4)
        ax.set_ylim(-0.03, 1.03)
        ax.set_ylabel(f"{value}\n{layer}")
        ax.grid(True, axis="y")
        ax.set_xticks(range(len(concepts)), tick_labels, fontsize=7)
    if title:
        fig.suptitle(title, fontweight="bold")
    return fig
