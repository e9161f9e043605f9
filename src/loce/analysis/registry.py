"""The one registry of analyses: what ``loce analyze``, :func:`loce.analysis.compare` and ``compare-methods`` run.

A registered analysis (:class:`RegisteredAnalysis`) is known by name and has

- ``run(X, labels, **options) -> result``: the pure function (``compare``, ``compare-methods``, notebooks);
- ``summary(result) -> {name: value}``: its headline numbers, under the same names everywhere: the ``headline``
  table of ``RUN/analysis/``, the rows of :func:`~loce.analysis.compare.compare` and of the method comparison;
- ``tables(result) -> {table: DataFrame}``: the tables ``analyze_run`` writes for it (default: ``{name:
  result.to_frame()}`` when the result has one);
- ``step(layer) -> result | None``: how it runs inside ``analyze_run`` on one (model, layer) (a
  :class:`LayerPass`: the LoCEs, the settings, the results of the analyses before it, the shared neighbour pass);
  default: ``run(layer.X, layer.labels)``;
- ``needs``: the analyses whose results the step reads (they run first and are selected with it);
- ``neighbours(layer) -> ScanNeed | None``: what it needs from the exact neighbour pass, so that one pass per
  metric serves every analysis that asks (retrieval and separation share it);
- ``methods(entry) -> result | None``: how ``compare-methods`` runs it on one set of vectors (default: ``run(X,
  labels)``; None: not part of the method comparison) and ``method_columns(ks)``, the columns it fills there.

A result's object also goes to the figures (``LayerAnalysis.details[name]``, read by
:func:`loce.analysis.figure_data.build_figure_data`). The built-in analyses are in
:mod:`loce.analysis.builtin`.

Example:
    >>> from loce.analysis.registry import ANALYSES, register_analysis, unregister_analysis
    >>> @register_analysis("n_loces", summary=lambda n: {"n_loces_seen": n})
    ... def count(X, labels):
    ...     return len(labels)
    >>> ANALYSES["n_loces"].summarize([[0.0], [1.0]], ["a", "b"])
    {'n_loces_seen': 2}
    >>> unregister_analysis("n_loces")
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from loce.analysis.errors import AnalysisError


@dataclass(frozen=True)
class ScanNeed:
    """What an analysis needs from the exact neighbour pass under ``metric``.

    Needs under the same metric are merged into one pass (:meth:`merge`): extremes if any asks, the largest ``k``,
    average precision if any asks.
    """

    metric: str
    extremes: bool = False
    k: int = 0
    average_precision: bool = False

    def merge(self, other: ScanNeed) -> ScanNeed:
        """The one pass that serves both needs (same metric).

        Example:
            >>> ScanNeed("cosine", k=10).merge(ScanNeed("cosine", extremes=True))
            ScanNeed(metric='cosine', extremes=True, k=10, average_precision=False)
        """
        return ScanNeed(
            self.metric,
            self.extremes or other.extremes,
            max(self.k, other.k),
            self.average_precision or other.average_precision,
        )


@dataclass
class LayerPass:
    """One (model, layer) inside ``analyze_run``: what a registered analysis's ``step`` reads and adds to.

    Attributes:
        X, labels, ids: the LoCEs analysed (all-zero vectors and small concepts already left out).
        settings: the :class:`~loce.analysis.run.AnalysisSettings`.
        result: the :class:`~loce.analysis.run.LayerAnalysis` being filled (``note`` adds to its notes,
            ``details`` are its details).
        results: the results of the analyses run so far, by name.
        scan_with: the neighbour pass (``scan_neighbourhoods`` or an engine's drop-in).
        needs: what the selected analyses need from the neighbour pass, merged per metric.
    """

    X: np.ndarray
    labels: np.ndarray
    ids: np.ndarray
    settings: Any
    result: Any
    scan_with: Callable[..., Any]
    results: dict[str, object] = field(default_factory=dict)
    needs: dict[str, ScanNeed] = field(default_factory=dict)
    scans: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        """Number of LoCEs analysed."""
        return int(self.labels.size)

    @property
    def several(self) -> bool:
        """At least two concepts (what separation and confusion need)."""
        return self.result.n_concepts >= 2

    @property
    def ks(self) -> tuple[int, ...]:
        """The settings' k values of precision@k that this many LoCEs allow (k <= N - 1)."""
        return tuple(k for k in self.settings.ks if k <= self.n - 1)

    @property
    def details(self) -> dict[str, object]:
        return self.result.details

    def note(self, text: str) -> None:
        """Add a note (once) to the layer's notes."""
        if text not in self.result.notes:
            self.result.notes.append(text)

    def scan(self, metric: str):
        """The neighbour pass under ``metric`` with all that the selected analyses need of it, run once.

        Its notes go to the layer's notes and its quality figures (an approximate pass's recall) to the headline.
        """
        if metric not in self.scans:
            from loce.analysis.separation import scan_dtype

            need = self.needs.get(metric, ScanNeed(metric))
            scan = self.scan_with(
                self.X,
                self.labels,
                metric=metric,
                extremes=need.extremes,
                k=need.k,
                average_precision=need.average_precision,
                dtype=scan_dtype(metric) if need.extremes else np.float32,
                progress=self.settings.progress,
            )
            for text in scan.notes:
                self.note(text)
            self.result.headline.update(scan.quality)
            self.scans[metric] = scan
        return self.scans[metric]


@dataclass
class MethodSet:
    """One (model, method, layer) set of vectors in ``compare-methods``: what a registered ``methods`` reads.

    ``row`` is the set's row of the comparison (a step may add columns, e.g. ``purity_samples``).
    """

    X: np.ndarray
    labels: np.ndarray
    method: str
    ks: tuple[int, ...]
    metric: str
    purity_max_samples: int
    seed: int
    row: dict[str, object]

    @property
    def per_sample(self) -> bool:
        """One vector per (image, concept): the sets every metric applies to (not ``global``)."""
        from loce.baselines.compare import PER_SAMPLE

        return self.method in PER_SAMPLE


def _default_tables(name: str) -> Callable[[object], dict[str, pd.DataFrame]]:
    def tables(result: object) -> dict[str, pd.DataFrame]:
        to_frame = getattr(result, "to_frame", None)
        return {name: to_frame()} if callable(to_frame) else {}

    return tables


@dataclass(frozen=True)
class RegisteredAnalysis:
    """An analysis known by name (see the module docstring for what each part does)."""

    name: str
    run: Callable[..., object]
    summary: Callable[[object], dict[str, object]]
    description: str = ""
    tables: Callable[[object], dict[str, pd.DataFrame]] | None = None
    step: Callable[[LayerPass], object] | None = None
    needs: tuple[str, ...] = ()
    neighbours: Callable[[LayerPass], ScanNeed | None] | None = None
    methods: Callable[[MethodSet], object] | None = None
    method_columns: Callable[[tuple[int, ...]], list[str]] | None = None
    in_methods: bool = True

    def summarize(self, X: object, labels: object, **options: object) -> dict[str, object]:
        """``summary(run(X, labels, **options))``: the headline numbers of one set of LoCEs."""
        return self.summary(self.run(X, labels, **options))

    def run_step(self, layer: LayerPass) -> object:
        """Run inside ``analyze_run``: the ``step``, or ``run`` on the layer's LoCEs."""
        return self.step(layer) if self.step is not None else self.run(layer.X, layer.labels)

    def run_for_method(self, entry: MethodSet) -> object:
        """Run inside ``compare-methods`` (None: this set is left out)."""
        if self.methods is not None:
            return self.methods(entry)
        return self.run(entry.X, entry.labels)

    def table_frames(self, result: object) -> dict[str, pd.DataFrame]:
        """The tables ``analyze_run`` writes for ``result``."""
        return (self.tables or _default_tables(self.name))(result)


ANALYSES: dict[str, RegisteredAnalysis] = {}
"""Every registered analysis by name, in the order they run (an analysis runs after those it needs)."""


def register_analysis(
    name: str,
    summary: Callable[[object], dict[str, object]],
    description: str = "",
    **parts: Any,
) -> Callable[[Callable[..., object]], Callable[..., object]]:
    """Decorator registering ``run(X, labels, **options)`` under ``name``; ``parts`` are the optional fields of
    :class:`RegisteredAnalysis` (``tables``, ``step``, ``needs``, ``neighbours``, ``methods``, ``method_columns``,
    ``in_methods``).

    A registered analysis runs in ``analyze_run`` (every (model, layer); its headline numbers in ``headline.csv``,
    its tables beside), in :func:`~loce.analysis.compare.compare` and in ``compare-methods`` with no other change.

    Example:
        >>> @register_analysis("n_loces", summary=lambda r: {"n": r})
        ... def count(X, labels):
        ...     return len(labels)
        >>> ANALYSES["n_loces"].summary(ANALYSES["n_loces"].run([[0.0]], ["a"]))
        {'n': 1}
        >>> unregister_analysis("n_loces")
    """
    missing = [need for need in parts.get("needs", ()) if need not in ANALYSES]
    if missing:
        raise AnalysisError(
            f"analysis {name!r} needs {missing}, which are not registered (register them first)."
        )

    def decorate(run: Callable[..., object]) -> Callable[..., object]:
        text = description or (run.__doc__ or "").split("\n")[0]
        ANALYSES[name] = RegisteredAnalysis(name, run, summary, text, **parts)
        return run

    return decorate


def unregister_analysis(name: str) -> None:
    """Remove a registered analysis (one that others need cannot be removed)."""
    users = [a.name for a in ANALYSES.values() if name in a.needs]
    if users:
        raise AnalysisError(f"analysis {name!r} is needed by {users}; unregister those first.")
    ANALYSES.pop(name, None)


def registered(name: str) -> RegisteredAnalysis:
    """The registered analysis ``name``, or a clear error listing the registered ones."""
    if name not in ANALYSES:
        raise AnalysisError(f"unknown analysis {name!r}; registered: {', '.join(ANALYSES)}.")
    return ANALYSES[name]


def with_needs(names: Sequence[str]) -> list[str]:
    """``names`` and every analysis they need, in registration (= run) order.

    Example:
        >>> with_needs(["confusion"])
        ['separation', 'purity', 'confusion']
    """
    chosen: set[str] = set()
    pending = list(names)
    while pending:
        name = pending.pop()
        if name not in chosen:
            chosen.add(name)
            pending.extend(registered(name).needs)
    return [name for name in ANALYSES if name in chosen]


def run_layer(layer: LayerPass, names: Sequence[str]) -> None:
    """Run the analyses ``names`` (and what they need) on one (model, layer): results, tables, headline, seconds.

    Each result goes to ``layer.results`` and ``layer.details`` under the analysis's name; an analysis whose step
    returns None (nothing to compute here, a note says why) adds nothing.
    """
    order = with_needs(names)
    for name in order:
        hook = ANALYSES[name].neighbours
        need = hook(layer) if hook is not None else None
        if need is not None:
            known = layer.needs.get(need.metric)
            layer.needs[need.metric] = need if known is None else known.merge(need)
    for name in order:
        analysis = ANALYSES[name]
        clock = time.perf_counter()
        value = analysis.run_step(layer)
        layer.result.seconds[name] = round(time.perf_counter() - clock, 3)
        if value is None:
            continue
        layer.results[name] = value
        layer.details[name] = value
        layer.result.tables.update(analysis.table_frames(value))
        layer.result.headline.update(analysis.summary(value))


RENAMED_HEADLINE = {
    "top_pair": "most_confused_pair",
    "top_score": "most_confused_score",
    "overall_components": "gmm_components",
}
"""Headline names that :func:`~loce.analysis.compare.compare` used before it shared the registry's names with
``loce analyze`` (old name -> name now)."""


def current_headline_names(frame: pd.DataFrame) -> pd.DataFrame:
    """A table read from before (``compare`` output saved with the old names) with today's headline names.

    Example:
        >>> current_headline_names(pd.DataFrame({"top_pair": ["a / b"]})).columns.tolist()
        ['most_confused_pair']
    """
    renames = {old: new for old, new in RENAMED_HEADLINE.items() if old in frame and new not in frame}
    return frame.rename(columns=renames)
