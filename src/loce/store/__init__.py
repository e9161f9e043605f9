"""The LoCE store: an open, versioned, resumable Parquet format for Local Concept Embeddings.

A run directory holds ``manifest.json`` (what produced the rows) and ``loces/<job>-NNNNNN.parquet`` shards, one
row per (sample, concept, layer, method). pandas, polars and DuckDB read the shards without ``loce``; the format
is specified in ``docs/STORE.md``.

Example:
    >>> from loce.store import LoCEStore
    >>> # X, meta = LoCEStore.open("RUN").vectors(layer="_blocks.10")
"""

from loce.store.layer_order import LayerOrder, natural_key
from loce.store.manifest import JobSpec, Manifest, package_versions, read_manifest, write_manifest
from loce.store.query import matrix_from_lists
from loce.store.rle import mask_from_rle, rle_from_mask
from loce.store.schema import COLUMN_DOCS, COLUMNS, FORMAT_VERSION, KEY_COLUMNS, OK, SCHEMA
from loce.store.shards import list_shards, read_shard
from loce.store.store import LoCEStore
from loce.store.table import build_table

__all__ = [
    "COLUMNS",
    "COLUMN_DOCS",
    "FORMAT_VERSION",
    "KEY_COLUMNS",
    "OK",
    "SCHEMA",
    "JobSpec",
    "LayerOrder",
    "LoCEStore",
    "Manifest",
    "build_table",
    "list_shards",
    "mask_from_rle",
    "matrix_from_lists",
    "natural_key",
    "package_versions",
    "read_manifest",
    "read_shard",
    "rle_from_mask",
    "write_manifest",
]
