"""What was found, in sentences generated from the numbers: the report's first screen.

Pure functions from the tables that ``loce analyze``, ``loce compare-methods`` and the store hold to
:class:`Finding` sentences: the best layer per model for retrieval and for purity with its interval and whether it
is distinguishable from the next layer, the most confused pairs, concepts with many non-converged LoCEs, how LoCE
compares with the baselines, ground-truth checks, and the provenance (weights, data size, protocol, settings).
Every number names the protocol that produced it; a number without a recorded interval says so.

Example:
    >>> import pandas as pd
    >>> head = pd.DataFrame({"model": ["m", "m"], "layer": ["l1", "l2"], "precision_at_1": [0.5, 0.7],
    ...                      "precision_at_1_ci_low": [0.45, 0.66], "precision_at_1_ci_high": [0.55, 0.74],
    ...                      "interval": ["bootstrap over images, 95%"] * 2})
    >>> print(best_layer_findings(head, "precision_at_1", "retrieval precision@1", "analysis-retrieval")[0].text)
    m, retrieval precision@1 (protocol: default): best layer l2 with 0.700 [0.660, 0.740], ahead of l1 with 0.500 [0.450, 0.550]; the intervals (bootstrap over images, 95%) do not overlap: l2 is distinguishably better.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from loce.report.data import natural_key

NOT_CONVERGED_SHARE = 0.1  # a concept is flagged when at least this share of its LoCEs has IoU 0


@dataclass
class Finding:
    """One sentence of the findings, the section it is backed by, and how loudly to show it.

    Attributes:
        topic: what it is about (``"which layer"``, ``"confusions"``, ``"LoCE quality"``, ``"baselines"``,
            ``"ground truth"``, ``"provenance"``).
        text: the sentence.
        link: anchor of the section with the evidence (``None``: none).
        level: ``"info"`` or ``"warning"`` (shown loudly: random weights, unknown provenance).
    """

    topic: str
    text: str
    link: str | None = None
    level: str = "info"


def _num(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return out


def with_interval(row: Mapping[str, Any], metric: str, digits: int = 3) -> str:
    """``"0.590 [0.550, 0.630]"`` from ``metric``, ``metric_ci_low``, ``metric_ci_high``; no interval: the value.

    Example:
        >>> with_interval({"p": 0.5, "p_ci_low": 0.4, "p_ci_high": 0.6}, "p")
        '0.500 [0.400, 0.600]'
    """
    value = _num(row.get(metric))
    low, high = _num(row.get(f"{metric}_ci_low")), _num(row.get(f"{metric}_ci_high"))
    if math.isfinite(low) and math.isfinite(high):
        return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"
    return f"{value:.{digits}f}"


def _no_spread(row: Mapping[str, Any], metric: str) -> bool:
    """True when ``metric``'s interval is a point: repeated seeds that all drew one sample measure no uncertainty.

    Example:
        >>> _no_spread({"p": 0.5, "p_ci_low": 0.5, "p_ci_high": 0.5}, "p")
        True
    """
    if _num(row.get("n_distinct_samples")) == 1:
        return True
    low, high = _num(row.get(f"{metric}_ci_low")), _num(row.get(f"{metric}_ci_high"))
    return math.isfinite(low) and low == high


def _has_interval(row: Mapping[str, Any], metric: str) -> bool:
    return math.isfinite(_num(row.get(f"{metric}_ci_low"))) and math.isfinite(
        _num(row.get(f"{metric}_ci_high"))
    )


def _protocol(frame: pd.DataFrame) -> str:
    if "protocol" in frame.columns and frame["protocol"].notna().any():
        return ", ".join(sorted(set(frame["protocol"].dropna().astype(str))))
    return "default"


def _groups(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    keys = [c for c in ("run", "model") if c in frame.columns and frame[c].nunique() > 1]
    if "model" in frame.columns and "model" not in keys:
        keys.append("model")
    if not keys:
        return [("", frame)]
    out = []
    for values, part in frame.groupby(keys, sort=False):
        values = values if isinstance(values, tuple) else (values,)
        out.append((" · ".join(str(v) for v in values), part))
    return sorted(out, key=lambda item: natural_key(item[0]))


def _chance_text(
    chance: Mapping[tuple[str, str], float] | None, row: Mapping[str, Any], name: str = "chance"
) -> str:
    level = (chance or {}).get((str(row.get("model")), str(row["layer"])))
    return f" ({name} {level:.3f})" if level is not None and math.isfinite(level) else ""


def best_layer_findings(
    headline: pd.DataFrame,
    metric: str,
    label: str,
    link: str | None,
    chance: Mapping[tuple[str, str], float] | None = None,
    chance_name: str = "chance",
) -> list[Finding]:
    """Per model: the layer with the highest ``metric``, its interval, and whether it beats the runner-up.

    Two layers are distinguishable when their intervals do not overlap; without recorded intervals the sentence
    says the difference cannot be judged. ``chance`` maps ``(model, layer)`` to the metric's chance level, shown
    as ``(<chance_name> 0.210)``.
    """
    if metric not in headline.columns:
        return []
    findings = []
    for name, part in _groups(headline):
        part = part[pd.to_numeric(part[metric], errors="coerce").notna()]
        if part.empty:
            continue
        ranked = part.assign(_v=pd.to_numeric(part[metric])).sort_values("_v", ascending=False, kind="stable")
        best = ranked.iloc[0].to_dict()
        where = f"{name}, " if name else ""
        text = (
            f"{where}{label} (protocol: {_protocol(part)}): best layer {best['layer']} with "
            f"{with_interval(best, metric)}"
        )
        text += _chance_text(chance, best, chance_name)
        if len(ranked) > 1:
            second = ranked.iloc[1].to_dict()
            text += f", ahead of {second['layer']} with {with_interval(second, metric)}{_chance_text(chance, second, chance_name)}"
            if _no_spread(best, metric) or _no_spread(second, metric):
                text += (
                    "; the intervals have no width (every seed drew the same sample), so they cannot tell whether "
                    "the difference is real."
                )
            elif _has_interval(best, metric) and _has_interval(second, metric):
                interval = str(best.get("interval") or "95% interval").split(" (")[0]
                if _num(best[f"{metric}_ci_low"]) > _num(second[f"{metric}_ci_high"]):
                    text += f"; the intervals ({interval}) do not overlap: {best['layer']} is distinguishably better."
                else:
                    text += (
                        f"; the intervals ({interval}) overlap: {best['layer']} and {second['layer']} are not "
                        "distinguishable."
                    )
            else:
                text += "; no interval was recorded, so whether the difference is real cannot be judged."
        else:
            text += "."
        findings.append(Finding("which layer", text, link))
    return findings


def retrieval_chance(retrieval: pd.DataFrame) -> dict[tuple[str, str], float]:
    """Precision@k of a random ranking per ``(model, layer)``: the mean over queries of ``(n_c - 1) / (N - 1)``.

    ``retrieval`` is the analysis table with one row per concept (``n_queries``) plus aggregate rows ``(...)``.

    Example:
        >>> t = pd.DataFrame({"model": "m", "layer": "l", "concept": ["a", "b", "(all)"], "n_queries": [3, 1, 4]})
        >>> round(retrieval_chance(t)[("m", "l")], 4)  # (3 * 2/3 + 1 * 0) / 4
        0.5
    """
    if retrieval is None or "n_queries" not in retrieval.columns:
        return {}
    rows = retrieval[~retrieval["concept"].astype(str).str.startswith("(")]
    out = {}
    for (model, layer), part in rows.groupby(["model", "layer"], sort=False):
        n = part["n_queries"].to_numpy(float)
        total = n.sum()
        if total > 1:
            out[(str(model), str(layer))] = float((n * (n - 1)).sum() / (total - 1) / total)
    return out


def concept_counts(retrieval: pd.DataFrame | None) -> dict[tuple[str, str], dict[str, int]]:
    """LoCEs per concept of each ``(model, layer)``: the retrieval table's ``n_queries`` (every LoCE is a query).

    Example:
        >>> t = pd.DataFrame({"model": "m", "layer": "l", "concept": ["a", "b", "(all)"], "n_queries": [3, 1, 4]})
        >>> concept_counts(t)[("m", "l")]
        {'a': 3, 'b': 1}
    """
    if retrieval is None or "n_queries" not in retrieval.columns:
        return {}
    rows = retrieval[~retrieval["concept"].astype(str).str.startswith("(")]
    return {
        (str(model), str(layer)): {str(c): int(n) for c, n in zip(part["concept"], part["n_queries"])}
        for (model, layer), part in rows.groupby(["model", "layer"], sort=False)
    }


def shuffled_purity(
    sizes: Sequence[int], counts: Sequence[int], permutations: int = 200, seed: int = 0
) -> float:
    """Purity of clusters of ``sizes`` when the concepts (``counts`` LoCEs each) are shuffled among the LoCEs.

    The mean over ``permutations`` of ``sum over clusters of the majority count / N``: what clusters of these
    sizes reach whatever they contain, the chance level of a purity measured on them.

    Example:
        >>> round(shuffled_purity([2, 2], [2, 2], permutations=2000), 1)  # 2 in 3 shuffles mix both: 0.5, else 1
        0.7
    """
    sizes, counts = np.asarray(sizes, dtype=np.int64), np.asarray(counts, dtype=np.int64)
    total = int(sizes.sum())
    if total == 0 or total != int(counts.sum()):
        return float("nan")
    labels = np.repeat(np.arange(counts.size), counts)
    cluster = np.repeat(np.arange(sizes.size), sizes) * counts.size
    rng = np.random.default_rng(seed)
    majority = 0
    for _ in range(permutations):
        table = np.bincount(cluster + rng.permutation(labels), minlength=sizes.size * counts.size)
        majority += int(table.reshape(sizes.size, counts.size).max(axis=1).sum())
    return majority / permutations / total


def purity_chance(
    clusters: pd.DataFrame | None, counts: Mapping[tuple[str, str], Mapping[str, int]]
) -> dict[tuple[str, str], float]:
    """:func:`shuffled_purity` of each ``(model, layer)``'s purity clusters (the ``purity_clusters`` table's
    ``size``) with its concept counts; left out where the clusters do not hold exactly the counted LoCEs."""
    if clusters is None or clusters.empty or "size" not in clusters.columns:
        return {}
    out = {}
    for (model, layer), part in clusters.groupby(["model", "layer"], sort=False):
        found = counts.get((str(model), str(layer)))
        if found:
            level = shuffled_purity(part["size"].to_numpy(), list(found.values()))
            if math.isfinite(level):
                out[(str(model), str(layer))] = level
    return out


def overlap_chance(n_i: int, n_j: int) -> float:
    """Overlap ``O_ij`` when the labels of concepts i and j are shuffled: the nearest of the other ``n_i - 1 + n_j``
    LoCEs of a LoCE of i is one of j's ``n_j`` with probability ``n_j / (n_i + n_j - 1)``.

    Example:
        >>> overlap_chance(31, 10)
        0.25
    """
    return n_j / (n_i + n_j - 1) if n_i + n_j > 1 else float("nan")


def _separation_text(headline: pd.DataFrame, layer: object) -> str:
    """`` Mean separation there: S [low, high] (chance C).`` from the layer's headline row, or ``""``."""
    if headline.empty or "mean_separation" not in headline.columns:
        return ""
    rows = headline[headline["layer"].astype(str) == str(layer)]
    if rows.empty or not math.isfinite(_num(rows.iloc[0]["mean_separation"])):
        return ""
    row = rows.iloc[0].to_dict()
    text = f" Mean separation there: {with_interval(row, 'mean_separation', 3)}"
    level = _num(row.get("mean_separation_chance"))
    if math.isfinite(level):
        text += f" (chance, concepts shuffled: {level:.3f})"
    return text + "."


