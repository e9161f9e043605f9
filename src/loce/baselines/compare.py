"""LoCEs and the baselines side by side: retrieval, purity, separation and IoU per (model, method, layer).

Every set of per-sample embeddings in a run (``loce``, ``crop``, ``window``, ``masked-pool``) is scored with the
registered analyses of :mod:`loce.analysis.registry` (those with ``in_methods``; their headline names, as in
``loce analyze``): leave-one-out precision@k (the LoCE
paper's "mAP@k") and true mean average precision, purity of the adaptive hierarchical clustering (ward), the mean
one-vs-one separation. ``global`` vectors (one per concept) get only what makes sense for them: how many there
are and the mean IoU of their projections on the concept's samples (``mean_iou``, beside the LoCEs' own fit IoU).

Example:
    >>> comparison = compare_methods("RUN", layers=["_blocks.10", "_blocks.14"])  # doctest: +SKIP
    >>> print(comparison.headline())  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from loce.analysis import ANALYSES, AnalysisError
from loce.analysis.registry import MethodSet
from loce.errors import StoreError
from loce.reprs import short_repr
from loce.store import LayerOrder, LoCEStore

PER_SAMPLE = ("loce", "crop", "window", "masked-pool")
"""Methods with one vector per (image, concept); their sets get every metric."""
METHOD_ORDER = {"loce": 0, "crop": 1, "window": 2, "masked-pool": 3, "global": 4}


@dataclass
class MethodComparison:
    """The comparison table and the settings it was computed with.

    Attributes:
        table: one row per (model, method, layer): ``n`` vectors, ``dim``, ``n_concepts``,
            ``precision_at_<k>`` for each k, ``mean_average_precision``, ``purity``, ``n_clusters``,
            ``purity_samples`` (LoCEs clustered; a stratified subsample above ``purity_max_samples``),
            ``mean_separation``, ``mean_iou`` (LoCEs' fit IoU; global vectors' projection IoU), ``note``.
        ks: the k values of precision@k.
        metric: ``"cosine"`` or ``"euclidean"`` (retrieval and separation; purity uses ward + euclidean).
    """

    __repr__ = short_repr

    table: pd.DataFrame
    ks: tuple[int, ...]
    metric: str

    def headline(self) -> str:
        """A few lines: per (model, layer), the method with the best mean average precision."""
        lines = []
        scored = self.table.dropna(subset=["mean_average_precision"])
        for (model, layer), group in scored.groupby(["model", "layer"], sort=False):
            best = group.loc[group["mean_average_precision"].idxmax()]
            others = ", ".join(
                f"{r.method} {r.mean_average_precision:.3f}"
                for r in group.itertuples()
                if r.method != best.method
            )
            lines.append(
                f"{model} {layer}: best mAP {best['method']} {best['mean_average_precision']:.3f}"
                + (f" (vs {others})" if others else "")
            )
        return "\n".join(lines)


def list_embeddings(
    store: LoCEStore,
    *,
    layers: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    model: str | None = None,
) -> pd.DataFrame:
    """The ``(model, method, layer)`` sets of ok vectors in a store with their counts, in a stable order."""
    frame = store.frame(layer=layers, model=model, method=methods, columns=["model", "method", "layer"])
    if frame.empty:
        return pd.DataFrame(columns=["model", "method", "layer", "n"])
    sets = frame.groupby(["model", "method", "layer"]).size().rename("n").reset_index()

    order = LayerOrder.from_manifests([store.manifest])  # layers as the network orders them
    key = sets.apply(
        lambda r: (*order.pair_key(r["model"], r["layer"]), METHOD_ORDER.get(r["method"], 9), r["method"]),
        axis=1,
    )
    return sets.iloc[sorted(range(len(sets)), key=lambda i: key.iloc[i])].reset_index(drop=True)


def compare_methods(
    run: str | Path,
    *,
    layers: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    model: str | None = None,
    ks: Sequence[int] = (1, 5, 10),
    metric: str = "cosine",
    purity_max_samples: int = 5000,
    seed: int = 0,
    progress: bool = False,
) -> MethodComparison:
    """Score every (model, method, layer) set of vectors of a run with the same analyses.

    Args:
        run: the run directory.
        layers, methods, model: restrict the sets (default: every set in the store).
        ks: the k values of precision@k (values above a set's ``n - 1`` are left out for it).
        metric: ``"cosine"`` (the paper's retrieval metric) or ``"euclidean"``.
        purity_max_samples: above this many vectors, purity is computed on a stratified subsample.
        seed: seed of that subsample.
        progress: show a progress bar on stderr.

    Returns:
        The :class:`MethodComparison`.

    Raises:
        StoreError: the run holds no vectors matching the selection.
    """
    store = LoCEStore.open(run)
    sets = list_embeddings(store, layers=layers, methods=methods, model=model)
    if sets.empty:
        raise StoreError(
            f"{run} holds no vectors for layers {layers or 'any'} and methods {methods or 'any'}; run `loce fit` "
            "and `loce embed` first"
        )
    ks = tuple(sorted({int(k) for k in ks}))
    from tqdm.auto import tqdm

    analyses = [a for a in ANALYSES.values() if a.in_methods]
    given: dict[str, dict[str, None]] = {a.name: {} for a in analyses}  # headline names each analysis gave
    rows = []
    for entry in tqdm(list(sets.itertuples()), desc="compare methods", disable=not progress, leave=False):
        X, meta = store.vectors(
            layer=entry.layer, model=entry.model, method=entry.method, columns=["concept", "iou"]
        )
        labels = meta["concept"].astype(str).to_numpy()
        row: dict[str, object] = {
            "model": entry.model, "method": entry.method, "layer": entry.layer, "n": len(labels),
            "dim": int(X.shape[1]), "n_concepts": int(len(set(labels))),
        }  # fmt: skip
        notes: list[str] = []
        iou = pd.to_numeric(meta["iou"], errors="coerce")
        row["mean_iou"] = float(iou.mean()) if iou.notna().any() else np.nan
        vectors = MethodSet(X, labels, entry.method, ks, metric, purity_max_samples, seed, row)
        for analysis in analyses:  # every registered analysis of the method comparison, its headline names
            try:
                result = analysis.run_for_method(vectors)
            except AnalysisError as exc:
                notes.append(f"{analysis.name}: {exc}")
                continue
            if result is not None:
                summary = analysis.summary(result)
                given[analysis.name].update(dict.fromkeys(summary))
                row.update(summary)
        row["note"] = "; ".join(notes) if notes else ""
        rows.append(row)
    columns = ["model", "method", "layer", "n", "dim", "n_concepts"]
    for analysis in analyses:  # an analysis without method_columns: every headline number it gave
        named = analysis.method_columns(ks) if analysis.method_columns is not None else given[analysis.name]
        columns += [c for c in named if c not in columns]
    columns += ["mean_iou", "note"]
    table = pd.DataFrame(rows).reindex(columns=columns)
    return MethodComparison(table=table, ks=ks, metric=metric)


def default_queries(
    labels: np.ndarray, per_concept: int = 1, max_concepts: int = 8, seed: int = 0
) -> np.ndarray:
    """Row indices of query objects for k-NN grids: ``per_concept`` random rows of up to ``max_concepts`` concepts.

    Example:
        >>> default_queries(np.array(["a", "a", "b"]), seed=0).size
        2
    """
    rng = np.random.default_rng(seed)
    concepts = sorted(set(labels.tolist()))[:max_concepts]
    picked = [
        rng.choice(
            np.flatnonzero(labels == c), size=min(per_concept, int((labels == c).sum())), replace=False
        )
        for c in concepts
    ]
    return np.concatenate(picked) if picked else np.zeros(0, dtype=np.int64)
