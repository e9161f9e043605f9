"""Galleries of the distribution analyses: the images behind retrieval, outliers, sub-concepts and mixed clusters.

The choice of images comes from what ``loce analyze`` stored (neighbours, outlier ranks, sub-concept
memberships, purity clusters); this module reads the images and masks from the run and draws them. Retrieval
galleries also show each query's LoCE projected onto the images as a heat map: the run's model is loaded from its
manifest (offline) and run on the handful of gallery images only; when it cannot be loaded the gallery is drawn
without heat maps and the caption says why.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from loce.data.images import read_image
from loce.errors import InputError, LoceError, StoreError
from loce.figures import Tile, cluster_gallery, group_gallery, retrieval_gallery
from loce.store import LoCEStore, mask_from_rle

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from loce.analysis.figure_data import FigureData
    from loce.models import LoadedModel

MASK_COLUMNS = ["sample_id", "concept", "image", "mask_rle", "mask_height", "mask_width"]


class ImageSource:
    """Images and concept masks of one run's LoCEs (masks decoded from the store, images read from disk).

    Example:
        >>> source = ImageSource(Path("RUN"))  # doctest: +SKIP
        >>> tile = source.tile("000042", "mug", title="mug", color="#1f77b4")  # doctest: +SKIP
    """

    def __init__(self, run: Path):
        self.store = LoCEStore.open(run)
        frame = self.store.frame(method="loce", columns=MASK_COLUMNS)  # a mask is the same in every layer
        frame = frame.drop_duplicates(["sample_id", "concept"])
        self.rows = frame.set_index(["sample_id", "concept"])
        self.missing: set[str] = set()
        self.image = lru_cache(maxsize=64)(self._read)

    def _read(self, image: str) -> np.ndarray | None:
        try:
            return read_image(self.store.image_path(image))
        except (InputError, StoreError):
            self.missing.add(str(image))
            return None

    def image_of(self, sample_id: str, concept: str) -> str | None:
        """The ``image`` value (relative path) of a LoCE."""
        key = (str(sample_id), str(concept))
        return str(self.rows.at[key, "image"]) if key in self.rows.index else None

    def mask(self, sample_id: str, concept: str) -> np.ndarray | None:
        """The concept's boolean mask in the sample (``None`` when the store has no mask for it)."""
        key = (str(sample_id), str(concept))
        if key not in self.rows.index:
            return None
        row = self.rows.loc[key]
        if not isinstance(row["mask_rle"], str):
            return None
        return mask_from_rle(row["mask_rle"], int(row["mask_height"]), int(row["mask_width"]))

    def tile(
        self, sample_id: str, concept: str, *, title: str, color: str, heatmap: np.ndarray | None = None
    ) -> Tile | None:
        """A gallery tile of the LoCE's image with its mask outlined, or ``None`` when the image is unreadable."""
        name = self.image_of(sample_id, concept)
        picture = None if name is None else self.image(name)
        if picture is None:
            return None
        return Tile(picture, self.mask(sample_id, concept), heatmap, title=title, color=color)


