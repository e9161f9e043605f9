"""Acceptance: the report of a small synthetic run works in headless Chromium, offline, and escapes data.

Needs Debian's chromium (`scripts/ensure-chromium.sh`) and the playwright Python package; playwright's own
browser download is never used.
"""

from __future__ import annotations

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


def test_report_opens_offline_hover_shows_thumbnail_click_lists_neighbours(browser, tmp_path):
    index, truth = _report(tmp_path, ["car", "bus", "person"])
    w = PageWatch(browser)
    page = w.page
    page.goto(index.as_uri())
    page.wait_for_load_state("load")

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
        assert complete and width > 0, src
        assert (index.parent / unquote(src)).is_file()
    thumbs = page.evaluate(
        "JSON.parse(document.getElementById('loce-data').textContent).maps"
        ".flatMap(m => m.points.map(p => p.thumb))"
    )
    assert thumbs and all((index.parent / unquote(t)).is_file() for t in thumbs)

    # Hover a point: its thumbnail appears in the tooltip.
    point = page.locator(".map-pane:not(.inactive) svg.loce-map circle").nth(7)
    point.hover()
    tooltip = page.locator(".map-pane:not(.inactive) .map-tooltip")
    tooltip.wait_for(state="visible")
    tip_img = tooltip.locator("img")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=tip_img.element_handle())
    index_of_point = int(point.get_attribute("data-i"))
    spec = page.evaluate("JSON.parse(document.getElementById('loce-data').textContent).maps[0].points")
    hovered = spec[index_of_point]
    assert unquote(urlparse(tip_img.evaluate("e => e.src")).path).endswith(unquote(hovered["thumb"]))
    assert hovered["concept"] in tooltip.inner_text() and hovered["label"] in tooltip.inner_text()

    # Click it: the neighbour list shows the precomputed neighbours, in order.
    point.click()
    items = page.locator(".map-pane:not(.inactive) ol.neighbours li")
    assert items.count() == 3
    by_id = {p["id"]: p for p in spec}
    expected_labels = [by_id[n]["label"] for n in truth[hovered["id"]]]
    assert [items.nth(i).locator(".file").first.inner_text() for i in range(3)] == expected_labels
    assert page.locator(".map-pane:not(.inactive) line.link").count() == 3

    # The layer filter switches the map to the other layer's tab and hides the other layer's figures.
    page.select_option("select[data-filter=layer]", "blocks.11")
    assert page.locator(".map-tab.active").inner_text().endswith("blocks.11")
    assert not page.locator("figure[data-layer='blocks.11']").first.is_hidden()

    # A concept chip dims the other concepts' points and hides their table rows (the layer filter still holds).
    page.locator(".concept-chip", has_text="car").click()
    active = page.locator(".map-pane:not(.inactive) svg.loce-map circle")
    dimmed = active.evaluate_all("cs => cs.map(c => c.classList.contains('dim'))")
    layer_points = page.evaluate(
        "JSON.parse(document.getElementById('loce-data').textContent).maps[1].points.map(p => p.concept)"
    )
    assert dimmed == [c != "car" for c in layer_points]
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


def test_concept_named_like_markup_is_shown_as_text(browser, tmp_path):
    index, _ = _report(tmp_path, ["car", EVIL])
    w = PageWatch(browser)
    page = w.page
    page.goto(index.as_uri())
    page.wait_for_load_state("load")
    page.locator(
        ".map-pane:not(.inactive) svg.loce-map circle"
    ).last.hover()  # the tooltip renders the name too
    page.locator(".map-pane:not(.inactive) .map-tooltip").wait_for(state="visible")
    page.locator(".map-pane:not(.inactive) svg.loce-map circle").last.click()
    page.wait_for_timeout(100)

    assert page.locator("img[src='x']").count() == 0
    assert (
        page.evaluate("Array.from(document.querySelectorAll('*')).some(e => e.hasAttribute('onerror'))")
        is False
    )
    chip = page.locator(".concept-chip", has_text=EVIL)
    assert chip.count() == 1 and chip.is_visible()
    assert EVIL in page.locator(".map-pane:not(.inactive) .map-legend").inner_text()
    assert EVIL in page.locator(".map-pane:not(.inactive) .map-tooltip").inner_text()
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
    sources = page.eval_on_selector_all(
        "img[src]", "els => els.map(e => [e.getAttribute('src'), e.naturalWidth])"
    )
    assert len(sources) >= 3
    for src, width in sources:
        assert width > 0 and (index.parent / unquote(src)).is_file(), src

    point = page.locator(".map-pane:not(.inactive) svg.loce-map circle").last  # drawn last: never covered
    point.hover()
    tooltip = page.locator(".map-pane:not(.inactive) .map-tooltip")
    tooltip.wait_for(state="visible")
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=tooltip.locator("img").element_handle()
    )
    point.click()
    assert page.locator(".map-pane:not(.inactive) ol.neighbours li").count() >= 1

    assert EVIL in page.locator("body").inner_text()
    assert page.locator("img[src='x']").count() == 0
    page.screenshot(path=str(tmp_path / "real_run.png"), full_page=True)
    assert w.errors == [] and w.failed == [] and w.remote == [] and w.dialogs == []
    page.close()