def confusion_findings(
    pairs: pd.DataFrame,
    headline: pd.DataFrame | None,
    link: str | None,
    n: int = 3,
    counts: Mapping[tuple[str, str], Mapping[str, int]] | None = None,
) -> list[Finding]:
    """Per model: the ``n`` most confused pairs at its best retrieval layer (or the first analysed layer).

    With ``counts`` (LoCEs per concept of each ``(model, layer)``, :func:`concept_counts`) each pair's overlap
    stands beside its chance level (the mean of :func:`overlap_chance` both ways); the score is relative (1: the
    most confused pair of the layer) and has no chance level.
    """
    if pairs is None or pairs.empty or "concept_a" not in pairs.columns:
        return []
    findings = []
    for name, part in _groups(pairs):
        layer = None
        mine = pd.DataFrame()
        if headline is not None and "layer" in headline.columns:
            mine = (
                headline[headline["model"] == part["model"].iloc[0]]
                if "model" in headline.columns and "model" in part.columns
                else headline
            )
            if "run" in part.columns and "run" in mine.columns:
                mine = mine[mine["run"] == part["run"].iloc[0]]
            if len(mine) and "precision_at_1" in mine.columns:
                layer = mine.sort_values("precision_at_1", ascending=False, kind="stable").iloc[0]["layer"]
        if layer is None or layer not in set(part["layer"]):
            layer = sorted(part["layer"].astype(str).unique(), key=natural_key)[0]
        top = part[part["layer"] == layer].sort_values("rank", kind="stable").head(n)
        items = []
        sizes = (counts or {}).get((str(part["model"].iloc[0]), str(layer)), {}) if "model" in part else {}
        for row in top.to_dict("records"):
            bits = [f"score {with_interval(row, 'score', 2)}"]
            if "overlap" in row and math.isfinite(_num(row["overlap"])):
                bits.append(f"overlap {with_interval(row, 'overlap', 2)}")
                n_a, n_b = sizes.get(str(row["concept_a"])), sizes.get(str(row["concept_b"]))
                if n_a and n_b:
                    level = (overlap_chance(n_a, n_b) + overlap_chance(n_b, n_a)) / 2
                    bits[-1] += f" ({level:.2f} if the two were indistinguishable)"
            items.append(f"{row['concept_a']} / {row['concept_b']} ({', '.join(bits)})")
        if items:
            where = f"{name} · " if name else ""
            findings.append(
                Finding(
                    "confusions",
                    f"Most confused pairs at {where}{layer} (protocol: {_protocol(top)}): "
                    + "; ".join(items)
                    + ". Scores are relative (1: the layer's most confused pair)."
                    + _separation_text(mine, layer),
                    link,
                )
            )
    return findings


