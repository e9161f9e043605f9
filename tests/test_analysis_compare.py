"""Side-by-side comparison across (model, layer) sets, and the analysis registry."""

from __future__ import annotations

import numpy as np
import pytest

from analysis_helpers import planted_concepts
from loce.analysis import ANALYSES, AnalysisError, compare


def sources():
    X, labels = planted_concepts()
    rng = np.random.default_rng(0)
    noise = rng.normal(size=X.shape) * 20  # a "layer" where the concepts are buried in noise
    return {("lite0", "_blocks.10"): (X, labels), ("lite0", "_blocks.4"): (X + noise, labels)}


def test_retrieval_side_by_side():
    table = compare(sources(), "retrieval", ks=[1, 5])
    assert table[["model", "layer"]].values.tolist() == [["lite0", "_blocks.10"], ["lite0", "_blocks.4"]]
    good, noisy = table["precision_at_1"]
    assert good > noisy and good > 0.6
    assert "mean_average_precision" in table.columns


@pytest.mark.parametrize("analysis", ["separation", "confusion", "purity", "outliers", "gmm"])
def test_every_registered_analysis_compares(analysis):
    table = compare(sources(), analysis)
    assert len(table) == 2 and table.notna().all().all()


def test_detail_tables_and_loader():
    data = sources()
    loaded = []

    def loader(key):
        loaded.append(key)
        return data[key]

    detail = compare(list(data), "separation", loader=loader, detail=True)
    assert loaded == list(data)
    assert set(detail["layer"]) == {"_blocks.10", "_blocks.4"} and "overlap_ij" in detail.columns
    assert len(detail) == 2 * 4 * 3


def test_unknown_names_are_clear():
    with pytest.raises(AnalysisError, match="registered"):
        compare(sources(), "tsne")
    with pytest.raises(AnalysisError, match="loader"):
        compare([("m", "l")], "retrieval")
    assert {"purity", "separation", "confusion", "retrieval", "outliers", "gmm"} <= set(ANALYSES)
