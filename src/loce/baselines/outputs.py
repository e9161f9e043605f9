"""What ``loce compare-methods`` and ``loce location`` write under ``RUN/analysis/methods/``, and reading it back.

Layout (every figure listed in an ``index.json`` with its caption and tags, which the report reads)::

    RUN/analysis/methods/
      comparison.csv, comparison.parquet     the comparison table (one row per model, method, layer)
      figures/comparison.png|svg             grouped bars of the metrics
      figures/knn_<method>_<layer>.jpg       k-nearest-neighbour grids of object crops
      index.json                             {"version", "table", "ks", "metric", "figures": [...]}
      location/
        scores.csv, scores.parquet           location R^2 per (method, layer)
        coords.parquet                       2-D PCA / t-SNE coordinates with the object's x, y
        figures/location_<layer>.png, figures/positions.jpg
        index.json                           {"version", "object", "grid", "figures": [...]}

Each figure entry: ``{"file": path relative to its index, "caption": str, "kind": "comparison" | "knn" |
"location" | "positions", "model", "method", "layer"}`` (tags may be null). The paths are
:class:`loce.run_layout.MethodsFiles` and :class:`loce.run_layout.LocationFiles`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loce.baselines.compare import PER_SAMPLE, MethodComparison, default_queries
from loce.baselines.crop import crop_canvas
from loce.errors import InputError, StoreError
from loce.figures._base import PHOTO_FORMATS
from loce.run_layout import LocationFiles, MethodsFiles, RunLayout
from loce.store import LoCEStore, mask_from_rle
from loce.store.atomic import write_bytes_atomic

INDEX_VERSION = 1


def methods_dir(run: str | Path) -> Path:
    """``RUN/analysis/methods``.

    Example:
        >>> methods_dir("RUN").as_posix()
        'RUN/analysis/methods'
    """
    return RunLayout(run).methods.directory


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=+-]+", "_", str(text)).strip("_") or "x"


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, (json.dumps(data, indent=2, allow_nan=False, default=str) + "\n").encode())


def read_index(directory: str | Path) -> dict[str, Any] | None:
    """The ``index.json`` of a methods (or location) directory, or ``None`` when there is none.

    Raises:
        StoreError: the file exists but is not valid JSON.
    """
    path = MethodsFiles(Path(directory)).index  # the location folder's index has the same name
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise StoreError(f"{path} cannot be read ({exc}); run `loce compare-methods` again") from None


def _figure_entry(path: Path, root: Path, caption: str, kind: str, **tags: str | None) -> dict[str, Any]:
    return {"file": path.relative_to(root).as_posix(), "caption": caption, "kind": kind, **tags}


def neighbour_rows(
    store: LoCEStore,
    method: str,
    layer: str,
    *,
    model: str | None = None,
    k: int = 5,
    queries_per_concept: int = 1,
    max_concepts: int = 8,
    metric: str = "cosine",
    seed: int = 0,
) -> list[tuple[Any, list[Any]]]:
    """k-NN grid rows of a set of vectors: per query object, its crop and the crops of its k nearest objects.

    Each tile is the object's mask crop on black (as fed to crop embeddings), titled with the concept (and the
    distance for neighbours) and framed in the concept's colour. Objects whose image cannot be read are shown as
    blank tiles.

    Returns:
        A list of ``(query Tile, [neighbour Tiles])`` for :func:`loce.figures.methods.knn_grid`.
    """
    from loce.analysis import knn
    from loce.data.images import read_image
    from loce.figures import Tile, concept_colors

    columns = ["sample_id", "image", "concept", "mask_rle", "mask_height", "mask_width"]
    X, meta = store.vectors(layer=layer, model=model, method=method, columns=columns)
    labels = meta["concept"].astype(str).to_numpy()
    if len(labels) < 2:
        return []
    k = int(min(k, len(labels) - 1))
    queries = default_queries(labels, queries_per_concept, max_concepts, seed)
    found = knn(X, X[queries], k=k + 1, metric=metric)
    colors = concept_colors(sorted(set(labels.tolist())))
    cache: dict[str, np.ndarray | None] = {}

    def tile(i: int, title: str):
        row = meta.iloc[i]
        if row["image"] not in cache:
            try:
                cache[row["image"]] = read_image(store.image_path(row["image"]))
            except (InputError, StoreError):
                cache[row["image"]] = None
        image = cache[row["image"]]
        if image is None or not isinstance(row["mask_rle"], str):
            return Tile(np.zeros((8, 8, 3), np.uint8), title=f"{title} (unreadable)", color=colors[labels[i]])
        mask = mask_from_rle(row["mask_rle"], int(row["mask_height"]), int(row["mask_width"]))
        return Tile(crop_canvas(image, mask).image, title=title, color=colors[labels[i]])

    rows = []
    for q, neighbours, distances in zip(queries, found.indices, found.distances):
        keep = [(int(j), float(d)) for j, d in zip(neighbours, distances) if int(j) != int(q)][:k]
        rows.append(
            (tile(int(q), f"query · {labels[q]}"), [tile(j, f"{labels[j]} · {d:.2f}") for j, d in keep])
        )
    return rows


def write_method_comparison(
    run: str | Path,
    comparison: MethodComparison,
    *,
    figures: bool = True,
    knn_k: int = 5,
    queries_per_concept: int = 1,
    max_concepts: int = 8,
    seed: int = 0,
) -> list[Path]:
    """Write the comparison table, its figure and k-NN grids per (model, method, layer) under
    ``RUN/analysis/methods`` (see the module docstring); returns the files written."""
    files = RunLayout(run).methods
    out = files.directory
    out.mkdir(parents=True, exist_ok=True)
    table = comparison.table
    written = list(files.tables)
    table.to_csv(written[0], index=False)
    table.to_parquet(written[1], index=False)
    entries: list[dict[str, Any]] = []
    if figures:
        from loce.figures import save_figure
        from loce.figures.methods import knn_grid, method_comparison_figure

        fig = method_comparison_figure(table, title="LoCEs and object-embedding baselines")
        paths = save_figure(fig, files.figure("comparison"))
        written += paths
        entries.append(
            _figure_entry(
                paths[0], out, "Retrieval, purity, separation and IoU per method and layer", "comparison"
            )
        )
        store = LoCEStore.open(run)
        for row in table.itertuples():
            if row.method not in PER_SAMPLE:
                continue
            grid_rows = neighbour_rows(
                store, row.method, row.layer, model=row.model, k=knn_k, queries_per_concept=queries_per_concept,
                max_concepts=max_concepts, metric=comparison.metric, seed=seed,
            )  # fmt: skip
            if not grid_rows:
                continue
            title = f"{row.method} · {row.layer} · {comparison.metric} nearest neighbours"
            stem = files.figure(f"knn_{_safe(row.model)}_{_safe(row.method)}_{_safe(row.layer)}")
            path = save_figure(knn_grid(grid_rows, suptitle=title), stem, formats=PHOTO_FORMATS)[0]
            written.append(path)
            entries.append(
                _figure_entry(
                    path,
                    out,
                    f"Nearest objects of {row.method} embeddings at {row.layer} ({row.model})",
                    "knn",
                    model=row.model,
                    method=row.method,
                    layer=row.layer,
                )  # fmt: skip
            )
    index = {
        "version": INDEX_VERSION,
        "table": files.tables[0].name,
        "ks": list(comparison.ks),
        "metric": comparison.metric,
        "figures": entries,
    }
    _write_json(files.index, index)
    written.append(files.index)
    return written


def write_location(
    result: Any,
    out: str | Path,
    *,
    images: Sequence[np.ndarray] | None = None,
    description: dict[str, Any] | None = None,
    figures: bool = True,
) -> list[Path]:
    """Write a :class:`~loce.baselines.location.LocationResult` to ``out`` (normally
    ``RUN/analysis/methods/location``): scores, 2-D coordinates, one map figure per layer, example images."""
    files = LocationFiles(Path(out))
    out = files.directory
    out.mkdir(parents=True, exist_ok=True)
    written = [*files.tables, files.coords]
    result.scores.to_csv(written[0], index=False)
    result.scores.to_parquet(written[1], index=False)
    result.coords.to_parquet(written[2], index=False)
    entries: list[dict[str, Any]] = []
    if figures:
        from loce.figures import save_figure
        from loce.figures.methods import location_examples, location_maps

        if images is not None and len(images):
            path = save_figure(location_examples(images, result.positions), files.figure("positions"),
                               formats=PHOTO_FORMATS)[0]  # fmt: skip
            written.append(path)
            entries.append(
                _figure_entry(path, out, "Some of the images: one object at a grid of positions", "positions")
            )
        for layer in dict.fromkeys(result.scores["layer"]):
            fig = location_maps(result.coords, result.scores, layer=layer)
            path = save_figure(fig, files.figure(f"location_{_safe(layer)}"), formats=("png",))[0]
            written.append(path)
            entries.append(
                _figure_entry(
                    path,
                    out,
                    f"PCA and t-SNE of the embeddings at {layer}, coloured by the object's x and y",
                    "location",
                    layer=layer,
                )  # fmt: skip
            )
    index = {
        "version": INDEX_VERSION,
        **(description or {}),
        "table": files.tables[0].name,
        "figures": entries,
    }
    _write_json(files.index, index)
    written.append(files.index)
    return written


def read_table(directory: Path, name: str) -> pd.DataFrame | None:
    """A CSV table written here, or ``None`` when it is missing."""
    path = Path(directory) / name
    return pd.read_csv(path) if path.is_file() else None