def convergence_findings(
    quality: pd.DataFrame, link: str | None, share: float = NOT_CONVERGED_SHARE
) -> list[Finding]:
    """Concepts with at least ``share`` of their LoCEs at IoU 0 (not converged), worst first, per model and layer.

    ``quality`` is :func:`loce.report.collect.quality_table`'s output (``LoCEs``, ``iou_zero``, ``mean_iou``).
    """
    if quality.empty:
        return []
    q = quality[quality["LoCEs"] > 0].assign(share=lambda f: f["iou_zero"] / f["LoCEs"])
    flagged = q[q["share"] >= share].sort_values(["share", "iou_zero"], ascending=False, kind="stable")
    total, zero = int(q["LoCEs"].sum()), int(q["iou_zero"].sum())
    mean = float((q["mean_iou"] * q["LoCEs"]).sum() / max(1, total))
    text = (
        f"LoCE quality: mean IoU {mean:.3f} over {total:,} LoCEs; {zero:,} ({zero / max(1, total):.1%}) did not "
        "converge (IoU 0)"
    )
    if flagged.empty:
        text += f"; no concept has {share:.0%} or more of its LoCEs at IoU 0."
        return [Finding("LoCE quality", text, link)]
    items = [
        f"{r['concept']} at {r['model']} · {r['layer']} {int(r['iou_zero'])} of {int(r['LoCEs'])} ({r['share']:.0%})"
        for r in flagged.head(6).to_dict("records")
    ]
    more = f" and {len(flagged) - 6} more" if len(flagged) > 6 else ""
    text += f"; concepts with many non-converged LoCEs: {'; '.join(items)}{more}."
    return [Finding("LoCE quality", text, link, level="warning" if zero / max(1, total) > 0.2 else "info")]


