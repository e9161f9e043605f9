"""Galleries of images, not dots: retrieval results, outliers, sub-concept members, the images of a cluster.

Every tile is an image with an optional mask outline (a contour at the mask's edge) and an optional heat map
(e.g. a LoCE projection) laid over it; masks and heat maps of another resolution are stretched over the image,
the same way the model saw it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from loce.figures._base import new_figure, short_label, styled

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


@dataclass
class Tile:
    """One image of a gallery.

    Attributes:
        image: ``H x W x 3`` uint8 RGB (or ``H x W`` grey) image.
        mask: boolean mask to outline, any resolution (stretched over the image).
        heatmap: values in [0, 1] drawn over the image with transparency, any resolution.
        title: text above the tile.
        color: colour of the mask outline and the tile frame (e.g. the concept's colour).
    """

    image: np.ndarray
    mask: np.ndarray | None = None
    heatmap: np.ndarray | None = None
    title: str = ""
    color: str | None = None


def _stretched_coords(
    shape: tuple[int, int], image_shape: tuple[int, int], pad: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates of a ``shape`` grid (plus ``pad`` cells each side) stretched over an image."""
    (h, w), (ih, iw) = shape, image_shape
    xs = (np.arange(-pad, w + pad) + 0.5) * iw / w - 0.5
    ys = (np.arange(-pad, h + pad) + 0.5) * ih / h - 0.5
    return xs, ys


def draw_tile(
    ax: Axes, tile: Tile, *, heat_alpha: float = 0.7, cmap: str = "inferno", linewidth: float = 1.6
) -> None:
    """Draw one tile into ``ax``: image, heat map overlay, mask contour, frame and title."""
    image = np.asarray(tile.image)
    ih, iw = image.shape[:2]
    extent = (-0.5, iw - 0.5, ih - 0.5, -0.5)
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, extent=extent, interpolation="antialiased")
    if tile.heatmap is not None:
        heat = np.clip(np.asarray(tile.heatmap, dtype=float), 0.0, 1.0)
        # Opacity follows the value: cold regions leave the image visible, hot ones are covered.
        ax.imshow(
            heat,
            cmap=cmap,
            vmin=0.0,
            vmax=1.0,
            alpha=heat_alpha * heat,
            extent=extent,
            interpolation="bilinear",
        )
    color = tile.color or "#00e5ff"
    if tile.mask is not None:
        mask = np.asarray(tile.mask, dtype=float)
        if mask.any() and not mask.all():
            # Padded by one empty cell so masks touching the border still get a closed outline.
            xs, ys = _stretched_coords(mask.shape, (ih, iw), pad=1)
            ax.contour(xs, ys, np.pad(mask, 1), levels=[0.5], colors=[color], linewidths=linewidth)
    ax.set_xlim(-0.5, iw - 0.5)
    ax.set_ylim(ih - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(tile.color is not None)
        spine.set_color(color)
        spine.set_linewidth(2.5)
    if tile.title:
        ax.set_title(tile.title, fontsize=7.5, fontweight="normal", pad=3)


@styled
def image_grid(
    tiles: Sequence[Tile | None],
    *,
    ncols: int | None = None,
    row_labels: Sequence[str] | None = None,
    tile_size: float = 1.8,
    width_ratios: Sequence[float] | None = None,
    heat_alpha: float = 0.7,
    cmap: str = "inferno",
    suptitle: str | None = None,
    fig: Figure | None = None,
) -> Figure:
    """Lay tiles out row by row; ``None`` entries leave a blank cell.

    Args:
        tiles: the tiles in reading order.
        ncols: tiles per row; default ``ceil(sqrt(len(tiles)))``.
        row_labels: one label per row, written left of the row.
        tile_size: inches per tile.
        width_ratios: relative column widths (e.g. a narrow gap column).
        heat_alpha: opacity of a heat map where its value is 1 (it fades to transparent at 0).
        cmap: colour map of heat maps.
        suptitle: figure title.
        fig: draw into this (empty) figure.

    Returns:
        The figure with one axes per cell (blank cells have their axis switched off).

    Example:
        >>> fig = image_grid([Tile(img, mask=m, title="cat_01.jpg", color="#1f77b4")])  # doctest: +SKIP
    """
    n = len(tiles)
    if n == 0:
        raise ValueError("image_grid needs at least one tile")
    ncols = ncols or int(np.ceil(np.sqrt(n)))
    nrows = int(np.ceil(n / ncols))
    widths = list(width_ratios) if width_ratios is not None else [1.0] * ncols
    if len(widths) != ncols:
        raise ValueError(f"width_ratios has {len(widths)} entries for {ncols} columns")
    if fig is None:
        aspect = float(np.median([t.image.shape[0] / t.image.shape[1] for t in tiles if t is not None]))
        title_space = 0.3 if any(t is not None and t.title for t in tiles) else 0.05
        fig = new_figure(
            (
                tile_size * sum(widths) + (1.4 if row_labels else 0.2),
                nrows * (tile_size * min(aspect, 1.5) + title_space) + (0.4 if suptitle else 0.1),
            )
        )
    axes = fig.subplots(nrows, ncols, squeeze=False, gridspec_kw={"width_ratios": widths})
    for idx, ax in enumerate(axes.ravel()):
        tile = tiles[idx] if idx < n else None
        if tile is None:
            ax.set_axis_off()
            continue
        draw_tile(ax, tile, heat_alpha=heat_alpha, cmap=cmap)
    if row_labels:
        for r, text in enumerate(row_labels[:nrows]):
            ax = axes[r, 0]
            if not ax.axison:  # a blank first cell still carries its row's label
                ax.set_axis_on()
                ax.set_xticks([])
                ax.set_yticks([])
                for spine in ax.spines.values():
                    spine.set_visible(False)
            ax.set_ylabel(
                short_label(text, 20), rotation=0, ha="right", va="center", fontsize=8.5, fontweight="bold"
            )
    if suptitle:
        fig.suptitle(suptitle, fontweight="bold")
    return fig


def retrieval_gallery(
    rows: Sequence[tuple[Tile, Sequence[Tile]]], *, suptitle: str | None = None, **kwargs
) -> Figure:
    """One row per query: the query tile, a gap, then its top-k neighbours in rank order.

    Args:
        rows: ``(query, neighbours)`` pairs; titles typically name the concept, file and similarity.
        suptitle: figure title.
        **kwargs: passed to :func:`image_grid`.

    Example:
        >>> fig = retrieval_gallery([(Tile(q_img, q_mask, q_heat, "query: cat"), [Tile(n_img, n_mask, n_heat)])])  # doctest: +SKIP
    """
    k = max((len(nb) for _, nb in rows), default=0)
    tiles: list[Tile | None] = []
    for query, neighbours in rows:
        tiles += [query, None, *neighbours, *([None] * (k - len(neighbours)))]
    return image_grid(tiles, ncols=k + 2, width_ratios=[1.0, 0.12] + [1.0] * k, suptitle=suptitle, **kwargs)


def group_gallery(
    groups: Mapping[str, Sequence[Tile]], *, max_per_group: int = 8, suptitle: str | None = None, **kwargs
) -> Figure:
    """One labelled row per group: outliers per concept, members per sub-concept, samples per cluster.

    Args:
        groups: row label -> tiles (only the first ``max_per_group`` are shown).
        max_per_group: tiles per row.
        suptitle: figure title.
        **kwargs: passed to :func:`image_grid`.

    Example:
        >>> fig = group_gallery({"car / near": near_tiles, "car / far": far_tiles}, suptitle="sub-concepts of car")  # doctest: +SKIP
    """
    width = max(1, min(max_per_group, max((len(t) for t in groups.values()), default=1)))
    tiles: list[Tile | None] = []
    for members in groups.values():
        shown = list(members)[:width]
        tiles += [*shown, *([None] * (width - len(shown)))]
    return image_grid(tiles, ncols=width, row_labels=list(groups), suptitle=suptitle, **kwargs)


def cluster_gallery(
    tiles: Sequence[Tile], concepts: Sequence[str], *, cluster_name: str = "cluster", ncols: int = 6, **kwargs
) -> Figure:
    """The images of one cluster, framed in their concepts' colours, titled with the cluster's concept mix.

    Shows what a confusion looks like: a cluster holding cars and trucks shows both, framed differently.

    Args:
        tiles: the cluster's tiles (their ``color`` frames them).
        concepts: the concept of each tile, counted for the title.
        cluster_name: name of the cluster in the title.
        ncols: tiles per row.
        **kwargs: passed to :func:`image_grid`.

    Example:
        >>> fig = cluster_gallery(tiles, concepts, cluster_name="cluster 7")  # doctest: +SKIP
    """
    values, counts = np.unique(np.asarray([str(c) for c in concepts]), return_counts=True)
    mix = ", ".join(
        f"{v} {c}" for c, v in sorted(zip(counts.tolist(), values.tolist()), key=lambda t: (-t[0], t[1]))
    )
    return image_grid(
        list(tiles), ncols=min(ncols, max(1, len(tiles))), suptitle=f"{cluster_name}: {mix}", **kwargs
    )
