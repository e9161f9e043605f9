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
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from loce.analysis.errors import AnalysisError
from loce.analysis.figure_data import MAP_METHODS, build_figure_data
from loce.analysis.figure_files import write_figure_data
from loce.analysis.gmm import fit_gmms
from loce.analysis.inputs import ConceptIndex, stratified_subsample
from loce.analysis.neighbours import scan_neighbourhoods
from loce.analysis.outliers import find_outliers
from loce.analysis.purity import DEFAULT_MAX_SAMPLES, concept_purity
from loce.analysis.retrieval import DEFAULT_KS, RetrievalResult
from loce.analysis.separation import ConceptSeparation, confused_pairs
from loce.analysis.subconcepts import METHODS as SUBCONCEPT_METHODS
from loce.analysis.subconcepts import find_subconcepts
from loce.errors import LoceError

RUN_ANALYSES = ("retrieval", "separation", "confusion", "purity", "outliers", "gmm", "subconcepts")
SUMMARY_VERSION = 2
FIGURE_DATA_DIR = "layers"


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

    analyses: tuple[str, ...] = RUN_ANALYSES
    metric: str = "cosine"
    ks: tuple[int, ...] = DEFAULT_KS
    average_precision: bool = True
    min_per_concept: int = 2
    max_samples: int = DEFAULT_MAX_SAMPLES
    seed: int = 0
    progress: bool = False
    subconcept_method: str = "gmm"
    subconcept_dims: int = 2
    loces_per_subconcept: int = 10
    figure_data: bool = True
    map_method: str = "umap"
    map_points: int = 3000
    neighbours: int = 10

    def __post_init__(self) -> None:
        unknown = sorted(set(self.analyses) - set(RUN_ANALYSES))
        if unknown:
            raise AnalysisError(f"unknown analyses {unknown}; choose from {', '.join(RUN_ANALYSES)}.")
        if self.subconcept_method not in SUBCONCEPT_METHODS:
            raise AnalysisError(
                f"unknown sub-concept method {self.subconcept_method!r}; use {', '.join(SUBCONCEPT_METHODS)}."
            )
        if self.map_method not in MAP_METHODS:
            raise AnalysisError(f"unknown map method {self.map_method!r}; use {', '.join(MAP_METHODS)}.")


@dataclass
class LayerAnalysis:
    """Results of the analyses of one (model, layer): tables, headline numbers and what was left out."""

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