class LoceProjector:
    """Heat maps of a run's LoCEs on images: the model of the run's job, loaded once, on the gallery images only.

    Example:
        >>> projector = LoceProjector(LoCEStore.open("RUN"))  # doctest: +SKIP
        >>> maps, reason = projector.heatmaps("efficientnet-lite0", "_blocks.10", vector, images)  # doctest: +SKIP
    """

    def __init__(self, store: LoCEStore, device: str = "cpu"):
        self.store, self.device = store, device
        self._models: dict[str, tuple[LoadedModel | None, str]] = {}
        self._vectors: dict[tuple[str, str], tuple[np.ndarray, dict[tuple[str, str], int]]] = {}

    def model(self, model: str, layer: str) -> tuple[LoadedModel | None, str]:
        """The loaded model of the job that fitted ``(model, layer)``, or ``None`` and the reason."""
        if model not in self._models:
            self._models[model] = self._load(model, layer)
        return self._models[model]

    def _load(self, model: str, layer: str) -> tuple[LoadedModel | None, str]:
        from loce.models import load_model_from_identity

        specs = [s for s in self.store.jobs.values() if s.method == "loce" and s.model == model]
        spec = next((s for s in specs if layer in s.layers), specs[0] if specs else None)
        if spec is None:
            return None, f"the run's manifest has no LoCE job of model {model!r}"
        if spec.model.startswith("module:"):
            return None, f"the model {spec.model!r} was passed from Python and cannot be reloaded"
        identity = spec.model_identity or {"spec": spec.model, "preprocessing": spec.preprocessing}
        try:
            return load_model_from_identity(identity, device=self.device), ""
        except (LoceError, ImportError, OSError, RuntimeError, ValueError) as exc:
            return None, f"the model {spec.model!r} could not be loaded offline ({str(exc).splitlines()[0]})"

    def vector(self, model: str, layer: str, sample_id: str, concept: str) -> np.ndarray | None:
        """The stored LoCE of ``(sample_id, concept)`` at ``(model, layer)``."""
        if (model, layer) not in self._vectors:
            X, meta = self.store.vectors(layer=layer, model=model, columns=["sample_id", "concept"])
            keys = zip(meta["sample_id"].astype(str), meta["concept"].astype(str))
            lookup: dict[tuple[str, str], int] = {}
            for i, key in enumerate(keys):
                lookup.setdefault(key, i)
            self._vectors[(model, layer)] = (X, lookup)
        X, lookup = self._vectors[(model, layer)]
        i = lookup.get((str(sample_id), str(concept)))
        return None if i is None else X[i]

    def heatmaps(
        self, model: str, layer: str, vector: np.ndarray, images: list[np.ndarray]
    ) -> tuple[list[np.ndarray] | None, str]:
        """``sigmoid(v . A)`` on the layer's grid for each image, or ``None`` and the reason."""
        import torch

        from loce.capture import capture_activations
        from loce.fit import project

        loaded, reason = self.model(model, layer)
        if loaded is None:
            return None, reason
        try:
            with torch.no_grad():
                acts = capture_activations(loaded, images, [layer], batch_size=8)[layer]
            maps = project(torch.as_tensor(vector, dtype=torch.float32), acts).cpu().numpy()
        except (LoceError, RuntimeError, ValueError) as exc:
            return None, f"the activations of {layer!r} could not be computed ({str(exc).splitlines()[0]})"
        return list(maps), ""


def _pick_queries(data: FigureData, n_queries: int, seed: int) -> list[int]:
    """Rows of up to ``n_queries`` queries from concepts spread from best to worst precision@5 (seeded)."""
    rng = np.random.default_rng(seed)
    loces = data.loces
    if data.queries is not None and "precision_at_5" in data.queries.columns:
        order = data.queries.groupby("concept")["precision_at_5"].mean().sort_values(ascending=False).index
    else:
        order = loces["concept"].value_counts().index
    order = list(order)
    chosen = [order[int(round(i))] for i in np.linspace(0, len(order) - 1, min(n_queries, len(order)))]
    return [
        int(rng.choice(loces.loc[loces["concept"] == c, "row"].to_numpy())) for c in dict.fromkeys(chosen)
    ]


def retrieval_figure(
    source: ImageSource,
    projector: LoceProjector | None,
    data: FigureData,
    colors: Mapping[str, str],
    *,
    n_queries: int = 4,
    k: int = 5,
    seed: int = 0,
) -> tuple[Figure | None, str]:
    """Queries and their ``k`` nearest LoCEs, masks outlined, the query's LoCE projected as a heat map."""
    cols, values = data.neighbour_table(k)
    loces = data.loces
    rows, reasons = [], set()
    similarity = "similarity" if data.neighbours["similarity"].notna().all() else "distance"
    for q in _pick_queries(data, n_queries, seed):
        members = [q, *cols[q].tolist()]
        keys = [(loces.at[r, "sample_id"], loces.at[r, "concept"]) for r in members]
        heat: list[np.ndarray | None] = [None] * len(members)
        if projector is not None:
            vector = projector.vector(data.model, data.layer, *keys[0])
            names = [source.image_of(*key) for key in keys]
            images = [None if name is None else source.image(name) for name in names]
            if vector is not None and all(img is not None for img in images):
                maps, reason = projector.heatmaps(data.model, data.layer, vector, images)
                if maps is not None:
                    heat = maps
                else:
                    reasons.add(reason)
        titles = [f"query: {keys[0][1]}"] + [
            f"{rank}. {c} · {values[q, rank - 1]:.2f}" for rank, (_, c) in enumerate(keys[1:], start=1)
        ]
        tiles = [
            source.tile(s, c, title=t, color=colors.get(c, "#444444"), heatmap=h)
            for (s, c), t, h in zip(keys, titles, heat)
        ]
        if tiles[0] is not None:
            rows.append((tiles[0], [t for t in tiles[1:] if t is not None]))
    if not rows:
        return None, ""
    if projector is None:
        note = "No heat maps (not requested)."
    elif reasons:
        note = "Drawn without heat maps: " + "; ".join(sorted(reasons)) + "."
    else:
        note = "Heat map: the query's LoCE projected onto each image (sigmoid of the 1x1 projection)."
    caption = (
        f"Queries from concepts of high to low precision@5, each with its {k} nearest LoCEs ({similarity} shown; "
        f"frames and outlines in the neighbour's concept colour). {note}"
    )
    return retrieval_gallery(rows, tile_size=1.6), caption


