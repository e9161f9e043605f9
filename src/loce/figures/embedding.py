"""The 2-D map of a layer's LoCEs: points coloured by concept, GMM ellipses and decision regions.

Like the LoCE paper's UMAP figures, in two flavours chosen by the ellipses' labels: per-concept mixtures
(each component belongs to a concept and takes its colour) and a label-agnostic mixture (anonymous components
drawn in black, regions in muted colours). The coordinates, means and covariances come in already in 2-D;
this module only draws.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from loce.figures._base import figure_and_axes, short_label, styled
from loce.figures.colors import concept_colors, group_colors, hex_to_rgb

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

RegionGrid = tuple[np.ndarray, np.ndarray, np.ndarray]
"""``(xs, ys, labels)``: grid coordinates (``len(xs) == W``, ``len(ys) == H``) and an ``H x W`` label array."""


def covariance_ellipse(
    mean: np.ndarray, covariance: np.ndarray, n_std: float
) -> tuple[tuple[float, float], float, float, float]:
    """Centre, width, height and angle (degrees) of the ``n_std`` contour of a 2-D Gaussian.

    Example:
        >>> covariance_ellipse(np.zeros(2), np.diag([4.0, 1.0]), 1.0)
        ((0.0, 0.0), 4.0, 2.0, 0.0)
    """
    cov = np.asarray(covariance, dtype=float).reshape(2, 2)
    eigvals, eigvecs = np.linalg.eigh((cov + cov.T) / 2)
    eigvals = np.clip(eigvals, 0.0, None)
    order = np.argsort(eigvals)[::-1]
    eigvals, eigvecs = eigvals[order], eigvecs[:, order]
    angle = float(np.degrees(np.arctan2(eigvecs[1, 0], eigvecs[0, 0]))) % 180.0
    width, height = 2 * n_std * np.sqrt(eigvals)
    m = np.asarray(mean, dtype=float).reshape(2)
    return (float(m[0]), float(m[1])), float(width), float(height), angle


def _region_grid(predict: Callable[[np.ndarray], np.ndarray], xy: np.ndarray, resolution: int) -> RegionGrid:
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    pad = 0.08 * np.maximum(hi - lo, 1e-9)
    xs = np.linspace(lo[0] - pad[0], hi[0] + pad[0], resolution)
    ys = np.linspace(lo[1] - pad[1], hi[1] + pad[1], resolution)
    gx, gy = np.meshgrid(xs, ys)
    labels = np.asarray(predict(np.column_stack([gx.ravel(), gy.ravel()])))
    return xs, ys, labels.reshape(gx.shape)


def _region_image(labels: np.ndarray, colors: Mapping[object, str], alpha: float) -> np.ndarray:
    """RGBA image of a label grid: flat fill plus darker borders where the label changes."""
    keys = list(dict.fromkeys(labels.ravel().tolist()))
    codes = np.empty(labels.shape, dtype=int)
    lut = np.zeros((len(keys), 4))
    for i, key in enumerate(keys):
        codes[labels == key] = i
        lut[i, :3] = hex_to_rgb(colors[key])
        lut[i, 3] = alpha
    rgba = lut[codes]
    border = np.zeros(labels.shape, dtype=bool)
    border[:, 1:] |= codes[:, 1:] != codes[:, :-1]
    border[1:, :] |= codes[1:, :] != codes[:-1, :]
    rgba[border] = (0.3, 0.3, 0.3, min(1.0, alpha * 2.5))
    return rgba


@styled
def embedding_map(
    xy: np.ndarray,
    labels: Sequence[str],
    *,
    means: np.ndarray | None = None,
    covariances: np.ndarray | None = None,
    component_labels: Sequence[str | None] | None = None,
    weights: Sequence[float] | None = None,
    predict: Callable[[np.ndarray], np.ndarray] | None = None,
    region_grid: RegionGrid | None = None,
    colors: Mapping[str, str] | None = None,
    n_std: float | Sequence[float] = 2.0,
    resolution: int = 200,
    region_alpha: float = 0.16,
    point_size: float = 14.0,
    title: str | None = None,
    legend: bool = True,
    ax: Axes | None = None,
) -> Figure:
    """Scatter 2-D points by concept, with optional Gaussian ellipses and decision regions.

    Args:
        xy: ``N x 2`` coordinates (e.g. a UMAP of one layer's LoCEs).
        labels: ``N`` concept names.
        means: ``K x 2`` component means; with ``covariances`` (``K x 2 x 2``) draws one ellipse per
            ``n_std`` level per component.
        component_labels: the concept of each component (per-concept GMMs, drawn in the concept's colour) or
            ``None`` / ``None`` entries (label-agnostic components, drawn in black).
        weights: mixture weights; light components are drawn fainter and dashed (the paper's outlier marks).
        predict: maps ``M x 2`` points to ``M`` labels (concept names or component ids); evaluated on a
            ``resolution x resolution`` grid around the points to shade decision regions.
        region_grid: a precomputed ``(xs, ys, labels)`` grid instead of ``predict``.
        colors: concept -> hex colour; default :func:`concept_colors` of ``labels``.
        n_std: ellipse radius (or radii) in standard deviations.
        title: axes title.
        legend: draw a concept legend.
        ax: draw into these axes instead of a new figure.

    Returns:
        The figure.

    Example:
        >>> fig = embedding_map(xy, labels, means=gmm.means_, covariances=gmm.covariances_,
        ...                     predict=gmm.predict, title="blocks.5, label-agnostic GMM")  # doctest: +SKIP
    """
    from matplotlib.patches import Ellipse

    xy = np.asarray(xy, dtype=float)
    labels = [str(lab) for lab in labels]
    if xy.ndim != 2 or xy.shape[1] != 2 or len(labels) != len(xy):
        raise ValueError(
            f"embedding_map needs N x 2 coordinates and N labels, got {xy.shape} and {len(labels)}"
        )
    colors = dict(colors) if colors is not None else concept_colors(labels)
    fig, ax = figure_and_axes(ax, (6.0, 5.0))

    if predict is not None and region_grid is None and len(xy):
        region_grid = _region_grid(predict, xy, resolution)
    if region_grid is not None:
        xs, ys, grid = (np.asarray(a) for a in region_grid)
        keys = set(grid.ravel().tolist())
        region_colors: dict[object, str] = {k: colors[k] for k in keys if k in colors}
        region_colors.update(group_colors([k for k in keys if k not in region_colors]))
        ax.imshow(
            _region_image(grid, region_colors, region_alpha),
            extent=(xs[0], xs[-1], ys[0], ys[-1]),
            origin="lower",
            aspect="auto",
            interpolation="bilinear",  # smooth borders between regions, not a staircase of grid cells
            zorder=0,
        )

    for concept in sorted(set(labels)):
        sel = np.array([lab == concept for lab in labels])
        ax.scatter(
            xy[sel, 0],
            xy[sel, 1],
            s=point_size,
            color=colors[concept],
            label=short_label(concept, 28),
            edgecolors="white",
            linewidths=0.4,
            alpha=0.9,
            zorder=3,
        )

    if means is not None and covariances is not None:
        means = np.asarray(means, dtype=float).reshape(-1, 2)
        covariances = np.asarray(covariances, dtype=float).reshape(-1, 2, 2)
        k = len(means)
        comp_labels = list(component_labels) if component_labels is not None else [None] * k
        w = np.asarray(weights, dtype=float) if weights is not None else np.ones(k)
        w_rel = w / w.max() if k and w.max() > 0 else w
        levels = [n_std] if np.isscalar(n_std) else list(n_std)  # type: ignore[arg-type]
        for i in range(k):
            color = colors.get(comp_labels[i], "#222222") if comp_labels[i] is not None else "#222222"
            faint = w_rel[i] < 0.1
            for level in levels:
                center, width, height, angle = covariance_ellipse(means[i], covariances[i], float(level))
                ax.add_patch(
                    Ellipse(
                        center,
                        width,
                        height,
                        angle=angle,
                        fill=False,
                        edgecolor=color,
                        linewidth=1.6 if not faint else 1.0,
                        linestyle="--" if faint else "-",
                        alpha=0.35 + 0.6 * float(w_rel[i]),
                        zorder=4,
                    )
                )
            ax.plot(*means[i], marker="+", color=color, markersize=7, mew=1.5, zorder=5)

    ax.set_xticks([])
    ax.set_yticks([])
    for side in ("left", "bottom"):
        ax.spines[side].set_color("#bbbbbb")
    if len(xy):
        lo, hi = xy.min(axis=0), xy.max(axis=0)
        pad = 0.08 * np.maximum(hi - lo, 1e-9)
        ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
        ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
    if title:
        ax.set_title(title)
    if legend and labels:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), markerscale=1.4, handletextpad=0.3)
    return fig


@styled
def concept_mixture_panels(
    xy: np.ndarray,
    labels: Sequence[str],
    *,
    means: np.ndarray,
    covariances: np.ndarray,
    component_labels: Sequence[str],
    weights: Sequence[float] | None = None,
    concepts: Sequence[str] | None = None,
    colors: Mapping[str, str] | None = None,
    n_std: float = 2.0,
    columns: int = 6,
    panel_size: float = 2.1,
    title: str | None = None,
) -> Figure:
    """Small multiples of per-concept Gaussian mixtures: one panel per concept, all on the same axes limits.

    Each panel shows every LoCE in light grey, the concept's own LoCEs in its colour and its mixture's
    components as ellipses (dashed: light components, outlier candidates), so each mixture stays readable at
    any number of concepts, where one map with every ellipse becomes a tangle.

    Args:
        xy, labels: ``N x 2`` coordinates and ``N`` concept names.
        means, covariances, component_labels, weights: the components of all concepts' mixtures (``K x 2``,
            ``K x 2 x 2``, ``K`` concept names, ``K`` weights within each concept's mixture).
        concepts: the concepts that get a panel, in order (default: every concept, sorted).
        colors: concept -> hex colour; default :func:`concept_colors` of ``labels``.
        columns: panels per row.

    Example:
        >>> fig = concept_mixture_panels(xy, labels, means=m, covariances=c, component_labels=owner)  # doctest: +SKIP
    """
    from matplotlib.patches import Ellipse

    from loce.figures._base import new_figure

    xy = np.asarray(xy, dtype=float)
    labels = np.asarray([str(lab) for lab in labels])
    colors = dict(colors) if colors is not None else concept_colors(labels.tolist())
    concepts = [str(c) for c in (concepts if concepts is not None else sorted(set(labels.tolist())))]
    means = np.asarray(means, dtype=float).reshape(-1, 2)
    covariances = np.asarray(covariances, dtype=float).reshape(-1, 2, 2)
    owners = np.asarray([str(c) for c in component_labels])
    w = np.asarray(weights, dtype=float) if weights is not None else np.ones(len(means))
    columns = max(1, min(columns, len(concepts)))
    rows = max(1, -(-len(concepts) // columns))
    fig = new_figure((panel_size * columns, panel_size * rows + (0.3 if title else 0.0)))
    axes = np.atleast_1d(fig.subplots(rows, columns, squeeze=False).ravel())
    lo, hi = (xy.min(axis=0), xy.max(axis=0)) if len(xy) else (np.zeros(2), np.ones(2))
    pad = 0.08 * np.maximum(hi - lo, 1e-9)
    for ax, concept in zip(axes, concepts):
        own = labels == concept
        ax.scatter(xy[~own, 0], xy[~own, 1], s=2.5, color="#d3d6dd", linewidths=0, zorder=1, rasterized=True)
        ax.scatter(xy[own, 0], xy[own, 1], s=6, color=colors.get(concept, "#444444"), linewidths=0, zorder=2)
        mine = np.flatnonzero(owners == concept)
        top = w[mine].max() if mine.size else 1.0
        for i in mine:
            centre, width, height, angle = covariance_ellipse(means[i], covariances[i], n_std)
            faint = top > 0 and w[i] / top < 0.1
            ax.add_patch(
                Ellipse(
                    centre, width, height, angle=angle, fill=False, edgecolor="#1b1f2a",
                    linewidth=0.9 if faint else 1.3, linestyle="--" if faint else "-", zorder=3,
                )
            )  # fmt: skip
        ax.set_title(f"{short_label(concept, 22)} · {mine.size} comp.", fontsize=8.5)
        ax.set_xlim(lo[0] - pad[0], hi[0] + pad[0])
        ax.set_ylim(lo[1] - pad[1], hi[1] + pad[1])
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[len(concepts) :]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=10, fontweight="bold")
    return fig
