"""Layers in network order: recorded at fit time, used by the analysis tables, the method comparison and the report.

The model's modules are registered ``stem``, ``block10``, ``block4``: network order differs from both the
alphabetical order (``block10, block4, stem``) and the natural one (``block4, block10, stem``).
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from torch import nn

from loce.analysis.run import AnalysisSettings, analyze_run
from loce.baselines.compare import list_embeddings
from loce.data import load_coco
from loce.models import LoadedModel
from loce.pipeline import fit_run
from loce.preprocessing import Preprocessing
from loce.report.collect import overview_facts, quality_table
from loce.report.data import ReportData, Table, Tags
from loce.store import LayerOrder, LoCEStore, read_manifest
from loce.store.layer_order import module_depths
from planted_data import SIZE, write_planted_coco

NETWORK_ORDER = ["stem", "block10", "block4"]


class DepthNet(nn.Module):
    """Three spatial layers whose registration (= network) order is neither alphabetical nor natural."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.AvgPool2d(4)
        self.block10 = nn.AvgPool2d(2)
        self.block4 = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block4(self.block10(self.stem(x))).mean(dim=(2, 3))


def depth_model() -> LoadedModel:
    return LoadedModel(DepthNet().eval(), Preprocessing((SIZE, SIZE), (0.5,) * 3, (0.5,) * 3), spec="depth")


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    root = tmp_path_factory.mktemp("layer_order")
    ann, images = write_planted_coco(root / "data", n=6)
    run = root / "run"
    fit_run(load_coco(ann, images), depth_model(), ["block4", "stem", "block10"], run, settings={"steps": 20},
            progress=False)  # fmt: skip
    return run


def _analyze(run, out):
    settings = AnalysisSettings(analyses=("retrieval",), ks=(1,), figure_data=False, bootstrap=0)
    return analyze_run(run, settings=settings, out_dir=out)


def test_fit_records_each_layers_module_position(fitted):
    (job,) = read_manifest(fitted).jobs
    assert job["layer_depth"] == {"stem": 1, "block10": 2, "block4": 3}  # positions in named_modules()
    assert job["layer_depth"] == module_depths(DepthNet(), NETWORK_ORDER)


def test_headline_table_orders_layers_as_the_network(fitted, tmp_path):
    results, out = _analyze(fitted, tmp_path / "analysis")
    assert [r.layer for r in results] == NETWORK_ORDER
    for name in ("headline", "retrieval"):
        table = pd.read_csv(out / f"{name}.csv")
        assert list(dict.fromkeys(table["layer"])) == NETWORK_ORDER, name
    summary = json.loads((out / "summary.json").read_text())
    assert [entry["layer"] for entry in summary["layers"]] == NETWORK_ORDER


def test_runs_without_the_record_fall_back_to_natural_order(fitted, tmp_path):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(fitted, old)
    manifest = json.loads((old / "manifest.json").read_text())
    for job in manifest["jobs"]:
        del job["layer_depth"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    _, out = _analyze(old, tmp_path / "analysis")
    assert list(pd.read_csv(out / "headline.csv")["layer"]) == ["block4", "block10", "stem"]


def test_method_comparison_and_report_tables_follow_network_order(fitted):
    store = LoCEStore.open(fitted)
    assert list(list_embeddings(store)["layer"]) == NETWORK_ORDER
    rows = store.frame(status=None).assign(run="run")
    order = LayerOrder.from_runs([fitted])
    assert overview_facts(rows, layer_order=order)["layers"] == ", ".join(NETWORK_ORDER)
    assert list(dict.fromkeys(quality_table(rows, order)["layer"])) == NETWORK_ORDER
    frame = pd.DataFrame({"layer": ["block4", "block10", "stem"]})
    data = ReportData("t", overview_tables=[Table("t", frame, tags=Tags())], layer_order=order)
    assert data.all_tags()["layer"] == NETWORK_ORDER
    assert ReportData("t", overview_tables=[Table("t", frame)]).all_tags()["layer"] == [
        "block4",
        "block10",
        "stem",
    ]


def test_layer_order_per_model_and_unrecorded_layers_last():
    order = LayerOrder({("a", "late"): 5, ("a", "early"): 1, ("b", "late"): 0, ("b", "early"): 7})
    assert order.sort(["late", "early"], model="a") == ["early", "late"]
    assert order.sort(["late", "early"], model="b") == ["late", "early"]
    assert order.sort(["x10", "late", "x9"], model="a") == ["late", "x9", "x10"]
    pairs = [("b", "early"), ("a", "late"), ("b", "late"), ("a", "early")]
    assert order.sort_pairs(pairs) == [("a", "early"), ("a", "late"), ("b", "late"), ("b", "early")]
    frame = pd.DataFrame({"model": ["b", "a", "a"], "layer": ["early", "late", "early"], "v": [1, 2, 3]})
    assert list(order.sort_frame(frame)["v"]) == [3, 2, 1]
