"""The report generator: escaping, thumbnails, file placement and the page's content (no browser needed)."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from loce.errors import InputError
from loce.figures.colors import concept_colors, hex_to_rgb
from loce.report import FigureRef, LoceMap, MapPoint, ReportData, Section, Table, Tags, write_report
from loce.report.markup import el, escape, json_script
from loce.report.render import format_value, render_table
from loce.report.thumbnails import crop_box, thumbnail_path, write_thumbnail

EVIL = "<img src=x onerror=alert(1)>"


class _Collector(HTMLParser):
    """Collects start tags with their attributes and the page's JSON payload."""

    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self._in_json = False
        self.json_text = ""

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        self._in_json = tag == "script" and attrs.get("type") == "application/json"

    def handle_endtag(self, tag):
        self._in_json = False

    def handle_data(self, data):
        if self._in_json:
            self.json_text += data


def _parse(index: Path) -> _Collector:
    parser = _Collector()
    parser.feed(index.read_text(encoding="utf-8"))
    return parser


def test_markup_escapes_text_and_attributes_but_not_its_own_elements():
    assert escape(EVIL) == "&lt;img src=x onerror=alert(1)&gt;"
    cell = el("td", EVIL, el("b", "ok"), data_concept='a"b', hidden=True, title=None)
    assert cell == '<td data-concept="a&quot;b" hidden>&lt;img src=x onerror=alert(1)&gt;<b>ok</b></td>'
    assert (
        el("img", src="a b.png", alt=EVIL) == '<img src="a b.png" alt="&lt;img src=x onerror=alert(1)&gt;">'
    )


def test_json_script_cannot_be_closed_by_data_and_round_trips():
    payload = {"name": "</script><script>alert(1)</script>", "c": "<!-- & \u2028"}
    block = json_script(payload, "d")
    inner = block[block.index(">") + 1 : block.rindex("</script>")]
    assert "<" not in inner and ">" not in inner and "&" not in inner
    assert json.loads(inner) == payload


def test_thumbnail_path_is_unique_per_sample_and_concept_and_filesystem_safe():
    a = thumbnail_path(Path("t"), "img 1", "traffic light")
    b = thumbnail_path(Path("t"), "img-1", "traffic-light")
    assert a != b and a.parent == Path("t")
    assert re.fullmatch(r"[A-Za-z0-9_-]+\.jpg", thumbnail_path(Path("t"), "../../etc", EVIL).name)


def test_crop_box_widens_the_mask_box_and_stays_inside_the_image():
    mask = np.zeros((100, 200), bool)
    mask[40:60, 100:140] = True  # 20 x 40 box
    assert crop_box(mask, margin=0.5, min_size=0) == (80, 30, 160, 70)
    mask[:] = False
    mask[0:10, 0:10] = True
    assert crop_box(mask, margin=0.5, min_size=0) == (0, 0, 15, 15)


def test_write_thumbnail_outlines_the_mask_dims_the_rest_and_is_written_once(tmp_path):
    image = np.full((60, 80, 3), 200, np.uint8)
    mask = np.zeros((60, 80), bool)
    mask[20:40, 30:50] = True
    image[mask] = (10, 200, 10)
    path = write_thumbnail(image, mask, tmp_path / "t.png", size=80, color="#ff0000", crop=False, dim=0.5)
    thumb = np.asarray(Image.open(path).convert("RGB")).astype(int)
    assert thumb.shape == (60, 80, 3)
    red = np.all(thumb == (255, 0, 0), axis=2)
    ys, xs = np.nonzero(red)
    # The outline is a band of width 1 on both sides of the mask's edge: rows 19..40, columns 29..50.
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (19, 40, 29, 50)
    assert not red[25:35, 35:45].any()  # inside stays the object's colour
    assert tuple(thumb[30, 40]) == (10, 200, 10)
    assert tuple(thumb[5, 5]) == (100, 100, 100)  # outside dimmed by half
    before = path.read_bytes()
    write_thumbnail(np.zeros_like(image), mask, path)  # already there: kept
    assert path.read_bytes() == before
    write_thumbnail(np.zeros_like(image), mask, path, overwrite=True)
    assert path.read_bytes() != before


def test_write_thumbnail_crops_around_the_mask_and_stretches_small_masks(tmp_path):
    image = np.zeros((200, 300, 3), np.uint8)
    mask = np.zeros((20, 30), bool)  # a tenth of the image's resolution
    mask[8:12, 12:18] = True
    path = write_thumbnail(image, mask, tmp_path / "t.jpg", size=64)
    with Image.open(path) as thumb:
        assert thumb.format == "JPEG"
        assert max(thumb.size) == 64 and thumb.size[0] > thumb.size[1]  # the crop keeps the box's 3:2 shape


