"""Acceptance: the report of a small synthetic run works in headless Chromium, offline, and escapes data.

Needs Debian's chromium (`scripts/ensure-chromium.sh`) and the playwright Python package; playwright's own
browser download is never used.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from conftest_report import build_synthetic_report
from loce.report import write_report

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.xdist_group("browser")]

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
EVIL = "<img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.skip("Debian's chromium is missing: run scripts/ensure-chromium.sh")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium"), args=ARGS
        )
        yield b
        b.close()


class PageWatch:
    """Open a page and record console errors, page errors, dialogs and requests that leave the disk."""

    def __init__(self, browser):
        self.page = browser.new_page(viewport={"width": 1360, "height": 900})
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.remote: list[str] = []
        self.failed: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("requestfailed", lambda r: self.failed.append(r.url))
        self.page.on(
            "request",
            lambda r: self.remote.append(r.url) if not r.url.startswith(("file:", "data:")) else None,
        )

        def on_dialog(dialog):
            self.dialogs.append(dialog.message)
            dialog.dismiss()

        self.page.on("dialog", on_dialog)


def _report(tmp_path: Path, concepts: list[str]) -> tuple[Path, dict]:
    out = tmp_path / "report"
    data, truth = build_synthetic_report(out, concepts, per_concept=5, k=3)
    return write_report(data, out), truth


ACTIVE = ".map-pane:not(.inactive)"
ACTIVE_CANVAS = ".map-pane:not(.inactive) .map-canvas"


def _open(browser, index: Path) -> PageWatch:
    w = PageWatch(browser)
    w.page.goto(index.as_uri())
    w.page.wait_for_load_state("load")
    _wait_drawn(w.page)
    return w


def _wait_drawn(page) -> None:
    page.locator(ACTIVE_CANVAS).scroll_into_view_if_needed()
    page.wait_for_function(
        "() => { const c = document.querySelector('.map-pane:not(.inactive) .map-canvas');"
        " return c && c.hasAttribute('data-render-ms'); }"
    )


def _active_map(page) -> str:
    return "window.loceMaps.find(m => !!m.sp)"


def _screen(page, i: int) -> tuple[float, float]:
    """Page coordinates of point ``i`` of the active map."""
    return tuple(
        page.evaluate(
            f"""(() => {{ const m = {_active_map(page)}; const r = m.sp.getScreenPosition({i});
            const b = document.querySelector('{ACTIVE_CANVAS}').getBoundingClientRect();
            return [r[0] + b.left, r[1] + b.top]; }})()"""
        )
    )


def _canvas_pixels(page, path: Path):
    """The active map's canvas as a numpy RGB array, from a screenshot."""
    import numpy as np
    from PIL import Image

    page.locator(ACTIVE_CANVAS).screenshot(path=str(path))
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def _coloured(pixels) -> int:
    """Pixels that are neither the background (#fbfcfe) nor grey."""
    spread = pixels.max(axis=2) - pixels.min(axis=2)
    return int((spread > 40).sum())


