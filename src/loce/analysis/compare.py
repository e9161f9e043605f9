"""Any analysis side by side across layers and models: one table, one row per (model, layer).

The analyses are those of the registry (:mod:`loce.analysis.registry`: ``ANALYSES``, :func:`register_analysis`);
a row holds an analysis's headline numbers under the names ``loce analyze`` writes to ``headline.csv``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence

import numpy as np
import pandas as pd

import loce.analysis.builtin  # noqa: F401  (registers the built-in analyses)
from loce.analysis.errors import AnalysisError
from loce.analysis.registry import ANALYSES, RegisteredAnalysis, register_analysis, registered

__all__ = ["ANALYSES", "RegisteredAnalysis", "compare", "register_analysis"]

Source = tuple[np.ndarray, Sequence[str]]


def _key_columns(key: Hashable, key_names: Sequence[str]) -> dict[str, object]:
    parts = key if isinstance(key, tuple) else (key,)
    if len(parts) > len(key_names):
        raise AnalysisError(f"source key {key!r} has more parts than key_names {tuple(key_names)}.")
    padded = (None,) * (len(key_names) - len(parts)) + tuple(parts)
    return dict(zip(key_names, padded))


def compare(
    sources: Mapping[Hashable, Source] | Sequence[Hashable],
    analysis: str,
    *,
    loader: Callable[[Hashable], Source] | None = None,
    key_names: Sequence[str] = ("model", "layer"),
    detail: bool = False,
    **options: object,
) -> pd.DataFrame:
    """Run one analysis on several (model, layer) LoCE sets and put the results side by side.

    Args:
        sources: ``{(model, layer): (X, labels)}``, or a list of keys together with ``loader(key) -> (X, labels)``
            (loads one set at a time, so only one is in memory).
        analysis: a registered name: ``retrieval``, ``separation``, ``purity``, ``confusion``, ``outliers``,
            ``gmm``, ``subconcepts`` or one added with :func:`register_analysis` (see ``ANALYSES``).
        key_names: column names for the parts of a key (a shorter key fills the last columns).
        detail: instead of one summary row per source, concatenate the full ``to_frame()`` tables.
        options: passed to the analysis.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> data = {("m", layer): (rng.normal(size=(12, 4)), ["a", "b"] * 6) for layer in ("l1", "l2")}
        >>> compare(data, "retrieval", ks=[1], average_precision=False).columns.tolist()
        ['model', 'layer', 'precision_at_1']
    """
    chosen = registered(analysis)
    if isinstance(sources, Mapping):
        keys = list(sources)

        def load(key: Hashable) -> Source:
            return sources[key]
    else:
        if loader is None:
            raise AnalysisError("compare() got a list of keys; pass loader=callable(key) -> (X, labels) too.")
        keys, load = list(sources), loader
    frames = []
    for key in keys:
        X, labels = load(key)
        result = chosen.run(X, labels, **options)
        columns = _key_columns(key, key_names)
        if detail:
            frame = result.to_frame()
            for position, (name, value) in enumerate(columns.items()):
                frame.insert(position, name, value)
            frames.append(frame)
        else:
            frames.append(pd.DataFrame([{**columns, **chosen.summary(result)}]))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(key_names))
