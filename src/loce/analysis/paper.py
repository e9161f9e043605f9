"""The publication's analysis protocol (METHOD.md section 2a), for ``loce analyze --protocol paper``.

For each seed: per concept at most ``per_concept`` (100) LoCEs, the first after a seeded shuffle
(:func:`protocol_sample`); on that sample

- retrieval (cosine, leave-one-out precision@k and true mean average precision);
- separation and overlap on the raw LoCEs with the Euclidean distance (``S_ij`` denominator + 1e-6), the
  per-concept separation index, the confused pairs;
- purity of the ward / Euclidean adaptive walk with ``group_size = int(coefficient x number of ALL loaded
  LoCEs)`` in two presets, relaxed (0.05, 0.8) and strict (0.025, 0.9);
- prediction of the held-out LoCEs' concepts (those not sampled, when there are any): nearest centroid of the
  relaxed purity clusters and k-NN voting (k = 5);
- on the first ``map_seeds`` seeds only (UMAP costs seconds per fit): UMAP to 2-D (Euclidean,
  ``n_neighbors = group_size``, ``random_state`` 42) and Gaussian mixtures in it, per concept k = 1..5 and
  label-agnostic k = 1..10, lowest BIC, full covariance, ``random_state`` 0; components of weight <= 0.1 are
  dropped and their members are outliers (component -1). The per-concept components are the sub-concepts.

Every number is reported as the mean over the seeds with the 2.5 / 97.5 percentiles over the seeds as its
95% interval (and the standard deviation). Outliers (summed cosine distance, LOF, IsolationForest) are ranked
once on all LoCEs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from loce.analysis.errors import AnalysisError, TooFewSamplesError
from loce.analysis.gmm import fit_gmms
from loce.analysis.inputs import ConceptIndex
from loce.analysis.intervals import percentile_interval
from loce.analysis.neighbours import scan_neighbourhoods
from loce.analysis.outliers import find_outliers, isolation_forest_stability
from loce.analysis.prediction import ConceptPredictor
from loce.analysis.purity import concept_purity
from loce.analysis.reduce import fit_reducer
from loce.analysis.retrieval import RetrievalResult
from loce.analysis.separation import ConceptSeparation, confused_pairs, mean_off_diagonal, separation_index
from loce.analysis.subconcepts import find_subconcepts
from loce.reprs import short_repr

PURITY_PRESETS = {"relaxed": (0.05, 0.8), "strict": (0.025, 0.9)}
SEPARATION_EPS = 1e-6
MIXTURE_MIN_WEIGHT = 0.1
UMAP_RANDOM_STATE = 42
GMM_RANDOM_STATE = 0
PER_CONCEPT_COMPONENTS = 5
OVERALL_COMPONENTS = 10
KNN_K = 5
OUTLIERS_SHOWN = 7


def protocol_sample(labels: object, seed: int, per_concept: int = 100) -> np.ndarray:
    """Indices (ascending) of the LoCEs one seed of the protocol analyses.

    One generator ``np.random.default_rng(seed)`` shuffles the members of each concept in turn (concepts in
    sorted order, members in their given order); the first ``per_concept`` of each shuffle are taken.

    Example:
        >>> protocol_sample(["a", "a", "a", "b"], seed=0, per_concept=2).tolist()  # 2 of the 3 "a", the "b"
        [0, 2, 3]
    """
    lab = np.asarray(labels).astype(str)
    if per_concept < 1:
        raise AnalysisError(f"per_concept must be at least 1, got {per_concept}.")
    rng = np.random.default_rng(seed)
    index = ConceptIndex.from_labels(lab)
    picked = [rng.permutation(index.members(k))[:per_concept] for k in range(index.n_concepts)]
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)


def group_size(coefficient: float, n_loaded: int) -> int:
    """The purity walk's size limit: ``int(coefficient x number of ALL loaded LoCEs)``.

    Example:
        >>> group_size(0.05, 623), group_size(0.025, 623)
        (31, 15)
    """
    return int(coefficient * n_loaded)


@dataclass
class SeedResult:
    """Numbers and per-concept / per-pair values of one seed."""

    __repr__ = short_repr

    numbers: dict[str, float]
    pairs: pd.DataFrame | None = None
    confusion: pd.DataFrame | None = None
    index: pd.DataFrame | None = None
    retrieval: pd.DataFrame | None = None
    purity: dict[str, object] = field(default_factory=dict)
    mixtures: pd.DataFrame | None = None
    subconcepts: pd.DataFrame | None = None


def _map_mixtures(
    X: np.ndarray, labels: np.ndarray, n_neighbors: int, seed: int
) -> tuple[dict, pd.DataFrame]:
    """UMAP 2-D and the paper's mixtures in it; returns (numbers, one row per component)."""
    reducer, _ = fit_reducer(
        X,
        "umap",
        2,
        seed=UMAP_RANDOM_STATE,
        n_neighbors=int(np.clip(n_neighbors, 2, X.shape[0] - 1)),
        metric="euclidean",
    )
    gmms = fit_gmms(
        X,
        labels,
        reducer=reducer,
        max_components=PER_CONCEPT_COMPONENTS,
        overall_max_components=OVERALL_COMPONENTS,
        min_weight=0.0,
        min_component_size=1,
        seed=GMM_RANDOM_STATE,
    )
    rows, outliers, per_concept = [], 0, []
    for fit in gmms.mixtures():
        dropped = fit.weights <= MIXTURE_MIN_WEIGHT
        if fit.name != "(all)":
            per_concept.append(int((~dropped).sum()))
            outliers += int(dropped[fit.assignment].sum())
        sizes = np.bincount(fit.assignment, minlength=fit.n_components)
        kept_rank = np.cumsum(~dropped) - 1
        for c in range(fit.n_components):
            counts = fit.composition[c]
            rows.append(
                {
                    "seed": seed,
                    "mixture": fit.name,
                    "n_components": int((~dropped).sum()),
                    "component": -1 if dropped[c] else int(kept_rank[c]),
                    "weight": float(fit.weights[c]),
                    "n_members": int(sizes[c]),
                    "outlier": bool(dropped[c]),
                    "majority_concept": str(gmms.concepts[int(counts.argmax())]) if counts.sum() else "",
                    "mean_x": float(fit.means[c, 0]),
                    "mean_y": float(fit.means[c, 1]),
                }
            )
    overall = gmms.overall
    numbers = {
        "gmm_components": float((overall.weights > MIXTURE_MIN_WEIGHT).sum()),
        "gmm_components_per_concept": float(np.mean(per_concept)),
        "gmm_outlier_share": outliers / labels.size,
    }
    return numbers, pd.DataFrame(rows)


