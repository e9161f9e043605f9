"""Lay out :class:`~loce.report.data.ReportData` as one HTML page (escaping every string that comes from data).

Pure: takes the data and the URL of each file, returns the HTML text. :func:`loce.report.write.write_report`
resolves the files and writes the page.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loce import __version__
from loce.figures.colors import concept_colors
from loce.report.data import FigureRef, Gallery, LoceMap, ReportData, Section, Table, Tags
from loce.report.markup import Markup, el, escape, json_script, raw

UrlOf = Callable[[Path], str]
# The first screen answers, in this order: which layer, which confusions, how good the LoCEs are (their fit, and
# against the object-embedding baselines), whether to trust them (provenance, ground truth); then the publication
# protocol's numbers.
TOPIC_ORDER = (
    "which layer",
    "confusions",
    "LoCE quality",
    "baselines",
    "provenance",
    "ground truth",
    "paper protocol",
)
FILTER_DIMENSIONS = ("model", "layer", "concept")
# WebGL scatter plot of the map (versions and licences: assets/VENDORED.md), in load order.
VENDOR_SCRIPTS = ("vendor-pub-sub-es.js", "vendor-regl.min.js", "vendor-regl-scatterplot.min.js")


def _asset(name: str) -> str:
    return resources.files("loce.report").joinpath("assets", name).read_text(encoding="utf-8")


def slug(text: str, taken: set[str]) -> str:
    """A unique, attribute-safe anchor id for ``text``.

    Example:
        >>> slug("Separation & overlap", set())
        'separation-overlap'
    """
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"
    key, i = base, 2
    while key in taken:
        key, i = f"{base}-{i}", i + 1
    taken.add(key)
    return key


def _tag_attrs(tags: Tags) -> dict[str, Any]:
    attrs = {f"data_{dim}": getattr(tags, dim) for dim in FILTER_DIMENSIONS if getattr(tags, dim) is not None}
    if attrs:
        attrs["data_filterable"] = True
    return attrs


def _tag_chips(tags: Tags, colors: Mapping[str, str]) -> Markup:
    chips = []
    for dim in FILTER_DIMENSIONS:
        value = getattr(tags, dim)
        if value is None:
            continue
        swatch = (
            el("span", class_="swatch", style=f"background:{colors[value]}")
            if dim == "concept" and value in colors
            else None
        )
        chips.append(el("span", swatch, f"{dim} {value}", class_=f"chip chip-{dim}"))
    return el("span", chips, class_="chips")


def format_value(value: Any, digits: int = 3) -> str:
    """Human-readable cell text: floats rounded, NaN as an en dash, lists joined.

    Example:
        >>> [format_value(v) for v in (0.123456, float("nan"), 12, ["a", "b"])]
        ['0.123', '–', '12', 'a, b']
    """
    if isinstance(value, (list, tuple, np.ndarray)):
        return ", ".join(format_value(v, digits) for v in value)
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(float(value)):
            return "–"
        return f"{float(value):,.{digits}f}" if abs(float(value)) < 1e5 else f"{float(value):.3g}"
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return f"{int(value):,}"
    return str(value)


def render_table(table: Table, colors: Mapping[str, str]) -> Markup:
    """A card with a sortable table; rows carry ``data-layer`` / ``data-model`` / ``data-concept`` from those columns."""
    frame = table.frame
    shown = frame.head(table.max_rows)
    numeric = {
        c
        for c in frame.columns
        if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
    }
    head = el(
        "tr",
        [
            el("th", str(c), class_="num" if c in numeric else None, data_col=i)
            for i, c in enumerate(frame.columns)
        ],
    )
    rows = []
    columns = list(frame.columns)
    is_numeric = [c in numeric for c in columns]
    for record in shown.itertuples(index=False, name=None):
        # cells are joined as strings (thousands per table): the same markup el() writes, every value escaped
        cells, attrs = [], {}
        for column, num, value in zip(columns, is_numeric, record):
            if column in FILTER_DIMENSIONS and not pd.isna(value):
                attrs[f"data_{column}"] = str(value)
            text = escape(format_value(value, table.float_digits))
            if num:
                sort_value = float(value) if value is not None and not pd.isna(value) else None
                cells.append(
                    f'<td class="num" data-v="{escape(sort_value if sort_value is not None else "")}">{text}</td>'
                )
            elif column == "concept" and str(value) in colors:
                swatch = el("span", class_="swatch", style=f"background:{colors[str(value)]}")
                cells.append(f"<td>{swatch}{text}</td>")
            else:
                cells.append(f"<td>{text}</td>")
        if attrs:
            attrs["data_filterable"] = True
        rows.append(el("tr", raw("".join(cells)), **attrs))
    more = (
        el("p", f"Showing the first {len(shown):,} of {len(frame):,} rows.", class_="muted small")
        if len(frame) > len(shown)
        else None
    )
    return el(
        "div",
        el("div", el("h3", table.title), _tag_chips(table.tags, colors), class_="card-head"),
        el("p", table.caption, class_="caption") if table.caption else None,
        el(
            "div",
            el("table", el("thead", head), el("tbody", rows), class_="data sortable"),
            class_="table-wrap",
        ),
        more,
        class_="card table-card",
        **_tag_attrs(table.tags),
    )


def render_figure(figure: FigureRef, url_of: UrlOf, colors: Mapping[str, str]) -> Markup:
    """A card with the figure (a link to the full-size file) and its caption."""
    url = url_of(figure.path)
    return el(
        "figure",
        el(
            "a",
            el("img", src=url, alt=figure.caption or figure.path.name),
            href=url,
            target="_blank",
            class_="figure-link",
        ),
        el("figcaption", el("span", figure.caption), _tag_chips(figure.tags, colors)),
        class_="card figure-card" + (" wide" if figure.wide else ""),
        **_tag_attrs(figure.tags),
    )


def render_gallery(gallery: Gallery, url_of: UrlOf, colors: Mapping[str, str]) -> Markup:
    """A card of rows of object crops (thumbnails framed in their concept's colour, the score under each)."""
    rows = []
    for label, tiles in gallery.rows:
        items = []
        for i, tile in enumerate(tiles):
            color = colors.get(tile.concept or "", "#9aa0ad")
            items.append(
                el(
                    "figure",
                    el(
                        "img",
                        src=url_of(tile.image),
                        alt=tile.caption or tile.hover,
                        title=tile.hover or None,
                        loading="lazy",
                        style=f"border-color:{color}",
                    ),
                    el("figcaption", tile.caption),
                    class_="tile" + (" tile-lead" if gallery.lead and i == 0 else ""),
                )
            )
        rows.append(
            el(
                "div",
                el("div", label, class_="tile-row-label"),
                el("div", items, class_="tile-row-items"),
                class_="tile-row",
            )
        )
    return el(
        "div",
        el("div", el("h3", gallery.title), _tag_chips(gallery.tags, colors), class_="card-head"),
        el("p", gallery.caption, class_="caption") if gallery.caption else None,
        el("div", rows, class_="tile-rows"),
        class_="card gallery-card",
        **_tag_attrs(gallery.tags),
    )


def _foldable(
    title: str, lead: str | None, body: list, *, open_: bool, extra: Markup | None = None
) -> Markup:
    """A ``<details>`` block: the title (and lead) is the summary line, the rest folds away."""
    head = el(
        "summary",
        el("h2", title),
        extra,
        el("p", lead, class_="lead") if lead else None,
        class_="section-head",
    )
    return el(
        "details", head, el("div", body, class_="section-body"), class_="fold", open=True if open_ else None
    )


def render_section(section: Section, key: str, url_of: UrlOf, colors: Mapping[str, str]) -> Markup:
    counts = []
    if section.figures:
        counts.append(f"{len(section.figures)} figure{'s' if len(section.figures) != 1 else ''}")
    if section.galleries:
        counts.append(f"{len(section.galleries)} galler{'ies' if len(section.galleries) != 1 else 'y'}")
    if section.tables:
        counts.append(f"{len(section.tables)} table{'s' if len(section.tables) != 1 else ''}")
    body = [
        el("div", [render_figure(f, url_of, colors) for f in section.figures], class_="figure-grid")
        if section.figures
        else None,
        [render_gallery(g, url_of, colors) for g in section.galleries],
        [render_table(t, colors) for t in section.tables],
        el(
            "p", "Nothing in this section matches the current filter.", class_="empty-note muted", hidden=True
        ),
    ]
    return el(
        "section",
        _foldable(
            section.title,
            section.text,
            body,
            open_=section.open,
            extra=el("span", " · ".join(counts), class_="fold-count muted") if counts else None,
        ),
        id=key,
        class_="section",
        **_tag_attrs(section.tags),
    )


def render_findings(data: ReportData, links: Mapping[str, str]) -> Markup | None:
    """The findings first: loud warnings, then one list per topic, each sentence linked to its evidence."""
    if not data.findings:
        return None
    warnings = [f for f in data.findings if f.level == "warning" and f.topic == "provenance"]
    topics: dict[str, list] = {name: [] for name in TOPIC_ORDER}
    for finding in data.findings:
        if finding not in warnings:  # the banner says it already
            topics.setdefault(finding.topic, []).append(finding)
    topics = {name: items for name, items in topics.items() if items}
    blocks = []
    for topic, items in topics.items():
        entries = []
        for f in items:
            target = f.link if f.link in links else None
            entries.append(
                el(
                    "li",
                    f.text,
                    " ",
                    el("a", f"→ {links[target]}", href=f"#{target}", class_="finding-link")
                    if target
                    else None,
                    class_="finding warning" if f.level == "warning" else "finding",
                )
            )
        blocks.append(el("div", el("h3", topic), el("ul", entries), class_="finding-group"))
    banner = (
        el("div", [el("p", f.text) for f in warnings], class_="banner warning", role="alert")
        if warnings
        else None
    )
    toc = el(
        "nav",
        el("h3", "Sections"),
        el("ol", [el("li", el("a", title, href=f"#{key}")) for key, title in links.items()]),
        class_="findings-toc",
    )
    return el(
        "section",
        banner,
        el(
            "div",
            el("div", el("h2", "What was found"), blocks, class_="findings-main"),
            toc,
            class_="card findings-card",
        ),
        id="findings",
        class_="section findings",
    )


def render_overview(data: ReportData, colors: Mapping[str, str]) -> Markup:
    stats = []
    for label, value in data.overview.items():
        text = format_value(value)
        stats.append(
            el(
                "div",
                el("div", text, class_="stat-value" + (" long" if len(text) > 14 else "")),
                el("div", label, class_="stat-label"),
                class_="stat card",
            )
        )
    chips = [
        el(
            "button",
            el("span", class_="swatch", style=f"background:{color}"),
            name,
            type="button",
            class_="concept-chip",
            data_concept_pick=name,
        )
        for name, color in colors.items()
    ]
    body = [
        el("div", stats, class_="stats") if stats else None,
        el("div", el("h3", "Concepts"), el("div", chips, class_="concept-chips"), class_="card concepts-card")
        if chips
        else None,
        [render_table(t, colors) for t in data.overview_tables],
    ]
    return el("section", _foldable("Overview", None, body, open_=True), id="overview", class_="section")


def _json_value(value: Any) -> Any:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return round(float(value), 5) if math.isfinite(float(value)) else None
    return None if value is None else str(value)


def _attribute_kinds(points: list) -> dict[str, str]:
    """``{name: "numeric" | "categorical"}`` of the attributes any point carries (booleans are categories)."""
    kinds: dict[str, str] = {}
    for p in points:
        for name, value in p.attributes.items():
            if value is None or (isinstance(value, float) and not math.isfinite(value)):
                continue
            numeric = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
                value, (bool, np.bool_)
            )
            kind = "numeric" if numeric else "categorical"
            kinds[name] = kind if kinds.get(name, kind) == kind else "categorical"
    return dict(sorted(kinds.items()))


