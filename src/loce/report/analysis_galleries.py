"""Galleries of the distribution analyses: the images behind retrieval, outliers, sub-concepts and mixed clusters.

The choice of images comes from what ``loce analyze`` stored (neighbours, outlier ranks, sub-concept
memberships, purity clusters); this module reads the images from disk and the masks from the store (RLE) and
draws object-centred crops with the mask outlined and the score in the title. The report only reads: no model is
loaded and no forward pass is run (projections of LoCEs onto images are ``loce localize``'s job).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from loce.data.images import read_image
from loce.errors import InputError, StoreError
from loce.figures import Tile, cluster_gallery, group_gallery, retrieval_gallery
from loce.report.thumbnails import object_crop
from loce.store import LoCEStore, mask_from_rle

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from loce.analysis.figure_data import FigureData

MASK_COLUMNS = ["sample_id", "concept", "image", "mask_rle", "mask_height", "mask_width", "attributes"]


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

    def attributes(self) -> dict[tuple[str, str], dict]:
        """Recorded instance attributes of every LoCE, one value each (:func:`loce.analysis.attributes.loce_attributes`)."""
        if not hasattr(self, "_attributes"):
            from loce.analysis.attributes import loce_attributes

            frame = (
                loce_attributes(self.rows["attributes"].tolist())
                if "attributes" in self.rows
                else pd.DataFrame()
            )
            records = (
                frame.drop(columns=["n_instances"], errors="ignore").to_dict("records") if len(frame) else []
            )
            clean = [{k: v for k, v in r.items() if v is not None and v == v} for r in records]
            self._attributes = dict(zip(self.rows.index, clean)) if clean else {}
        return self._attributes

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

    def tile(self, sample_id: str, concept: str, *, title: str, color: str, crop: bool = True) -> Tile | None:
        """A gallery tile of the LoCE's object (cropped around its mask, outlined), or ``None`` if unreadable."""
        name = self.image_of(sample_id, concept)
        picture = None if name is None else self.image(name)
        if picture is None:
            return None
        mask = self.mask(sample_id, concept)
        if crop:
            picture, mask = object_crop(picture, mask)
        return Tile(picture, mask, title=title, color=color)


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
    data: FigureData,
    colors: Mapping[str, str],
    *,
    n_queries: int = 4,
    k: int = 5,
    seed: int = 0,
) -> tuple[Figure | None, str]:
    """Queries and their ``k`` nearest LoCEs as object crops, masks outlined, similarity in each title."""
    cols, values = data.neighbour_table(k)
    loces = data.loces
    rows = []
    similarity = "similarity" if data.neighbours["similarity"].notna().all() else "distance"
    for q in _pick_queries(data, n_queries, seed):
        members = [q, *cols[q].tolist()]
        keys = [(loces.at[r, "sample_id"], loces.at[r, "concept"]) for r in members]
        titles = [f"query: {keys[0][1]}"] + [
            f"{rank}. {c} · {values[q, rank - 1]:.2f}" for rank, (_, c) in enumerate(keys[1:], start=1)
        ]
        tiles = [
            source.tile(s, c, title=t, color=colors.get(c, "#444444")) for (s, c), t in zip(keys, titles)
        ]
        if tiles[0] is not None:
            rows.append((tiles[0], [t for t in tiles[1:] if t is not None]))
    if not rows:
        return None, ""
    shown = "cosine similarity" if similarity == "similarity" else "distance"
    caption = (
        f"Queries from concepts of high to low precision@5, each with its {k} nearest LoCEs ({shown} in the "
        "title; crops around each object, outlined and framed in its concept's colour)."
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
    rank, score = f"{method}_rank", f"{method}_score"
    top = data.outliers[data.outliers[rank] <= per_concept].sort_values(["concept", rank])
    counts = data.loces["concept"].value_counts()
    groups: dict[str, list[Tile]] = {}
    for concept in [c for c in counts.index if c in set(top["concept"])][:max_concepts]:
        rows = top[top["concept"] == concept]
        tiles = [
            source.tile(
                r.sample_id,
                concept,
                title=f"#{getattr(r, rank)} · {getattr(r, score):.3g}"
                if hasattr(r, score)
                else f"#{getattr(r, rank)}",
                color=colors.get(concept, "#444444"),
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