def analyse_seed(
    X: np.ndarray,
    labels: np.ndarray,
    ids: np.ndarray,
    seed: int,
    *,
    per_concept: int,
    ks: tuple[int, ...],
    n_loaded: int,
    with_map: bool,
    subconcept_distance: float | None = None,
) -> SeedResult:
    """Everything the protocol computes on one seed's sample (see the module docstring)."""
    rows = protocol_sample(labels, seed, per_concept)
    Xs, ls = X[rows], labels[rows]
    numbers: dict[str, float] = {"n_sampled": float(rows.size)}
    out = SeedResult(numbers)
    ks = tuple(k for k in ks if k <= rows.size - 1)
    if ks:
        scan = scan_neighbourhoods(Xs, ls, metric="cosine", extremes=False, k=max(ks), average_precision=True)
        retrieval = RetrievalResult.from_scan(scan, ks)
        numbers.update({f"precision_at_{k}": retrieval.precision_at(k) for k in ks})
        numbers["mean_average_precision"] = float(retrieval.mean_average_precision)
        out.retrieval = retrieval.to_frame()
    several = np.unique(ls).size >= 2
    relaxed = None
    if several:
        scan = scan_neighbourhoods(Xs, ls, metric="euclidean", extremes=True, dtype=np.float64)
        separation = ConceptSeparation.from_scan(scan, eps=SEPARATION_EPS)
        numbers["mean_separation"] = mean_off_diagonal(separation.separation)
        numbers["mean_overlap"] = mean_off_diagonal(separation.overlap)
        numbers["touching_pairs"] = float(
            (separation.separation[np.triu_indices(separation.concepts.size, 1)] == 0).sum()
        )
        out.pairs = separation.to_frame()
        out.index = separation_index(Xs, ls, metric="euclidean", scan=scan)
        numbers["mean_separation_index"] = float(out.index["separation_index"].mean())
    from scipy.spatial.distance import pdist

    condensed = pdist(Xs, "euclidean")
    for preset, (coefficient, threshold) in PURITY_PRESETS.items():
        size = group_size(coefficient, n_loaded)
        purity = concept_purity(
            Xs, ls, ids=ids[rows], max_size=size, min_purity=threshold, condensed=condensed
        )
        suffix = "" if preset == "relaxed" else "_strict"
        numbers[f"purity{suffix}"] = purity.purity
        numbers[f"n_clusters{suffix}"] = float(purity.n_clusters)
        out.purity[preset] = purity
        if preset == "relaxed":
            relaxed = purity
    if several:
        pairs = confused_pairs(separation, relaxed)
        numbers["most_confused_score"] = float(pairs.table["score"].iloc[0])
        out.confusion = pairs.table[["concept_a", "concept_b", "score"]]
    held_out = np.setdiff1d(np.arange(labels.size), rows)
    if held_out.size and several:
        centroid = ConceptPredictor("centroid").fit(Xs, ls, clusters=relaxed.assignment)
        numbers["centroid_accuracy"] = centroid.score(X[held_out], labels[held_out])
        if rows.size >= KNN_K:
            numbers["knn_accuracy"] = (
                ConceptPredictor("knn", KNN_K).fit(Xs, ls).score(X[held_out], labels[held_out])
            )
    if with_map:
        map_numbers, out.mixtures = _map_mixtures(
            Xs, ls, group_size(PURITY_PRESETS["relaxed"][0], n_loaded), seed
        )
        numbers.update(map_numbers)
        out.subconcepts = _subconcepts_of_seed(Xs, ls, ids[rows], out.mixtures, subconcept_distance, seed)
    return out