def map_payload(maps: list[LoceMap], url_of: UrlOf) -> list[dict[str, Any]]:
    """The JSON the map script reads: per map, its points (thumbnail URLs, neighbours, attributes), the
    attribute kinds it can be coloured by, and the mixture ellipses."""
    payload = []
    for loce_map in maps:
        points = []
        kinds = _attribute_kinds(loce_map.points)
        for p in loce_map.points:
            sims = p.similarities if p.similarities is not None else [None] * len(p.neighbours)
            points.append(
                {
                    "id": str(p.id),
                    "x": float(p.x),
                    "y": float(p.y),
                    "concept": str(p.concept),
                    "label": str(p.label),
                    "thumb": url_of(p.thumbnail) if p.thumbnail is not None else None,
                    "iou": None if p.iou is None or not math.isfinite(p.iou) else round(float(p.iou), 4),
                    "nb": [
                        [str(n), None if s is None or not math.isfinite(s) else round(float(s), 4)]
                        for n, s in zip(p.neighbours, sims)
                    ],
                    "a": {k: _json_value(v) for k, v in p.attributes.items() if k in kinds},
                }
            )
        ellipses = [
            {
                "concept": str(e.concept),
                "v": [[round(float(x), 5), round(float(y), 5)] for x, y in e.vertices],
                "small": bool(e.small),
            }
            for e in loce_map.ellipses
        ]
        payload.append({"title": loce_map.title, "points": points, "attributes": kinds, "ellipses": ellipses})
    return payload


