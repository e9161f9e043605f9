"""Filters over the store's columns and the fast ``list<float32>`` -> ``N x D`` numpy conversion."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from loce.errors import StoreError

Selector = str | Sequence[str] | None
"""A filter value: ``None`` (no filter), one value, or a list of accepted values."""


def filter_expression(**selectors: Selector) -> ds.Expression | None:
    """An Arrow dataset filter ``column == value`` / ``column in values`` for every non-``None`` selector.

    Example:
        >>> str(filter_expression(layer="l1", model=None))
        '(layer == "l1")'
        >>> filter_expression(layer=None) is None
        True
    """
    expression = None
    for column, value in selectors.items():
        if value is None:
            continue
        if isinstance(value, str):
            term = ds.field(column) == value
        else:
            term = ds.field(column).isin(pa.array([str(v) for v in value], type=pa.string()))
        expression = term if expression is None else expression & term
    return expression


def as_list(value: Selector) -> list[str] | None:
    """``"a"`` -> ``["a"]``, a sequence -> a list, ``None`` -> ``None``."""
    if value is None:
        return None
    return [value] if isinstance(value, str) else [str(v) for v in value]


def matrix_from_lists(column: pa.ChunkedArray | pa.Array, what: str = "vector") -> np.ndarray:
    """Stack a ``list<float32>`` column whose lists all have one length into an ``N x D`` float32 array.

    Works on Arrow's flat value buffer (no Python objects per row), so 100k x 512 values convert at memory speed.

    Raises:
        StoreError: when a list is null or the lengths differ.

    Example:
        >>> matrix_from_lists(pa.array([[1, 2], [3, 4]], pa.list_(pa.float32())))
        array([[1., 2.],
               [3., 4.]], dtype=float32)
    """
    chunks: list[Any] = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    parts, dim = [], None
    for chunk in chunks:
        if len(chunk) == 0:
            continue
        if chunk.null_count:
            raise StoreError(
                f"{chunk.null_count} rows have no {what} (null); filter them out (status == 'ok')"
            )
        lengths = pc.list_value_length(chunk).to_numpy(zero_copy_only=False)
        first = int(lengths[0])
        if dim is None:
            dim = first
        if (lengths != dim).any():
            found = sorted({int(x) for x in np.unique(lengths)} | {dim})
            raise StoreError(
                f"the {what}s have different lengths {found}; select one layer (and model) at a time"
            )
        parts.append(chunk.flatten().to_numpy(zero_copy_only=False))
    if dim is None:
        return np.zeros((0, 0), dtype=np.float32)
    flat = np.concatenate(parts) if len(parts) > 1 else np.array(parts[0], copy=True)
    return flat.astype(np.float32, copy=False).reshape(-1, dim)
