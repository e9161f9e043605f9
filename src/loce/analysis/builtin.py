"""The built-in analyses of the registry (:mod:`loce.analysis.registry`), in the order ``loce analyze`` runs them.

``retrieval`` and ``separation`` share one exact neighbour pass per metric; ``confusion`` reads the separation and
purity results; ``purity`` and ``gmm`` fit a stratified subsample above ``max_samples`` LoCEs; ``subconcepts``
splits each concept of at most ``max_samples`` LoCEs. Headline numbers (``summary``) have the same names in
``RUN/analysis/headline.csv``, :func:`loce.analysis.compare.compare` and ``compare-methods``.

Example:
    >>> from loce.analysis.registry import ANALYSES
    >>> set(BUILTIN_ANALYSES) <= set(ANALYSES)
    True
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from loce.analysis.gmm import GMMResult, fit_gmms
from loce.analysis.inputs import ConceptIndex, stratified_subsample
from loce.analysis.outliers import OutlierResult, find_outliers, isolation_forest_stability
from loce.analysis.purity import DEFAULT_MAX_SAMPLES, PurityResult, concept_purity
from loce.analysis.registry import LayerPass, MethodSet, ScanNeed, register_analysis
from loce.analysis.retrieval import RetrievalResult, retrieval_scores
from loce.analysis.separation import (
    ConceptSeparation,
    ConfusedPairs,
    confused_pairs,
    mean_off_diagonal,
    separation_chance,
    separation_overlap,
)
from loce.analysis.subconcepts import SubConcepts, find_subconcepts

BUILTIN_ANALYSES = ("retrieval", "separation", "confusion", "purity", "outliers", "gmm", "subconcepts")
"""The names of the built-in analyses (``loce analyze --analyses``)."""

OUTLIERS_LISTED = 10
"""Most outlying LoCEs per concept in the ``outliers`` table."""


def small_problem_threads():
    """Run BLAS / OpenMP on one thread inside this context (a context manager).

    scikit-learn's Gaussian mixtures on a few hundred points in a few dimensions run 20-50x slower with
    multi-threaded BLAS on a shared 2-core machine than on one thread (measured); the block-wise neighbourhood
    pass keeps all threads.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


# ------------------------------------------------------------------------------------------------ retrieval
def retrieval_summary(result: RetrievalResult) -> dict[str, object]:
    """``precision_at_<k>`` per k and ``mean_average_precision`` (when computed)."""
    summary: dict[str, object] = {f"precision_at_{k}": result.precision_at(k) for k in result.ks}
    if result.average_precision is not None:
        summary["mean_average_precision"] = result.mean_average_precision
    return summary


def _retrieval_need(layer: LayerPass) -> ScanNeed | None:
    if not layer.ks:
        return None
    settings = layer.settings
    return ScanNeed(
        settings.retrieval_distance, k=max(layer.ks), average_precision=settings.average_precision
    )


def _retrieval_step(layer: LayerPass) -> RetrievalResult | None:
    if len(layer.ks) < len(layer.settings.ks):
        layer.note(f"precision@k only for k <= {layer.n - 1} (the number of other LoCEs)")
    if not layer.ks:
        return None
    scan = layer.scan(layer.settings.retrieval_distance)
    layer.details["scan"] = scan
    return RetrievalResult.from_scan(scan, layer.ks)


def _retrieval_of_method(entry: MethodSet) -> RetrievalResult | None:
    usable = tuple(k for k in entry.ks if k <= len(entry.labels) - 1)
    if not entry.per_sample or not usable:
        return None
    return retrieval_scores(entry.X, entry.labels, ks=usable, metric=entry.metric)


register_analysis(
    "retrieval",
    retrieval_summary,
    tables=lambda r: {"retrieval": r.to_frame()},
    step=_retrieval_step,
    neighbours=_retrieval_need,
    methods=_retrieval_of_method,
    method_columns=lambda ks: [f"precision_at_{k}" for k in ks] + ["mean_average_precision"],
)(retrieval_scores)


# ----------------------------------------------------------------------------------------------- separation
SEPARATION_CHANCE_MAX_LOCES = 20_000
"""Above this many LoCEs in a layer ``loce analyze`` does not compute the chance level of the mean separation
(each of its shuffles is one more exact pass)."""


def separation_summary(result: ConceptSeparation) -> dict[str, object]:
    """``mean_separation``, its chance level ``mean_separation_chance`` (when computed), ``touching_pairs`` (pairs
    with ``S_ij`` = 0) and ``mean_overlap`` (when computed)."""
    summary: dict[str, object] = {"mean_separation": mean_off_diagonal(result.separation)}
    if result.chance is not None:
        summary["mean_separation_chance"] = result.chance
    summary["touching_pairs"] = int((result.separation[np.triu_indices(result.concepts.size, 1)] == 0).sum())
    if result.overlap is not None:
        summary["mean_overlap"] = mean_off_diagonal(result.overlap)
    return summary


