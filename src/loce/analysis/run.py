"""``loce analyze``: run the distribution analyses on the LoCEs of one or more runs and write the tables.

This is the one module of :mod:`loce.analysis` that touches files: it reads a run's store, calls the pure
analyses per (model, layer) and writes ``RUN/analysis/``:

- ``<table>.csv`` and ``<table>.parquet`` per table, each with ``run``, ``model``, ``layer`` columns first
  (``headline``, ``retrieval``, ``separation``, ``confused_pairs``, ``purity_clusters``, ``outliers``,
  ``gmm_components``, ``subconcepts``, depending on the analyses);
- ``summary.json``: settings, per (model, layer) the counts, dropped concepts, headline numbers and timings;
- ``layers/<model>__<layer>/``: what the figures and the report draw per (model, layer), computed here once
  (2-D map, its Gaussian mixtures, dendrogram, neighbours, per-query precision, outlier ranks, sub-concept
  memberships, mixed clusters; see :mod:`loce.analysis.figure_data` and ``docs/ANALYSIS.md``).
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from loce.analysis.attributes import attribute_tables
from loce.analysis.builtin import BUILTIN_ANALYSES, small_problem_threads, subconcept_options
from loce.analysis.distances import METRICS
from loce.analysis.errors import AnalysisError
from loce.analysis.figure_data import MAP_METHODS, build_figure_data
from loce.analysis.figure_files import write_figure_data
from loce.analysis.inputs import ConceptIndex
from loce.analysis.intervals import METRIC_RANGES, ImageBootstrap, centred_interval, percentile_interval
from loce.analysis.neighbours import NeighbourhoodScan, scan_neighbourhoods
from loce.analysis.output import (
    ANALYSIS_FORMAT,
    AtomicOutput,
    analysis_dir,
    check_protocol,
    write_table,
)
from loce.analysis.purity import DEFAULT_MAX_SAMPLES
from loce.analysis.registry import ANALYSES, LayerPass, run_layer
from loce.analysis.resampled import analyse_resample, pairwise_distances
from loce.analysis.retrieval import DEFAULT_KS, RetrievalResult
from loce.analysis.separation import ConceptSeparation, mean_off_diagonal
from loce.analysis.subconcepts import DEFAULT_DIMS as SUBCONCEPT_DIMS
from loce.analysis.subconcepts import DEFAULT_METHOD as SUBCONCEPT_METHOD
from loce.analysis.subconcepts import METHODS as SUBCONCEPT_METHODS
from loce.errors import LoceError
from loce.reprs import short_repr
from loce.run_layout import AnalysisFiles
from loce.store.layer_order import LayerOrder

RUN_ANALYSES = BUILTIN_ANALYSES
"""The built-in analyses, in the order ``summary.json`` lists them (:func:`run_analyses`: all registered)."""
__all__ = [
    "AnalysisSettings",
    "LayerAnalysis",
    "analyze_run",
    "analyze_vectors",
    "run_analyses",
    "small_problem_threads",
]


def run_analyses() -> tuple[str, ...]:
    """Every registered analysis: the built-in ones (:data:`RUN_ANALYSES`), then those added with
    :func:`~loce.analysis.registry.register_analysis`, in the order they were registered (the default of
    :attr:`AnalysisSettings.analyses`).

    Example:
        >>> run_analyses()[:3]
        ('retrieval', 'separation', 'confusion')
    """
    return tuple(name for name in RUN_ANALYSES if name in ANALYSES) + tuple(
        name for name in ANALYSES if name not in RUN_ANALYSES
    )


SUMMARY_VERSION = 3


@dataclass
class AnalysisSettings:
    """Options of :func:`analyze_run` (all have the defaults of ``loce analyze``).

    Sub-concepts default to a BIC-selected Gaussian mixture in a 2-D PCA of each concept: with full covariances
    in more dimensions, concepts of a few dozen LoCEs get degenerate components of 3-5 members (measured on the
    scene world: 5-D gave 7-8 "sub-concepts" for half the concepts, 2-D at most 2); and a concept is split into
    at most one sub-concept per ``loces_per_subconcept`` LoCEs (8 at most), because BIC does not stop a mixture
    from fitting near-singular components to 2-3 points each. The 2-D map (``map_method``
    "umap", "pca" or "none") of at most ``map_points`` LoCEs per (model, layer) and the ``neighbours`` nearest
    LoCEs of each are stored for the figures when ``figure_data`` is on.
    """

    analyses: tuple[str, ...] = field(default_factory=run_analyses)
    metric: str = "cosine"
    separation_metric: str | None = None
    retrieval_metric: str | None = None
    ks: tuple[int, ...] = DEFAULT_KS
    average_precision: bool = True
    min_per_concept: int = 2
    max_samples: int = DEFAULT_MAX_SAMPLES
    seed: int = 0
    progress: bool = False
    subconcept_method: str = SUBCONCEPT_METHOD
    subconcept_dims: int = SUBCONCEPT_DIMS
    loces_per_subconcept: int = 10
    figure_data: bool = True
    map_method: str = "umap"
    map_points: int = 3000
    neighbours: int = 10
    bootstrap: int = 200
    bootstrap_max_loces: int = 4000
    seeds: int = 50
    map_seeds: int = 5
    per_concept: int = 100
    subconcept_distance: float | None = None

    @property
    def separation_distance(self) -> str:
        """Metric of separation and overlap (``separation_metric``, else ``metric``)."""
        return self.separation_metric or self.metric

    @property
    def retrieval_distance(self) -> str:
        """Metric of retrieval (``retrieval_metric``, else ``metric``)."""
        return self.retrieval_metric or self.metric

    def __post_init__(self) -> None:
        for name in ("metric", "separation_metric", "retrieval_metric"):
            value = getattr(self, name)
            if value is not None and value not in METRICS:
                raise AnalysisError(f"unknown {name} {value!r}; use {', '.join(METRICS)}.")
        if self.bootstrap < 0 or self.seeds < 1 or self.map_seeds < 0 or self.per_concept < 2:
            raise AnalysisError(
                "bootstrap must be >= 0 resamples, seeds >= 1, map_seeds >= 0 and per_concept >= 2; got "
                f"{self.bootstrap}, {self.seeds}, {self.map_seeds}, {self.per_concept}."
            )
        unknown = sorted(set(self.analyses) - set(ANALYSES))
        if unknown:
            raise AnalysisError(f"unknown analyses {unknown}; choose from {', '.join(run_analyses())}.")
        if self.subconcept_method not in SUBCONCEPT_METHODS:
            raise AnalysisError(
                f"unknown sub-concept method {self.subconcept_method!r}; use {', '.join(SUBCONCEPT_METHODS)}."
            )
        if self.map_method not in MAP_METHODS:
            raise AnalysisError(f"unknown map method {self.map_method!r}; use {', '.join(MAP_METHODS)}.")


@dataclass
class LayerAnalysis:
    """Results of the analyses of one (model, layer): tables, headline numbers and what was left out.

    ``headline`` holds, after each number ``M`` that has an interval, ``M_ci_low`` and ``M_ci_high``;
    ``interval`` says what the interval is, ``protocol`` which protocol produced the numbers, ``zero_vectors``
    how many all-zero LoCEs (failed fits) were left out.
    """

    __repr__ = short_repr

    model: str
    layer: str
    n_loces: int
    n_concepts: int
    dropped: dict[str, int]
    headline: dict[str, object]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    details: dict[str, object] = field(default_factory=dict, repr=False)
    """The analyses' result objects (``kept`` rows, ``scan``, ``retrieval``, ``purity`` with ``purity_rows``,
    ``outliers``, ``subconcepts``), for :func:`loce.analysis.figure_data.build_figure_data`."""
    protocol: str = "default"
    interval: str = ""
    zero_vectors: int = 0
    concepts: list[str] = field(default_factory=list)


def with_intervals(
    headline: dict[str, object], intervals: dict[str, tuple[float, float]]
) -> dict[str, object]:
    """``headline`` with ``M_ci_low``, ``M_ci_high`` inserted after every number ``M`` that has an interval.

    Example:
        >>> with_intervals({"purity": 0.5}, {"purity": (0.4, 0.6)})
        {'purity': 0.5, 'purity_ci_low': 0.4, 'purity_ci_high': 0.6}
    """
    out: dict[str, object] = {}
    for key, value in headline.items():
        out[key] = value
        if key in intervals:
            out[f"{key}_ci_low"], out[f"{key}_ci_high"] = intervals[key]
    return out


def keep_rows(
    X: np.ndarray, labels: np.ndarray, min_per_concept: int
) -> tuple[np.ndarray, int, dict[str, int]]:
    """Rows the analyses use: not all-zero (a failed fit) and of a concept with at least ``min_per_concept``.

    Returns ``(keep mask, number of zero vectors, {dropped concept: count})``.

    Example:
        >>> keep, zeros, dropped = keep_rows(np.array([[1.0], [0.0], [2.0]]), np.array(["a", "a", "b"]), 1)
        >>> keep.tolist(), zeros, dropped
        ([True, False, True], 1, {})
    """
    nonzero = np.asarray(X).any(axis=1)
    index = ConceptIndex.from_labels(labels[nonzero])
    small = index.counts < min_per_concept
    dropped = dict(zip(index.concepts[small].tolist(), index.counts[small].tolist()))
    keep = nonzero & ~np.isin(labels, index.concepts[small])
    return keep, int((~nonzero).sum()), dropped


def start_layer(
    X: np.ndarray,
    labels: np.ndarray,
    ids: np.ndarray,
    settings: AnalysisSettings,
    model: str,
    layer: str,
    protocol: str = "default",
) -> tuple[LayerAnalysis, np.ndarray, np.ndarray, np.ndarray]:
    """The empty result of one (model, layer) and the rows it analyses (see :func:`keep_rows`), noted."""
    labels = np.asarray(labels).astype(str)
    keep, zeros, dropped = keep_rows(np.asarray(X), labels, settings.min_per_concept)
    if keep.all():  # no copy of the LoCEs when none is left out (a store of millions: one copy fewer)
        X, ids = np.asarray(X), np.asarray(ids)
    else:
        X, labels, ids = np.asarray(X)[keep], labels[keep], np.asarray(ids)[keep]
    concepts = np.unique(labels)
    result = LayerAnalysis(
        model, layer, int(labels.size), int(concepts.size), dropped, {}, protocol=protocol, zero_vectors=zeros
    )
    result.concepts = concepts.tolist()
    result.details["kept"] = np.flatnonzero(keep)
    if zeros:
        result.notes.append(f"left out {zeros} all-zero LoCEs (failed fits)")
    if dropped:
        result.notes.append(f"dropped concepts with fewer than {settings.min_per_concept} LoCEs: {dropped}")
    return result, X, labels, ids


def analyze_vectors(
    X: np.ndarray,
    labels: np.ndarray,
    ids: np.ndarray,
    settings: AnalysisSettings,
    model: str = "",
    layer: str = "",
    scan_with: Callable[..., NeighbourhoodScan] | None = None,
    spread_with: Callable[..., tuple[dict[str, float], str]] | None = None,
) -> LayerAnalysis:
    """Run the selected registered analyses on one set of LoCEs (one model and layer); pure, no files.

    Every analysis of ``settings.analyses`` (and those it needs) runs through the registry
    (:func:`loce.analysis.registry.run_layer`): its tables, headline numbers and result (for the figures).

    ``scan_with`` replaces :func:`~loce.analysis.neighbours.scan_neighbourhoods` (same arguments), e.g. the Ray
    engine's (:func:`loce.engines.ray_analysis.ray_scanner`); its notes and quality figures are reported.
    ``spread_with`` (e.g. :func:`loce.engines.ray_analysis.ray_clustering`) gives purity, mixtures and
    sub-concepts of a store above ``settings.max_samples`` LoCEs as the mean and spread over stratified samples
    (see :func:`clustering_spread_of`).

    All-zero LoCEs (failed fits) are left out and counted (``zero_vectors``); with ``settings.bootstrap`` > 0
    every headline number gets a 95% bootstrap interval over images (``ids``).
    """
    result, X, labels, ids = start_layer(X, labels, ids, settings, model, layer)
    if result.n_loces < 3:
        result.notes.append("fewer than 3 LoCEs left: nothing analysed")
        return result
    layer_pass = LayerPass(X, labels, ids, settings, result, scan_with or scan_neighbourhoods)
    run_layer(layer_pass, settings.analyses)
    found = layer_pass.results
    if settings.bootstrap:
        clock = time.perf_counter()
        _bootstrap(result, X, labels, ids, settings, found.get("retrieval"), found.get("separation"),
                   found.get("purity"), found.get("confusion"))  # fmt: skip
        result.seconds["bootstrap"] = round(time.perf_counter() - clock, 3)
    if spread_with is not None:
        clock = time.perf_counter()
        clustering_spread_of(layer_pass, spread_with)
        result.seconds["clustering_spread"] = round(time.perf_counter() - clock, 3)
    return result


def clustering_spread_of(
    layer_pass: LayerPass, spread_with: Callable[..., tuple[dict[str, float], str]]
) -> dict[str, tuple[float, float]]:
    """Above ``max_samples`` LoCEs: purity, mixtures and sub-concepts as the mean over stratified samples.

    ``spread_with(X, labels, sample_size=..., seed=..., options=...)`` returns ``(figures, note)``: per number
    ``M`` its mean and ``M_ci_low`` / ``M_ci_high``, the 95% spread over the samples. The means replace the
    one-sample headline numbers of the analyses that ran; returns their intervals; the note is added.
    """
    settings, result = layer_pass.settings, layer_pass.result
    ran = set(layer_pass.results) & {"purity", "gmm", "subconcepts"}
    if layer_pass.n <= settings.max_samples or not ran:
        return
    figures, note = spread_with(
        layer_pass.X,
        layer_pass.labels,
        sample_size=settings.max_samples,
        seed=settings.seed,
        options=subconcept_options(settings),
    )
    names = {
        "purity": ("purity", "n_clusters"),
        "gmm": ("gmm_components",),
        "subconcepts": ("subconcepts_per_concept",),
    }
    intervals = {}
    for analysis in sorted(ran):
        for name in names[analysis]:
            if name in figures:
                result.headline[name] = figures[name]
                result.headline.pop(f"{name}_ci_low", None)
                result.headline.pop(f"{name}_ci_high", None)
                intervals[name] = (figures[f"{name}_ci_low"], figures[f"{name}_ci_high"])
    result.headline = with_intervals(result.headline, intervals)
    result.notes.append(note)
    result.interval = (result.interval + "; " if result.interval else "") + (
        f"{', '.join(intervals)}: spread over stratified samples, 95%"
    )


def _bootstrap(
    result: LayerAnalysis,
    X: np.ndarray,
    labels: np.ndarray,
    ids: np.ndarray,
    settings: AnalysisSettings,
    retrieval: RetrievalResult | None,
    separation: ConceptSeparation | None,
    purity: object | None,
    pairs: object | None,
) -> None:
    """Add 95% bootstrap intervals over images to the headline numbers and the tables of ``result``."""
    boot = ImageBootstrap.draw(ids, settings.bootstrap, seed=settings.seed)
    intervals: dict[str, tuple[float, float]] = {}
    if retrieval is not None:
        columns = [(f"precision_at_{k}", retrieval.precision[:, j]) for j, k in enumerate(retrieval.ks)]
        if retrieval.average_precision is not None:
            columns.append(("mean_average_precision", retrieval.average_precision))
        table = result.tables["retrieval"]
        present = set(labels.tolist())
        groups = {c: labels == c for c in table["concept"] if c in present}
        groups["(all)"] = np.ones(labels.size, dtype=bool)
        for name, values in columns:
            intervals[name] = percentile_interval(boot.weighted_means(values))
            replicates = {
                c: boot.weighted_means(np.where(rows, values, np.nan)) for c, rows in groups.items()
            }
            per_concept = np.stack([r for c, r in replicates.items() if c != "(all)"])
            with np.errstate(invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a resample without any LoCE of a concept
                replicates["(mean of concepts)"] = np.nanmean(per_concept, axis=0)
            cis = [percentile_interval(replicates[c]) for c in table["concept"]]
            low, high = [c[0] for c in cis], [c[1] for c in cis]
            position = table.columns.get_loc(name) + 1
            table.insert(position, f"{name}_ci_high", high)
            table.insert(position, f"{name}_ci_low", low)
    geometry = separation is not None or purity is not None
    text = f"bootstrap over images, 95% ({boot.n_resamples} resamples of {boot.images.size} images"
    if geometry and result.n_loces > settings.bootstrap_max_loces:
        result.notes.append(
            f"no bootstrap intervals for separation, overlap, purity and confused pairs above "
            f"{settings.bootstrap_max_loces} LoCEs ({result.n_loces}; the resamples reuse an N x N distance "
            "matrix); use --protocol paper for the spread over seeds"
        )
        geometry = False
    if geometry:
        sep_d = pairwise_distances(X, settings.separation_distance) if separation is not None else None
        pur_d = pairwise_distances(X, "euclidean") if purity is not None else None
        values: dict[str, list[float]] = {
            k: [] for k in ("mean_separation", "mean_overlap", "purity", "n_clusters", "most_confused_score")
        }
        pair_scores: dict[tuple[str, str], list[float]] = {}
        pair_sep: dict[tuple[str, str], list[float]] = {}
        pair_ovl: dict[tuple[str, str], list[float]] = {}
        with small_problem_threads():
            for b in range(boot.n_resamples):
                res = analyse_resample(
                    labels,
                    boot.loce_weights(b),
                    separation_distances=sep_d,
                    separation_metric=settings.separation_distance,
                    purity_distances=pur_d,
                    purity_options={"max_share": purity.max_share, "min_purity": purity.min_purity}
                    if purity is not None
                    else {},
                    confusion=pairs is not None,
                )
                if res.separation is not None:
                    s = res.separation
                    values["mean_separation"].append(mean_off_diagonal(s.separation))
                    values["mean_overlap"].append(mean_off_diagonal(s.overlap))
                    names = s.concepts.tolist()
                    for i, a in enumerate(names):
                        for j, c in enumerate(names):
                            if i != j:
                                pair_sep.setdefault((a, c), []).append(float(s.separation[i, j]))
                                pair_ovl.setdefault((a, c), []).append(float(s.overlap[i, j]))
                if res.purity is not None:
                    values["purity"].append(res.purity.purity)
                    values["n_clusters"].append(res.purity.n_clusters)
                if res.pairs is not None:
                    t = res.pairs.table
                    values["most_confused_score"].append(float(t["score"].iloc[0]))
                    for a, c, score in zip(t["concept_a"], t["concept_b"], t["score"]):
                        pair_scores.setdefault((a, c), []).append(float(score))
        for name, reps in values.items():
            if reps and name in result.headline:
                intervals[name] = centred_interval(
                    reps, float(result.headline[name]), bounds=METRIC_RANGES[name]
                )
        if "separation" in result.tables:
            frame = result.tables["separation"]
            keys = list(zip(frame["concept_i"], frame["concept_j"]))
            for column, store, after in (
                ("separation", pair_sep, "separation"),
                ("overlap_ij", pair_ovl, "overlap_ij"),
            ):
                cis = [
                    centred_interval(store.get(k, []), v, bounds=METRIC_RANGES[column])
                    for k, v in zip(keys, frame[column])
                ]
                position = frame.columns.get_loc(after) + 1
                frame.insert(position, f"{column}_ci_high", [c[1] for c in cis])
                frame.insert(position, f"{column}_ci_low", [c[0] for c in cis])
        if "confused_pairs" in result.tables:
            frame = result.tables["confused_pairs"]
            cis = [
                centred_interval(pair_scores.get(k, []), v, bounds=METRIC_RANGES["score"])
                for k, v in zip(zip(frame["concept_a"], frame["concept_b"]), frame["score"])
            ]
            position = frame.columns.get_loc("score") + 1
            frame.insert(position, "score_ci_high", [c[1] for c in cis])
            frame.insert(position, "score_ci_low", [c[0] for c in cis])
    result.headline = with_intervals(result.headline, intervals)
    result.interval = text + (
        "; separation, overlap, purity, confusion recomputed per resample, centred on the estimate)"
        if geometry
        else ")"
    )


def _pairs(store, layers: Sequence[str] | None, models: Sequence[str] | None) -> list[tuple[str, str]]:
    found = store.table(["model", "layer", "method", "status"]).to_pandas()
    found = found[(found["status"] == "ok") & (found["method"] == "loce")].dropna(subset=["layer"])
    pairs = LayerOrder.from_manifests([store.manifest]).sort_pairs(zip(found["model"], found["layer"]))
    if models:
        pairs = [p for p in pairs if p[0] in models]
    if layers:
        pairs = [p for p in pairs if p[1] in layers]
    if not pairs:
        available = sorted(set(zip(found["model"], found["layer"])))
        raise AnalysisError(
            f"{store.path}: no LoCEs for models {models or 'any'} and layers {layers or 'any'}; the run holds "
            f"(model, layer) {available}. Check --models / --layers."
        )
    return pairs


def settings_record(settings: AnalysisSettings, concepts: Sequence[str] | None) -> dict[str, object]:
    """The settings as written to ``summary.json``."""
    record = {
        name: (list(value) if isinstance(value, tuple) else value)
        for name, value in asdict(settings).items()
        if name != "progress"
    }
    record.update(
        separation_metric=settings.separation_distance,
        retrieval_metric=settings.retrieval_distance,
        concepts=list(concepts) if concepts else None,
    )
    return record


def analyze_run(
    run: str | Path,
    *,
    layers: Sequence[str] | None = None,
    models: Sequence[str] | None = None,
    concepts: Sequence[str] | None = None,
    settings: AnalysisSettings | None = None,
    out_dir: str | Path | None = None,
    protocol: str = "default",
    scan_with: Callable[..., NeighbourhoodScan] | None = None,
    spread_with: Callable[..., tuple[dict[str, float], str]] | None = None,
) -> tuple[list[LayerAnalysis], Path]:
    """Analyse every (model, layer) of a run (or the selected ones) and write the analysis folder.

    ``protocol="default"`` writes ``RUN/analysis/`` (bootstrap intervals over images); ``"paper"`` runs the
    publication's protocol (:mod:`loce.analysis.paper`) and writes ``RUN/analysis_paper/``. The output is
    written to a temporary sibling folder and swapped in when complete (:class:`AtomicOutput`), so a failure
    leaves the previous analysis as it was and the folder never mixes two analyses.

    ``scan_with`` replaces the neighbour pass (see :func:`analyze_vectors`), e.g. with the Ray engine's;
    ``spread_with`` reports purity, mixtures and sub-concepts of large stores over stratified samples (e.g.
    :func:`loce.engines.ray_analysis.ray_clustering`).

    Returns:
        the per-(model, layer) results and the output directory.

    Example:
        ``results, out = analyze_run("runs/scenes", layers=["_blocks.10"])``
    """
    from loce.store import LoCEStore

    settings = settings or AnalysisSettings()
    check_protocol(protocol)
    run = Path(run)
    store = LoCEStore.open(run)
    target = Path(out_dir) if out_dir is not None else analysis_dir(run, protocol)
    pairs = _pairs(store, layers, models)
    results, figure_entries = [], []
    with AtomicOutput(target) as output:
        out = output.path
        for model, layer in pairs:
            X, meta = store.vectors(layer=layer, model=model, concepts=list(concepts) if concepts else None)
            if len(meta) == 0:
                continue
            try:
                if protocol == "paper":
                    from loce.analysis.paper import analyze_paper

                    result = analyze_paper(
                        X, meta["concept"].to_numpy(), meta["sample_id"].to_numpy(), settings, model, layer
                    )
                else:
                    result = analyze_vectors(
                        X, meta["concept"].to_numpy(), meta["sample_id"].to_numpy(), settings, model, layer,
                        scan_with=scan_with, spread_with=spread_with,
                    )  # fmt: skip
                if protocol == "default" and result.n_loces >= 3:  # ground truth: loce.analysis.attributes
                    result.tables.update(attribute_tables(X, meta, result.details, seed=settings.seed))
                if protocol == "default" and settings.figure_data and result.n_loces >= 3:
                    clock = time.perf_counter()
                    data = build_figure_data(X, meta, result, settings)
                    taken = [Path(e["dir"]).name for e in figure_entries]
                    files = AnalysisFiles(out)
                    directory = write_figure_data(data, files.figure_data_root, taken=taken)
                    figure_entries.append(
                        {"model": model, "layer": layer, "dir": files.figure_data_entry(directory)}
                    )
                    result.notes.extend(data.notes)
                    result.seconds["figure_data"] = round(time.perf_counter() - clock, 3)
            except LoceError as exc:
                raise AnalysisError(f"{run}: model {model!r}, layer {layer!r}: {exc}") from exc
            result.details.clear()  # the scan and clusterings can be large: keep only the tables
            results.append(result)
        written = write_results(results, out, run_name=str(run))
        summary = {
            "format": ANALYSIS_FORMAT,
            "version": SUMMARY_VERSION,
            "protocol": protocol,
            "run": str(run),
            "analyses": list(settings.analyses),
            "concepts": sorted({c for r in results for c in r.concepts}),
            "layers": [{"model": r.model, "layer": r.layer} for r in results],
            "settings": settings_record(settings, concepts),
            "results": [
                {
                    "model": r.model,
                    "layer": r.layer,
                    "n_loces": r.n_loces,
                    "n_concepts": r.n_concepts,
                    "concepts": r.concepts,
                    "zero_vectors": r.zero_vectors,
                    "dropped_concepts": r.dropped,
                    "protocol": r.protocol,
                    "interval": r.interval,
                    "headline": r.headline,
                    "seconds": r.seconds,
                    "notes": r.notes,
                }
                for r in results
            ],
            "tables": written,
            "figure_data": figure_entries,
        }
        AnalysisFiles(out).summary.write_text(json.dumps(summary, indent=2, default=float) + "\n")
    return results, target


def headline_frame(results: Sequence[LayerAnalysis], run_name: str = "") -> pd.DataFrame:
    """One row per (model, layer): the headline numbers with their intervals, side by side.

    Columns: ``run, model, layer, protocol, n_loces, n_concepts, zero_vectors``, the numbers (each ``M`` followed
    by ``M_ci_low``, ``M_ci_high`` where it has an interval) and ``interval``.
    """
    rows = [
        {
            "run": run_name,
            "model": r.model,
            "layer": r.layer,
            "protocol": r.protocol,
            "n_loces": r.n_loces,
            "n_concepts": r.n_concepts,
            "zero_vectors": r.zero_vectors,
            **r.headline,
            "interval": r.interval,
        }
        for r in results
    ]
    return pd.DataFrame(rows)


def write_results(results: Sequence[LayerAnalysis], out: Path, run_name: str) -> list[str]:
    """Write the headline table and every analysis table (concatenated over (model, layer)) to ``out``.

    Every table starts with ``run, model, layer, protocol``.
    """
    written = write_table(headline_frame(results, run_name), out, "headline")
    names = sorted({name for r in results for name in r.tables})
    for name in names:
        frames = []
        for r in results:
            if name in r.tables:
                frame = r.tables[name].copy()
                for position, (column, value) in enumerate(
                    (("run", run_name), ("model", r.model), ("layer", r.layer), ("protocol", r.protocol))
                ):
                    frame.insert(position, column, value)
                frames.append(frame)
        written += write_table(pd.concat(frames, ignore_index=True), out, name)
    return written
