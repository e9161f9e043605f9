"""What ``loce cbm eval`` writes: the comparison tables, a heat-map grid of every method on held-out scenes
and a metric bar chart (see :func:`loce.cbm.experiment.compare_models`; the names:
:class:`loce.run_layout.CbmComparisonFiles`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from loce.cbm.evaluate import MapItem
from loce.data.sample import Sample
from loce.figures._base import PHOTO_FORMATS
from loce.localize.heatmaps import resize_map
from loce.reprs import short_repr
from loce.run_layout import CbmComparisonFiles
from loce.store.atomic import write_bytes_atomic


@dataclass
class Comparison:
    """What :func:`loce.cbm.experiment.compare_models` measured (tables) and wrote (files)."""

    __repr__ = short_repr

    table: pd.DataFrame
    per_concept: pd.DataFrame
    per_map: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    out: Path | None = None
    files: list[Path] = field(default_factory=list)


def example_rows(
    samples: Sequence[Sample],
    items: Sequence[MapItem],
    maps_of: Mapping[str, np.ndarray],
    concepts: Sequence[str],
    examples: int,
    seed: int = 0,
) -> list:
    """Heat-map rows for ``examples`` test images, cycling through the concepts so that several appear.

    Args:
        samples: the test samples (``MapItem.index`` indexes them).
        items: the scored (image, concept) maps.
        maps_of: method name -> ``N x K x h x w`` logit maps.
        concepts: the concept names (``MapItem.concept`` indexes them).
        examples: rows to make.
        seed: seed of the choice.

    Returns:
        :class:`loce.figures.localization.HeatmapRow` values, one image each, with every method's map.
    """
    from loce.figures.localization import HeatmapRow

    rng = np.random.default_rng(seed)
    by_concept: dict[int, list[MapItem]] = {}
    for it in items:
        by_concept.setdefault(it.concept, []).append(it)
    order = [k for k in rng.permutation(sorted(by_concept)).tolist()]
    chosen, used = [], set()
    while len(chosen) < examples and any(by_concept[k] for k in order):
        for k in order:
            pool = [it for it in by_concept[k] if it.index not in used]
            if pool and len(chosen) < examples:
                it = pool[int(rng.integers(len(pool)))]
                chosen.append(it)
                used.add(it.index)
            by_concept[k] = [it for it in by_concept[k] if it.index not in used]
    rows = []
    for it in chosen:
        sample = samples[it.index]
        image = sample.load_image()
        heatmaps, peaks = {}, {}
        for method, logits in maps_of.items():
            z = resize_map(logits[it.index, it.concept], image.shape[:2])
            heatmaps[method] = 1.0 / (1.0 + np.exp(-np.clip(z, -60.0, 60.0)))
            flat = int(np.argmax(z))
            peaks[method] = (flat // z.shape[1], flat % z.shape[1])
        label = f"{concepts[it.concept]} · {Path(sample.rel_path).stem}"
        rows.append(HeatmapRow(label, image, it.mask, heatmaps, peaks))
    return rows


def write_comparison(
    result: Comparison,
    out: Path,
    record: dict[str, Any],
    samples: Sequence[Sample],
    items: Sequence[MapItem],
    maps_of: Mapping[str, np.ndarray],
    concepts: Sequence[str],
    examples: int,
    seed: int = 0,
) -> list[Path]:
    """Write the tables, ``comparison.json``, the heat-map grid and the metric chart; returns the files."""
    from loce.figures import save_figure
    from loce.figures.localization import heatmap_grid, metric_comparison

    layout = CbmComparisonFiles(Path(out))
    out = layout.directory
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for path, frame in (
        (layout.per_concept, result.per_concept),
        (layout.per_map, result.per_map),
        (layout.table, result.table),  # last of the tables: it marks the output as finished
    ):
        write_bytes_atomic(path, frame.to_csv(index=False).encode("utf-8"))
        files.append(path)
    write_bytes_atomic(layout.record, json.dumps(record, indent=2, sort_keys=True).encode("utf-8"))
    files.append(layout.record)
    if examples > 0 and items:
        rows = example_rows(samples, items, maps_of, concepts, examples, seed)
        fig = heatmap_grid(rows, list(maps_of), suptitle="concept maps on held-out scenes (x: peak)")
        files += save_figure(fig, layout.heatmaps, formats=PHOTO_FORMATS)
    fig = metric_comparison(
        result.table,
        group="method",
        metrics=("alignment_error", "pointing_game", "activation_l1", "accuracy"),
    )
    files += save_figure(fig, layout.metrics_figure, formats=("png",))
    result.out, result.files = out, files
    return files
