"""The run layout: every artefact's path, what a run holds, and distinct labels for runs of the same name."""

from __future__ import annotations

from pathlib import Path

import pytest

from loce.run_layout import RunLayout, run_labels, safe_name, unique_paths


def test_paths_of_the_documented_tree(tmp_path):
    layout = RunLayout(tmp_path)
    assert layout.manifest == tmp_path / "manifest.json"
    assert layout.shard("lite0", 12) == tmp_path / "loces" / "lite0-000012.parquet"
    assert layout.quarantine == tmp_path / "quarantine"
    assert layout.activation_cache == tmp_path / "cache" / "activations"
    assert layout.analysis().directory == tmp_path / "analysis"
    assert layout.analysis("paper").summary == tmp_path / "analysis_paper" / "summary.json"
    assert layout.analysis().tables("headline") == (
        tmp_path / "analysis" / "headline.csv",
        tmp_path / "analysis" / "headline.parquet",
    )
    assert layout.methods.index == tmp_path / "analysis" / "methods" / "index.json"
    assert layout.location.coords == tmp_path / "analysis" / "methods" / "location" / "coords.parquet"
    held_out = layout.localization("held out")
    assert held_out.directory == tmp_path / "localization" / "held_out"
    assert held_out.overlay("traffic light", "mean@_blocks.10", "img 1") == (
        tmp_path
        / "localization"
        / "held_out"
        / "heatmaps"
        / "traffic_light"
        / "mean@_blocks.10"
        / "img_1.png"
    )
    assert (
        held_out.heatmap_figure("mug") == tmp_path / "localization" / "held_out" / "figures" / "heatmaps_mug"
    )
    assert layout.cbm_model("loc").model == tmp_path / "cbm" / "loc" / "model.pt"
    assert layout.cbm_comparison().record == tmp_path / "cbm" / "comparison" / "comparison.json"
    with pytest.raises(KeyError):
        layout.analysis("papers")


def test_outputs_lists_only_finished_step_outputs(tmp_path):
    layout = RunLayout(tmp_path)
    assert all(layout.outputs(step) == [] for step in ("analysis", "methods", "localization", "cbm"))
    for name in ("b", "a"):
        layout.localization(name).directory.mkdir(parents=True)
        layout.localization(name).summary.write_text("concept\n")
    layout.localization_root.joinpath("unfinished").mkdir()  # no summary.csv: not an output
    layout.cbm_model("plain").directory.mkdir(parents=True)  # a trained model is not a comparison
    layout.cbm_model("plain").info.write_text("{}")
    layout.cbm_comparison().directory.mkdir(parents=True)
    layout.cbm_comparison().table.write_text("method\n")
    assert [o.name for o in layout.outputs("localization")] == ["a", "b"]
    assert [o.name for o in layout.outputs("cbm")] == ["comparison"]
    assert layout.outputs("methods") == []
    with pytest.raises(ValueError, match="unknown run step"):
        layout.outputs("nope")


def test_run_labels_tell_same_named_runs_apart(tmp_path):
    a, b, c = tmp_path / "a" / "RUN", tmp_path / "b" / "RUN", tmp_path / "c" / "other"
    labels = run_labels([a, b, c])
    assert labels == {a: "a/RUN", b: "b/RUN", c: "other"}
    assert run_labels([a]) == {a: "RUN"}
    deep = [tmp_path / "x" / "s" / "RUN", tmp_path / "y" / "s" / "RUN"]
    assert list(run_labels(deep).values()) == ["x/s/RUN", "y/s/RUN"]


def test_unique_paths_drops_the_same_folder_named_twice(tmp_path):
    (tmp_path / "RUN").mkdir()
    assert unique_paths([tmp_path / "RUN", tmp_path / "." / "RUN", tmp_path / "x"]) == [
        tmp_path / "RUN",
        tmp_path / "x",
    ]


def test_safe_name():
    assert safe_name("a b/c") == "a_b_c"
    assert safe_name("///") == "x"
    assert Path(safe_name("mug+duck")).name == "mug+duck"


def test_docstring_examples_pass():
    import doctest

    import loce.run_layout

    result = doctest.testmod(loce.run_layout, report=False)
    assert result.attempted > 0 and result.failed == 0, result