def _map_controls(loce_map: LoceMap) -> Markup:
    """Colour-by choice (concept, IoU, each recorded attribute), mouse mode, mixture ellipses."""
    kinds = _attribute_kinds(loce_map.points)
    options = [el("option", "concept", value="concept"), el("option", "IoU", value="iou")]
    options += [el("option", f"{name} ({kind})", value=f"a:{name}") for name, kind in kinds.items()]
    modes = [
        el(
            "button",
            label,
            type="button",
            class_="map-mode" + (" active" if mode == "panZoom" else ""),
            data_mode=mode,
        )
        for mode, label in (("panZoom", "pan & zoom"), ("lasso", "lasso"), ("rectangle", "box"))
    ]
    return el(
        "div",
        el("label", el("span", "colour by"), el("select", options, class_="map-color"), class_="map-control"),
        el("div", modes, class_="map-modes", role="group"),
        el(
            "label",
            el(
                "input",
                type="checkbox",
                class_="map-ellipses",
                disabled=True if not loce_map.ellipses else None,
            ),
            el("span", "GMM ellipses"),
            class_="map-control",
        ),
        el("button", "reset view", type="button", class_="map-reset"),
        el("span", "", class_="map-status muted small"),
        class_="map-controls",
    )


def render_maps(data: ReportData, colors: Mapping[str, str]) -> Markup:
    """One card with a tab per map; each pane holds the map canvas, the neighbour panel and a legend."""
    tabs, panes = [], []
    for i, loce_map in enumerate(data.maps):
        tabs.append(
            el(
                "button",
                loce_map.title,
                type="button",
                class_="map-tab",
                role="tab",
                data_tab=i,
                **_tag_attrs(loce_map.tags),
            )
        )
        panes.append(
            el(
                "div",
                el(
                    "div",
                    el("p", loce_map.note, class_="caption"),
                    _tag_chips(loce_map.tags, colors),
                    class_="card-head",
                ),
                _map_controls(loce_map),
                el(
                    "div",
                    el("div", el("div", class_="map-tooltip", hidden=True), class_="map-canvas", data_map=i),
                    el(
                        "aside",
                        el("h4", "Nearest neighbours"),
                        el(
                            "p",
                            "Hover a point to see its image; click it to list its nearest neighbours.",
                            class_="hint muted",
                        ),
                        el("div", class_="selected-point"),
                        el("ol", class_="neighbours"),
                        class_="map-side",
                    ),
                    class_="map-body",
                ),
                el("div", class_="map-legend"),
                el(
                    "div",
                    el("h4", "Selection", class_="gallery-title"),
                    el("div", class_="gallery-items"),
                    class_="map-gallery",
                    hidden=True,
                ),
                class_="map-pane",
                data_pane=i,
                **_tag_attrs(loce_map.tags),
            )
        )
    lead = (
        "Each point is one LoCE (one concept in one image), placed by a 2-D embedding of its layer's LoCEs. Colour "
        "it by concept, IoU or any recorded attribute; scroll to zoom, drag to pan; lasso or box-select points "
        "(or shift-drag) to see their images; click a point for its nearest LoCEs; click a concept in the legend "
        "to hide it."
    )
    body = [
        el("div", el("div", tabs, class_="map-tabs", role="tablist"), panes, class_="card map-card"),
        el(
            "p", "Nothing in this section matches the current filter.", class_="empty-note muted", hidden=True
        ),
    ]
    return el("section", _foldable("LoCE map", lead, body, open_=True), id="map", class_="section")


