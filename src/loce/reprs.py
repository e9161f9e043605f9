"""Short reprs of result objects: what a result holds, in a few lines, never its arrays and tables in full.

A result dataclass opts in with ``__repr__ = short_repr`` in its body (``@dataclass`` keeps a ``__repr__`` the
class defines). Each field is shown as a summary: numbers and short strings as they are, arrays and tensors as
their shape and dtype, tables as rows x columns, collections as their size and first few keys or items.

Example:
    >>> from dataclasses import dataclass
    >>> import numpy as np
    >>> @dataclass
    ... class Result:
    ...     layer: str
    ...     vectors: np.ndarray
    ...     counts: dict
    ...     __repr__ = short_repr
    >>> Result("layer3", np.zeros((500, 64), np.float32), {"cat": 300, "dog": 200})
    Result(layer='layer3', vectors=array 500x64 float32, counts={'cat': 300, 'dog': 200})
"""

from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Mapping
from pathlib import PurePath

__all__ = ["short_repr", "summarize"]

WIDTH = 110  # characters per line of a repr
MAX_STRING = 60  # longer strings are cut
MAX_ITEMS = 4  # collections of more items show their size and first keys only


def summarize(value: object) -> str:
    """One short text for ``value``: itself when small, else its type and size.

    Example:
        >>> summarize(list(range(100))), summarize("x" * 100)[:12], summarize({"a": 1})
        ('[100 items]', "'xxxxxxxxxxx", "{'a': 1}")
    """
    if value is None or isinstance(value, (bool, int, float, complex)):
        return repr(value)
    if isinstance(value, PurePath):
        return repr(str(value))
    if isinstance(value, str):
        return repr(value) if len(value) <= MAX_STRING else repr(value[: MAX_STRING - 3] + "...")
    shape = getattr(value, "shape", None)
    if shape is not None and hasattr(value, "dtype"):  # numpy arrays, torch tensors, pandas Series
        kind = "tensor" if type(value).__module__.startswith("torch") else "array"
        if type(value).__name__ == "Series":
            kind = "Series"
        if len(shape) == 0:
            return repr(value.item() if hasattr(value, "item") else value)
        return f"{kind} {'x'.join(str(int(n)) for n in shape)} {value.dtype}".replace("torch.", "")
    if shape is not None and hasattr(value, "columns"):  # a DataFrame
        return f"table {shape[0]} rows x {shape[1]} columns"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return f"{type(value).__name__}(...)"
    if isinstance(value, Mapping):
        return _summarize_mapping(value)
    if isinstance(value, (list, tuple, set, frozenset)):
        items = list(value)
        if len(items) <= MAX_ITEMS and all(_is_scalar(v) for v in items):
            return repr(value)
        return f"[{len(items)} items]"
    text = repr(value)
    return text if len(text) <= MAX_STRING and "\n" not in text else f"<{type(value).__name__}>"


def _is_scalar(value: object) -> bool:
    return value is None or isinstance(value, (bool, int, float, str, PurePath)) and len(str(value)) <= 40


def _summarize_mapping(value: Mapping) -> str:
    if len(value) <= MAX_ITEMS and all(_is_scalar(v) for v in value.values()):
        return "{" + ", ".join(f"{k!r}: {summarize(v)}" for k, v in value.items()) + "}"
    keys = [str(k) for k in list(value)[:MAX_ITEMS]]
    more = ", ..." if len(value) > MAX_ITEMS else ""
    return f"{{{len(value)} items: {', '.join(keys)}{more}}}"


def short_repr(obj: object) -> str:
    """The repr of a result dataclass: ``Class(field=summary, ...)`` wrapped to a few lines.

    Fields declared with ``field(repr=False)`` are left out, as in the dataclass's own repr.
    """
    parts = [f"{f.name}={summarize(getattr(obj, f.name, None))}" for f in dataclasses.fields(obj) if f.repr]
    text = f"{type(obj).__name__}({', '.join(parts)})"
    return "\n".join(
        textwrap.wrap(text, WIDTH, subsequent_indent="    ", break_long_words=False, break_on_hyphens=False)
    )