def _subconcepts_of_seed(
    X: np.ndarray,
    labels: np.ndarray,
    ids: np.ndarray,
    mixtures: pd.DataFrame,
    distance: float | None,
    seed: int,
) -> pd.DataFrame:
    """Sub-concepts of one seed: the kept per-concept GMM components, and a dendrogram distance cut if given."""
    rows = mixtures[(mixtures["mixture"] != "(all)") & ~mixtures["outlier"]]
    frame = pd.DataFrame(
        {
            "seed": seed,
            "method": "umap_gmm",
            "concept": rows["mixture"].to_numpy(),
            "subconcept": rows["component"].to_numpy(),
            "n_members": rows["n_members"].to_numpy(),
            "share": rows["weight"].to_numpy(),
        }
    )
    if distance is None:
        return frame
    cuts = []
    for concept in np.unique(labels).tolist():
        if (labels == concept).sum() < 2:
            continue
        split = find_subconcepts(
            X, labels, concept, method="dendrogram", distance_threshold=distance, ids=ids
        )
        cut = split.to_frame()[["concept", "subconcept", "n_members", "share"]]
        cut.insert(0, "method", f"dendrogram_cut_{distance:g}")
        cut.insert(0, "seed", seed)
        cuts.append(cut)
    return pd.concat([frame, *cuts], ignore_index=True)


def _mean_ci(frame: pd.DataFrame, keys: list[str], value: str) -> pd.DataFrame:
    """Per key: mean of ``value`` over seeds, its 95% spread interval and standard deviation."""
    grouped = frame.groupby(keys, sort=True)[value]
    result = grouped.mean().rename(value).to_frame()
    cis = grouped.apply(lambda v: percentile_interval(v.to_numpy()))
    result[f"{value}_ci_low"] = [c[0] for c in cis]
    result[f"{value}_ci_high"] = [c[1] for c in cis]
    result[f"{value}_std"] = grouped.std(ddof=0)
    return result