def baseline_findings(
    comparison: pd.DataFrame, link: str | None, metric: str = "precision_at_1"
) -> list[Finding]:
    """Per model: LoCE's best layer against each baseline's best, stated plainly ("the crop baseline retrieves
    better: precision@1 0.97 against LoCE's 0.59").

    With a ``run`` column naming more than one run, each run is compared on its own (its label leads the
    sentence): two runs of one model on different data are never mixed.
    """
    if (
        comparison is None
        or comparison.empty
        or metric not in comparison.columns
        or "method" not in comparison
    ):
        return []
    label = metric.replace("precision_at_", "precision@")
    findings = []
    by_run = "run" in comparison.columns and comparison["run"].nunique() > 1
    keys = ["run", "model"] if by_run else ["model"]
    for key, part in comparison.groupby(keys, sort=True):
        model = " · ".join(map(str, key)) if by_run else key[0] if isinstance(key, tuple) else key
        part = part[pd.to_numeric(part[metric], errors="coerce").notna()]
        loce = part[part["method"] == "loce"]
        if loce.empty:
            continue
        best_loce = loce.sort_values(metric, ascending=False, kind="stable").iloc[0]
        items = []
        for method, rows in part[part["method"] != "loce"].groupby("method", sort=True):
            best = rows.sort_values(metric, ascending=False, kind="stable").iloc[0]
            a, b = float(best[metric]), float(best_loce[metric])
            verb = (
                "retrieves better than"
                if a > b
                else ("retrieves as well as" if a == b else "retrieves worse than")
            )
            items.append(
                f"the {method} baseline {verb} LoCE: {label} {a:.2f} ({best['layer']}) against LoCE's {b:.2f} "
                f"({best_loce['layer']})"
            )
        if items:
            findings.append(Finding("baselines", f"{model}: " + "; ".join(items) + ".", link))
    return findings


