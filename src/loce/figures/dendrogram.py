"""The dendrogram of a hierarchical clustering of LoCEs, with a concept colour strip under the leaves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from loce.figures._base import new_figure, short_label, styled
from loce.figures.colors import concept_colors, group_colors, hex_to_rgb

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure


def leaf_order(linkage: np.ndarray) -> np.ndarray:
    """The order in which a dendrogram of ``linkage`` draws its leaves (indices into the samples).

    Example:
        >>> leaf_order(scipy.cluster.hierarchy.linkage(np.array([[0.0], [10.0], [1.0]])))  # doctest: +SKIP
        array([1, 0, 2])
    """
    from scipy.cluster.hierarchy import leaves_list

    return np.asarray(leaves_list(np.asarray(linkage, dtype=float)))


@styled
def dendrogram_figure(
    linkage: np.ndarray,
    labels: Sequence[str],
    *,
    purity: float | None = None,
    n_clusters: int | None = None,
    clusters: Sequence[int] | None = None,
    colors: Mapping[str, str] | None = None,
    title: str | None = None,
    log_height: bool = False,
    fig: Figure | None = None,
) -> Figure:
    """Draw the tree of a hierarchical clustering with a strip of concept colours in leaf order.

    Args:
        linkage: a scipy linkage matrix (``(N - 1) x 4``) of ``N`` LoCEs.
        labels: the ``N`` concept names, in sample order.
        purity: concept purity of the clustering, shown in the title.
        n_clusters: number of clusters of the purity cut, shown in the title.
        clusters: optional cluster id per sample; drawn as a second strip (muted colours) under the concepts.
        colors: concept -> hex colour; default :func:`concept_colors`.
        title: title prefix (e.g. the layer name).
        log_height: draw merge heights on a ``log1p`` scale (ward trees of many points are top-heavy).
        fig: draw into this (empty) figure.

    Returns:
        The figure; ``fig.axes[0]`` is the tree, ``fig.axes[1]`` the concept strip (an image of 1 x N cells),
        then the optional cluster strip.

    Example:
        >>> Z = scipy.cluster.hierarchy.linkage(X, "ward")  # doctest: +SKIP
        >>> fig = dendrogram_figure(Z, labels, purity=0.49, n_clusters=20, title="encoder layer 1")  # doctest: +SKIP
    """
    from matplotlib.collections import LineCollection
    from matplotlib.patches import Patch
    from scipy.cluster.hierarchy import dendrogram

    linkage = np.asarray(linkage, dtype=float)
    labels = [str(lab) for lab in labels]
    n = len(labels)
    if linkage.shape != (n - 1, 4):
        raise ValueError(f"a linkage matrix of {n} samples has shape ({n - 1}, 4), got {linkage.shape}")
    colors = dict(colors) if colors is not None else concept_colors(labels)
    tree = dendrogram(linkage, no_plot=True)
    order = np.asarray(tree["leaves"])

    if fig is None:
        fig = new_figure((max(6.0, min(16.0, 0.02 * n + 6)), 4.2))
    ratios = [6, 0.45] + ([0.45] if clusters is not None else [])
    grid = fig.add_gridspec(len(ratios), 1, height_ratios=ratios, hspace=0.02)
    ax_tree = fig.add_subplot(grid[0])
    heights = lambda d: np.log1p(d) if log_height else d  # noqa: E731
    segments = [
        np.column_stack([ic, heights(np.asarray(dc))]) for ic, dc in zip(tree["icoord"], tree["dcoord"])
    ]
    ax_tree.add_collection(LineCollection(segments, colors="#4a4a4a", linewidths=0.7))
    ax_tree.set_xlim(0, 10 * n)
    top = float(max((np.max(s[:, 1]) for s in segments), default=1.0))
    ax_tree.set_ylim(0, top * 1.03 if top > 0 else 1.0)
    ax_tree.set_xticks([])
    ax_tree.spines["bottom"].set_visible(False)
    ax_tree.set_ylabel("merge distance" + (" (log1p)" if log_height else ""))

    parts = [title] if title else []
    if purity is not None:
        parts.append(f"purity {purity:.3f}")
    if n_clusters is not None:
        parts.append(f"{n_clusters} clusters")
    parts.append(f"{n} LoCEs")
    ax_tree.set_title(" · ".join(parts))

    def strip(ax, cells: np.ndarray, ylabel: str) -> None:
        ax.imshow(cells[np.newaxis, :, :], aspect="auto", interpolation="nearest", extent=(0, 10 * n, 0, 1))
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(ylabel, rotation=0, ha="right", va="center", fontsize=8)
        for side in ax.spines.values():
            side.set_visible(False)

    ax_strip = fig.add_subplot(grid[1], sharex=ax_tree)
    strip(ax_strip, np.array([hex_to_rgb(colors[labels[i]]) for i in order]), "concept")
    if clusters is not None:
        cl = list(clusters)
        cluster_palette = group_colors(cl)
        strip(
            fig.add_subplot(grid[2], sharex=ax_tree),
            np.array([hex_to_rgb(cluster_palette[cl[i]]) for i in order]),
            "cluster",
        )

    present = sorted(set(labels))
    fig.legend(
        handles=[Patch(color=colors[c], label=short_label(c)) for c in present],
        loc="outside lower center",
        ncols=min(len(present), 8),
        handlelength=1.0,
    )
    return fig
