"""The columns of a LoCE store shard: one Arrow schema, its version, and a sentence per column.

Every shard (``RUN/loces/<job>-NNNNNN.parquet``) is written with exactly this schema, so any Parquet reader sees
the same columns and types in every file. The version follows one rule (see ``docs/STORE.md``): the minor number
grows when columns are added (old readers ignore them, new readers read missing columns of old shards as null);
the major number grows when a column is removed, renamed or changes type (readers refuse a newer major).
"""

from __future__ import annotations

import pyarrow as pa

from loce.errors import StoreError

FORMAT_NAME = "loce-store"
FORMAT_VERSION = "1.1"

# Shard-level Parquet key-value metadata keys.
META_FORMAT = b"loce.format"
META_FORMAT_VERSION = b"loce.format_version"
META_JOB = b"loce.job"
META_KIND = b"loce.shard_kind"
"""Present (value ``annotation_skips``) on the shard ``<job>-000000.parquet`` of annotation-time skips."""

OK = "ok"
"""The ``status`` of a row that carries a LoCE vector; every other status is a recorded skip."""

# name, Arrow type, nullable, description
_COLUMNS: list[tuple[str, pa.DataType, bool, str]] = [
    ("sample_id", pa.string(), False, "Stable id of the image within its dataset (the resume key)."),
    (
        "image",
        pa.string(),
        True,
        "Image path relative to the run's image root (manifest `image_root`), '/'-separated.",
    ),
    ("concept", pa.string(), True, "Concept name; null only on a skip row that concerns the whole image."),
    (
        "layer",
        pa.string(),
        True,
        "Layer name in the model; null only on a skip row that concerns the whole image.",
    ),
    ("model", pa.string(), False, "Model spec string (as given to `loce fit --model`)."),
    ("method", pa.string(), False, "How the vector was made: 'loce' (fitted LoCE) or a baseline's name."),
    ("job", pa.string(), False, "Name of the job (manifest `jobs[].name`) that wrote the row."),
    ("status", pa.string(), False, "'ok' when the row carries a vector, else a short skip reason."),
    ("detail", pa.string(), True, "A sentence explaining a skip (null on ok rows)."),
    ("vector", pa.list_(pa.float32()), True, "The embedding (float32, length `dim`); null on skip rows."),
    ("dim", pa.int32(), True, "Length of `vector` (the layer's channel count for LoCEs)."),
    (
        "iou",
        pa.float64(),
        True,
        "IoU of the thresholded projection (> 0.5) with the mask, at mask resolution.",
    ),
    ("loss", pa.float64(), True, "Final value of the fitting objective."),
    ("steps", pa.int32(), True, "Optimiser steps taken."),
    ("mask_area", pa.int64(), True, "Number of mask pixels (at the image's own resolution)."),
    ("mask_fraction", pa.float64(), True, "mask_area / (mask_height * mask_width)."),
    ("mask_height", pa.int32(), True, "Height of the mask (= the image's height) in pixels."),
    ("mask_width", pa.int32(), True, "Width of the mask (= the image's width) in pixels."),
    (
        "mask_rle",
        pa.string(),
        True,
        "The concept mask as a COCO compressed RLE `counts` string (column-major).",
    ),
    (
        "box",
        pa.list_(pa.float32()),
        True,
        "Box enclosing the concept's instances: [x0, y0, x1, y1] in pixels.",
    ),
    (
        "attributes",
        pa.string(),
        True,
        "JSON text of the concept's instance attributes (a list, one per instance).",
    ),
    ("settings_id", pa.string(), True, "Id of the fit settings (manifest `jobs[].settings_id`)."),
    (
        "iou_convention",
        pa.string(),
        True,
        "How `iou` was scored: 'paper' (the publication's way) or 'native'; null (written before 1.1) = native.",
    ),
]

COLUMN_DOCS: dict[str, str] = {name: doc for name, _, _, doc in _COLUMNS}
"""Column name -> one-sentence description (also stored as Parquet field metadata ``description``)."""

COLUMNS: list[str] = [name for name, _, _, _ in _COLUMNS]
REQUIRED_COLUMNS: list[str] = [name for name, _, nullable, _ in _COLUMNS if not nullable]
STRING_COLUMNS: list[str] = [name for name, typ, _, _ in _COLUMNS if typ == pa.string()]
KEY_COLUMNS: list[str] = ["sample_id", "concept", "layer", "method"]
"""Within one job, at most one row per key."""

HEAVY_COLUMNS: list[str] = ["vector", "mask_rle"]
"""Columns that metadata reads leave out unless asked for."""

SCHEMA: pa.Schema = pa.schema(
    [
        pa.field(name, typ, nullable=nullable, metadata={"description": doc})
        for name, typ, nullable, doc in _COLUMNS
    ],
    metadata={META_FORMAT: FORMAT_NAME.encode(), META_FORMAT_VERSION: FORMAT_VERSION.encode()},
)
"""The Arrow schema of every shard."""


def parse_version(version: str) -> tuple[int, int]:
    """``"1.2"`` -> ``(1, 2)``; raises :class:`StoreError` on anything else.

    Example:
        >>> parse_version("1.0")
        (1, 0)
    """
    try:
        major, minor = (int(p) for p in str(version).split("."))
    except ValueError:
        raise StoreError(f"unrecognised store format version {version!r} (expected 'MAJOR.MINOR')") from None
    return major, minor


def check_readable(version: str, where: str) -> None:
    """Raise :class:`StoreError` when a store written in ``version`` cannot be read by this ``loce``.

    Args:
        version: the format version found on disk.
        where: the file it was found in (for the message).
    """
    ours = parse_version(FORMAT_VERSION)
    theirs = parse_version(version)
    if theirs[0] != ours[0]:
        newer = "a newer" if theirs[0] > ours[0] else "an older, incompatible"
        raise StoreError(
            f"{where} has store format {version}, {newer} format than this loce reads ({FORMAT_VERSION}); "
            "install the loce version that wrote it (manifest.json `created_by`) or re-run `loce fit`"
        )