def _job_list(manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    jobs = manifest.get("jobs", [])
    if isinstance(jobs, Mapping):
        return [{"name": k, **v} for k, v in jobs.items()]
    return [dict(j) for j in jobs]


def weights_findings(manifests: Mapping[str, Mapping[str, Any]], link: str | None) -> list[Finding]:
    """Per model of every LoCE job: pretrained, RANDOM or unknown weights (loud unless pretrained)."""
    seen: dict[str, dict[str, Any]] = {}
    for manifest in manifests.values():
        for job in _job_list(manifest):
            if job.get("method", "loce") != "loce":
                continue
            seen.setdefault(str(job.get("model")), job.get("model_identity") or {})
    findings = []
    for model in sorted(seen, key=natural_key):
        identity = seen[model]
        pretrained = identity.get("pretrained")
        source = identity.get("weights_source")
        fingerprint = str(identity.get("fingerprint") or "")[:12]
        where = f" ({source}{', fingerprint ' + fingerprint if fingerprint else ''})" if source else ""
        if pretrained is True:
            findings.append(Finding("provenance", f"{model}: pretrained weights{where}.", link))
        elif pretrained is False:
            findings.append(
                Finding(
                    "provenance",
                    f"{model}: RANDOM WEIGHTS{where}. Its LoCEs describe an untrained network, not a learned one.",
                    link,
                    level="warning",
                )
            )
        elif identity:
            findings.append(
                Finding(
                    "provenance",
                    f"{model}: whether the weights are pretrained is unknown{where}.",
                    link,
                    "warning",
                )
            )
        else:
            findings.append(
                Finding(
                    "provenance",
                    f"{model}: weights unknown (the run predates recorded model identity; refit to record it).",
                    link,
                    level="warning",
                )
            )
    return findings


def data_findings(
    overview: Mapping[str, Any], protocols: Sequence[str], settings: Mapping[str, Any], link: str | None
) -> list[Finding]:
    """Data size, the analysis protocols present and the main settings, in one sentence."""
    parts = [
        f"{overview.get('images', 0):,} images, {overview.get('concepts', 0):,} concepts, "
        f"{overview.get('LoCEs', 0):,} LoCEs of layers {overview.get('layers', '')}"
    ]
    if protocols:
        parts.append("analysis protocol: " + " and ".join(protocols))
    shown = {k: settings[k] for k in ("metric", "seed", "map_method", "max_samples") if k in settings}
    if shown:
        parts.append("settings: " + ", ".join(f"{k} {v}" for k, v in shown.items()))
    return [Finding("provenance", "Data: " + "; ".join(parts) + ".", link)]


def _best(frame: pd.DataFrame, column: str) -> pd.Series:
    return frame.sort_values(column, ascending=False, kind="stable").iloc[0]


def ground_truth_findings(tables: Mapping[str, pd.DataFrame], link: str | None) -> list[Finding]:
    """What the recorded instance attributes confirm or refute, each number beside its chance level.

    ``tables`` holds any of ``outlier_hits``, ``subconcept_alignment`` and ``attribute_encoding``
    (:mod:`loce.analysis.attributes`), with ``model`` and ``layer`` columns.
    """
    found = []
    hits = tables.get("outlier_hits")
    if hits is not None and len(hits):
        for model, part in hits.groupby("model", sort=True):
            first = part["method"].iloc[0]
            best = _best(part[part["method"] == first], "hit_rate")
            at = part[part["layer"] == best["layer"]]
            items = [
                f"{r['method']} {r['hit_rate']:.1%} (chance {r['base_rate']:.1%})"
                for r in at.to_dict("records")
            ]
            p = _num(best.get("p_value"))
            if math.isfinite(p):
                verdict = (
                    f"above chance (one-sided binomial p = {p:.2g})"
                    if p < 0.05
                    else f"not distinguishable from chance (p = {p:.2g})"
                )
            else:
                verdict = "above chance" if best["hit_rate"] > best["base_rate"] else "not above chance"
            found.append(
                Finding(
                    "ground truth",
                    f"Planted outliers, {model}: at its best layer {best['layer']} the top {int(best['k'])} outliers "
                    f"per concept are planted ones {'; '.join(items)}: {verdict}.",
                    link,
                )
            )
    align = tables.get("subconcept_alignment")
    if align is not None and len(align):
        for model, part in align.groupby("model", sort=True):
            items = []
            for concept, rows in part.groupby("concept", sort=True):
                best = _best(rows, "ari")
                beats = "above" if best["ari"] > best["chance_95"] else "within"
                items.append(
                    f"{concept} ARI {best['ari']:.2f} at {best['layer']} (permutation 95th percentile "
                    f"{best['chance_95']:.2f}: {beats} chance)"
                )
            found.append(
                Finding(
                    "ground truth", f"Sub-concepts against near/far, {model}: " + "; ".join(items) + ".", link
                )
            )
    encoding = tables.get("attribute_encoding")
    if encoding is not None and len(encoding):
        for model, part in encoding.groupby("model", sort=True):
            best = part.assign(gain=part["score"] - part["chance"]).sort_values(
                "gain", ascending=False, kind="stable"
            )
            best = best.drop_duplicates("attribute")
            items = [
                f"{r['attribute']} {r['metric']} {r['score']:.2f} at {r['layer']} (chance {r['chance']:.2f})"
                for r in best.head(5).to_dict("records")
            ]
            weakest = best.iloc[-1]
            text = f"Attributes the LoCEs encode best, {model} (linear read-out, 5-fold CV): " + "; ".join(
                items
            )
            if len(best) > 5:
                text += (
                    f"; weakest {weakest['attribute']} {weakest['metric']} {weakest['score']:.2f} "
                    f"(chance {weakest['chance']:.2f})"
                )
            found.append(Finding("ground truth", text + ".", link))
    return found