def test_report_opens_offline_hover_shows_thumbnail_click_lists_neighbours(browser, tmp_path):
    index, truth = _report(tmp_path, ["car", "bus", "person"])
    w = _open(browser, index)
    page = w.page

    # Every image loaded and every referenced file exists beside the page.
    images = page.eval_on_selector_all(
        "img",
        "els => els.map(e => [e.getAttribute('src'), e.complete, e.naturalWidth, e.offsetParent !== null])",
    )
    assert len([i for i in images if i[0]]) >= 3
    for src, complete, width, shown in images:
        if src is None:  # the tooltip's image before any hover: not displayed
            assert not shown
            continue
        if shown:
            assert complete and width > 0, src
        assert (index.parent / unquote(src)).is_file()
    spec = page.evaluate("JSON.parse(document.getElementById('loce-data').textContent).maps[0].points")
    assert all((index.parent / unquote(p["thumb"])).is_file() for p in spec)

    # Hover a point: its thumbnail appears in the tooltip.
    x, y = _screen(page, 7)
    page.mouse.move(x, y)
    tooltip = page.locator(f"{ACTIVE} .map-tooltip")
    tooltip.wait_for(state="visible")
    tip_img = tooltip.locator("img")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=tip_img.element_handle())
    hovered = spec[7]
    assert unquote(urlparse(tip_img.evaluate("e => e.src")).path).endswith(unquote(hovered["thumb"]))
    assert hovered["concept"] in tooltip.inner_text() and hovered["label"] in tooltip.inner_text()

    # Click it: the neighbour list shows the precomputed neighbours, in order.
    page.mouse.click(x, y)
    items = page.locator(f"{ACTIVE} ol.neighbours li")
    items.first.wait_for()
    assert items.count() == 3
    by_id = {p["id"]: p for p in spec}
    expected_labels = [by_id[n]["label"] for n in truth[hovered["id"]]]
    assert [items.nth(i).locator(".file").first.inner_text() for i in range(3)] == expected_labels

    # The layer filter switches the map to the other layer's tab and hides the other layer's figures.
    box = page.locator(ACTIVE_CANVAS).bounding_box()
    page.mouse.move(box["x"] + 2, box["y"] + 2)  # away (selecting closed the tooltip), then back
    page.mouse.move(x, y, steps=4)
    tooltip.wait_for(state="visible")
    page.select_option("select[data-filter=layer]", "blocks.11")
    assert tooltip.is_hidden() and page.locator(f"{ACTIVE} .map-tooltip").is_hidden()  # tooltips close
    assert page.locator(".map-tab.active").inner_text().endswith("blocks.11")
    _wait_drawn(page)
    assert page.evaluate("window.loceMaps.filter(m => !!m.sp).length") == 1  # one WebGL context at a time

    # A concept chip keeps only that concept's points and hides other table rows (the layer filter still holds).
    page.locator(".concept-chip", has_text="car").click()
    page.wait_for_function(f"() => {_active_map(page)}.sp.get('filteredPoints').length === 5")
    shown = page.evaluate(f"{_active_map(page)}.sp.get('filteredPoints')")
    concepts = page.evaluate(f"{_active_map(page)}.points.map(p => p.concept)")
    assert sorted(shown) == [i for i, c in enumerate(concepts) if c == "car"]
    visible_rows = page.locator("#overview tbody tr:visible")
    assert visible_rows.count() == 1
    assert visible_rows.first.locator("td").all_inner_texts()[:3] == ["blocks.11", "car", "5"]
    page.locator(".concept-chip", has_text="car").click()

    page.evaluate("window.scrollTo(0, 0)")
    page.select_option("select[data-filter=layer]", "")
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert w.errors == [] and w.failed == [] and w.remote == [] and w.dialogs == []
    page.close()


def test_map_colours_by_concept_iou_and_recorded_attributes(browser, tmp_path):
    index, _ = _report(tmp_path, ["car", "bus", "person"])
    w = _open(browser, index)
    page = w.page
    options = page.locator(f"{ACTIVE} select.map-color option").evaluate_all("os => os.map(o => o.value)")
    assert options == ["concept", "iou", "a:distance", "a:near_far", "a:outlier"]
    by_concept = _canvas_pixels(page, tmp_path / "by_concept.png")
    legend = page.locator(f"{ACTIVE} .map-legend")
    assert legend.inner_text().split() == ["bus", "car", "person"]

    page.select_option(f"{ACTIVE} select.map-color", "iou")
    page.wait_for_function(
        "() => document.querySelector('.map-pane:not(.inactive) .map-canvas').dataset.colorMode === 'iou'"
    )
    assert page.locator(f"{ACTIVE} .map-legend .legend-ramp").count() == 1
    assert legend.inner_text().split()[:2] == ["0.00", "1.00"]
    by_iou = _canvas_pixels(page, tmp_path / "by_iou.png")

    page.select_option(f"{ACTIVE} select.map-color", "a:near_far")
    page.wait_for_function(
        "() => document.querySelector('.map-pane:not(.inactive) .map-canvas').dataset.colorMode === 'a:near_far'"
    )
    assert legend.inner_text().split() == ["far", "near", "not", "recorded"]
    by_attribute = _canvas_pixels(page, tmp_path / "by_near_far.png")
    assert (by_concept != by_iou).any(axis=2).sum() > 50 and (by_iou != by_attribute).any(axis=2).sum() > 50

    # the tooltip names the attribute value of the hovered point
    x, y = _screen(page, 3)
    page.mouse.move(x, y)
    tooltip = page.locator(f"{ACTIVE} .map-tooltip")
    tooltip.wait_for(state="visible")
    value = page.evaluate(f"{_active_map(page)}.points[3].a.near_far")
    assert f"near_far {value}" in tooltip.inner_text()
    page.select_option(f"{ACTIVE} select.map-color", "concept")  # changing the colouring closes the tooltip
    assert tooltip.is_hidden()
    assert w.errors == [] and w.remote == []
    page.close()