def analyze_vectors(
    X: np.ndarray,
    labels: np.ndarray,
    ids: np.ndarray,
    settings: AnalysisSettings,
    model: str = "",
    layer: str = "",
) -> LayerAnalysis:
    """Run the selected analyses on one set of LoCEs (one model and layer); pure, no files."""
    labels = np.asarray(labels).astype(str)
    index = ConceptIndex.from_labels(labels)
    small = index.counts < settings.min_per_concept
    dropped = dict(zip(index.concepts[small].tolist(), index.counts[small].tolist()))
    keep = ~small[index.codes]
    X, labels, ids = X[keep], labels[keep], np.asarray(ids)[keep]
    result = LayerAnalysis(model, layer, int(len(labels)), int(len(set(labels.tolist()))), dropped, {})
    result.details["kept"] = np.flatnonzero(keep)
    if dropped:
        result.notes.append(f"dropped concepts with fewer than {settings.min_per_concept} LoCEs: {dropped}")
    if result.n_loces < 3:
        result.notes.append("fewer than 3 LoCEs left: nothing analysed")
        return result
    chosen, clock = set(settings.analyses), time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        result.seconds[name] = round(time.perf_counter() - clock, 3)
        clock = time.perf_counter()

    several = result.n_concepts >= 2
    separation = purity = None
    ks = tuple(k for k in settings.ks if k <= result.n_loces - 1)
    if len(ks) < len(settings.ks):
        result.notes.append(f"precision@k only for k <= {result.n_loces - 1} (the number of other LoCEs)")
    want_scan = ("retrieval" in chosen and ks) or (several and chosen & {"separation", "confusion"})
    if want_scan:
        scan = scan_neighbourhoods(
            X,
            labels,
            metric=settings.metric,
            extremes=several and bool(chosen & {"separation", "confusion"}),
            k=max(ks) if "retrieval" in chosen and ks else 0,
            average_precision=settings.average_precision and "retrieval" in chosen,
            progress=settings.progress,
        )
        result.details["scan"] = scan
        lap("neighbourhood_pass")
        if "retrieval" in chosen and ks:
            retrieval = RetrievalResult.from_scan(scan, ks)
            result.details["retrieval"] = retrieval
            result.tables["retrieval"] = retrieval.to_frame()
            result.headline.update({f"precision_at_{k}": retrieval.precision_at(k) for k in ks})
            if retrieval.average_precision is not None:
                result.headline["mean_average_precision"] = retrieval.mean_average_precision
        if scan.nearest is not None:
            separation = ConceptSeparation.from_scan(scan)
            off = ~np.eye(separation.concepts.size, dtype=bool)
            result.tables["separation"] = separation.to_frame()
            result.headline.update(
                mean_separation=float(separation.separation[off].mean()),
                touching_pairs=int(
                    (separation.separation[np.triu_indices(separation.concepts.size, 1)] == 0).sum()
                ),
                mean_overlap=float(separation.overlap[off].mean()),
            )
        lap("retrieval_separation")
    elif chosen & {"separation", "confusion"}:
        result.notes.append("separation and confusion need at least 2 concepts")
    if chosen & {"purity", "confusion"}:
        subset = np.arange(result.n_loces)
        if result.n_loces > settings.max_samples:
            subset = stratified_subsample(labels, settings.max_samples, seed=settings.seed)
            result.notes.append(f"purity on a stratified subsample of {subset.size} LoCEs")
        purity = concept_purity(X[subset], labels[subset], ids=ids[subset], max_samples=settings.max_samples)
        result.details.update(purity=purity, purity_rows=subset)
        result.tables["purity_clusters"] = purity.to_frame()
        result.headline.update(purity=purity.purity, n_clusters=purity.n_clusters)
        lap("purity")
    if "confusion" in chosen and separation is not None:
        pairs = confused_pairs(separation, purity)
        result.tables["confused_pairs"] = pairs.to_frame()
        first = pairs.table.iloc[0]
        result.headline["most_confused_pair"] = f"{first.concept_a} / {first.concept_b}"
        lap("confusion")
    if "outliers" in chosen:
        outliers = find_outliers(X, labels, ids=ids, seed=settings.seed)
        result.details["outliers"] = outliers
        result.tables["outliers"] = outliers.top(10)
        lap("outliers")
    if "gmm" in chosen and result.n_loces >= 4:
        fit_rows = np.arange(result.n_loces)
        if result.n_loces > settings.max_samples:
            fit_rows = stratified_subsample(labels, settings.max_samples, seed=settings.seed)
            result.notes.append(
                f"Gaussian mixtures fitted on a stratified subsample of {fit_rows.size} LoCEs"
            )
        with small_problem_threads():
            gmms = fit_gmms(X[fit_rows], labels[fit_rows], seed=settings.seed)
        table = gmms.to_frame()
        table["mean"] = table["mean"].map(lambda v: json.dumps([round(x, 6) for x in v]))
        result.tables["gmm_components"] = table
        if gmms.overall is not None:
            result.headline["gmm_components"] = gmms.overall.n_components
        lap("gmm")
    if "subconcepts" in chosen:
        frames, found = [], []
        for concept in index.concepts[~small].tolist():
            members = np.flatnonzero(labels == concept)
            if members.size > settings.max_samples:
                result.notes.append(f"sub-concepts of {concept!r} skipped: {members.size} LoCEs")
                continue
            with small_problem_threads():
                split = find_subconcepts(
                    X,
                    labels,
                    concept,
                    method=settings.subconcept_method,
                    n_dims=settings.subconcept_dims,
                    max_subconcepts=int(np.clip(members.size // settings.loces_per_subconcept, 1, 8)),
                    ids=ids,
                    seed=settings.seed,
                )
            found.append(split)
            frames.append(split.to_frame())
        result.details["subconcepts"] = found
        if frames:
            result.tables["subconcepts"] = pd.concat(frames, ignore_index=True)
        lap("subconcepts")
    return result


def small_problem_threads():
    """Run BLAS / OpenMP on one thread inside this context (a context manager).

    scikit-learn's Gaussian mixtures on a few hundred points in a few dimensions run 20-50x slower with
    multi-threaded BLAS on a shared 2-core machine than on one thread (measured); the block-wise neighbourhood
    pass keeps all threads.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def _pairs(store, layers: Sequence[str] | None, models: Sequence[str] | None) -> list[tuple[str, str]]:
    found = store.table(["model", "layer", "method", "status"]).to_pandas()
    found = found[(found["status"] == "ok") & (found["method"] == "loce")].dropna(subset=["layer"])
    pairs = sorted(set(zip(found["model"], found["layer"])))
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


def _write_table(frame: pd.DataFrame, out_dir: Path, name: str) -> list[str]:
    frame.to_csv(out_dir / f"{name}.csv", index=False)
    frame.to_parquet(out_dir / f"{name}.parquet", index=False)
    return [f"{name}.csv", f"{name}.parquet"]


def analyze_run(
    run: str | Path,
    *,
    layers: Sequence[str] | None = None,
    models: Sequence[str] | None = None,
    concepts: Sequence[str] | None = None,
    settings: AnalysisSettings | None = None,
    out_dir: str | Path | None = None,
) -> tuple[list[LayerAnalysis], Path]:
    """Analyse every (model, layer) of a run (or the selected ones) and write ``RUN/analysis/``.

    Returns:
        the per-(model, layer) results and the output directory.

    Example:
        ``results, out = analyze_run("runs/scenes", layers=["_blocks.10"])``
    """
    from loce.store import LoCEStore

    settings = settings or AnalysisSettings()
    run = Path(run)
    store = LoCEStore.open(run)
    out = Path(out_dir) if out_dir is not None else run / "analysis"
    out.mkdir(parents=True, exist_ok=True)
    if (out / FIGURE_DATA_DIR).is_dir():  # figure data of an earlier call: replaced as a whole
        shutil.rmtree(out / FIGURE_DATA_DIR)
    results, figure_entries = [], []
    for model, layer in _pairs(store, layers, models):
        X, meta = store.vectors(layer=layer, model=model, concepts=list(concepts) if concepts else None)
        if len(meta) == 0:
            continue
        try:
            result = analyze_vectors(
                X, meta["concept"].to_numpy(), meta["sample_id"].to_numpy(), settings, model, layer
            )
            if settings.figure_data and result.n_loces >= 3:
                clock = time.perf_counter()
                data = build_figure_data(X, meta, result, settings)
                taken = [Path(e["dir"]).name for e in figure_entries]
                directory = write_figure_data(data, out / FIGURE_DATA_DIR, taken=taken)
                figure_entries.append(
                    {"model": model, "layer": layer, "dir": f"{FIGURE_DATA_DIR}/{directory.name}"}
                )
                result.notes.extend(data.notes)
                result.seconds["figure_data"] = round(time.perf_counter() - clock, 3)
        except LoceError as exc:
            raise AnalysisError(f"{run}: model {model!r}, layer {layer!r}: {exc}") from exc
        result.details.clear()  # the scan and clusterings can be large: keep only the tables
        results.append(result)
    written = write_results(results, out, run_name=str(run))
    summary = {
        "format": "loce-analysis",
        "version": SUMMARY_VERSION,
        "run": str(run),
        "settings": {
            "analyses": list(settings.analyses),
            "metric": settings.metric,
            "ks": list(settings.ks),
            "average_precision": settings.average_precision,
            "min_per_concept": settings.min_per_concept,
            "max_samples": settings.max_samples,
            "seed": settings.seed,
            "concepts": list(concepts) if concepts else None,
            "subconcept_method": settings.subconcept_method,
            "subconcept_dims": settings.subconcept_dims,
            "loces_per_subconcept": settings.loces_per_subconcept,
            "figure_data": settings.figure_data,
            "map_method": settings.map_method,
            "map_points": settings.map_points,
            "neighbours": settings.neighbours,
        },
        "results": [
            {
                "model": r.model,
                "layer": r.layer,
                "n_loces": r.n_loces,
                "n_concepts": r.n_concepts,
                "dropped_concepts": r.dropped,
                "headline": r.headline,
                "seconds": r.seconds,
                "notes": r.notes,
            }
            for r in results
        ],
        "tables": written,
        "figure_data": figure_entries,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    return results, out


def headline_frame(results: Sequence[LayerAnalysis], run_name: str = "") -> pd.DataFrame:
    """One row per (model, layer): the headline numbers, side by side."""
    rows = [
        {
            "run": run_name,
            "model": r.model,
            "layer": r.layer,
            "n_loces": r.n_loces,
            "n_concepts": r.n_concepts,
            **r.headline,
        }
        for r in results
    ]
    return pd.DataFrame(rows)


def write_results(results: Sequence[LayerAnalysis], out: Path, run_name: str) -> list[str]:
    """Write the headline table and every analysis table (concatenated over (model, layer)) to ``out``."""
    written = _write_table(headline_frame(results, run_name), out, "headline")
    names = sorted({name for r in results for name in r.tables})
    for name in names:
        frames = []
        for r in results:
            if name in r.tables:
                frame = r.tables[name].copy()
                for position, (column, value) in enumerate(
                    (("run", run_name), ("model", r.model), ("layer", r.layer))
                ):
                    frame.insert(position, column, value)
                frames.append(frame)
        written += _write_table(pd.concat(frames, ignore_index=True), out, name)
    return written
