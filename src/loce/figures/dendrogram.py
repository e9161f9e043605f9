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


def cluster_tree(linkage: np.ndarray, clusters: Sequence[int]) -> tuple[np.ndarray, list[int]] | None:
    """The linkage of the tree above the clusters: each cluster (a subtree) becomes one leaf.

    Returns ``(reduced linkage, cluster id of each new leaf)``, or ``None`` when a cluster is not a subtree of
    the linkage (then the clusters are not a cut of this tree).

    Example:
        >>> Z = np.array([[0, 1, 0.1, 2], [2, 3, 0.2, 2], [4, 5, 1.0, 4]])
        >>> reduced, ids = cluster_tree(Z, [7, 7, 9, 9])
        >>> reduced.tolist(), ids
        ([[0.0, 1.0, 1.0, 2.0]], [7, 9])
    """
    linkage = np.asarray(linkage, dtype=float)
    clusters = np.asarray(list(clusters))
    n = clusters.size
    label = {i: clusters[i] for i in range(n)}  # node -> its cluster if all its leaves share one, else None
    size = {i: 1 for i in range(n)}
    for row, (a, b, _, _) in enumerate(linkage):
        a, b, node = int(a), int(b), n + row
        same = label[a] is not None and label[a] == label[b]
        label[node] = label[a] if same else None
        size[node] = size[a] + size[b]
    totals = {c: int((clusters == c).sum()) for c in np.unique(clusters)}
    leaves: list[int] = []
    rows: list[list[float]] = []

    def walk(node: int) -> int | None:  # new index of ``node`` in the reduced tree
        if label[node] is not None:
            if size[node] != totals[label[node]]:
                return None
            leaves.append(int(label[node]))
            return -len(leaves)  # leaves are numbered after the walk
        a, b = (int(v) for v in linkage[node - n, :2])
        left, right = walk(a), walk(b)
        if left is None or right is None:
            return None
        rows.append([left, right, float(linkage[node - n, 2]), 0.0])
        return len(rows) - 1

    import sys

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 4 * n + 100))
    try:
        root = walk(n + len(linkage) - 1) if len(linkage) else (walk(0) if n == 1 else None)
    finally:
        sys.setrecursionlimit(limit)
    if root is None or len(leaves) != len(totals):
        return None
    k = len(leaves)

    def index(v: float) -> int:  # leaves: -1, -2, ... in walk order; internal rows: 0, 1, ...
        return int(-v - 1) if v < 0 else int(k + v)

    reduced = np.array([[index(a), index(b), h, 0.0] for a, b, h, _ in rows], dtype=float).reshape(-1, 4)
    counts = [1] * k
    for row in reduced:
        counts.append(counts[int(row[0])] + counts[int(row[1])])
        row[3] = counts[-1]
    return reduced, leaves


def cluster_dendrogram_figure(
    linkage: np.ndarray,
    labels: Sequence[str],
    clusters: Sequence[int],
    *,
    purity: float | None = None,
    colors: Mapping[str, str] | None = None,
    title: str | None = None,
    log_height: bool = False,
    fig: Figure | None = None,
) -> Figure | None:
    """The tree cut at the purity clusters: one leaf per cluster, drawn as a bar of its concept shares.

    Readable at any number of LoCEs (a 600-leaf tree is a barcode; 30 clusters are not). Under each leaf: the
    cluster's size and its majority share. Returns ``None`` when the clusters are not subtrees of ``linkage``.

    Example:
        >>> fig = cluster_dendrogram_figure(Z, labels, clusters, purity=0.51, title="_blocks.10")  # doctest: +SKIP
    """
    from matplotlib.patches import Patch
    from scipy.cluster.hierarchy import dendrogram

    labels = [str(lab) for lab in labels]
    reduced = cluster_tree(linkage, clusters)
    if reduced is None or len(reduced[1]) < 2:
        return None
    tree_linkage, leaf_clusters = reduced
    colors = dict(colors) if colors is not None else concept_colors(labels)
    tree = dendrogram(tree_linkage, no_plot=True)
    order = [leaf_clusters[i] for i in tree["leaves"]]
    k = len(order)
    members = {c: [lab for lab, cl in zip(labels, clusters) if cl == c] for c in order}
    if fig is None:
        fig = new_figure((max(6.0, min(18.0, 0.32 * k + 4)), 4.8))
    grid = fig.add_gridspec(2, 1, height_ratios=[5, 2.2], hspace=0.04)
    ax_tree = fig.add_subplot(grid[0])
    heights = (lambda d: np.log1p(d)) if log_height else (lambda d: d)
    for ic, dc in zip(tree["icoord"], tree["dcoord"]):
        ax_tree.plot(ic, heights(np.asarray(dc)), color="#4a4a4a", linewidth=0.9)
    ax_tree.set_xlim(0, 10 * k)
    ax_tree.set_xticks([])
    ax_tree.spines["bottom"].set_visible(False)
    ax_tree.set_ylabel("merge distance" + (" (log1p)" if log_height else ""))
    parts = [title] if title else []
    if purity is not None:
        parts.append(f"purity {purity:.3f}")
    parts.append(f"{k} clusters of {len(labels)} LoCEs")
    ax_tree.set_title(" · ".join(parts))
    ax_bar = fig.add_subplot(grid[1], sharex=ax_tree)
    for position, cluster in enumerate(order):
        names, counts = np.unique(members[cluster], return_counts=True)
        ranked = sorted(zip(counts.tolist(), names.tolist()), key=lambda t: (-t[0], t[1]))
        bottom = 0.0
        total = float(sum(counts))
        for count, name in ranked:
            ax_bar.bar(
                10 * position + 5, count / total, width=8.4, bottom=bottom, color=colors[name], linewidth=0
            )
            bottom += count / total
        ax_bar.text(10 * position + 5, -0.04, f"{int(total)}", ha="center", va="top", fontsize=7)
    ax_bar.set_ylim(-0.16, 1.0)
    ax_bar.set_yticks([0, 0.5, 1.0])
    ax_bar.set_ylabel("concept share", fontsize=8)
    ax_bar.set_xticks([])
    for side in ("top", "right", "bottom"):
        ax_bar.spines[side].set_visible(False)
    present = sorted(set(labels))
    fig.legend(
        handles=[Patch(color=colors[c], label=short_label(c)) for c in present],
        loc="outside lower center",
        ncols=min(len(present), 8),
        handlelength=1.0,
        fontsize=8 if len(present) <= 20 else 6.5,
    )
    return fig
