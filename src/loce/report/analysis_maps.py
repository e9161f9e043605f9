"""The interactive LoCE maps of the report, from the 2-D map and the neighbours that ``loce analyze`` stored.

One :class:`~loce.report.data.LoceMap` per (model, layer): each point is a LoCE at its stored map position, with
a thumbnail of its image (mask outlined, written once per sample and concept and shared by every layer) and the
ids and similarities of its nearest LoCEs (among all analysed LoCEs of the layer, not only the map's subsample).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from loce.report.data import LoceMap, MapPoint, Tags
from loce.report.thumbnails import thumbnail_path, write_thumbnail

if TYPE_CHECKING:  # pragma: no cover
    from loce.analysis.figure_data import FigureData
    from loce.report.analysis_galleries import ImageSource


def point_ids(loces: pd.DataFrame) -> np.ndarray:
    """``"<sample_id>/<concept>"`` per LoCE; ``"#<row>"`` is appended where that is not unique (several jobs).

    Example:
        >>> point_ids(pd.DataFrame({"row": [0, 1], "sample_id": ["7", "7"], "concept": ["cat", "dog"]})).tolist()
        ['7/cat', '7/dog']
    """
    ids = (loces["sample_id"].astype(str) + "/" + loces["concept"].astype(str)).to_numpy(dtype=object)
    repeated = pd.Series(ids).duplicated(keep=False).to_numpy()
    ids[repeated] = [f"{i}#{r}" for i, r in zip(ids[repeated], loces["row"].to_numpy()[repeated])]
    return ids.astype(str)


def write_thumbnails(
    source: ImageSource, rows: pd.DataFrame, folder: Path, colors: Mapping[str, str], size: int = 128
) -> dict[tuple[str, str], Path]:
    """Thumbnails of ``rows`` (``sample_id``, ``concept``) with the mask outlined; unreadable images are left out.

    Existing files are kept (a second report build, or another layer of the same run, reuses them).
    """
    written: dict[tuple[str, str], Path] = {}
    keys = rows[["sample_id", "concept"]].astype(str).drop_duplicates()
    keys = keys.assign(image=[source.image_of(s, c) for s, c in zip(keys["sample_id"], keys["concept"])])
    for image, group in keys.dropna(subset=["image"]).groupby("image", sort=True):
        paths = {(s, c): thumbnail_path(folder, s, c) for s, c in zip(group["sample_id"], group["concept"])}
        if all(p.exists() for p in paths.values()):
            written.update(paths)
            continue
        picture = source.image(image)
        if picture is None:
            continue
        for (sample_id, concept), path in paths.items():
            written[(sample_id, concept)] = write_thumbnail(
                picture,
                source.mask(sample_id, concept),
                path,
                size=size,
                color=colors.get(concept, "#ff2d55"),
            )
    return written


def loce_map(
    data: FigureData,
    thumbnails: Mapping[tuple[str, str], Path],
    *,
    title: str,
    tags: Tags,
    k: int = 8,
) -> LoceMap | None:
    """The map of one (model, layer): stored positions, thumbnails, the ``k`` nearest LoCEs of each point."""
    loces = data.loces
    on_map = np.flatnonzero(np.isfinite(loces["map_x"].to_numpy(float)))
    if on_map.size == 0:
        return None
    ids = point_ids(loces)
    cols, values = data.neighbour_table(k)
    sims = data.neighbours["similarity"].notna().all()
    points = []
    for r in on_map:
        row = loces.iloc[r]
        key = (str(row["sample_id"]), str(row["concept"]))
        iou = row["iou"] if "iou" in loces.columns else None
        points.append(
            MapPoint(
                str(ids[r]),
                float(row["map_x"]),
                float(row["map_y"]),
                str(row["concept"]),
                label=str(row["image"]) if "image" in loces.columns else key[0],
                thumbnail=thumbnails.get(key),
                neighbours=[str(ids[j]) for j in cols[r]],
                similarities=[float(v) for v in values[r]] if sims else None,
                iou=None if iou is None or pd.isna(iou) else float(iou),
            )
        )
    info = data.info.get("map", {})
    method = str(info.get("method", "")).upper()
    note = f"{len(points):,} of {len(loces):,} LoCEs on a {method} map"
    if info.get("subsampled"):
        note += " (a stratified subsample: each concept keeps its share)"
    note += f"; clicking lists the {cols.shape[1]} nearest LoCEs among all {len(loces):,}"
    note += " (cosine similarity)." if sims else " (distance)."
    missing = sum(
        1 for r in on_map if (str(loces.at[r, "sample_id"]), str(loces.at[r, "concept"])) not in thumbnails
    )
    if missing:
        note += f" {missing} points have no thumbnail (image not readable)."
    return LoceMap(title, points, tags, note=note)