def test_format_value_and_table_rows_carry_filter_attributes():
    assert [format_value(v) for v in (1234567, 0.5, float("nan"), "x")] == ["1,234,567", "0.500", "–", "x"]
    frame = pd.DataFrame(
        {"concept": ["car", EVIL, "bus"], "layer": ["a", "b", "a"], "iou": [0.5, 0.25, np.nan]}
    )
    html = render_table(Table("t", frame, max_rows=2), concept_colors(frame["concept"]))
    assert html.count("<tr data-concept=") == 2
    assert 'data-layer="b"' in html and EVIL not in html and "&lt;img src=x" in html
    assert '<td class="num" data-v="0.25">0.250</td>' in html
    assert "Showing the first 2 of 3 rows." in html


def test_all_tags_collects_filters_in_natural_order():
    data = ReportData(
        "t",
        maps=[LoceMap("m", [MapPoint("1", 0, 0, "dog")], Tags(layer="blocks.11", model="m1"))],
        sections=[
            Section(
                "s",
                figures=[FigureRef(Path("f.png"), tags=Tags(layer="blocks.5"))],
                tables=[Table("t", pd.DataFrame({"concept": ["cat"], "model": ["m2"]}))],
            )
        ],
    )
    assert data.all_tags() == {
        "layer": ["blocks.5", "blocks.11"],
        "model": ["m1", "m2"],
        "concept": ["cat", "dog"],
    }


def _tiny_report(tmp_path: Path) -> ReportData:
    rng = np.random.default_rng(0)
    thumbs = [
        write_thumbnail(
            rng.integers(0, 255, (20, 20, 3), dtype=np.uint8),
            None,
            thumbnail_path(tmp_path / "out" / "img" / "thumbs", str(i), c),
        )
        for i, c in enumerate(["car", EVIL])
    ]
    outside = tmp_path / "elsewhere" / "figure one.png"
    outside.parent.mkdir()
    Image.new("RGB", (30, 20), "white").save(outside)
    points = [
        MapPoint("p0", 0.0, 0.0, "car", "a.png", thumbs[0], ["p1"], [0.9], iou=0.5),
        MapPoint("p1", 1.0, 1.0, EVIL, f"{EVIL}.png", thumbs[1], ["p0"], [0.9], iou=float("nan")),
    ]
    return ReportData(
        title=f"run {EVIL}",
        overview={"model": EVIL, "LoCEs": 2, "mean IoU": 0.5},
        maps=[LoceMap("layer x", points, Tags(layer="x"))],
        sections=[
            Section(EVIL, text=EVIL, figures=[FigureRef(outside, caption=EVIL, tags=Tags(concept=EVIL))])
        ],
    )


def test_write_report_escapes_all_data_and_places_every_file(tmp_path):
    index = write_report(_tiny_report(tmp_path), tmp_path / "out")
    text = index.read_text(encoding="utf-8")
    assert EVIL not in text  # neither as markup nor inside the JSON block
    parsed = _parse(index)
    assert not [attrs for tag, attrs in parsed.tags if tag == "img" and attrs.get("src") == "x"]
    assert not any("onerror" in attrs for _, attrs in parsed.tags)
    payload = json.loads(parsed.json_text)
    points = payload["maps"][0]["points"]
    assert [p["concept"] for p in points] == ["car", EVIL]
    assert points[1]["iou"] is None and points[0]["nb"] == [["p1", 0.9]]
    assert payload["colors"] == concept_colors(["car", EVIL])
    srcs = [attrs["src"] for tag, attrs in parsed.tags if tag == "img"] + [p["thumb"] for p in points]
    assert len(srcs) == 3
    for src in srcs:
        assert not src.startswith(("/", "http")) and (index.parent / src.replace("%20", " ")).is_file()
    assert any(src.startswith("img/files/figure%20one-") for src in srcs)  # copied in from outside
    assert not re.search(r"(src|href)=\"(https?:)?//", text)  # nothing from the internet


def test_write_report_names_a_missing_file(tmp_path):
    data = ReportData("t", sections=[Section("s", figures=[FigureRef(tmp_path / "nope.png")])])
    with pytest.raises(InputError, match="nope.png"):
        write_report(data, tmp_path / "out")


def test_concept_colours_in_the_page_match_the_figures(tmp_path):
    index = write_report(_tiny_report(tmp_path), tmp_path / "out")
    swatches = re.findall(r'class="swatch" style="background:(#[0-9a-f]{6})"', index.read_text())
    assert set(swatches) == set(concept_colors(["car", EVIL]).values())
    assert all(len(hex_to_rgb(c)) == 3 for c in swatches)
