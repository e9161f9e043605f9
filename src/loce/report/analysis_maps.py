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

from loce.analysis.gmm import OVERALL
from loce.report.data import LoceMap, MapEllipse, MapPoint, Tags

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
    source: ImageSource, rows: pd.DataFrame, folder: Path, colors: Mapping[str, str]
) -> dict[tuple[str, str], Path]:
    """Thumbnails of ``rows`` (``sample_id``, ``concept``) with the mask outlined; unreadable images are left out.

    Existing files are kept (a second report build, another layer of the same run or a gallery reuses them);
    the rows are taken image by image so that each image is read once.
    """
    written: dict[tuple[str, str], Path] = {}
    keys = rows[["sample_id", "concept"]].astype(str).drop_duplicates()
    keys = keys.assign(image=[source.image_of(s, c) for s, c in zip(keys["sample_id"], keys["concept"])])
    for sample_id, concept, _ in keys.dropna(subset=["image"]).sort_values("image").itertuples(index=False):
        path = source.thumbnail(sample_id, concept, folder, colors.get(concept, "#ff2d55"))
        if path is not None:
            written[(sample_id, concept)] = path
    return written


def ellipse_vertices(
    mean: tuple[float, float], cov: np.ndarray, n_std: float = 2.0, n: int = 48
) -> list[tuple[float, float]]:
    """A closed polygon along the ``n_std`` standard-deviation ellipse of a 2-D Gaussian.

    Example:
        >>> v = ellipse_vertices((0.0, 0.0), np.diag([4.0, 1.0]), n_std=1.0, n=4)
        >>> [(round(x, 6) + 0.0, round(y, 6) + 0.0) for x, y in v]
        [(2.0, 0.0), (0.0, 1.0), (-2.0, 0.0), (0.0, -1.0), (2.0, 0.0)]
    """
    values, vectors = np.linalg.eigh(np.asarray(cov, dtype=float))  # ascending eigenvalues
    order = np.argsort(values)[::-1]
    radii = n_std * np.sqrt(np.clip(values[order], 0.0, None))
    angles = np.linspace(0.0, 2 * np.pi, n + 1)
    unit = np.stack([np.cos(angles) * radii[0], np.sin(angles) * radii[1]])
    points = vectors[:, order] @ unit + np.asarray(mean, dtype=float)[:, None]
    return [(float(x), float(y)) for x, y in points.T]


def map_ellipses(mixtures: pd.DataFrame | None) -> list[MapEllipse]:
    """The per-concept mixture components of the 2-D map as ellipses (2 standard deviations)."""
    if mixtures is None or mixtures.empty:
        return []
    out = []
    for row in mixtures[mixtures["mixture"] != OVERALL].itertuples(index=False):
        cov = np.array([[row.cov_xx, row.cov_xy], [row.cov_xy, row.cov_yy]], dtype=float)
        out.append(
            MapEllipse(
                str(row.mixture),
                ellipse_vertices((row.mean_x, row.mean_y), cov),
                weight=float(row.weight),
                small=bool(getattr(row, "small", False)),
            )
        )
    return out


def loce_map(
    data: FigureData,
    thumbnails: Mapping[tuple[str, str], Path],
    *,
    title: str,
    tags: Tags,
    k: int = 8,
    attributes: Mapping[tuple[str, str], dict] | None = None,
) -> LoceMap | None:
    """The map of one (model, layer): stored positions, thumbnails, the ``k`` nearest LoCEs of each point, the
    recorded attributes of each LoCE and the per-concept mixture ellipses."""
    loces = data.loces
    on_map = np.flatnonzero(np.isfinite(loces["map_x"].to_numpy(float)))
    if on_map.size == 0:
        return None
    ids = point_ids(loces)
    cols, values = data.neighbour_table(k)
    sims = data.neighbours["similarity"].notna().all()
    samples = loces["sample_id"].astype(str).to_numpy()
    concepts = loces["concept"].astype(str).to_numpy()
    names = loces["image"].astype(str).to_numpy() if "image" in loces.columns else samples
    xs, ys = loces["map_x"].to_numpy(float), loces["map_y"].to_numpy(float)
    ious = loces["iou"].to_numpy(float) if "iou" in loces.columns else np.full(len(loces), np.nan)
    points = []
    for r in on_map:
        key = (samples[r], concepts[r])
        points.append(
            MapPoint(
                str(ids[r]),
                float(xs[r]),
                float(ys[r]),
                concepts[r],
                label=names[r],
                thumbnail=thumbnails.get(key),
                neighbours=[str(ids[j]) for j in cols[r]],
                similarities=[float(v) for v in values[r]] if sims else None,
                iou=None if not np.isfinite(ious[r]) else float(ious[r]),
                attributes=dict((attributes or {}).get(key, {})),
            )
        )
    info = data.info.get("map", {})
    method = str(info.get("method", "")).upper()
    note = f"{len(points):,} of {len(loces):,} LoCEs on a {method} map"
    if info.get("subsampled"):
        note += " (a stratified subsample: each concept keeps its share)"
    note += f"; clicking lists the {cols.shape[1]} nearest LoCEs among all {len(loces):,}"
    note += " (cosine similarity)." if sims else " (distance)."
    missing = sum(1 for r in on_map if (samples[r], concepts[r]) not in thumbnails)
    if missing:
        note += f" {missing} points have no thumbnail (image not readable)."
    return LoceMap(title, points, tags, note=note, ellipses=map_ellipses(data.map_mixtures))
