"""A small synthetic run's report, shared by the report tests (imported explicitly, not a pytest conftest).

Planted structure: each concept is a coloured shape on a noisy background; its LoCEs cluster around a concept
direction, so the nearest neighbours of a point are mostly of its own concept.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from loce.figures import Tile, concept_colors, embedding_map, group_gallery, matrix_heatmaps, save_figure
from loce.report import (
    FigureRef,
    LoceMap,
    MapEllipse,
    MapPoint,
    ReportData,
    Section,
    Table,
    Tags,
    thumbnail_path,
    write_thumbnail,
)
from loce.report.analysis_maps import ellipse_vertices

SHAPE_COLORS = [(220, 60, 50), (40, 120, 220), (60, 170, 80), (230, 170, 30)]


def synthetic_image(rng: np.random.Generator, index: int, shape: int) -> tuple[np.ndarray, np.ndarray]:
    """A 72 x 96 noisy image with one filled shape (disc or square) and the shape's mask."""
    h, w = 72, 96
    image = (rng.normal(150, 18, (h, w, 3))).clip(0, 255).astype(np.uint8)
    yy, xx = np.mgrid[:h, :w]
    cy, cx = rng.integers(22, h - 22), rng.integers(22, w - 22)
    r = rng.integers(10, 18)
    mask = (
        ((yy - cy) ** 2 + (xx - cx) ** 2 <= r**2)
        if shape % 2 == 0
        else ((abs(yy - cy) <= r) & (abs(xx - cx) <= r))
    )
    image[mask] = SHAPE_COLORS[shape % len(SHAPE_COLORS)]
    return image, mask


def build_synthetic_report(
    out: Path, concepts: list[str], per_concept: int = 6, k: int = 4, seed: int = 0
) -> tuple[ReportData, dict[str, list[str]]]:
    """Build the report data of a tiny two-layer run (thumbnails and figures written under ``out``).

    Returns the data and, per map point id, the ids of its true top-k cosine neighbours (for assertions).
    """
    rng = np.random.default_rng(seed)
    colors = concept_colors(concepts)
    thumbs_dir = out / "img" / "thumbs"
    samples = []
    for c, concept in enumerate(concepts):
        for i in range(per_concept):
            image, mask = synthetic_image(rng, i, c)
            sample_id = f"{c:02d}{i:03d}"
            thumb = write_thumbnail(
                image, mask, thumbnail_path(thumbs_dir, sample_id, concept), color=colors[concept], size=96
            )
            samples.append(
                {
                    "id": sample_id,
                    "concept": concept,
                    "file": f"images/{concept}/{sample_id}.png",
                    "image": image,
                    "mask": mask,
                    "thumb": thumb,
                }
            )
    labels = [s["concept"] for s in samples]
    directions = rng.normal(size=(len(concepts), 16))
    maps, truth = [], {}
    for layer, noise in (("blocks.5", 0.9), ("blocks.11", 0.35)):
        vectors = np.stack([directions[concepts.index(s["concept"])] for s in samples])
        vectors = vectors + rng.normal(0, noise, vectors.shape)
        unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        sims = unit @ unit.T
        np.fill_diagonal(sims, -np.inf)
        top = np.argsort(-sims, axis=1)[:, :k]
        xy = vectors[:, :2] + 3 * directions[[concepts.index(lab) for lab in labels], 2:4]
        points = []
        for i, s in enumerate(samples):
            pid = f"{layer}/{s['id']}/{s['concept']}"
            nb_ids = [f"{layer}/{samples[j]['id']}/{samples[j]['concept']}" for j in top[i]]
            truth[pid] = nb_ids
            points.append(
                MapPoint(
                    pid,
                    float(xy[i, 0]),
                    float(xy[i, 1]),
                    s["concept"],
                    label=s["file"],
                    thumbnail=s["thumb"],
                    neighbours=nb_ids,
                    similarities=[float(sims[i, j]) for j in top[i]],
                    iou=float(rng.uniform(0.3, 0.9)),
                    attributes={
                        "distance": float(1 + i % 5),
                        "near_far": "near" if i % 2 else "far",
                        "outlier": i % 7 == 0,
                    },
                )
            )
        ellipses = []
        for concept in concepts:
            members = xy[[lab == concept for lab in labels]]
            cov = np.cov(members.T) + np.eye(2) * 1e-3
            ellipses.append(MapEllipse(concept, ellipse_vertices(tuple(members.mean(axis=0)), cov)))
        maps.append(
            LoceMap(
                f"lite0 · {layer}",
                points,
                Tags(layer=layer, model="lite0"),
                note=f"{len(points)} LoCEs",
                ellipses=ellipses,
            )
        )

    fig_dir = out / "img" / "figures"
    emb_png = save_figure(
        embedding_map(np.array([[p.x, p.y] for p in maps[1].points]), labels, title="blocks.11"),
        fig_dir / "embedding_blocks.11",
        formats=("png",),
    )[0]
    sep = np.abs(rng.normal(0.5, 0.2, (len(concepts), len(concepts))))
    np.fill_diagonal(sep, np.nan)
    heat_png = save_figure(
        matrix_heatmaps({"blocks.5": sep, "blocks.11": sep * 1.5}, concepts, label="separation"),
        fig_dir / "separation",
        formats=("png",),
    )[0]
    groups = {
        c: [
            Tile(s["image"], s["mask"], title=s["file"].split("/")[-1], color=colors[c])
            for s in samples
            if s["concept"] == c
        ][:3]
        for c in concepts
    }
    outlier_png = save_figure(
        group_gallery(groups, suptitle="Outliers"), fig_dir / "outliers", formats=("png",)
    )[0]

    iou_rows = pd.DataFrame(
        {
            "concept": labels * 2,
            "layer": ["blocks.5"] * len(labels) + ["blocks.11"] * len(labels),
            "iou": rng.uniform(0.2, 0.9, 2 * len(labels)),
        }
    )
    summary = iou_rows.groupby(["layer", "concept"], sort=False)["iou"].agg(["count", "mean"]).reset_index()
    pairs = pd.DataFrame(
        [
            {"layer": "blocks.11", "concept": a, "other": b, "separation": float(sep[i, j]) * 1.5}
            for i, a in enumerate(concepts)
            for j, b in enumerate(concepts)
            if i < j
        ]
    )
    data = ReportData(
        title="Synthetic run",
        subtitle=str(out / "runs" / "synthetic"),
        overview={
            "model": "lite0",
            "layers": "blocks.5, blocks.11",
            "images": len(samples),
            "concepts": len(concepts),
            "LoCEs": 2 * len(samples),
            "mean IoU": float(iou_rows["iou"].mean()),
        },
        overview_tables=[Table("LoCEs per layer and concept", summary)],
        maps=maps,
        sections=[
            Section(
                "Embedding",
                "A 2-D view of the LoCEs.",
                figures=[FigureRef(emb_png, "blocks.11 by concept", Tags(layer="blocks.11", model="lite0"))],
            ),
            Section(
                "Separation",
                "How far apart the concepts are.",
                figures=[FigureRef(heat_png, "Separation per layer", Tags(model="lite0"), wide=True)],
                tables=[Table("Concept pairs", pairs, caption="Lowest separation first.")],
            ),
            Section(
                "Outliers",
                "The images furthest from their concept.",
                figures=[FigureRef(outlier_png, "Outliers per concept")],
            ),
        ],
    )
    return data, truth