def analyze_paper(
    X: np.ndarray,
    labels: np.ndarray,
    ids: np.ndarray,
    settings,
    model: str = "",
    layer: str = "",
):
    """The publication's protocol on one (model, layer); returns a :class:`~loce.analysis.run.LayerAnalysis`.

    Uses ``settings.seeds`` (default 50), ``settings.map_seeds`` (UMAP / GMM, default 5), ``settings.per_concept``
    (100), ``settings.ks``, ``settings.seed`` (first seed), ``settings.subconcept_distance`` and ``min_per_concept``.

    Example:
        >>> result = analyze_paper(X, labels, ids, AnalysisSettings(seeds=10))  # doctest: +SKIP
    """
    from loce.analysis.run import small_problem_threads, start_layer, with_intervals

    result, X, labels, ids = start_layer(X, labels, ids, settings, model, layer, protocol="paper")
    X, ids = X.astype(np.float64), ids.astype(str)
    index = ConceptIndex.from_labels(labels)
    if labels.size < 4:
        raise TooFewSamplesError(f"the paper protocol needs at least 4 LoCEs, got {labels.size}.")
    seeds = list(range(settings.seed, settings.seed + settings.seeds))
    map_seeds = min(settings.map_seeds, len(seeds))
    if map_seeds == 0:
        result.notes.append("no UMAP / GMM part (map_seeds = 0)")
    per_seed, clock = [], time.perf_counter()
    # a seed's numbers depend on its sample only (UMAP, the mixtures and the clustering have fixed random
    # states), so seeds that draw the same LoCEs (every concept with at most per_concept is taken whole) share
    # one computation
    cache: dict[tuple[bytes, bool], SeedResult] = {}
    with small_problem_threads():
        for i, seed in enumerate(seeds):
            key = (protocol_sample(labels, seed, settings.per_concept).tobytes(), i < map_seeds)
            if key not in cache:
                cache[key] = analyse_seed(
                    X,
                    labels,
                    ids,
                    seed,
                    per_concept=settings.per_concept,
                    ks=tuple(settings.ks),
                    n_loaded=labels.size,
                    with_map=i < map_seeds,
                    subconcept_distance=settings.subconcept_distance,
                )
            per_seed.append(cache[key])
    distinct = len({key[0] for key in cache})
    if distinct < len(seeds):
        result.notes.append(
            f"the {len(seeds)} seeds drew {distinct} distinct sample(s) (concepts with at most "
            f"{settings.per_concept} LoCEs are taken whole), so the spread over seeds is "
            f"{'zero' if distinct == 1 else 'that of these samples'}; each sample was analysed once"
        )
    result.seconds["seeds"] = round(time.perf_counter() - clock, 3)
    numbers = pd.DataFrame([{"seed": s, **r.numbers} for s, r in zip(seeds, per_seed)])
    result.tables["seeds"] = numbers
    headline: dict[str, object] = {
        "n_distinct_samples": distinct,
        "group_size": group_size(PURITY_PRESETS["relaxed"][0], labels.size),
        "group_size_strict": group_size(PURITY_PRESETS["strict"][0], labels.size),
        "n_seeds": len(seeds),
        "n_map_seeds": map_seeds,
    }
    intervals = {}
    for column in numbers.columns.drop("seed"):
        values = numbers[column].to_numpy(dtype=np.float64)
        headline[column] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
        intervals[column] = percentile_interval(values)
        headline[f"{column}_std"] = float(np.nanstd(values)) if np.isfinite(values).any() else float("nan")
    stacked = {
        name: pd.concat(
            [
                getattr(r, name).assign(seed=s)
                for s, r in zip(seeds, per_seed)
                if getattr(r, name) is not None
            ],
            ignore_index=True,
        )
        for name in ("pairs", "confusion", "index", "retrieval", "mixtures", "subconcepts")
        if any(getattr(r, name) is not None for r in per_seed)
    }
    if "confusion" in stacked:
        scores = _mean_ci(stacked["confusion"], ["concept_a", "concept_b"], "score").reset_index()
        scores = scores.sort_values(["score", "concept_a", "concept_b"], ascending=[False, True, True])
        scores.insert(0, "rank", np.arange(1, len(scores) + 1))
        result.tables["confused_pairs"] = scores.reset_index(drop=True)
        first = scores.iloc[0]
        headline["most_confused_pair"] = f"{first.concept_a} / {first.concept_b}"
    if "pairs" in stacked:
        parts = [
            _mean_ci(stacked["pairs"], ["concept_i", "concept_j"], v) for v in ("separation", "overlap_ij")
        ]
        frame = pd.concat(parts, axis=1).reset_index()
        for column in ("min_distance", "max_distance", "n_i", "n_j"):
            frame[column] = (
                stacked["pairs"].groupby(["concept_i", "concept_j"], sort=True)[column].mean().to_numpy()
            )
        result.tables["separation"] = frame
    if "index" in stacked:
        parts = [_mean_ci(stacked["index"], ["concept"], v) for v in ("intra", "inter", "separation_index")]
        result.tables["separation_index"] = pd.concat(parts, axis=1).reset_index()
    if "retrieval" in stacked:
        value_columns = [
            c for c in stacked["retrieval"].columns if c.startswith(("precision_at_", "mean_average"))
        ]
        parts = [_mean_ci(stacked["retrieval"], ["concept"], v) for v in value_columns]
        result.tables["retrieval"] = pd.concat(parts, axis=1).reset_index()
    if "mixtures" in stacked:
        result.tables["gmm_components"] = stacked["mixtures"]
    if "subconcepts" in stacked:
        result.tables["subconcepts"] = stacked["subconcepts"]
    purity_frames = []
    for preset in PURITY_PRESETS:
        frame = per_seed[0].purity[preset].to_frame()
        frame.insert(0, "preset", preset)
        frame.insert(0, "seed", seeds[0])
        purity_frames.append(frame)
    result.tables["purity_clusters"] = pd.concat(purity_frames, ignore_index=True)
    clock = time.perf_counter()
    if (index.counts >= 2).all():
        outliers = find_outliers(X, labels, ids=ids, seed=settings.seed)
        result.tables["outliers"] = outliers.top(OUTLIERS_SHOWN)
        stability = isolation_forest_stability(X, labels, seeds=range(settings.seed, settings.seed + 5))
        headline["isolation_forest_spearman"] = stability["spearman"]
        headline["isolation_forest_top5_overlap"] = stability["top_overlap"]
    result.seconds["outliers"] = round(time.perf_counter() - clock, 3)
    if "centroid_accuracy" not in numbers.columns:
        result.notes.append(
            f"no prediction accuracy: every concept has at most {settings.per_concept} LoCEs, none is held out"
        )
    result.headline = with_intervals(headline, intervals)
    result.interval = f"spread over {len(seeds)} seeds, 95% (2.5-97.5 percentiles; UMAP / GMM numbers over {map_seeds} seeds)"
    return result
