"""The report shows what ``loce analyze`` stored: maps with true neighbours and thumbnails, tagged sections."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from conftest_analysis_report import CONCEPTS, LAYERS, MODEL, brute_force_top_k, make_run
from loce.analysis.run import AnalysisSettings, analyze_run
from loce.report.collect import SECTION_PROVIDERS, collect_report
from loce.report.sections_analysis import analysis_sections
from loce.report.write import write_report

pytest.importorskip("matplotlib")
pytestmark = pytest.mark.slow  # draws about 15 figures (10-20 s on a shared 2-core machine)

ANALYSIS_TITLES = [
    "Distribution analyses",
    "LoCE distributions in 2-D",
    "Concept purity",
    "Separation, overlap and confused pairs",
    "Concept retrieval",
    "Outliers",
    "Sub-concepts",
    "Mixed clusters",
]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("analysis_report")
    run, vectors, labels = make_run(root)
    analyze_run(run, settings=AnalysisSettings(map_method="pca", ks=(1, 5), neighbours=10))
    out = root / "report"
    data = collect_report([run], out, examples_per_concept=2, progress=False)
    return data, out, vectors, labels


def test_provider_is_registered_before_the_method_sections():
    names = [name.split(":")[0] for name in SECTION_PROVIDERS]
    assert names.index("loce.report.sections_analysis") < names.index("loce.report.sections_methods")


def test_sections_follow_quality_and_examples_and_are_tagged(report):
    data, out, _, _ = report
    titles = [s.title for s in data.sections]
    assert titles[:2] == ["LoCE quality", "Examples"] and titles[2:] == [*ANALYSIS_TITLES, "Ground truth"]
    for section in data.sections[2:]:
        for figure in section.figures:
            assert figure.path.is_file() and figure.path.is_relative_to(out)
            assert figure.tags.model == MODEL
        for gallery in section.galleries:  # HTML galleries of the thumbnails, one per layer
            assert gallery.tags.model == MODEL and gallery.rows
            for _, tiles in gallery.rows:
                assert all(
                    t.image.is_file() and t.image.is_relative_to(out / "img" / "thumbs") for t in tiles
                )
        for table in section.tables:
            assert {"model", "layer"} <= set(table.frame.columns)  # rows filter by model and layer
    per_layer = {s.title: [f.tags.layer for f in s.figures] for s in data.sections[2:]}
    galleries = {s.title: [g.tags.layer for g in s.galleries] for s in data.sections[2:]}
    assert per_layer["LoCE distributions in 2-D"] == [layer for layer in LAYERS for _ in ("map", "panels")]
    assert per_layer["Concept purity"] == LAYERS
    for title in ("Outliers", "Mixed clusters"):
        assert galleries[title] == LAYERS
    assert per_layer["Separation, overlap and confused pairs"] == [None, None]  # all layers, one scale
    assert (
        per_layer["Concept retrieval"] == [None] and galleries["Concept retrieval"] == LAYERS
    )  # curves, galleries
    truth = next(s for s in data.sections if s.title == "Ground truth")
    (alignment,) = [t.frame for t in truth.tables if t.title == "Sub-concepts against near / far"]
    assert set(alignment["concept"]) == {"ball"}  # the planted near / far split is found, far above chance
    assert (alignment["ari"] > 0.8).all() and (alignment["ari"] > alignment["chance_95"]).all()
    assert any("Sub-concepts against near/far" in f.text and "ball ARI" in f.text for f in data.findings)
    sub = next(s for s in data.sections if s.title == "Sub-concepts")
    assert "ball" in " ".join(sub.tables[0].frame["concept"]) and len(sub.galleries) == len(LAYERS)
    gallery = next(s for s in data.sections if s.title == "Concept retrieval").galleries[0]
    assert "crops around each object" in gallery.caption and MODEL in gallery.caption
    assert gallery.lead and all(tiles[0].caption == "query" and len(tiles) == 6 for _, tiles in gallery.rows)


def test_maps_carry_true_cosine_neighbours_and_thumbnails(report):
    data, out, vectors, labels = report
    assert [m.title for m in data.maps] == [f"{MODEL} · {layer}" for layer in LAYERS]
    ids = [f"{c}{n:03d}/{c}" for n, c in enumerate(labels)]
    for loce_map, layer in zip(data.maps, LAYERS):
        assert (loce_map.tags.model, loce_map.tags.layer) == (MODEL, layer)
        assert [p.id for p in loce_map.points] == ids
        truth, sims = brute_force_top_k(vectors[layer], 8)
        for i, point in enumerate(loce_map.points):
            assert point.neighbours == [ids[j] for j in truth[i]]
            np.testing.assert_allclose(point.similarities, sims[i], atol=1e-5)
            assert point.thumbnail is not None and point.thumbnail.is_file()
            assert point.thumbnail.is_relative_to(out / "img" / "thumbs")
            assert point.concept == labels[i] and np.isfinite([point.x, point.y]).all()
        assert "PCA map" in loce_map.note
    # thumbnails are per (sample, concept): both layers share them
    assert data.maps[0].points[0].thumbnail == data.maps[1].points[0].thumbnail
    assert set(data.all_tags()["concept"]) == set(CONCEPTS)


def test_written_page_has_the_maps_and_every_image(report):
    data, out, _, labels = report
    index = write_report(data, out)
    text = index.read_text()
    for src in re.findall(r'<img src="([^"]+)"', text):
        assert (out / src).is_file()
    payload = json.loads(re.search(r'id="loce-data">(.*?)</script>', text, re.S).group(1))
    assert len(payload["maps"]) == 2 and len(payload["maps"][0]["points"]) == len(labels)
    for point in payload["maps"][0]["points"][:5]:
        assert (out / point["thumb"]).is_file() and len(point["nb"]) == 8


def test_a_run_without_analysis_contributes_nothing(tmp_path):
    from loce.report.collect import SectionContext, read_rows

    run, _, _ = make_run(tmp_path)
    context = SectionContext([run], read_rows([run]), tmp_path / "figs", {c: "#000000" for c in CONCEPTS})
    assert analysis_sections(context) == [] and context.maps == []


def _refuse_models(monkeypatch):
    import torch

    import loce.models

    def refuse(*args, **kwargs):
        raise AssertionError("building a report must not load a model or run a forward pass")

    monkeypatch.setattr(loce.models, "load_model", refuse)
    monkeypatch.setattr(torch.nn.Module, "__call__", refuse)


def test_building_a_report_loads_no_model_and_reuses_its_figures(tmp_path, monkeypatch):
    from loce.report.collect import build_report
    from loce.report.profile import SectionTimer

    _refuse_models(monkeypatch)
    run, _, _ = make_run(tmp_path)
    analyze_run(run, settings=AnalysisSettings(map_method="pca", ks=(1, 5)))
    first, second = SectionTimer(), SectionTimer()
    index = build_report([run], tmp_path / "report", examples_per_concept=1, progress=False, timer=first)
    figures = sorted((tmp_path / "report" / "img" / "figures").glob("analysis_*"))
    build_report([run], tmp_path / "report", examples_per_concept=1, progress=False, timer=second)
    assert sorted((tmp_path / "report" / "img" / "figures").glob("analysis_*")) == figures
    drawn = [name for name, _ in first.totals() if name.startswith("draw figures")]
    assert drawn and not [name for name, _ in second.totals() if name.startswith("draw figures")]
    assert "What was found" in index.read_text()


def test_report_shows_only_what_the_latest_analysis_lists(tmp_path):
    run, _, _ = make_run(tmp_path)
    analyze_run(run, settings=AnalysisSettings(map_method="pca", ks=(1, 5)))
    assert (run / "analysis" / "purity_clusters.parquet").is_file()
    analyze_run(
        run,
        concepts=["ball", "cube"],
        settings=AnalysisSettings(analyses=("retrieval",), map_method="pca", ks=(1,)),
    )
    data = collect_report([run], tmp_path / "report", examples_per_concept=0, progress=False)
    titles = [s.title for s in data.sections]
    for stale in ("Concept purity", "Outliers", "Sub-concepts", "Mixed clusters"):
        assert stale not in titles
    for section in data.sections[1:]:
        for table in section.tables:
            if "concept" in table.frame.columns:
                shown = set(table.frame["concept"].astype(str)) - {"(all)", "(mean of concepts)"}
                assert shown <= {"ball", "cube"}, (table.title, shown)
    headline = next(s for s in data.sections if s.title == "Distribution analyses").tables[0].frame
    assert "purity" not in headline.columns and set(headline["n_concepts"]) == {2}


@pytest.mark.parametrize("name", ["headline.parquet", "layers"])
def test_a_damaged_analysis_file_is_a_one_line_error_naming_it(tmp_path, capsys, name):
    from loce.cli.main import main

    run, _, _ = make_run(tmp_path)
    analyze_run(run, settings=AnalysisSettings(map_method="pca", ks=(1,)))
    if name == "layers":
        damaged = next((run / "analysis" / "layers").glob("*/loces.parquet"))
    else:
        damaged = run / "analysis" / name
    damaged.write_bytes(b"PAR1 this is not a parquet file")
    code = main(["report", str(run), "--out", str(tmp_path / "report"), "--no-progress", "--examples", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1, err
    assert str(damaged.parent if name == "layers" else damaged) in err[0] and "Traceback" not in err[0]
    assert "loce analyze" in err[0]


def test_findings_name_the_best_layer_with_its_chance_level(report):
    data, _, _, labels = report
    retrieval = [f for f in data.findings if "retrieval precision@1" in f.text]
    assert len(retrieval) == 1 and retrieval[0].link == "analysis-retrieval"
    n = len(labels) // len(CONCEPTS)  # equal concept sizes: chance (n - 1) / (N - 1)
    assert f"(chance {(n - 1) / (len(labels) - 1):.3f})" in retrieval[0].text
    assert any(f.topic == "which layer" and "concept purity" in f.text for f in data.findings)


def test_paper_protocol_numbers_get_their_own_labelled_section(tmp_path):
    run, _, _ = make_run(tmp_path)
    fast = AnalysisSettings(map_method="pca", ks=(1, 5), bootstrap=20)
    analyze_run(run, settings=fast)
    analyze_run(
        run, settings=AnalysisSettings(map_method="pca", ks=(1, 5), seeds=3, map_seeds=0), protocol="paper"
    )
    data = collect_report([run], tmp_path / "report", examples_per_concept=0, progress=False)
    (paper,) = [s for s in data.sections if s.title == "Paper protocol"]
    assert paper.key == "paper-protocol" and all("(protocol: paper)" in t.title for t in paper.tables)
    headline = next(t.frame for t in paper.tables if t.title.startswith("Headline"))
    assert set(headline["protocol"]) == {"paper"}
    default = next(s for s in data.sections if s.title == "Distribution analyses").tables[0].frame
    assert set(default["protocol"]) == {"default"}
    # the paper protocol's best-layer sentences follow the default's, under their own topic (first screen order)
    default_texts = [f.text for f in data.findings if f.topic == "which layer"]
    paper_texts = [f.text for f in data.findings if f.topic == "paper protocol"]
    assert any("(protocol: default)" in t for t in default_texts)
    assert any("(protocol: paper)" in t and "best layer" in t for t in paper_texts)
    assert not any("(protocol: paper)" in t for t in default_texts)
    assert all(f.link == "paper-protocol" for f in data.findings if "(protocol: paper)" in f.text)