def render_report(data: ReportData, url_of: UrlOf) -> str:
    """The full HTML page of ``data``; ``url_of`` turns each file path into a URL relative to the page.

    Example:
        >>> html_text = render_report(ReportData("demo", overview={"LoCEs": 3}), lambda p: p.as_posix())
    """
    tags = data.all_tags()
    # The figures' colours come from the same list, so a concept looks the same in figures and page.
    colors = concept_colors(data.concepts if data.concepts is not None else tags["concept"])
    taken = {"overview", "map", "findings"}
    keys = [slug(s.key or s.title, taken) for s in data.sections]
    anchors = {"overview": "Overview"}
    if data.maps:
        anchors["map"] = "Map"
    anchors.update({k: s.title for s, k in zip(data.sections, keys)})
    links = ([el("a", "Findings", href="#findings")] if data.findings else []) + [
        el("a", title, href=f"#{key}") for key, title in anchors.items()
    ]
    filters = []
    for dim in FILTER_DIMENSIONS:
        if len(tags[dim]) > 1:
            options = [el("option", f"all {dim}s", value="")] + [el("option", v, value=v) for v in tags[dim]]
            filters.append(
                el("label", el("span", dim), el("select", options, data_filter=dim), class_="filter")
            )
    header = el(
        "header",
        el(
            "div",
            el("span", "LoCE", class_="brand-mark"),
            el("span", data.title, class_="brand-title"),
            class_="brand",
        ),
        el("nav", links, class_="section-links"),
        el("div", filters, class_="filters"),
        class_="topbar",
    )
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    body = el(
        "body",
        header,
        el(
            "main",
            el(
                "div",
                el("h1", data.title),
                el("p", data.subtitle, class_="subtitle") if data.subtitle else None,
                class_="page-head",
            ),
            render_findings(data, anchors),
            render_overview(data, colors),
            render_maps(data, colors) if data.maps else None,
            [render_section(s, k, url_of, colors) for s, k in zip(data.sections, keys)],
        ),
        el(
            "footer",
            f"Generated by loce {__version__} on {generated}. Opens offline; nothing is loaded from the internet.",
        ),
        json_script({"colors": colors, "maps": map_payload(data.maps, url_of)}, "loce-data"),
        [el("script", raw(_asset(name))) for name in VENDOR_SCRIPTS] if data.maps else None,
        el("script", raw(_asset("report.js"))),
    )
    head = el(
        "head",
        el("meta", charset="utf-8"),
        el("meta", name="viewport", content="width=device-width, initial-scale=1"),
        el("title", data.title),
        el("style", raw(_asset("report.css"))),
    )
    return "<!DOCTYPE html>\n" + el("html", head, body, lang="en") + "\n"
