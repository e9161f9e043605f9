"""The report's input: a small structure of results, figures, tables and map points.

The report generator only lays these out; it computes nothing. :mod:`loce.report.collect` fills the structure
from run directories, tests fill it with synthetic values. Tags (``layer``, ``model``, ``concept``) on figures,
tables and maps drive the report's navigation: choosing a layer in the nav bar hides what belongs to other layers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from loce.store.layer_order import LayerOrder, natural_key


@dataclass
class Tags:
    """What a figure, table or map belongs to; ``None`` means "all" and is never hidden by a filter."""

    layer: str | None = None
    model: str | None = None
    concept: str | None = None


@dataclass
class FigureRef:
    """An image file (PNG, SVG, JPEG) to show in a section, with a caption.

    Example:
        >>> FigureRef(Path("fig/separation.png"), "Separation per layer", Tags(model="lite0"))  # doctest: +SKIP
    """

    path: Path
    caption: str = ""
    tags: Tags = field(default_factory=Tags)
    wide: bool = False


@dataclass
class Table:
    """A table to show in a section. Columns named ``layer``, ``model`` or ``concept`` make its rows filterable.

    Example:
        >>> Table("Confused pairs", frame, max_rows=50)  # doctest: +SKIP
    """

    title: str
    frame: pd.DataFrame
    caption: str = ""
    tags: Tags = field(default_factory=Tags)
    max_rows: int = 500
    float_digits: int = 3


@dataclass
class GalleryTile:
    """One object in a gallery: its thumbnail (an object-centred crop with the mask outlined), a caption (the
    score) and its concept (the tile's frame colour).

    Example:
        >>> GalleryTile(Path("img/thumbs/000042_mug_1a2b3c4d.jpg"), "1. mug · 0.93", "mug")  # doctest: +SKIP
    """

    image: Path
    caption: str = ""
    concept: str | None = None
    hover: str = ""  # shown on hover (the image's file name)
    sample_id: str | None = None


@dataclass
class Gallery:
    """Rows of object crops laid out in HTML from thumbnails (no figure is drawn): ``rows`` holds
    ``(row label, tiles)``; a row whose ``lead`` is true shows its first tile apart (a retrieval query).

    Example:
        >>> Gallery("Outliers · l1", [("mug", [GalleryTile(Path("t.jpg"), "#1 · 0.41", "mug")])])  # doctest: +SKIP
    """

    title: str
    rows: list[tuple[str, list[GalleryTile]]]
    caption: str = ""
    tags: Tags = field(default_factory=Tags)
    lead: bool = False


@dataclass
class Section:
    """One analysis: a title, a short explanation, its figures, galleries and tables."""

    title: str
    text: str = ""
    figures: list[FigureRef] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    galleries: list[Gallery] = field(default_factory=list)
    tags: Tags = field(default_factory=Tags)
    key: str | None = None  # anchor id; default derived from the title
    open: bool = False  # shown unfolded when the page opens (every section folds)


@dataclass
class MapPoint:
    """One LoCE on the interactive map.

    Attributes:
        id: unique within its map (e.g. ``"<sample_id>/<concept>"``).
        x, y: 2-D coordinates (e.g. UMAP).
        concept: the concept's name.
        label: what identifies the sample to people (usually the image's file name).
        thumbnail: an image of the sample with its mask outlined (see :func:`loce.report.thumbnails.write_thumbnail`).
        neighbours: ids of the nearest LoCEs (nearest first), precomputed.
        similarities: the similarity of each neighbour (same order), optional.
        iou: the LoCE's quality (IoU of its projection with the mask), optional.
        attributes: recorded instance attributes (``{"distance": 2.1, "near_far": "far", "outlier": False}``):
            the map can be coloured by any of them.
    """

    id: str
    x: float
    y: float
    concept: str
    label: str = ""
    thumbnail: Path | None = None
    neighbours: list[str] = field(default_factory=list)
    similarities: list[float] | None = None
    iou: float | None = None
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class MapEllipse:
    """A Gaussian mixture component drawn on the map: its 2-standard-deviation ellipse as a closed polygon."""

    concept: str
    vertices: list[tuple[float, float]]
    weight: float = 1.0
    small: bool = False


@dataclass
class LoceMap:
    """The points of one interactive 2-D map (one layer of one model)."""

    title: str
    points: list[MapPoint]
    tags: Tags = field(default_factory=Tags)
    note: str = ""
    ellipses: list[MapEllipse] = field(default_factory=list)


@dataclass
class ReportData:
    """Everything one report shows.

    Attributes:
        title: the page title.
        overview: headline facts, shown as cards in order (``{"model": "lite0", "LoCEs": 1200, "mean IoU": 0.61}``).
        overview_tables: tables under the headline facts (counts per concept and layer, skips...).
        maps: interactive LoCE maps.
        sections: one per analysis.
        concepts: every concept name; colours are assigned from this list (pass the list the figures were drawn
            with, so they agree). Default: collected from maps, tags and table columns.
        subtitle: a line under the title (e.g. the run directories).
        findings: what was found, in sentences (:class:`loce.report.findings.Finding`), shown first.
        layer_order: how layers are ordered in the nav bar (:class:`loce.store.LayerOrder`; default natural order).
    """

    title: str
    overview: dict[str, Any] = field(default_factory=dict)
    overview_tables: list[Table] = field(default_factory=list)
    maps: list[LoceMap] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    concepts: list[str] | None = None
    subtitle: str = ""
    findings: list[Any] = field(default_factory=list)
    layer_order: LayerOrder = field(default_factory=LayerOrder)

    def all_tags(self) -> dict[str, list[str]]:
        """Layer, model and concept values mentioned anywhere (the nav bar's filter choices): layers in network
        order (:attr:`layer_order`), models and concepts naturally sorted."""
        found: dict[str, set[str]] = {"layer": set(), "model": set(), "concept": set(self.concepts or [])}
        tagged: list[Tags] = [t.tags for t in self.overview_tables] + [m.tags for m in self.maps]
        for section in self.sections:
            tagged += [section.tags] + [f.tags for f in section.figures] + [t.tags for t in section.tables]
            tagged += [g.tags for g in section.galleries]
        for tags in tagged:
            for name in found:
                value = getattr(tags, name)
                if value is not None:
                    found[name].add(str(value))
        for loce_map in self.maps:
            found["concept"].update(str(p.concept) for p in loce_map.points)
        for table in self.overview_tables + [t for s in self.sections for t in s.tables]:
            for name in found:
                if name in table.frame.columns:
                    found[name].update(str(v) for v in table.frame[name].dropna().unique())
        tags = {name: sorted(values, key=natural_key) for name, values in found.items()}
        tags["layer"] = self.layer_order.sort(tags["layer"])
        return tags
