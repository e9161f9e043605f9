"""Galleries of the distribution analyses: the images behind retrieval, outliers, sub-concepts and mixed clusters.

The choice of images comes from what ``loce analyze`` stored (neighbours, outlier ranks, sub-concept
memberships, purity clusters); this module reads the images from disk and the masks from the store (RLE) and
lays out the object-centred thumbnails (mask outlined, written once per sample and concept and shared with the
map, every layer and every later build) as HTML galleries with the score under each tile: nothing is drawn with
matplotlib. The report only reads: no model is loaded and no forward pass is run (projections of LoCEs onto
images are ``loce localize``'s job).
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
from loce.report.data import Gallery, GalleryTile, Tags
from loce.report.thumbnails import thumbnail_path, write_thumbnail
from loce.store import LoCEStore, mask_from_rle

if TYPE_CHECKING:  # pragma: no cover
    from loce.analysis.figure_data import FigureData

THUMBNAIL_SIZE = 128  # pixels of the longer side; the map's tooltips and the galleries share the files

MASK_COLUMNS = ["sample_id", "concept", "image", "mask_rle", "mask_height", "mask_width", "attributes"]


class ImageSource:
    """Images and concept masks of one run's LoCEs (masks decoded from the store, images read from disk).

    Example:
        >>> source = ImageSource(Path("RUN"))  # doctest: +SKIP
        >>> mask = source.mask("000042", "mug")  # doctest: +SKIP
    """

    def __init__(self, run: Path):
        self.run = Path(run)
        self.store = LoCEStore.open(run)
        frame = self.store.frame(method="loce", columns=MASK_COLUMNS)  # a mask is the same in every layer
        frame = frame.drop_duplicates(["sample_id", "concept"])
        self.rows = frame.set_index(["sample_id", "concept"])
        keys = list(zip(frame["sample_id"].astype(str), frame["concept"].astype(str)))
        # plain dicts: a pandas MultiIndex lookup costs milliseconds, and a report makes thousands
        self._images = dict(zip(keys, frame["image"].astype(str)))
        self._masks = dict(zip(keys, zip(frame["mask_rle"], frame["mask_height"], frame["mask_width"])))
        self.missing: set[str] = set()
        self._paths: dict[str, str] = {}
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
        return self._images.get((str(sample_id), str(concept)))

    def mask(self, sample_id: str, concept: str) -> np.ndarray | None:
        """The concept's boolean mask in the sample (``None`` when the store has no mask for it)."""
        rle, height, width = self._masks.get((str(sample_id), str(concept)), (None, 0, 0))
        if not isinstance(rle, str):
            return None
        return mask_from_rle(rle, int(height), int(width))

    def origin(self, sample_id: str, concept: str, color: str) -> str:
        """What a LoCE's thumbnail is made of: the resolved image file, the mask and the outline colour.

        Runs of one dataset give the same text (their thumbnails are shared), other images or masks another.
        """
        name = self.image_of(sample_id, concept)
        rle, height, width = self._masks.get((str(sample_id), str(concept)), (None, 0, 0))
        where = self._resolved(name) if name is not None else ""
        return f"{where}\x00{rle}\x00{height}x{width}\x00{color}"

    def _resolved(self, image: str) -> str:
        if image not in self._paths:
            try:
                self._paths[image] = str(Path(self.store.image_path(image)).resolve())
            except (InputError, StoreError):
                self._paths[image] = f"{self.run.resolve()}\x00{image}"  # unreadable: one origin per run
        return self._paths[image]

    def thumbnail(self, sample_id: str, concept: str, folder: Path, color: str) -> Path | None:
        """The LoCE's thumbnail in ``folder`` (written on first use, then reused), or ``None`` if unreadable.

        Example:
            >>> source.thumbnail("000042", "mug", Path("report/img/thumbs"), "#1f77b4")  # doctest: +SKIP
            PosixPath('report/img/thumbs/000042_mug_5d1c0e2a.jpg')
        """
        name = self.image_of(sample_id, concept)
        path = thumbnail_path(
            folder, str(sample_id), str(concept), origin=self.origin(sample_id, concept, color)
        )
        if path.exists():
            return path
        picture = None if name is None else self.image(name)
        if picture is None:
            return None
        return write_thumbnail(picture, self.mask(sample_id, concept), path, size=THUMBNAIL_SIZE, color=color)


class TileMaker:
    """Gallery tiles of one run's LoCEs: thumbnails in ``folder`` framed in each concept's colour."""

    def __init__(self, source: ImageSource, folder: Path, colors: Mapping[str, str]):
        self.source, self.folder, self.colors = source, Path(folder), colors

    def __call__(self, sample_id: str, concept: str, caption: str) -> GalleryTile | None:
        color = self.colors.get(str(concept), "#444444")
        path = self.source.thumbnail(sample_id, concept, self.folder, color)
        if path is None:
            return None
        hover = self.source.image_of(sample_id, concept) or ""
        return GalleryTile(path, caption, str(concept), hover=hover, sample_id=str(sample_id))

    def row(self, label: str, keys: list[tuple[str, str, str]]) -> tuple[str, list[GalleryTile]] | None:
        """``(label, tiles)`` of ``(sample_id, concept, caption)`` keys; ``None`` when no image is readable."""
        tiles = [t for t in (self(s, c, caption) for s, c, caption in keys) if t is not None]
        return (label, tiles) if tiles else None


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


