"""Runs are identified by their full path and run id: two runs with the same folder name stay distinct."""

from __future__ import annotations

import pandas as pd
import pytest

from conftest_analysis_report import CONCEPTS, LAYERS, PER_CONCEPT, make_run
from loce.analysis.run import AnalysisSettings, analyze_run
from loce.localize.engine import LocalizationResult
from loce.localize.run import write_localization
from loce.report.collect import collect_report
from loce.run_layout import RunLayout
from loce.store import LoCEStore

pytest.importorskip("matplotlib")


def _localize(run, concept: str, iou: float) -> None:
    """What `loce localize --name held-out` writes (the engine's result is given, the writer is the real one)."""
    summary = pd.DataFrame({"concept": [concept], "layer": [LAYERS[0]], "kind": ["mean"], "iou": [iou]})
    result = LocalizationResult(
        per_map=summary.assign(image="x.png"), summary=summary, vectors=[], examples={}
    )
    write_localization(result, RunLayout(run).localization("held-out").directory, settings={"images": 3})


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """``a/run`` and ``b/run``: same folder name, same image file names, different LoCEs, analysed both."""
    root = tmp_path_factory.mktemp("same_name")
    runs = []
    for seed, (parent, iou) in enumerate((("a", 0.25), ("b", 0.75))):
        run, _, _ = make_run(root / parent, seed=seed)
        analyze_run(
            run, settings=AnalysisSettings(analyses=("retrieval",), figure_data=False, progress=False)
        )
        _localize(run, CONCEPTS[0], iou)
        runs.append(run)
    data = collect_report(runs, root / "report", examples_per_concept=1, progress=False)
    return runs, data


def test_runs_with_the_same_folder_name_appear_distinctly(two_runs):
    (a, b), data = two_runs
    assert a.name == b.name == "run"
    assert data.overview["runs"] == 2
    assert data.overview["images"] == 2 * len(CONCEPTS) * PER_CONCEPT  # same file names, different runs
    assert data.overview["LoCEs"] == 2 * len(CONCEPTS) * PER_CONCEPT * len(LAYERS)
    assert "a/run" in data.title and "b/run" in data.title

    sections = {s.key: s for s in data.sections}
    headline = sections["analysis-summary"].tables[0].frame
    assert sorted(headline["run"].unique()) == ["a/run", "b/run"]
    assert len(headline) == 2 * len(LAYERS)

    localization = sections["localization"].tables
    assert [t.title for t in localization] == [
        "Localisation · a/run · held-out",
        "Localisation · b/run · held-out",
    ]
    assert [float(t.frame["iou"].iloc[0]) for t in localization] == [0.25, 0.75]  # each run's own output

    examples = [g.caption for g in sections["examples"].galleries]
    assert examples == ["Examples of a/run", "Examples of b/run"]


def test_report_names_each_run_by_full_path_and_run_id(two_runs):
    (a, b), data = two_runs
    ids = [LoCEStore.open(run).run_id for run in (a, b)]
    assert ids[0] != ids[1]
    for run, run_id in zip((a, b), ids):
        assert f"{run.resolve()} (run {run_id[:8]})" in data.subtitle


def test_the_same_run_named_twice_is_reported_once(two_runs, tmp_path):
    (a, _), _ = two_runs
    data = collect_report(
        [a, a.parent / "." / a.name], tmp_path / "report", examples_per_concept=0, progress=False
    )
    assert "runs" not in data.overview  # one run
    assert data.overview["LoCEs"] == len(CONCEPTS) * PER_CONCEPT * len(LAYERS)
