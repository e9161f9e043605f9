"""compare-methods: one table over methods and layers, its files, k-NN grids, and the report sections."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loce.analysis import concept_purity, retrieval_scores
from loce.baselines import compare_methods, embed_run, write_method_comparison
from loce.baselines.outputs import methods_dir, neighbour_rows, read_index
from loce.data import load_coco
from loce.errors import StoreError
from loce.pipeline import fit_run
from loce.report.collect import SectionContext
from loce.report.sections_methods import method_sections
from loce.store import LoCEStore
from planted_data import planted_model, write_planted_coco


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    ann, images = write_planted_coco(root / "data", n=12)
    dataset = load_coco(ann, images)
    out = root / "run"
    fit_run(dataset, planted_model(), ["pool"], out, batch_size=6, progress=False)
    for method in ("crop", "window", "global"):
        embed_run(dataset, planted_model(), ["pool"], out, method=method, batch_size=6, progress=False)
    return out


def test_table_has_every_method_and_matches_the_analyses(run):
    comparison = compare_methods(run, ks=(1, 5))
    table = comparison.table.set_index("method")
    assert list(comparison.table["method"]) == ["loce", "crop", "window", "global"]
    assert table.at["window", "dim"] == 27 and table.at["loce", "n"] == 24 and table.at["global", "n"] == 2
    X, meta = LoCEStore.open(run).vectors(layer="pool", method="window")
    labels = meta["concept"].to_numpy()
    expected = retrieval_scores(X, labels, ks=(1, 5))
    assert table.at["window", "precision_at_5"] == pytest.approx(expected.precision_at(5))
    assert table.at["window", "mean_average_precision"] == pytest.approx(expected.mean_average_precision)
    assert table.at["window", "purity"] == pytest.approx(concept_purity(X, labels).purity)
    # global vectors: only their count and projection IoU; the LoCEs' mean IoU is their fit IoU
    assert table.loc["global", ["precision_at_1", "purity", "mean_separation"]].isna().all()
    assert 0 < table.at["global", "mean_iou"] <= 1 and 0 < table.at["loce", "mean_iou"] <= 1
    assert np.isnan(table.at["crop", "mean_iou"])
    assert "pool: best mAP" in comparison.headline()
    with pytest.raises(StoreError, match="no vectors"):
        compare_methods(run, layers=["nope"])


def test_neighbour_grid_rows_are_nearest_first_without_the_query(run):
    rows = neighbour_rows(LoCEStore.open(run), "window", "pool", k=4, queries_per_concept=2)
    assert len(rows) == 4  # 2 concepts x 2 queries
    for query, neighbours in rows:
        concept = query.title.split(" · ")[1]
        assert len(neighbours) == 4
        distances = [float(t.title.split(" · ")[1]) for t in neighbours]
        assert distances == sorted(distances)
        # planted data: squares and disks are far apart, so every neighbour has the query's concept
        assert all(t.title.startswith(concept) for t in neighbours)
        if concept == "blue":  # a disk's crop: its corners are the black canvas
            assert (query.image[0, 0] == 0).all() and (query.image[-1, -1] == 0).all()


def test_files_and_report_sections(run, tmp_path):
    comparison = compare_methods(run, ks=(1, 5))
    written = write_method_comparison(run, comparison, knn_k=3)
    assert all(p.exists() for p in written)
    saved = pd.read_csv(methods_dir(run) / "comparison.csv")
    assert list(saved["method"]) == list(comparison.table["method"])
    index = read_index(methods_dir(run))
    kinds = [f["kind"] for f in index["figures"]]
    assert (
        kinds.count("comparison") == 1 and kinds.count("knn") == 3
    )  # loce, crop, window (no grid for global)
    context = SectionContext(runs=[run], rows=pd.DataFrame(), figures=tmp_path, colors={})
    sections = method_sections(context)
    assert [s.title for s in sections] == ["LoCEs and object-embedding baselines"]
    assert len(sections[0].figures) == 4 and sections[0].tables[0].frame.shape[0] == 4
    assert all(f.path.exists() for f in sections[0].figures)
    empty = SectionContext(runs=[tmp_path], rows=pd.DataFrame(), figures=tmp_path, colors={})
    assert method_sections(empty) == []
