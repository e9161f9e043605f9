"""Figures of LoCE analyses: one function per figure, plain values in, a matplotlib ``Figure`` out.

matplotlib is imported only when a figure is drawn (``pip install "loce[viz]"``). Every function takes an optional
``ax`` or ``fig`` to draw into, so figures compose in notebooks; :func:`save_figure` writes PNG and SVG files.
Colours of concepts come from :func:`concept_colors` and are the same in every figure and in the report.

Example:
    >>> from loce.figures import matrix_heatmaps, save_figure
    >>> fig = matrix_heatmaps({"blocks.5": S5, "blocks.11": S11}, names, label="separation")  # doctest: +SKIP
    >>> save_figure(fig, "out/separation")  # doctest: +SKIP
"""

from loce.figures._base import save_figure
from loce.figures.colors import concept_colors, group_colors
from loce.figures.curves import precision_at_k_curves
from loce.figures.dendrogram import dendrogram_figure, leaf_order
from loce.figures.distributions import iou_distributions
from loce.figures.embedding import concept_mixture_panels, covariance_ellipse, embedding_map
from loce.figures.gallery import (
    Tile,
    cluster_gallery,
    draw_tile,
    group_gallery,
    image_grid,
    retrieval_gallery,
)
from loce.figures.heatmaps import matrix_heatmaps

__all__ = [
    "Tile",
    "cluster_gallery",
    "concept_colors",
    "covariance_ellipse",
    "dendrogram_figure",
    "draw_tile",
    "embedding_map",
    "concept_mixture_panels",
    "group_colors",
    "group_gallery",
    "image_grid",
    "iou_distributions",
    "leaf_order",
    "matrix_heatmaps",
    "precision_at_k_curves",
    "retrieval_gallery",
    "save_figure",
]
