"""End to end on a tiny rendered scene world with real EfficientNet-Lite0 features (slow):
``loce fit`` (two layers) -> ``loce cbm train`` (plain and Loc-CBM, default layer) -> ``loce cbm eval`` ->
``loce localize`` -> the report.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    pytest.importorskip("pybullet")
    pytest.importorskip("efficientnet_lite_pytorch")
    from loce.cli.main import main
    from loce.scenes import generate_scenes

    root = tmp_path_factory.mktemp("cbm_world")
    scenes = generate_scenes(root / "scenes", n=24, seed=0, progress=False, workers=0)
    run = root / "RUN"
    coco = ["--coco", str(scenes / "annotations.json"), "--images", str(scenes / "images")]
    assert (
        main(
            [
                "fit",
                "--model",
                "efficientnet-lite0",
                "--layers",
                "_blocks.10,_blocks.14",
                *coco,
                "--out",
                str(run),
                "--no-progress",
            ]
        )
        == 0
    )
    cache = str(
        run / "cache" / "activations"
    )  # the run's activation cache: fit already forwarded these images
    for name, flag in (("plain", "--no-locator"), ("loc", "--locator")):
        assert (
            main(
                [
                    "cbm",
                    "train",
                    "--scenes",
                    str(scenes),
                    "--out",
                    str(run / "cbm" / name),
                    flag,
                    "--epochs",
                    "8",
                    "--cache",
                    cache,
                    "--no-progress",
                ]
            )
            == 0
        )
    return scenes, run, coco


def test_cbm_eval_compares_plain_loc_and_loce(world):
    from loce.cli.main import main

    scenes, run, _ = world
    info = json.loads((run / "cbm" / "loc" / "cbm.json").read_text())
    assert info["config"]["locator"] is True and info["layer"] == "_blocks.10"
    assert len(info["split"]["test"]) == 6  # a quarter of 24
    folders = sorted(p for p in (run / "cache" / "activations").iterdir() if p.is_dir())
    # fit (two layers) and both models (one of them) shared one entry per (image, layer): 24 images
    assert [len(list(f.glob("*.npz"))) for f in folders] == [24, 24]
    assert (
        main(
            [
                "cbm",
                "eval",
                str(run / "cbm" / "plain"),
                str(run / "cbm" / "loc"),
                "--loce-run",
                str(run),
                "--examples",
                "3",
                "--no-progress",
            ]
        )
        == 0
    )
    out = run / "cbm" / "comparison"
    table = pd.read_csv(out / "comparison.csv")
    assert table["method"].tolist() == ["CBM", "Loc-CBM", "LoCE mean"]
    assert table["layer"].tolist() == ["_blocks.10"] * 3
    assert table["n_maps"].nunique() == 1 and table["n_maps"].iloc[0] > 6
    for column in ("alignment_error", "pointing_game", "activation_l1", "iou"):
        assert table[column].between(0, 1).all(), column
    assert table["accuracy"].iloc[:2].between(0, 1).all() and np.isnan(table["accuracy"].iloc[2])
    assert (out / "figures" / "heatmaps.jpg").is_file() and (out / "figures" / "metrics.png").is_file()
    per_map = pd.read_csv(out / "per_map.csv")
    assert set(per_map["method"]) == set(table["method"])


def test_localize_cli_and_the_report_show_the_results(world, tmp_path):
    from loce.cli.main import main
    from loce.report.collect import build_report

    scenes, run, coco = world
    assert (
        main(
            [
                "localize",
                str(run),
                "--concept",
                "table,duck",
                "--kinds",
                "mean,loce",
                *coco,
                "--examples",
                "2",
                "--no-progress",
            ]
        )
        == 0
    )
    summary = pd.read_csv(run / "localization" / "table+duck" / "summary.csv")
    assert set(summary["kind"]) == {"mean", "loce"} and set(summary["concept"]) == {"table", "duck"}
    # the LoCEs were fitted on these very images: their concept means must find the tables
    table_mean = summary[(summary["concept"] == "table") & (summary["kind"] == "mean")].iloc[0]
    assert table_mean["pointing_game"] > 0.6
    if not (run / "cbm" / "comparison" / "comparison.csv").is_file():
        assert (
            main(
                [
                    "cbm",
                    "eval",
                    str(run / "cbm" / "plain"),
                    str(run / "cbm" / "loc"),
                    "--loce-run",
                    str(run),
                    "--examples",
                    "2",
                    "--no-progress",
                ]
            )
            == 0
        )
    index = build_report([run], tmp_path / "report", examples_per_concept=0, progress=False)
    page = index.read_text(encoding="utf-8")
    assert "Concept bottleneck with a concept locator" in page
    assert "Where the model sees each concept" in page
    assert "Loc-CBM" in page and "alignment_error" in page
    copied = {p.name.split("-")[0] for p in (tmp_path / "report").rglob("*") if p.suffix in (".png", ".jpg")}
    assert {"heatmaps", "metrics", "heatmaps_table"} <= copied