def _separation_step(layer: LayerPass) -> ConceptSeparation | None:
    if not layer.several:
        layer.note("separation and confusion need at least 2 concepts")
        return None
    metric = layer.settings.separation_distance
    result = ConceptSeparation.from_scan(layer.scan(metric))
    if not np.isfinite(mean_off_diagonal(result.separation)):
        return result  # an approximate pass has no separation, hence no chance level of it
    if layer.n > SEPARATION_CHANCE_MAX_LOCES:
        layer.note(
            f"no chance level for the mean separation above {SEPARATION_CHANCE_MAX_LOCES} LoCEs "
            f"({layer.n}; each shuffle of the concepts is one more exact pass)"
        )
        return result
    result.chance = separation_chance(
        layer.X, layer.labels, metric=metric, seed=layer.settings.seed, scan_with=layer.scan_with
    )
    return result


def _separation_of_method(entry: MethodSet) -> ConceptSeparation | None:
    if not entry.per_sample:
        return None
    return separation_overlap(entry.X, entry.labels, metric=entry.metric, overlap=False)


register_analysis(
    "separation",
    separation_summary,
    tables=lambda r: {"separation": r.to_frame()},
    step=_separation_step,
    neighbours=lambda layer: (
        ScanNeed(layer.settings.separation_distance, extremes=True) if layer.several else None
    ),
    methods=_separation_of_method,
    method_columns=lambda ks: ["mean_separation"],
)(separation_overlap)


# --------------------------------------------------------------------------------------------------- purity
def purity_summary(result: PurityResult) -> dict[str, object]:
    """``purity`` and ``n_clusters`` of the adaptive hierarchical clustering."""
    return {"purity": result.purity, "n_clusters": result.n_clusters}


def _purity_step(layer: LayerPass) -> PurityResult:
    settings = layer.settings
    subset = np.arange(layer.n)
    if layer.n > settings.max_samples:
        subset = stratified_subsample(layer.labels, settings.max_samples, seed=settings.seed)
        layer.note(f"purity on a stratified subsample of {subset.size} LoCEs")
    purity = concept_purity(
        layer.X[subset], layer.labels[subset], ids=layer.ids[subset], max_samples=settings.max_samples
    )
    layer.details["purity_rows"] = subset
    return purity


def _purity_of_method(entry: MethodSet) -> PurityResult | None:
    if not entry.per_sample:
        return None
    keep = stratified_subsample(entry.labels, entry.purity_max_samples, seed=entry.seed)
    entry.row["purity_samples"] = int(keep.size)
    return concept_purity(entry.X[keep], entry.labels[keep])


register_analysis(
    "purity",
    purity_summary,
    tables=lambda r: {"purity_clusters": r.to_frame()},
    step=_purity_step,
    methods=_purity_of_method,
    method_columns=lambda ks: ["purity", "n_clusters", "purity_samples"],
)(concept_purity)


# ------------------------------------------------------------------------------------------------ confusion
def confusion_summary(result: ConfusedPairs) -> dict[str, object]:
    """``most_confused_pair`` (``"a / b"``) and its ``most_confused_score``."""
    first = result.table.iloc[0]
    return {
        "most_confused_pair": f"{first.concept_a} / {first.concept_b}",
        "most_confused_score": float(first.score),
    }


def confusion(
    X: object, labels: object, *, metric: str = "cosine", with_purity: bool = False, **options
) -> ConfusedPairs:
    """Confused concept pairs from separation, overlap and (optionally) the purity clustering."""
    separation = separation_overlap(X, labels, metric=metric, **options)
    purity = concept_purity(X, labels) if with_purity else None
    return confused_pairs(separation, purity)


def _confusion_step(layer: LayerPass) -> ConfusedPairs | None:
    separation = layer.results.get("separation")
    if separation is None:
        return None
    return confused_pairs(separation, layer.results.get("purity"))


register_analysis(
    "confusion",
    confusion_summary,
    tables=lambda r: {"confused_pairs": r.to_frame()},
    step=_confusion_step,
    needs=("separation", "purity"),
    in_methods=False,
)(confusion)


# ------------------------------------------------------------------------------------------------- outliers
def outlier_analysis(
    X: object, labels: object, *, ids: object = None, seed: int = 0, stability_seeds: int = 5
) -> OutlierResult:
    """:func:`~loce.analysis.outliers.find_outliers` with the IsolationForest's seed stability attached.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> result = outlier_analysis(rng.normal(size=(20, 3)), ["a", "b"] * 10)
        >>> sorted(outlier_summary(result))
        ['isolation_forest_spearman', 'isolation_forest_top5_overlap']
    """
    result = find_outliers(X, labels, ids=ids, seed=seed)
    result.stability = isolation_forest_stability(X, labels, seeds=range(seed, seed + stability_seeds))
    return result