def test_map_zooms_with_the_wheel_and_pans_by_dragging(browser, tmp_path):
    index, _ = _report(tmp_path, ["car", "bus"])
    w = _open(browser, index)
    page = w.page
    box = page.locator(ACTIVE_CANVAS).bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    distance = page.evaluate(f"{_active_map(page)}.sp.get('cameraDistance')")
    before = _screen(page, 0)
    page.mouse.move(cx, cy)
    page.mouse.wheel(0, -400)
    page.wait_for_function(f"() => {_active_map(page)}.sp.get('cameraDistance') < {distance} * 0.9")
    zoomed = _screen(page, 0)
    assert abs(zoomed[0] - cx) > abs(before[0] - cx) or abs(zoomed[1] - cy) > abs(before[1] - cy)
    target = page.evaluate(f"{_active_map(page)}.sp.get('cameraTarget')")
    page.mouse.move(cx, cy)
    page.mouse.down()
    page.mouse.move(cx + 120, cy + 60, steps=8)
    page.mouse.up()
    moved = page.evaluate(f"{_active_map(page)}.sp.get('cameraTarget')")
    assert moved[0] != target[0] and moved[1] != target[1]
    page.click(f"{ACTIVE} .map-reset")
    assert page.evaluate(f"{_active_map(page)}.sp.get('cameraDistance')") == distance
    page.screenshot(path=str(tmp_path / "zoom.png"))
    assert w.errors == []
    page.close()


def _drag(page, start, end):
    page.mouse.move(*start)
    page.mouse.down()
    steps = 12
    for s in range(1, steps + 1):
        page.mouse.move(
            start[0] + (end[0] - start[0]) * s / steps, start[1] + (end[1] - start[1]) * s / steps
        )
        page.wait_for_timeout(20)
    page.mouse.up()


