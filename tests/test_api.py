"""The public API a notebook user meets (issue 14, point 7): ``import loce`` gives the verbs lazily, their
arguments agree, and printing a result says what it holds in a few lines."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import loce
from analysis_helpers import planted_concepts
from loce.reprs import short_repr, summarize

VERBS = ("load_coco", "load_voc", "load_folder", "generate_scenes", "load_model", "fit_run", "embed_run")
VERBS += ("analyze_run", "build_report", "open_run")


def test_import_loce_is_light_and_the_verbs_load_on_first_use():
    code = (
        "import sys, loce; before = {'torch', 'pandas', 'numpy'} & set(sys.modules); "
        "loce.fit_run; print(sorted(before), 'torch' in sys.modules)"
    )
    path = str(Path(loce.__file__).parents[1])
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={"PYTHONPATH": path}
    ).stdout.split()
    assert out == ["[]", "True"]


def test_every_verb_is_an_attribute_listed_in_all_and_dir():
    for name in VERBS:
        assert name in loce.__all__ and name in dir(loce)
        assert callable(getattr(loce, name))
    assert loce.open_run == loce.LoCEStore.open
    with pytest.raises(AttributeError, match="no attribute 'fit_runs'"):
        loce.fit_runs  # noqa: B018


def test_the_run_verbs_take_what_they_read_first_and_out_next():
    """fit_run and embed_run: (dataset, model, layers, out); analyze and report: (run(s), ...), out a keyword
    or the second argument; everything else keyword-only."""
    for verb in (loce.fit_run, loce.embed_run):
        parameters = list(inspect.signature(verb).parameters.values())
        positional = [p.name for p in parameters if p.kind is p.POSITIONAL_OR_KEYWORD]
        assert positional[:2] == ["dataset", "model"] and "out" in positional and "layers" in positional
        assert positional.index("out") <= 3
        assert "method" in inspect.signature(verb).parameters or verb is loce.fit_run


# ----------------------------------------------------------------------------------------------------- reprs
def test_summaries_of_values():
    assert summarize(np.zeros((3, 4), np.float32)) == "array 3x4 float32"
    assert summarize(list(range(9))) == "[9 items]"
    assert summarize({"a": 1, "b": 2}) == "{'a': 1, 'b': 2}"
    assert summarize({f"k{i}": np.zeros(2) for i in range(9)}) == "{9 items: k0, k1, k2, k3, ...}"
    assert summarize(Path("/tmp/run")) == "'/tmp/run'"
    assert summarize("x" * 200).endswith("...'") and len(summarize("x" * 200)) <= 62


@pytest.fixture(scope="module")
def analysed():
    from loce.analysis.run import AnalysisSettings, analyze_vectors

    X, labels = planted_concepts(seed=0, dim=16)
    ids = np.array([f"s{i}" for i in range(len(labels))])
    settings = AnalysisSettings(
        bootstrap=20, map_method="pca", analyses=("retrieval", "purity", "subconcepts")
    )
    return analyze_vectors(X, labels, ids, settings, model="m", layer="layer3"), X, labels


def test_a_layer_analysis_prints_in_a_few_lines_that_say_what_it_holds(analysed):
    result, X, labels = analysed
    text = repr(result)
    assert len(text.splitlines()) <= 8 and len(text) < 1000, text
    assert "LayerAnalysis(model='m', layer='layer3'" in text
    assert f"n_loces={len(labels)}" in text and "tables={" in text and "headline={" in text
    assert "notes=" in text


def test_analysis_results_print_shortly(analysed):
    from loce.analysis import concept_purity, fit_gmms, retrieval_scores

    _, X, labels = analysed
    for result in (
        retrieval_scores(X, labels, ks=[1, 5]),
        concept_purity(X, labels),
        fit_gmms(X, labels, n_dims=2),
    ):
        text = repr(result)
        assert len(text.splitlines()) <= 6, text
        assert text.startswith(type(result).__name__ + "(")
        assert "array " in text or " items" in text  # arrays by their shape, collections by their size


def test_a_run_summary_prints_shortly(tmp_path):
    from loce.runs import RunSummary

    summary = RunSummary(tmp_path, "loce.m", "loce", ["a", "b"], images_total=500, images_done_before=0)
    summary.skips = {f"reason_{i}": i for i in range(30)}
    text = repr(summary)
    assert len(text.splitlines()) <= 6 and "images_total=500" in text and "skips={30 items" in text
    assert short_repr(summary) == text
