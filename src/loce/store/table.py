"""Build a validated shard table from plain rows or column arrays.

Writers (the ``loce fit`` pipeline, the baseline embedders) hand over what they have -- a list of dict rows, a
dict of columns (a 2-D ``N x D`` array for ``vector`` is fine), a pandas DataFrame or an Arrow table -- and get
back an Arrow table with exactly :data:`~loce.store.schema.SCHEMA`, or a :class:`StoreError` saying which row and
column is wrong. A ``mask`` entry (boolean ``H x W`` arrays) is turned into ``mask_rle``, ``mask_area``,
``mask_height``, ``mask_width`` and ``mask_fraction``.

Rules checked: required columns present; ``ok`` rows carry a finite vector of length ``dim`` and name their
concept and layer; IoU is in [0, 1]; boxes have 4 finite numbers; ``attributes`` is JSON; ``image`` is a relative
path; no key ``(sample_id, concept, layer, method)`` appears twice. Vectors of skip rows are dropped (a skip's zero
vector is not an embedding) and their NaN metrics become null.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loce.errors import StoreError
from loce.store.rle import rle_from_mask
from loce.store.schema import COLUMNS, KEY_COLUMNS, OK, REQUIRED_COLUMNS, SCHEMA

MASK_DERIVED = ("mask_rle", "mask_area", "mask_height", "mask_width", "mask_fraction")


def build_table(data: Any, defaults: Mapping[str, Any] | None = None) -> pa.Table:
    """Turn rows or columns into a validated Arrow table with the store schema.

    Args:
        data: a list of dict rows, a dict of columns (sequences or arrays of equal length), a pandas DataFrame or
            a ``pyarrow.Table``. Keys are store columns (see ``docs/STORE.md``) plus the optional ``mask``.
        defaults: values for columns the data leaves out (e.g. ``{"job": "lite0", "model": "efficientnet-lite0"}``);
            when the data does give such a column, every value must equal the default.

    Returns:
        A ``pyarrow.Table`` with :data:`~loce.store.schema.SCHEMA`.

    Raises:
        StoreError: naming the column (and the first bad row's sample, concept and layer) and the problem.

    Example:
        >>> t = build_table(
        ...     [{"sample_id": "img1", "image": "img1.jpg", "concept": "cat", "layer": "l1", "status": "ok",
        ...       "vector": [0.5, -1.0], "iou": 0.8}],
        ...     defaults={"job": "j", "model": "m", "method": "loce"})
        >>> t.num_rows, t["dim"][0].as_py()
        (1, 2)
    """
    columns = _as_columns(data)
    n = _row_count(columns)
    columns = _apply_defaults(columns, defaults or {}, n)
    unknown = sorted(set(columns) - set(COLUMNS) - {"mask"})
    if unknown:
        raise StoreError(
            f"unknown store column(s) {unknown}; the store's columns are {COLUMNS} (plus 'mask')"
        )
    if "mask" in columns:
        columns = _expand_masks(columns, n)
    arrays = {name: _to_arrow(name, columns.get(name), n) for name in COLUMNS}
    return _validate(arrays, n)


def _as_columns(data: Any) -> dict[str, Any]:
    if isinstance(data, pa.Table):
        return {name: data[name] for name in data.column_names}
    if hasattr(data, "columns") and hasattr(data, "iloc"):  # pandas DataFrame
        return {str(name): list(data[name]) for name in data.columns}
    if isinstance(data, Mapping):
        return dict(data)
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        keys: dict[str, None] = {}
        for row in data:
            if not isinstance(row, Mapping):
                raise StoreError(f"rows must be dicts of column -> value, got a {type(row).__name__}")
            keys.update(dict.fromkeys(row))
        return {k: [row.get(k) for row in data] for k in keys}
    raise StoreError(
        f"cannot build a shard from a {type(data).__name__}; pass a list of dict rows, a dict of columns, "
        "a pandas DataFrame or a pyarrow Table"
    )


def _row_count(columns: Mapping[str, Any]) -> int:
    lengths = {name: len(values) for name, values in columns.items()}
    if len(set(lengths.values())) > 1:
        raise StoreError(f"columns have different lengths: {lengths}")
    return next(iter(lengths.values()), 0)


def _apply_defaults(columns: dict[str, Any], defaults: Mapping[str, Any], n: int) -> dict[str, Any]:
    for name, value in defaults.items():
        if name not in columns:
            columns[name] = [value] * n
            continue
        given = columns[name]
        given = given.to_pylist() if isinstance(given, (pa.Array, pa.ChunkedArray)) else list(given)
        wrong = sorted({str(v) for v in given if v != value})
        if wrong:
            raise StoreError(f"column {name!r} holds {wrong[:3]} but this job's {name} is {value!r}")
    return columns


def _expand_masks(columns: dict[str, Any], n: int) -> dict[str, Any]:
    clash = [name for name in MASK_DERIVED if name in columns]
    if clash:
        raise StoreError(f"give either 'mask' or the columns {clash} derived from it, not both")
    rle, area, height, width, fraction = [], [], [], [], []
    encoded: dict[
        int, tuple
    ] = {}  # one mask object shared by a concept's rows of several layers is encoded once
    masks = columns.pop("mask")
    for mask in masks:
        if mask is None:
            values = (None, None, None, None, None)
        elif id(mask) in encoded:
            values = encoded[id(mask)]
        else:
            array = np.asarray(mask)
            count = int(np.count_nonzero(array))
            values = (rle_from_mask(array), count, array.shape[0], array.shape[1], count / array.size)
            encoded[id(mask)] = values
        for out, value in zip((rle, area, height, width, fraction), values):
            out.append(value)
    columns.update(mask_rle=rle, mask_area=area, mask_height=height, mask_width=width, mask_fraction=fraction)
    return columns


def _to_arrow(name: str, values: Any, n: int) -> pa.Array:
    typ = SCHEMA.field(name).type
    if values is None:
        return pa.nulls(n, type=typ)
    try:
        if isinstance(values, (pa.Array, pa.ChunkedArray)):
            arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
            return arr.cast(typ)
        if name in ("vector", "box"):
            return _list_array(values, n)
        if name == "attributes":
            values = [_attributes_json(v) for v in values]
        if isinstance(values, np.ndarray) and values.dtype.kind == "f" and pa.types.is_integer(typ):
            values = [None if not np.isfinite(v) else int(v) for v in values]
        return pa.array(list(values) if not isinstance(values, np.ndarray) else values, type=typ)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
        raise StoreError(f"column {name!r} cannot be stored as {typ}: {exc}") from None


def _attributes_json(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=_json_default, allow_nan=False)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def _list_array(values: Any, n: int) -> pa.ListArray:
    """A ``list<float32>`` array from an ``N x D`` array or a sequence of 1-D arrays / lists / ``None``."""
    if isinstance(values, np.ndarray) and values.ndim == 2:
        flat = np.ascontiguousarray(values, dtype=np.float32).ravel()
        offsets = np.arange(n + 1, dtype=np.int64) * values.shape[1]
        return pa.ListArray.from_arrays(pa.array(_int32_offsets(offsets)), pa.array(flat))
    parts, lengths, missing = [], np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool)
    for i, v in enumerate(values):
        if v is None:
            missing[i] = True
            continue
        part = np.asarray(v, dtype=np.float32).ravel()
        parts.append(part)
        lengths[i] = part.size
    flat = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
    offsets = _int32_offsets(np.concatenate([[0], np.cumsum(lengths)]))
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat), mask=pa.array(missing))


def _int32_offsets(offsets: np.ndarray) -> np.ndarray:
    if offsets[-1] > np.iinfo(np.int32).max:
        raise StoreError(
            f"{offsets[-1]} vector values are too many for one shard; append fewer images at a time"
        )
    return offsets.astype(np.int32)


def _validate(arrays: dict[str, pa.Array], n: int) -> pa.Table:
    def where(index: int) -> str:
        return ", ".join(f"{k}={arrays[k][index].as_py()!r}" for k in ("sample_id", "concept", "layer"))

    def first(mask: pa.Array) -> int | None:
        hits = np.flatnonzero(mask.fill_null(False).to_numpy(zero_copy_only=False))
        return int(hits[0]) if hits.size else None

    for name in REQUIRED_COLUMNS:
        if arrays[name].null_count:
            bad = first(pc.is_null(arrays[name]))
            raise StoreError(f"column {name!r} is required but missing or null (row {bad}: {where(bad)})")
    ok = pc.equal(arrays["status"], OK)
    skip = pc.invert(ok)

    # Skip rows: no vector, no dim, NaN metrics -> null.
    arrays["vector"] = pc.if_else(skip, pa.nulls(n, arrays["vector"].type), arrays["vector"])
    arrays["dim"] = pc.if_else(skip, pa.nulls(n, pa.int32()), arrays["dim"])
    for name in ("iou", "loss", "mask_fraction"):
        arrays[name] = pc.if_else(
            pc.and_(skip, pc.is_nan(arrays[name])), pa.nulls(n, pa.float64()), arrays[name]
        )

    for name in ("concept", "layer", "vector"):
        bad = first(pc.and_(ok, pc.is_null(arrays[name])))
        if bad is not None:
            raise StoreError(
                f"an 'ok' row must have a {name} (row {bad}: {where(bad)}); give a skip status instead"
            )
    vectors = arrays["vector"]
    lengths = pc.list_value_length(vectors)
    finite = pc.is_finite(vectors.flatten()).fill_null(False).to_numpy(zero_copy_only=False)
    if not finite.all():
        row_of_value = np.repeat(np.arange(n), lengths.fill_null(0).to_numpy(zero_copy_only=False))
        bad = int(row_of_value[np.flatnonzero(~finite)[0]])
        raise StoreError(f"the vector of an 'ok' row holds NaN/inf/null (row {bad}: {where(bad)})")
    bad = first(pc.and_(ok, pc.equal(lengths, 0)))
    if bad is not None:
        raise StoreError(f"the vector of an 'ok' row is empty (row {bad}: {where(bad)})")
    dim = arrays["dim"]
    bad = first(pc.and_(pc.is_valid(dim), pc.not_equal(dim, lengths.cast(pa.int32()))))
    if bad is not None:
        raise StoreError(
            f"dim {dim[bad].as_py()} != vector length {lengths[bad].as_py()} (row {bad}: {where(bad)})"
        )
    arrays["dim"] = pc.if_else(ok, lengths.cast(pa.int32()), dim)

    iou = arrays["iou"]
    bad = first(pc.and_(ok, pc.is_nan(iou)))
    if bad is not None:
        raise StoreError(
            f"the iou of an 'ok' row is NaN (row {bad}: {where(bad)}); use null when there is none"
        )
    bad = first(pc.or_(pc.less(iou, 0.0), pc.greater(iou, 1.0)))
    if bad is not None:
        raise StoreError(f"iou {iou[bad].as_py()} is outside [0, 1] (row {bad}: {where(bad)})")

    boxes = arrays["box"]
    bad = first(pc.and_(pc.is_valid(boxes), pc.not_equal(pc.list_value_length(boxes), 4)))
    if bad is not None:
        raise StoreError(f"box {boxes[bad].as_py()} must be [x0, y0, x1, y1] (row {bad}: {where(bad)})")
    box_values = boxes.flatten()
    if box_values.null_count or (len(box_values) and not pc.all(pc.is_finite(box_values)).as_py()):
        raise StoreError("a box holds NaN/inf/null; give None for a missing box")

    for index, text in enumerate(arrays["attributes"].to_pylist()):
        if text is not None:
            try:
                json.loads(text)
            except json.JSONDecodeError:
                raise StoreError(
                    f"attributes {text[:60]!r} is not JSON (row {index}: {where(index)})"
                ) from None
    for image in set(arrays["image"].to_pylist()) - {None}:
        if (
            PurePosixPath(image).is_absolute()
            or PureWindowsPath(image).is_absolute()
            or ".." in image.split("/")
        ):
            raise StoreError(
                f"image path {image!r} must be relative to the run's image root (e.g. Sample.rel_path), "
                "without '..'"
            )

    table = pa.Table.from_arrays([arrays[name] for name in COLUMNS], schema=SCHEMA)
    _check_unique_keys(table)
    return table


def _check_unique_keys(table: pa.Table) -> None:
    counts = table.group_by(KEY_COLUMNS, use_threads=False).aggregate([([], "count_all")])
    dup = counts.filter(pc.greater(counts["count_all"], 1))
    if dup.num_rows:
        key = {k: dup[k][0].as_py() for k in KEY_COLUMNS}
        raise StoreError(f"the rows hold {dup.num_rows} duplicate key(s) {KEY_COLUMNS}, e.g. {key}")
