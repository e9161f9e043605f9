"""Building shard tables from rows / columns: types, derived columns and every validation rule."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from loce.errors import StoreError
from loce.store import SCHEMA, build_table, mask_from_rle
from loce.store.query import matrix_from_lists

DEFAULTS = {"job": "j", "model": "m", "method": "loce", "settings_id": "sid"}


def ok_row(**extra):
    row = {
        "sample_id": "a",
        "image": "a.png",
        "concept": "cat",
        "layer": "l1",
        "status": "ok",
        "vector": [1.0, 2.0],
    }
    row.update(extra)
    return row


def test_rows_become_a_table_with_the_store_schema():
    mask = np.zeros((4, 5), bool)
    mask[1:3, 1:4] = True
    rows = [
        ok_row(iou=0.25, loss=-3.5, steps=50, mask=mask, box=(1, 1, 4, 3), attributes=[{"b": 2, "a": 1}]),
        {"sample_id": "b", "image": "sub/b.png", "status": "unreadable_image", "detail": "b.png is corrupt"},
    ]
    table = build_table(rows, defaults=DEFAULTS)
    assert table.schema.equals(SCHEMA)
    first, second = table.to_pylist()
    assert first["vector"] == [1.0, 2.0] and first["dim"] == 2
    assert (first["job"], first["model"], first["method"], first["settings_id"]) == ("j", "m", "loce", "sid")
    assert (first["mask_area"], first["mask_height"], first["mask_width"]) == (6, 4, 5)
    assert first["mask_fraction"] == pytest.approx(6 / 20)
    np.testing.assert_array_equal(mask_from_rle(first["mask_rle"], 4, 5), mask)
    assert first["box"] == [1.0, 1.0, 4.0, 3.0]
    assert json.loads(first["attributes"]) == [{"a": 1, "b": 2}]
    assert first["attributes"] == '[{"a": 1, "b": 2}]'  # keys sorted: identical rows give identical text
    assert second["concept"] is None and second["vector"] is None and second["dim"] is None
    assert second["detail"] == "b.png is corrupt"


def test_column_form_with_a_matrix_drops_vectors_of_skip_rows():
    X = np.arange(12, dtype=np.float64).reshape(3, 4)
    columns = {
        "sample_id": ["a", "b", "c"],
        "concept": ["cat"] * 3,
        "layer": ["l1"] * 3,
        "status": ["ok", "empty_mask", "ok"],
        "vector": X,
        "iou": np.array([0.5, np.nan, 1.0]),
        "loss": np.array([-1.0, np.nan, -2.0]),
        "steps": np.array([50, 0, 50]),
    }
    table = build_table(columns, defaults=DEFAULTS)
    assert table["vector"].to_pylist() == [[0, 1, 2, 3], None, [8, 9, 10, 11]]
    assert table["dim"].to_pylist() == [4, None, 4]
    assert table["iou"].to_pylist() == [0.5, None, 1.0]  # NaN of a skip -> null
    assert table["loss"].to_pylist() == [-1.0, None, -2.0]
    assert table["vector"].type == pa.list_(pa.float32())


def test_dataframe_and_arrow_inputs_give_the_same_table():
    rows = [ok_row(sample_id=s, vector=[float(i), -1.0], iou=0.1 * i) for i, s in enumerate("abc")]
    from_rows = build_table(rows, defaults=DEFAULTS)
    from_frame = build_table(pd.DataFrame(rows), defaults=DEFAULTS)
    from_arrow = build_table(from_rows)
    assert from_frame.equals(from_rows) and from_arrow.equals(from_rows)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (ok_row(vector=[1.0, float("nan")]), "NaN/inf/null.*sample_id='a'"),
        (ok_row(vector=[np.inf, 0.0]), "NaN/inf/null"),
        (ok_row(vector=None), "must have a vector"),
        (ok_row(vector=[]), "empty"),
        (ok_row(concept=None), "must have a concept"),
        (ok_row(layer=None), "must have a layer"),
        (ok_row(dim=3), "dim 3 != vector length 2"),
        (ok_row(iou=float("nan")), "iou of an 'ok' row is NaN"),
        (ok_row(iou=1.5), "outside \\[0, 1\\]"),
        (ok_row(box=[0, 0, 1]), "box"),
        (ok_row(box=[0, 0, 1, np.nan]), "box holds NaN"),
        (ok_row(attributes="{not json"), "not JSON"),
        (ok_row(image="/abs/a.png"), "relative"),
        (ok_row(image="../a.png"), "relative"),
        (ok_row(sample_id=None), "'sample_id' is required"),
        (ok_row(status=None), "'status' is required"),
        (ok_row(colour="red"), "unknown store column"),
        (ok_row(steps="fifty"), "'steps' cannot be stored"),
        (ok_row(mask=np.ones((2, 2)), mask_area=4), "either 'mask'"),
    ],
)
def test_invalid_rows_raise_a_store_error(row, message):
    with pytest.raises(StoreError, match=message):
        build_table([row], defaults=DEFAULTS)


def test_required_columns_without_defaults_raise():
    with pytest.raises(StoreError, match="'model' is required"):
        build_table([ok_row()])


def test_default_mismatch_and_duplicate_keys_raise():
    with pytest.raises(StoreError, match="column 'model' holds \\['other'\\] but this job's model is 'm'"):
        build_table([ok_row(model="other")], defaults=DEFAULTS)
    with pytest.raises(StoreError, match="duplicate key"):
        build_table([ok_row(), ok_row(vector=[3.0, 4.0])], defaults=DEFAULTS)
    # the same sample and concept in two layers is not a duplicate
    assert build_table([ok_row(), ok_row(layer="l2")], defaults=DEFAULTS).num_rows == 2


def test_column_lengths_must_agree():
    with pytest.raises(StoreError, match="different lengths"):
        build_table({"sample_id": ["a", "b"], "status": ["ok"]}, defaults=DEFAULTS)


def test_matrix_from_lists_handles_chunks_and_slices():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((5000, 64)).astype(np.float32)
    table = build_table(
        {
            "sample_id": [f"s{i}" for i in range(len(X))],
            "concept": ["c"] * len(X),
            "layer": ["l"] * len(X),
            "status": ["ok"] * len(X),
            "vector": X,
        },
        defaults=DEFAULTS,
    )
    # several chunks, each a slice with a nonzero offset into its buffers
    column = pa.chunked_array(
        [table["vector"].combine_chunks().slice(a, b - a) for a, b in [(7, 100), (100, 4990)]]
    )
    Y = matrix_from_lists(column)
    assert Y.dtype == np.float32 and Y.flags.c_contiguous
    np.testing.assert_array_equal(Y, X[7:4990])
    np.testing.assert_array_equal(Y[:3], np.array(column.to_pylist()[:3], dtype=np.float32))
    with pytest.raises(StoreError, match="different lengths"):
        matrix_from_lists(pa.array([[1.0], [1.0, 2.0]], pa.list_(pa.float32())))
    with pytest.raises(StoreError, match="null"):
        matrix_from_lists(pa.array([[1.0], None], pa.list_(pa.float32())))


def test_a_mask_shared_by_several_rows_is_encoded_for_each():
    a = np.zeros((3, 4), bool)
    a[0, :2] = True
    b = np.ones((3, 4), bool)
    rows = [ok_row(layer="l1", mask=a), ok_row(layer="l2", mask=a), ok_row(concept="dog", mask=b)]
    table = build_table(rows, defaults=DEFAULTS)
    decoded = [mask_from_rle(s, 3, 4) for s in table["mask_rle"].to_pylist()]
    for got, want in zip(decoded, [a, a, b]):
        np.testing.assert_array_equal(got, want)
    assert table["mask_area"].to_pylist() == [2, 2, 12]
