"""Retrieval quality curves: precision@k per layer (one line each) and model (one panel each)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from loce.figures._base import new_figure, styled

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.figure import Figure


def _summarise(frame: pd.DataFrame, value: str, band: str) -> pd.DataFrame:
    """Mean and band edges per (model, layer, k) from one row per query (or per concept) and k."""
    grouped = frame.groupby(["model", "layer", "k"], sort=False)[value]
    out = grouped.mean().rename("mean").to_frame()
    if band == "std":
        sd = grouped.std(ddof=0).fillna(0.0)
        out["lower"], out["upper"] = out["mean"] - sd, out["mean"] + sd
    elif band == "sem":
        sem = (grouped.std(ddof=1) / np.sqrt(grouped.count())).fillna(0.0)
        out["lower"], out["upper"] = out["mean"] - sem, out["mean"] + sem
    elif band == "ci95":  # normal-approximation 95% interval of the mean over queries
        half = (1.96 * grouped.std(ddof=1) / np.sqrt(grouped.count())).fillna(0.0)
        out["lower"], out["upper"] = out["mean"] - half, out["mean"] + half
    elif band == "iqr":
        out["lower"], out["upper"] = grouped.quantile(0.25), grouped.quantile(0.75)
    else:
        raise ValueError(f"band must be 'std', 'sem', 'ci95' or 'iqr', got {band!r}")
    return out.reset_index()


@styled
def precision_at_k_curves(
    frame: pd.DataFrame,
    *,
    value: str = "precision",
    band: str = "std",
    layer_order: Sequence[str] | None = None,
    model_order: Sequence[str] | None = None,
    ylabel: str = "precision@k",
    title: str | None = None,
    errorbars: bool = False,
    fig: Figure | None = None,
) -> Figure:
    """Plot mean precision@k against k with a spread band (or error bars), one line per layer and model panel.

    Args:
        frame: long table with columns ``k``, ``layer`` and optionally ``model``, and either ``value`` (one row
            per query or concept and k; mean and band are computed here) or ready ``mean``, ``lower``,
            ``upper`` columns.
        value: the column of per-row precision values.
        band: spread shown around the mean: ``"std"``, ``"sem"``, ``"ci95"`` (95% interval of the mean) or
            ``"iqr"`` (25-75 %).
        layer_order: order of layers (and of their colours, shallow to deep); default first appearance.
        model_order: order of the panels.
        ylabel: y-axis label.
        title: figure title.
        errorbars: draw ``lower``..``upper`` as error bars (intervals) instead of a shaded band.
        fig: draw into this (empty) figure.

    Returns:
        The figure: one axes per model, each with one line and one band per layer.

    Example:
        >>> fig = precision_at_k_curves(retrieval.to_frame(), band="iqr")  # doctest: +SKIP
    """
    import pandas as pd
    from matplotlib import colormaps

    data = frame.copy()
    if "model" not in data.columns:
        data["model"] = ""
    data["model"] = data["model"].astype(str)
    data["layer"] = data["layer"].astype(str)
    if {"mean", "lower", "upper"}.issubset(data.columns):
        summary = data[["model", "layer", "k", "mean", "lower", "upper"]]
    elif value in data.columns:
        summary = _summarise(data, value, band)
    else:
        raise ValueError(
            f"precision_at_k_curves needs a {value!r} column or 'mean', 'lower', 'upper' columns"
        )
    models = list(model_order) if model_order is not None else list(pd.unique(summary["model"]))
    layers = list(layer_order) if layer_order is not None else list(pd.unique(summary["layer"]))
    cmap = colormaps["viridis"]
    layer_color = {lay: cmap(0.1 + 0.75 * i / max(1, len(layers) - 1)) for i, lay in enumerate(layers)}

    if fig is None:
        fig = new_figure((3.6 * len(models) + 1.2, 3.4))
    axes = fig.subplots(1, len(models), squeeze=False, sharey=True)[0]
    for ax, model in zip(axes, models):
        for layer in layers:
            rows = summary[(summary["model"] == model) & (summary["layer"] == layer)].sort_values("k")
            if rows.empty:
                continue
            ks = rows["k"].to_numpy(dtype=float)
            if errorbars:
                mean = rows["mean"].to_numpy(float)
                ax.errorbar(
                    ks,
                    mean,
                    yerr=np.vstack(
                        [mean - rows["lower"].to_numpy(float), rows["upper"].to_numpy(float) - mean]
                    ),
                    fmt="none",
                    ecolor=layer_color[layer],
                    elinewidth=1.1,
                    capsize=2.5,
                )
            else:
                ax.fill_between(
                    ks,
                    rows["lower"].to_numpy(float),
                    rows["upper"].to_numpy(float),
                    color=layer_color[layer],
                    alpha=0.18,
                    linewidth=0,
                )
            ax.plot(
                ks,
                rows["mean"].to_numpy(float),
                marker="o",
                markersize=3.5,
                color=layer_color[layer],
                label=" " + layer if layer.startswith("_") else layer,  # matplotlib hides labels "_..."
                linewidth=1.6,
            )
        ax.set_xlabel("k")
        ax.set_ylim(0, 1.02)
        ax.grid(True, axis="y")
        if model:
            ax.set_title(model)
    axes[0].set_ylabel(ylabel)
    axes[-1].legend(title="layer", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    if title:
        fig.suptitle(title, fontweight="bold")
    return fig
