"""Report sections of the method comparison and the location analysis, read from ``RUN/analysis/methods/``.

``loce compare-methods`` and ``loce location`` write tables, figures and an ``index.json`` listing the figures
(see :mod:`loce.baselines.outputs`); the run layout (:meth:`loce.run_layout.RunLayout.outputs`) says which of them
a run holds. This provider turns them into report sections and computes nothing. A run without those files
contributes no section.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from loce.report.collect import SectionContext
from loce.report.data import FigureRef, Section, Table, Tags
from loce.run_layout import RunLayout, StepFiles

COMPARISON_TEXT = (
    "LoCEs beside object embeddings made without per-sample fitting (seed paper on object embeddings): crop = the "
    "object's mask crop on a black canvas fed to the model, pooled; window = the k x k grid cells around the "
    "object's box centre; masked-pool = the activations averaged under the mask; global = one Net2Vec-style "
    "vector per concept. Retrieval: leave-one-out precision@k (the LoCE paper's 'mAP@k') and true mean average "
    "precision; purity of the adaptive hierarchical clustering; mean one-vs-one separation (0: touching "
    "concepts). Mean IoU: the LoCEs' own fit IoU, and for global vectors the IoU of their projection on every "
    "sample of their concept. The grids show query objects with their nearest objects under each method."
)
LOCATION_TEXT = (
    "One object pasted at a grid of positions on a fixed background and embedded by each method. R^2: "
    "cross-validated R^2 of a ridge regression of the object's (x, y) from the embedding: 1 means the position "
    "is linearly readable from it, 0 (or below) that it is not. The maps show PCA and t-SNE of the embeddings, "
    "coloured by the object's x (reds) and y (blues)."
)


def _read_index(directory: Path) -> dict[str, Any] | None:
    from loce.baselines.outputs import read_index

    return read_index(directory)


def _figures(files: StepFiles, index: dict[str, Any], prefix: str) -> list[FigureRef]:
    figures = []
    for entry in index.get("figures", []):
        path = files.directory / entry["file"]
        if not path.is_file():
            continue
        tags = Tags(layer=entry.get("layer"), model=entry.get("model"))
        wide = entry.get("kind") in ("comparison", "location", "knn")
        figures.append(FigureRef(path, prefix + entry.get("caption", ""), tags, wide=wide))
    return figures


def _table(files: StepFiles, name: str) -> pd.DataFrame | None:
    path = files.directory / name
    if not path.is_file():
        return None
    frame = pd.read_csv(path)
    if "note" in frame.columns and not (frame["note"].dropna().astype(str).str.len() > 0).any():
        frame = frame.drop(columns=["note"])
    return frame


def method_sections(context: SectionContext) -> list[Section]:
    """The "LoCEs and baselines" and "Position in the embeddings" sections of every run that has them.

    Example:
        >>> method_sections(context)  # doctest: +SKIP
        [Section(title='LoCEs and object-embedding baselines', ...)]
    """
    comparison = Section("LoCEs and object-embedding baselines", COMPARISON_TEXT, key="methods")
    location = Section("Position in the embeddings", LOCATION_TEXT, key="location")
    several = len(context.runs) > 1
    for run in context.runs:
        prefix = f"{context.label(run)}: " if several else ""
        layout = RunLayout(run)
        for files in layout.outputs("methods"):
            index = _read_index(files.directory) or {}
            frame = _table(files, index.get("table", files.tables[0].name))
            if frame is not None:
                labelled = frame.assign(
                    run=context.label(run)
                )  # runs may share a model name: keep them apart
                context.tables["comparison"] = pd.concat(
                    [t for t in (context.tables.get("comparison"), labelled) if t is not None],
                    ignore_index=True,
                )
                caption = f"metric: {index.get('metric', 'cosine')}; k = {index.get('ks', [])}"
                comparison.tables.append(Table(prefix + "Methods compared", frame, caption=caption))
            comparison.figures.extend(_figures(files, index, prefix))
        for files in layout.outputs("location"):
            index = _read_index(files.directory) or {}
            frame = _table(files, index.get("table", files.tables[0].name))
            if frame is not None:
                what = ", ".join(
                    f"{k}: {index[k]}"
                    for k in ("object", "grid", "model", "folds")
                    if index.get(k) is not None
                )
                location.tables.append(
                    Table(prefix + "Location R^2 per method and layer", frame, caption=what)
                )
            location.figures.extend(_figures(files, index, prefix))
    return [s for s in (comparison, location) if s.figures or s.tables]