def test_box_and_lasso_selection_open_a_gallery_of_the_selected_loces(browser, tmp_path):
    index, _ = _report(tmp_path, ["car", "bus", "person"])
    w = _open(browser, index)
    page = w.page
    n = page.evaluate(f"{_active_map(page)}.points.length")
    screen = [_screen(page, i) for i in range(n)]
    box = page.locator(ACTIVE_CANVAS).bounding_box()
    # a box over the left half of the points (in screen x)
    xs = sorted(x for x, _ in screen)
    split = (xs[n // 2 - 1] + xs[n // 2]) / 2
    inside = sorted(i for i, (x, _) in enumerate(screen) if x < split)
    page.click(f"{ACTIVE} .map-mode[data-mode=rectangle]")
    _drag(page, (box["x"] + 4, box["y"] + 4), (split, box["y"] + box["height"] - 4))
    gallery = page.locator(f"{ACTIVE} .map-gallery")
    gallery.wait_for(state="visible")
    selected = sorted(page.evaluate(f"{_active_map(page)}.sp.get('selectedPoints')"))
    assert selected == inside
    items = gallery.locator(".gallery-item")
    assert items.count() == len(inside)
    spec = page.evaluate(f"{_active_map(page)}.points")
    assert gallery.locator(".gallery-title").inner_text().startswith(f"{len(inside)} selected LoCEs")
    for k in range(items.count()):
        src = items.nth(k).locator("img").get_attribute("src")
        assert (index.parent / unquote(src)).is_file()
    assert {unquote(items.nth(k).locator("img").get_attribute("src")) for k in range(items.count())} == {
        unquote(spec[i]["thumb"]) for i in inside
    }
    page.screenshot(path=str(tmp_path / "box_gallery.png"))

    # a freehand lasso around one point's neighbourhood selects what lies inside it
    page.click(f"{ACTIVE} .map-mode[data-mode=lasso]")
    cx, cy = screen[0]
    radius = 40
    ring = [
        (cx + radius * math.cos(t / 16 * 2 * math.pi), cy + radius * math.sin(t / 16 * 2 * math.pi))
        for t in range(17)
    ]
    page.mouse.move(*ring[0])
    page.mouse.down()
    for point in ring[1:]:
        page.mouse.move(*point)
        page.wait_for_timeout(20)
    page.mouse.up()
    expected = sorted(i for i, (x, y) in enumerate(screen) if math.hypot(x - cx, y - cy) < radius * 0.92)
    page.wait_for_timeout(200)
    got = sorted(page.evaluate(f"{_active_map(page)}.sp.get('selectedPoints')"))
    assert set(expected) <= set(got) and all(
        math.hypot(screen[i][0] - cx, screen[i][1] - cy) < radius * 1.08 for i in got
    )
    if len(got) > 1:
        assert gallery.is_visible() and gallery.locator(".gallery-item").count() == len(got)
    else:
        assert page.locator(f"{ACTIVE} ol.neighbours li").count() == 3
    page.screenshot(path=str(tmp_path / "lasso.png"))
    assert w.errors == []
    page.close()


def test_gmm_ellipses_are_toggled_on_the_map(browser, tmp_path):
    index, _ = _report(tmp_path, ["car", "bus", "person"])
    w = _open(browser, index)
    page = w.page
    canvas = page.locator(ACTIVE_CANVAS)
    without = _canvas_pixels(page, tmp_path / "no_ellipses.png")
    page.check(f"{ACTIVE} input.map-ellipses")
    page.wait_for_function(
        "() => document.querySelector('.map-pane:not(.inactive) .map-canvas').dataset.ellipses === '3'"
    )
    page.wait_for_timeout(200)
    with_ellipses = _canvas_pixels(page, tmp_path / "ellipses.png")
    assert _coloured(with_ellipses) > _coloured(without) + 300  # three coloured rings drawn
    page.uncheck(f"{ACTIVE} input.map-ellipses")
    page.wait_for_function(
        "() => document.querySelector('.map-pane:not(.inactive) .map-canvas').dataset.ellipses === '0'"
    )
    page.wait_for_timeout(200)
    again = _canvas_pixels(page, tmp_path / "no_ellipses_again.png")
    assert abs(_coloured(again) - _coloured(without)) < 100
    assert canvas.get_attribute("data-ellipses") == "0" and w.errors == []
    page.close()


def test_twenty_thousand_points_render(browser, tmp_path):
    import numpy as np

    from loce.report import LoceMap, MapPoint, ReportData, Tags

    rng = np.random.default_rng(0)
    concepts = [f"concept_{k:02d}" for k in range(40)]
    centres = rng.normal(scale=6, size=(len(concepts), 2))
    points = []
    for i in range(20_000):
        c = i % len(concepts)
        x, y = centres[c] + rng.normal(size=2)
        points.append(
            MapPoint(f"p{i}", float(x), float(y), concepts[c], label=f"img{i}.png", iou=float(rng.uniform()))
        )
    data = ReportData("20k", overview={"LoCEs": 20_000}, maps=[LoceMap("big · l1", points, Tags(layer="l1"))])
    index = write_report(data, tmp_path / "big")
    w = _open(browser, index)
    page = w.page
    assert page.evaluate("window.loceMaps[0].points.length") == 20_000
    assert float(page.locator(ACTIVE_CANVAS).get_attribute("data-render-ms")) > 0
    pixels = _canvas_pixels(page, tmp_path / "twenty_thousand.png")
    assert _coloured(pixels) > 20_000  # the points cover a large part of the canvas
    page.select_option(f"{ACTIVE} select.map-color", "iou")
    page.wait_for_function(
        "() => document.querySelector('.map-pane:not(.inactive) .map-canvas').dataset.colorMode === 'iou'"
    )
    x, y = _screen(page, 123)
    page.mouse.move(x, y)
    page.locator(f"{ACTIVE} .map-tooltip").wait_for(state="visible")
    page.screenshot(path=str(tmp_path / "twenty_thousand_page.png"))
    assert w.errors == [] and w.remote == []
    page.close()


def test_concept_named_like_markup_is_shown_as_text(browser, tmp_path):
    index, _ = _report(tmp_path, ["car", EVIL])
    w = _open(browser, index)
    page = w.page
    n = page.evaluate(f"{_active_map(page)}.points.length")
    x, y = _screen(page, n - 1)  # an EVIL point: concepts are in sorted order, "<" before "c"
    page.mouse.move(x, y)
    page.locator(f"{ACTIVE} .map-tooltip").wait_for(state="visible")
    page.mouse.click(x, y)
    page.wait_for_timeout(100)

    assert page.locator("img[src='x']").count() == 0
    assert (
        page.evaluate("Array.from(document.querySelectorAll('*')).some(e => e.hasAttribute('onerror'))")
        is False
    )
    chip = page.locator(".concept-chip", has_text=EVIL)
    assert chip.count() == 1 and chip.is_visible()
    assert EVIL in page.locator(f"{ACTIVE} .map-legend").inner_text()
    assert EVIL in page.locator("body").inner_text()
    assert w.dialogs == [] and w.errors == []
    page.screenshot(path=str(tmp_path / "evil.png"))
    page.close()


def test_report_of_a_real_small_run(browser, tmp_path):
    """fit -> analyze -> report on planted images (one concept named like markup), then open it in Chromium."""
    import json

    from loce.analysis.run import AnalysisSettings, analyze_run
    from loce.data import load_coco
    from loce.pipeline import fit_run
    from loce.report.collect import build_report
    from planted_data import planted_model, write_planted_coco

    ann, images = write_planted_coco(tmp_path / "data", n=16)
    data = json.loads(ann.read_text())
    data["categories"][1]["name"] = EVIL
    ann.write_text(json.dumps(data))
    run = tmp_path / "run"
    fit_run(load_coco(ann, images), planted_model(), ["pool"], run, batch_size=8, progress=False)
    analyze_run(run, settings=AnalysisSettings(map_method="pca"))
    index = build_report([run], tmp_path / "report", progress=False)

    w = PageWatch(browser)
    page = w.page
    page.goto(index.as_uri())
    page.wait_for_load_state("load")
    page.evaluate("document.querySelectorAll('details.fold').forEach(d => d.open = true)")
    page.wait_for_timeout(300)
    sources = page.eval_on_selector_all(
        "img[src]", "els => els.map(e => [e.getAttribute('src'), e.complete && e.naturalWidth])"
    )
    assert len(sources) >= 3
    for src, _ in sources:
        assert (index.parent / unquote(src)).is_file(), src

    _wait_drawn(page)
    x, y = _screen(page, 0)
    page.mouse.move(x, y)
    tooltip = page.locator(f"{ACTIVE} .map-tooltip")
    tooltip.wait_for(state="visible")
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=tooltip.locator("img").element_handle()
    )
    page.mouse.click(x, y)
    page.locator(f"{ACTIVE} ol.neighbours li").first.wait_for()
    assert page.locator(f"{ACTIVE} ol.neighbours li").count() >= 1
    assert "What was found" in page.locator("#findings").inner_text()

    assert EVIL in page.locator("body").inner_text()
    assert page.locator("img[src='x']").count() == 0
    page.screenshot(path=str(tmp_path / "real_run.png"), full_page=True)
    assert w.errors == [] and w.failed == [] and w.remote == [] and w.dialogs == []
    page.close()
