"""Ground truth used: do the analyses find what the instances' recorded attributes say is there?

Datasets may record attributes per instance (the scene world: distance, occlusion, pose, near/far, planted
outliers; COCO: area, crowd); the store keeps them per LoCE as a JSON list (one dict per instance of the concept
in the image). This module turns them into one value per LoCE (:func:`loce_attributes`) and tests them:

- :func:`outlier_hits`: the share of each outlier method's top-k per concept that are planted outliers, beside
  the base rate a random choice within each concept would hit (chance);
- :func:`subconcept_alignment`: the adjusted Rand index between the sub-concepts found and a categorical
  attribute (near/far), beside its permutation baseline (mean and 95th percentile of shuffled labels);
- :func:`attribute_encoding`: which attributes the LoCEs encode: cross-validated R^2 (numbers) or accuracy
  (categories) of a linear read-out, beside its chance level (R^2 with shuffled targets; the majority share).

:func:`attribute_tables` runs all three for one analysed (model, layer) (``loce analyze`` writes them as the
``attribute_encoding``, ``outlier_hits`` and ``subconcept_alignment`` tables); the report only reads them.

Example:
    >>> frame = loce_attributes(['[{"distance": 2.0, "outlier": false}, {"distance": 4.0, "outlier": true}]'])
    >>> frame.to_dict("records")
    [{'distance': 3.0, 'outlier': True, 'n_instances': 2}]
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

OUTLIER_ATTRIBUTE = "outlier"
SUBCONCEPT_ATTRIBUTE = "near_far"
SKIPPED = {
    "instance_index",
    "position",
    "outlier_kind",
}  # identifiers, vectors, and what `outlier` already says
MIXED = "mixed"


def _parse(text: Any) -> list[dict[str, Any]]:
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return []
    try:
        value = json.loads(text) if isinstance(text, str) else text
    except ValueError:
        return []
    if isinstance(value, dict):
        return [value]
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _combine(values: list[Any]) -> Any:
    """One value for a LoCE from its instances' values: mean of numbers, any of booleans, the common string."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    if all(isinstance(v, bool) for v in values):
        return any(values)
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return float(np.mean(values))
    if all(isinstance(v, str) for v in values):
        return values[0] if len(set(values)) == 1 else MIXED
    return None


def loce_attributes(raw: Sequence[Any]) -> pd.DataFrame:
    """One row per LoCE, one column per recorded attribute (plus ``n_instances``), from the store's JSON.

    Numbers are averaged over the concept's instances in the image, booleans are true if any instance's is,
    strings are kept when all instances agree (else ``"mixed"``); lists and identifiers are left out.
    """
    rows = []
    for text in raw:
        instances = _parse(text)
        keys = sorted({k for inst in instances for k in inst} - SKIPPED)
        row = {k: _combine([inst.get(k) for inst in instances]) for k in keys}
        row["n_instances"] = len(instances)
        rows.append(row)
    frame = pd.DataFrame(rows)
    if "n_instances" in frame.columns:
        frame = frame[[c for c in frame.columns if c != "n_instances"] + ["n_instances"]]
    return frame


def attribute_kind(values: pd.Series) -> str | None:
    """``"numeric"``, ``"categorical"`` or ``None`` (constant, or nothing usable)."""
    present = values.dropna()
    if present.nunique() < 2:
        return None
    if pd.api.types.is_bool_dtype(present) or present.map(lambda v: isinstance(v, (bool, np.bool_))).all():
        return "categorical"
    if pd.api.types.is_numeric_dtype(present):
        return "numeric"
    return "categorical"


def _binomial_p(hits: int, n: int, rate: float) -> float:
    """One-sided p-value of at least ``hits`` of ``n`` at chance ``rate`` (a random choice within concepts)."""
    from scipy.stats import binomtest

    if n == 0 or not 0 < rate < 1:
        return float("nan")
    return float(binomtest(hits, n, rate, alternative="greater").pvalue)


