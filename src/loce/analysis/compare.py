"""Any analysis side by side across layers and models: one table, one row per (model, layer).

Analyses are registered by name with a function ``(X, labels, **options) -> result`` and a ``summary(result)``
giving the headline numbers; new analyses plug in with :func:`register_analysis`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from loce.analysis.errors import AnalysisError
from loce.analysis.gmm import fit_gmms
from loce.analysis.outliers import find_outliers
from loce.analysis.purity import concept_purity
from loce.analysis.retrieval import retrieval_scores
from loce.analysis.separation import confused_pairs, separation_overlap


@dataclass(frozen=True)
class RegisteredAnalysis:
    """An analysis known by name: ``run(X, labels, **options)`` and ``summary(result) -> {name: value}``."""

    name: str
    run: Callable[..., object]
    summary: Callable[[object], dict[str, object]]
    description: str


ANALYSES: dict[str, RegisteredAnalysis] = {}


def register_analysis(name: str, summary: Callable[[object], dict[str, object]], description: str = ""):
    """Decorator registering ``run(X, labels, **options)`` under ``name``.

    Example:
        >>> @register_analysis("n_loces", summary=lambda r: {"n": r})
        ... def count(X, labels):
        ...     return len(labels)
        >>> ANALYSES["n_loces"].summary(ANALYSES["n_loces"].run([[0.0]], ["a"]))
        {'n': 1}
    """

    def decorate(run: Callable[..., object]) -> Callable[..., object]:
        ANALYSES[name] = RegisteredAnalysis(
            name, run, summary, description or (run.__doc__ or "").split("\n")[0]
        )
        return run

    return decorate


def _off_diagonal(matrix: np.ndarray) -> np.ndarray:
    return matrix[~np.eye(matrix.shape[0], dtype=bool)]


def _separation_summary(result) -> dict[str, object]:
    sep = _off_diagonal(result.separation)
    summary = {
        "mean_separation": float(sep.mean()),
        "min_separation": float(sep.min()),
        "touching_pairs": int(
            (np.triu(result.separation, 1)[np.triu_indices(result.concepts.size, 1)] == 0).sum()
        ),
    }
    if result.overlap is not None:
        overlap = _off_diagonal(result.overlap)
        summary.update(mean_overlap=float(overlap.mean()), max_overlap=float(overlap.max()))
        summary["mean_overlap_any"] = float(result.overlap_any.mean())
    return summary


def _confusion_summary(result) -> dict[str, object]:
    first = result.table.iloc[0]
    return {"top_pair": f"{first.concept_a} / {first.concept_b}", "top_score": float(first.score)}


def _retrieval_summary(result) -> dict[str, object]:
    summary: dict[str, object] = {f"precision_at_{k}": result.precision_at(k) for k in result.ks}
    if result.average_precision is not None:
        summary["mean_average_precision"] = result.mean_average_precision
    return summary


def _outlier_summary(result) -> dict[str, object]:
    summary: dict[str, object] = {}
    if "summed_cosine" in result.scores:
        counts = pd.Series(result.labels).map(pd.Series(result.labels).value_counts()).to_numpy()
        summary["mean_within_concept_cosine_distance"] = float(
            (result.scores["summed_cosine"] / np.maximum(1, counts - 1)).mean()
        )
    return summary


def _gmm_summary(result) -> dict[str, object]:
    summary: dict[str, object] = {}
    if result.per_concept:
        summary["mean_components_per_concept"] = float(
            np.mean([f.n_components for f in result.per_concept.values()])
        )
    if result.overall is not None:
        summary["overall_components"] = result.overall.n_components
    summary["loces_in_small_components"] = int(result.outliers()["index"].nunique())
    return summary


register_analysis("purity", lambda r: {"purity": r.purity, "n_clusters": r.n_clusters})(concept_purity)
register_analysis("separation", _separation_summary)(separation_overlap)
register_analysis("retrieval", _retrieval_summary)(retrieval_scores)
register_analysis("outliers", _outlier_summary)(find_outliers)
register_analysis("gmm", _gmm_summary)(fit_gmms)


@register_analysis("confusion", _confusion_summary)
def confusion(X: object, labels: object, *, metric: str = "cosine", with_purity: bool = False, **options):
    """Confused concept pairs from separation, overlap and (optionally) the purity clustering."""
    separation = separation_overlap(X, labels, metric=metric, **options)
    purity = concept_purity(X, labels) if with_purity else None
    return confused_pairs(separation, purity)


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
        analysis: a registered name: ``purity``, ``separation``, ``confusion``, ``retrieval``, ``outliers``,
            ``gmm`` (see ``ANALYSES``).
        key_names: column names for the parts of a key (a shorter key fills the last columns).
        detail: instead of one summary row per source, concatenate the full ``to_frame()`` tables.
        options: passed to the analysis.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> data = {("m", layer): (rng.normal(size=(12, 4)), ["a", "b"] * 6) for layer in ("l1", "l2")}
        >>> compare(data, "retrieval", ks=[1], average_precision=False).columns.tolist()
        ['model', 'layer', 'precision_at_1']
    """
    if analysis not in ANALYSES:
        raise AnalysisError(f"unknown analysis {analysis!r}; registered: {', '.join(sorted(ANALYSES))}.")
    registered = ANALYSES[analysis]
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
        result = registered.run(X, labels, **options)
        columns = _key_columns(key, key_names)
        if detail:
            frame = result.to_frame()
            for position, (name, value) in enumerate(columns.items()):
                frame.insert(position, name, value)
            frames.append(frame)
        else:
            frames.append(pd.DataFrame([{**columns, **registered.summary(result)}]))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(key_names))