def outlier_figure(
    source: ImageSource,
    data: FigureData,
    colors: Mapping[str, str],
    *,
    per_concept: int = 5,
    max_concepts: int = 12,
) -> Figure | None:
    """One row per concept: its most outlying LoCEs by the first outlier method (rank 1 first)."""
    if data.outliers is None or data.outliers.empty:
        return None
    method = str(data.info.get("outlier_methods", ["summed_cosine"])[0])
    rank = f"{method}_rank"
    top = data.outliers[data.outliers[rank] <= per_concept].sort_values(["concept", rank])
    counts = data.loces["concept"].value_counts()
    groups: dict[str, list[Tile]] = {}
    for concept in [c for c in counts.index if c in set(top["concept"])][:max_concepts]:
        rows = top[top["concept"] == concept]
        tiles = [
            source.tile(
                r.sample_id, concept, title=f"#{getattr(r, rank)}", color=colors.get(concept, "#444444")
            )
            for r in rows.itertuples(index=False)
        ]
        groups[str(concept)] = [t for t in tiles if t is not None]
    groups = {c: t for c, t in groups.items() if t}
    return group_gallery(groups, max_per_group=per_concept, tile_size=1.4) if groups else None


def subconcept_figure(
    source: ImageSource,
    data: FigureData,
    colors: Mapping[str, str],
    *,
    per_subconcept: int = 6,
    max_rows: int = 16,
    seed: int = 0,
) -> Figure | None:
    """One row per sub-concept of the concepts that split: a seeded sample of its members."""
    rng = np.random.default_rng(seed)
    loces = data.loces[data.loces["subconcept"] >= 0]
    split = loces.groupby("concept")["subconcept"].nunique()
    groups: dict[str, list[Tile]] = {}
    for concept in split[split > 1].sort_values(ascending=False, kind="stable").index:
        members = loces[loces["concept"] == concept]
        for sub, part in members.groupby("subconcept"):
            if len(groups) >= max_rows:
                break
            picked = part.iloc[np.sort(rng.permutation(len(part))[:per_subconcept])]
            tiles = [
                source.tile(
                    r.sample_id, concept, title=Path(str(r.image)).name, color=colors.get(concept, "#444")
                )
                for r in picked.itertuples(index=False)
            ]
            label = f"{concept}/{int(sub) + 1} {len(part) / len(members):.0%}"
            groups[label] = [t for t in tiles if t is not None]
    groups = {c: t for c, t in groups.items() if t}
    return group_gallery(groups, max_per_group=per_subconcept, tile_size=1.4) if groups else None


def mixed_cluster_figure(
    source: ImageSource, data: FigureData, colors: Mapping[str, str], *, max_tiles: int = 12
) -> tuple[Figure | None, pd.Series | None]:
    """The images of the most mixed purity cluster, taking turns between its concepts (largest first)."""
    if data.mixed_clusters is None or data.mixed_clusters.empty:
        return None, None
    cluster = data.mixed_clusters.iloc[0]
    members = data.loces[data.loces["purity_cluster"] == int(cluster["cluster"])]
    by_concept = [part for _, part in sorted(members.groupby("concept"), key=lambda item: -len(item[1]))]
    picked: list[pd.Series] = []
    for position in range(max(len(p) for p in by_concept)):
        picked += [p.iloc[position] for p in by_concept if position < len(p)]
    picked = picked[:max_tiles]
    tiles, concepts = [], []
    for r in picked:
        tile = source.tile(
            r["sample_id"], r["concept"], title=str(r["concept"]), color=colors.get(r["concept"], "#444")
        )
        if tile is not None:
            tiles.append(tile)
            concepts.append(str(r["concept"]))
    if not tiles:
        return None, None
    figure = cluster_gallery(
        tiles, concepts, cluster_name=f"cluster {int(cluster['cluster'])}", tile_size=1.5
    )
    return figure, cluster