def outlier_hits(
    ranks: dict[str, np.ndarray], labels: np.ndarray, planted: np.ndarray, k: int = 5
) -> pd.DataFrame:
    """Per outlier method: how many of each concept's top-``k`` are planted outliers, against chance.

    Args:
        ranks: method -> rank of each LoCE within its concept (1 = most outlying).
        labels: the concept of each LoCE.
        planted: boolean, True where the LoCE is a planted outlier.
        k: how many of each concept's most outlying LoCEs are counted.

    Returns:
        One row per method: ``k, n_top, hits, hit_rate, base_rate`` (the hit rate of a random choice of
        ``min(k, n_c)`` LoCEs within each concept), ``lift`` (hit rate / base rate), ``p_value`` (one-sided
        binomial test of the hits against the base rate), ``n_planted``.

    Example:
        >>> r = {"m": np.array([1, 2, 3, 1, 2, 3])}
        >>> lab = np.array(["a"] * 3 + ["b"] * 3); out = np.array([1, 0, 0, 0, 0, 1], bool)
        >>> outlier_hits(r, lab, out, k=1)[["hits", "hit_rate", "base_rate"]].to_dict("records")
        [{'hits': 1, 'hit_rate': 0.5, 'base_rate': 0.3333333333333333}]
    """
    labels, planted = np.asarray(labels).astype(str), np.asarray(planted, dtype=bool)
    concepts = np.unique(labels)
    sizes = {c: int((labels == c).sum()) for c in concepts}
    n_top = sum(min(k, n) for n in sizes.values())
    expected = sum(min(k, sizes[c]) * planted[labels == c].mean() for c in concepts)
    base = expected / n_top if n_top else float("nan")
    rows = []
    for method, rank in ranks.items():
        top = np.asarray(rank) <= k
        hits = int((top & planted).sum())
        rate = hits / n_top if n_top else float("nan")
        rows.append(
            {
                "method": method,
                "k": k,
                "n_top": n_top,
                "hits": hits,
                "hit_rate": rate,
                "base_rate": base,
                "lift": rate / base if base > 0 else float("nan"),
                "p_value": _binomial_p(hits, n_top, base),
                "n_planted": int(planted.sum()),
            }
        )
    return pd.DataFrame(rows)


def subconcept_alignment(
    truth: Sequence[Any], assignment: Sequence[int], *, permutations: int = 500, seed: int = 0
) -> dict[str, float]:
    """Adjusted Rand index of ``assignment`` against ``truth``, with its permutation baseline.

    Returns ``ari``, ``chance_mean`` and ``chance_95`` (mean and 95th percentile of the ARI with ``truth``
    shuffled), ``n``.

    Example:
        >>> out = subconcept_alignment(["near"] * 10 + ["far"] * 10, [0] * 10 + [1] * 10, permutations=50)
        >>> out["ari"], out["chance_95"] < 0.5
        (1.0, True)
    """
    from sklearn.metrics import adjusted_rand_score

    truth = np.asarray([str(t) for t in truth])
    assignment = np.asarray(assignment)
    rng = np.random.default_rng(seed)
    null = np.array([adjusted_rand_score(rng.permutation(truth), assignment) for _ in range(permutations)])
    return {
        "ari": float(adjusted_rand_score(truth, assignment)),
        "chance_mean": float(null.mean()),
        "chance_95": float(np.quantile(null, 0.95)),
        "n": int(truth.size),
    }


RIDGE_ALPHAS = np.logspace(-1, 5, 13)
"""Penalties the ridge read-out of :func:`attribute_encoding` chooses from (leave-one-out inside each fold)."""
CHANCE_SHUFFLES = 3
"""Shuffled copies of a numeric attribute whose mean R^2 is its chance level."""