def _gallery(title: str, rows: list, caption: str, tags: Tags, lead: bool = False) -> Gallery | None:
    rows = [r for r in rows if r is not None]
    return Gallery(title, rows, caption, tags, lead=lead) if rows else None


def retrieval_gallery(
    tiles: TileMaker,
    data: FigureData,
    title: str,
    tags: Tags,
    *,
    n_queries: int = 4,
    k: int = 5,
    seed: int = 0,
) -> Gallery | None:
    """Queries and their ``k`` nearest LoCEs as object crops, masks outlined, similarity under each tile.

    Example:
        >>> retrieval_gallery(TileMaker(ImageSource(run), thumbs, colors), data, "lite0 · l1", Tags())  # doctest: +SKIP
    """
    cols, values = data.neighbour_table(k)
    loces = data.loces
    similarity = data.neighbours["similarity"].notna().all()
    rows = []
    for q in _pick_queries(data, n_queries, seed):
        keys = [(loces.at[r, "sample_id"], loces.at[r, "concept"]) for r in [q, *cols[q].tolist()]]
        if tiles(*keys[0], "query") is None:
            continue
        captions = ["query"] + [
            f"{rank}. {c} · {values[q, rank - 1]:.2f}" for rank, (_, c) in enumerate(keys[1:], start=1)
        ]
        rows.append(tiles.row(f"query: {keys[0][1]}", [(s, c, t) for (s, c), t in zip(keys, captions)]))
    shown = "cosine similarity" if similarity else "distance"
    caption = (
        f"{title}: queries from concepts of high to low precision@5, each with its {k} nearest LoCEs ({shown} "
        "under each tile; crops around each object, outlined and framed in its concept's colour)."
    )
    return _gallery(f"Retrieval · {title}", rows, caption, tags, lead=True)


def outlier_gallery(
    tiles: TileMaker,
    data: FigureData,
    title: str,
    tags: Tags,
    *,
    per_concept: int = 5,
    max_concepts: int = 12,
) -> Gallery | None:
    """One row per concept (largest first): its most outlying LoCEs by the first outlier method, rank 1 first."""
    if data.outliers is None or data.outliers.empty:
        return None
    method = str(data.info.get("outlier_methods", ["summed_cosine"])[0])
    rank, score = f"{method}_rank", f"{method}_score"
    top = data.outliers[data.outliers[rank] <= per_concept].sort_values(["concept", rank])
    counts = data.loces["concept"].value_counts()
    rows = []
    for concept in [c for c in counts.index if c in set(top["concept"])][:max_concepts]:
        keys = [
            (
                r.sample_id,
                concept,
                f"#{getattr(r, rank)} · {getattr(r, score):.3g}"
                if hasattr(r, score)
                else f"#{getattr(r, rank)}",
            )
            for r in top[top["concept"] == concept].itertuples(index=False)
        ]
        rows.append(tiles.row(str(concept), keys))
    caption = f"{title}: most outlying LoCEs per concept (rank · {method.replace('_', ' ')} score)"
    return _gallery(f"Outliers · {title}", rows, caption, tags)


def subconcept_gallery(
    tiles: TileMaker,
    data: FigureData,
    title: str,
    tags: Tags,
    *,
    per_subconcept: int = 6,
    max_rows: int = 16,
    seed: int = 0,
) -> Gallery | None:
    """One row per sub-concept of the concepts that split: a seeded sample of its members."""
    rng = np.random.default_rng(seed)
    loces = data.loces[data.loces["subconcept"] >= 0]
    split = loces.groupby("concept")["subconcept"].nunique()
    rows = []
    for concept in split[split > 1].sort_values(ascending=False, kind="stable").index:
        members = loces[loces["concept"] == concept]
        for sub, part in members.groupby("subconcept"):
            if len(rows) >= max_rows:
                break
            picked = part.iloc[np.sort(rng.permutation(len(part))[:per_subconcept])]
            keys = [(r.sample_id, concept, Path(str(r.image)).name) for r in picked.itertuples(index=False)]
            rows.append(tiles.row(f"{concept}/{int(sub) + 1} {len(part) / len(members):.0%}", keys))
    method = data.info.get("subconcepts", {}).get("method", "")
    caption = f"{title}: members of each sub-concept ({method}; row: concept/sub-concept, share)"
    return _gallery(f"Sub-concepts · {title}", rows, caption, tags)


def mixed_cluster_gallery(
    tiles: TileMaker, data: FigureData, title: str, tags: Tags, *, per_concept: int = 6, max_concepts: int = 4
) -> Gallery | None:
    """The images of the most mixed purity cluster: one row per concept in it (largest first)."""
    if data.mixed_clusters is None or data.mixed_clusters.empty:
        return None
    cluster = data.mixed_clusters.iloc[0]
    members = data.loces[data.loces["purity_cluster"] == int(cluster["cluster"])]
    by_concept = sorted(members.groupby("concept"), key=lambda item: (-len(item[1]), str(item[0])))
    rows = [
        tiles.row(
            f"{concept} ({len(part)})",
            [
                (r["sample_id"], concept, Path(str(r["image"])).name)
                for _, r in part.head(per_concept).iterrows()
            ],
        )
        for concept, part in by_concept[:max_concepts]
    ]
    caption = (
        f"{title}: cluster {int(cluster['cluster'])} of the purity clustering, {int(cluster['size'])} LoCEs: "
        f"{cluster['composition']}"
    )
    return _gallery(f"Mixed cluster · {title}", rows, caption, tags)