def outlier_summary(result: OutlierResult) -> dict[str, object]:
    """How stable the IsolationForest ranking is over seeds (Spearman, top-5 overlap), when measured."""
    if result.stability is None:
        return {}
    return {
        "isolation_forest_spearman": result.stability["spearman"],
        "isolation_forest_top5_overlap": result.stability["top_overlap"],
    }


register_analysis(
    "outliers",
    outlier_summary,
    tables=lambda r: {"outliers": r.top(OUTLIERS_LISTED)},
    step=lambda layer: outlier_analysis(layer.X, layer.labels, ids=layer.ids, seed=layer.settings.seed),
    in_methods=False,
)(outlier_analysis)


# ------------------------------------------------------------------------------------------------------ gmm
def gmm_summary(result: GMMResult) -> dict[str, object]:
    """``gmm_components``: components of the label-agnostic mixture (when fitted)."""
    return {} if result.overall is None else {"gmm_components": result.overall.n_components}


def gmm_tables(result: GMMResult) -> dict[str, pd.DataFrame]:
    """One row per component; its mean as a JSON list (6 decimals)."""
    table = result.to_frame()
    table["mean"] = table["mean"].map(lambda v: json.dumps([round(x, 6) for x in v]))
    return {"gmm_components": table}


def _gmm_step(layer: LayerPass) -> GMMResult | None:
    if layer.n < 4:
        return None
    settings = layer.settings
    fit_rows = np.arange(layer.n)
    if layer.n > settings.max_samples:
        fit_rows = stratified_subsample(layer.labels, settings.max_samples, seed=settings.seed)
        layer.note(f"Gaussian mixtures fitted on a stratified subsample of {fit_rows.size} LoCEs")
    with small_problem_threads():
        return fit_gmms(layer.X[fit_rows], layer.labels[fit_rows], seed=settings.seed)


register_analysis("gmm", gmm_summary, tables=gmm_tables, step=_gmm_step, in_methods=False)(fit_gmms)


# ------------------------------------------------------------------------------------------------ subconcepts
class ConceptSplits(list):
    """The :class:`~loce.analysis.subconcepts.SubConcepts` of every concept split (a list), and ``skipped``:
    the concepts left out for having more than ``max_members`` LoCEs, with their counts."""

    def __init__(self, splits: list[SubConcepts], skipped: dict[str, int]):
        super().__init__(splits)
        self.skipped = skipped

    def to_frame(self) -> pd.DataFrame:
        """One row per sub-concept (see :meth:`SubConcepts.to_frame`)."""
        frames = [split.to_frame() for split in self]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def subconcepts_of_concepts(
    X: object,
    labels: object,
    *,
    ids: object = None,
    method: str = "gmm",
    n_dims: int = 2,
    loces_per_subconcept: int = 10,
    max_members: int = DEFAULT_MAX_SAMPLES,
    seed: int = 0,
) -> ConceptSplits:
    """Sub-concepts of every concept: at most one per ``loces_per_subconcept`` LoCEs (1 to 8), one thread.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> X = np.concatenate([rng.normal(size=(20, 2)), rng.normal(size=(20, 2)) + 9])
        >>> [split.concept for split in subconcepts_of_concepts(X, ["a"] * 20 + ["b"] * 20)]
        ['a', 'b']
    """
    labels = np.asarray(labels).astype(str)
    found, skipped = [], {}
    for concept in ConceptIndex.from_labels(labels).concepts.tolist():
        members = int((labels == concept).sum())
        if members > max_members:
            skipped[concept] = members
            continue
        with small_problem_threads():
            found.append(
                find_subconcepts(
                    X,
                    labels,
                    concept,
                    method=method,
                    n_dims=n_dims,
                    max_subconcepts=int(np.clip(members // loces_per_subconcept, 1, 8)),
                    ids=ids,
                    seed=seed,
                )
            )
    return ConceptSplits(found, skipped)


def subconcept_options(settings) -> dict[str, object]:
    """The sub-concept options of :func:`subconcepts_of_concepts` that the analysis settings set."""
    return {
        "method": settings.subconcept_method,
        "n_dims": settings.subconcept_dims,
        "loces_per_subconcept": settings.loces_per_subconcept,
    }


def _subconcepts_step(layer: LayerPass) -> ConceptSplits:
    settings = layer.settings
    splits = subconcepts_of_concepts(
        layer.X, layer.labels, ids=layer.ids, max_members=settings.max_samples, seed=settings.seed,
        **subconcept_options(settings),
    )  # fmt: skip
    for concept, members in splits.skipped.items():
        layer.note(f"sub-concepts of {concept!r} skipped: {members} LoCEs")
    return splits


register_analysis(
    "subconcepts",
    lambda splits: {},
    tables=lambda splits: {"subconcepts": splits.to_frame()} if len(splits) else {},
    step=_subconcepts_step,
    in_methods=False,
)(subconcepts_of_concepts)