def ridge_r2(X: np.ndarray, Y: np.ndarray, *, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Cross-validated R^2 of a ridge read-out of each column of ``Y`` from ``X``, all columns in one fit per fold.

    Per column this is exactly ``cross_val_score(make_pipeline(StandardScaler(), RidgeCV(RIDGE_ALPHAS)), X, y,
    cv=KFold(folds, shuffle=True, random_state=seed), scoring="r2").mean()``: the folds do not depend on the
    targets, the scaling only on ``X``, and ``RidgeCV(alpha_per_target=True)`` chooses each column's penalty
    alone; but the decomposition of ``X`` is done once per fold instead of once per column.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> X = rng.normal(size=(60, 3))
        >>> Y = np.stack([X[:, 0] * 2, rng.normal(size=60)], axis=1)
        >>> r2 = ridge_r2(X, Y)
        >>> bool(r2[0] > 0.9), bool(r2[1] < 0.2)
        (True, True)
    """
    from sklearn.linear_model import RidgeCV
    from sklearn.metrics import r2_score
    from sklearn.model_selection import KFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    Y = np.asarray(Y, dtype=np.float64).reshape(len(X), -1)
    total = np.zeros(Y.shape[1])
    splits = list(KFold(folds, shuffle=True, random_state=seed).split(X))
    for train, test in splits:
        model = make_pipeline(StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS, alpha_per_target=Y.shape[1] > 1))
        predicted = model.fit(X[train], Y[train] if Y.shape[1] > 1 else Y[train, 0]).predict(X[test])
        total += r2_score(Y[test], np.asarray(predicted).reshape(len(test), -1), multioutput="raw_values")
    return total / len(splits)


def attribute_encoding(
    X: np.ndarray, attributes: pd.DataFrame, *, folds: int = 5, seed: int = 0, min_values: int = 20
) -> pd.DataFrame:
    """How well a linear read-out of the LoCEs predicts each attribute (cross-validated), against chance.

    Numbers: R^2 of a ridge regression (standardised LoCEs, its penalty chosen by leave-one-out inside each
    training fold), chance = the same with the targets shuffled (mean of :data:`CHANCE_SHUFFLES` shuffles).
    Numeric attributes carried by the same LoCEs are read out together (:func:`ridge_r2`, the same numbers).
    Categories (2-10 values, each at least ``folds`` times): accuracy of a logistic regression, chance = the
    majority value's share. Attributes with fewer than ``min_values`` LoCEs carrying them are left out.

    Returns:
        One row per attribute: ``attribute, kind, n, score, chance, metric`` (``"R^2"`` or ``"accuracy"``).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = np.asarray(X, dtype=np.float64)
    rows: dict[str, dict[str, Any]] = {}
    numeric: dict[bytes, list[tuple[str, np.ndarray, np.ndarray]]] = {}  # rows carrying them -> targets
    for name in attributes.columns:
        if name == "n_instances":
            continue
        kind = attribute_kind(attributes[name])
        if kind is None:
            continue
        present = attributes[name].notna().to_numpy()
        values = attributes[name][present]
        if present.sum() < min_values:
            continue
        row = {"attribute": name, "kind": kind, "n": int(present.sum())}
        if kind == "numeric":
            y = values.to_numpy(float)
            rng = np.random.default_rng(seed)
            shuffled = [rng.permutation(y) for _ in range(CHANCE_SHUFFLES)]
            numeric.setdefault(present.tobytes(), []).append(
                (name, present, np.stack([y, *shuffled], axis=1))
            )
            rows[name] = {**row, "metric": "R^2"}
            continue
        y = values.astype(str).to_numpy()
        classes, counts = np.unique(y, return_counts=True)
        if not 2 <= classes.size <= 10 or counts.min() < folds:
            continue
        model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=500))
        cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
        score = float(cross_val_score(model, X[present], y, cv=cv, scoring="accuracy").mean())
        rows[name] = {
            **row,
            "metric": "accuracy",
            "score": score,
            "chance": float(counts.max() / counts.sum()),
        }
    for group in numeric.values():
        present = group[0][1]
        r2 = ridge_r2(X[present], np.concatenate([targets for _, _, targets in group], axis=1), folds=folds,
                      seed=seed).reshape(len(group), 1 + CHANCE_SHUFFLES)  # fmt: skip
        for (name, _, _), (score, *chance) in zip(group, r2):
            rows[name].update(score=float(score), chance=float(np.mean(chance)))
    ordered = [rows[name] for name in attributes.columns if name in rows]
    return pd.DataFrame(ordered, columns=["attribute", "kind", "n", "metric", "score", "chance"])


def attribute_tables(
    X: np.ndarray, meta: pd.DataFrame, details: dict[str, Any], seed: int = 0
) -> dict[str, pd.DataFrame]:
    """The ground-truth tables of one analysed (model, layer), or ``{}`` when no attributes are recorded.

    Args:
        X: the LoCEs as read from the store (all rows of ``meta``).
        meta: their metadata with the store's ``attributes`` column.
        details: :attr:`loce.analysis.run.LayerAnalysis.details` (``kept`` rows, ``outliers``, ``subconcepts``).
        seed: seed of the cross-validation folds and permutations.
    """
    if "attributes" not in meta.columns or meta["attributes"].isna().all():
        return {}
    kept = np.asarray(details.get("kept", np.arange(len(meta))))
    attrs = loce_attributes(meta["attributes"].iloc[kept].tolist())
    if attrs.shape[1] <= 1:
        return {}
    tables = {}
    encoding = attribute_encoding(np.asarray(X)[kept], attrs, seed=seed)
    if len(encoding):
        tables["attribute_encoding"] = encoding
    outliers = details.get("outliers")
    if outliers is not None and OUTLIER_ATTRIBUTE in attrs.columns:
        planted = attrs[OUTLIER_ATTRIBUTE].map(
            lambda v: bool(v) if isinstance(v, (bool, np.bool_)) else False
        )
        if planted.any():
            tables["outlier_hits"] = outlier_hits(outliers.ranks, outliers.labels, planted.to_numpy())
    splits = details.get("subconcepts") or []
    if SUBCONCEPT_ATTRIBUTE in attrs.columns:
        rows = []
        for split in splits:
            if len(np.unique(split.assignment)) < 2:
                continue
            truth = attrs[SUBCONCEPT_ATTRIBUTE].to_numpy()[split.members]
            known = np.isin(truth.astype(object), ["near", "far"])
            if known.sum() < 6 or len(set(truth[known])) < 2:
                continue
            result = subconcept_alignment(truth[known], split.assignment[known], seed=seed)
            rows.append(
                {
                    "concept": split.concept,
                    "attribute": SUBCONCEPT_ATTRIBUTE,
                    "method": split.method,
                    **result,
                }
            )
        if rows:
            tables["subconcept_alignment"] = pd.DataFrame(rows)
    return tables
