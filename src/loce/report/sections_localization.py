"""Report sections of concept localisation, read from ``RUN/localization/*/`` and ``RUN/cbm/*/``.

``loce localize`` writes ``summary.csv``, ``vectors.json`` and ``figures/heatmaps_<concept>.jpg`` per call;
``loce cbm eval`` writes ``comparison.csv``, ``per_concept.csv``, ``comparison.json`` and ``figures/*.jpg|png``
(the file names: :class:`loce.run_layout.LocalizationFiles`, :class:`loce.run_layout.CbmComparisonFiles`; which
outputs a run holds: :meth:`loce.run_layout.RunLayout.outputs`). This provider turns them into sections and
computes nothing; a run without them contributes no section.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from loce.report.collect import SectionContext
from loce.report.data import FigureRef, Section, Table, Tags
from loce.run_layout import RunLayout

METRICS_TEXT = (
    "Metrics, at each image's resolution: IoU of the map above 0.5 with the concept's mask; pointing game = share "
    "of maps whose peak lies on the mask; alignment error = distance from the peak to the nearest instance's mask "
    "centroid over the image diagonal (Loc-CBM's keypoint alignment error, lower is better); activation L1 = the "
    "map's L1 norm after scaling its peak to 1, per pixel (its spread: the share of the image it covers, lower "
    "is more concentrated)."
)
LOCALIZE_TEXT = (
    "Concept vectors of the run projected onto new images (sigmoid of the 1x1 projection, brought to image "
    "resolution): the concept mean of the LoCEs ('mean'), the most typical single LoCE ('loce'), a 'global' "
    "baseline vector and given vectors such as sub-concept centroids. peak_prob_with / _without: mean map "
    "maximum on images with / without the concept. "
)
CBM_TEXT = (
    "Concept bottleneck models on a frozen backbone's feature map: a 1x1 concept layer gives one sigmoid map per "
    "concept; max-pooled logits are the concepts' presence scores (BCE against the scene annotations) and a "
    "linear head on the concept probabilities predicts the scene class (a rule over the objects present). "
    "Loc-CBM adds the concept locator: each present concept's map peak becomes a Gaussian mask whose radius "
    "shrinks during training, with the alignment loss MSE(masked map, map) on the min-max normalised logit map "
    "(so it can only be lowered by a peak that stands out from the rest of the image, not by lowering the whole "
    "map). Both models are trained alike (same "
    "seed, split and settings) and measured on held-out scenes, beside the run's concept-mean LoCEs projected "
    "onto the same images. Accuracy: scene-class accuracy; concept AUC: mean per-concept ROC AUC. "
)


def _read_csv(path: Path) -> pd.DataFrame | None:
    return pd.read_csv(path) if path.is_file() else None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _outputs(context: SectionContext, step: str):
    """``(files, prefix)`` of each finished output of ``step`` in the runs (the prefix names the run if several)."""
    for run in context.runs:
        for files in RunLayout(run).outputs(step):
            yield files, (f"{context.label(run)} · {files.name}" if len(context.runs) > 1 else files.name)


def _localize_section(context: SectionContext) -> Section | None:
    section = Section("Where the model sees each concept", LOCALIZE_TEXT + METRICS_TEXT, key="localization")
    for files, prefix in _outputs(context, "localization"):
        summary = _read_csv(files.summary)
        record = _read_json(files.vectors)
        notes = "; ".join(record.get("notes", []))
        images = record.get("settings", {}).get("images")
        caption = f"{images} images. " if images else ""
        if summary is not None and len(summary):
            section.tables.append(Table(f"Localisation · {prefix}", summary, caption=caption + notes))
        for concept, figure in files.heatmap_figures():
            section.figures.append(
                FigureRef(
                    figure,
                    f"{prefix}: projections of the {concept!r} vectors (columns) on example images; outline: "
                    "the concept's mask, x: the map's peak",
                    Tags(concept=concept),
                    wide=True,
                )
            )
    return section if section.tables or section.figures else None


def _cbm_section(context: SectionContext) -> Section | None:
    section = Section("Concept bottleneck with a concept locator", CBM_TEXT + METRICS_TEXT, key="cbm")
    for files, prefix in _outputs(context, "cbm"):
        record = _read_json(files.record)
        table = _read_csv(files.table)
        facts = []
        if record.get("test_images"):
            facts.append(
                f"{record['test_images']} held-out scenes, {record.get('maps_per_method')} concept maps"
            )
        for model in record.get("models", []):
            cfg = model.get("config", {})
            facts.append(
                f"{model.get('name')}: {model.get('layer')}, {cfg.get('pooling')} pooling, {cfg.get('epochs')} "
                f"epochs, seed {cfg.get('seed')}"
                + (
                    f", alignment weight {cfg.get('alignment_weight')}, radius {cfg.get('radius_start')} -> "
                    f"{cfg.get('radius_end')} ({cfg.get('radius_schedule')}), "
                    f"{cfg.get('alignment_normalization', 'none')} map normalisation"
                    if cfg.get("locator")
                    else ""
                )
            )
        caption = ". ".join(facts + record.get("notes", []))
        if table is not None:
            section.tables.append(Table(f"Plain CBM vs Loc-CBM vs LoCE · {prefix}", table, caption=caption))
        per_concept = _read_csv(files.per_concept)
        if per_concept is not None and len(per_concept):
            section.tables.append(Table(f"Per concept · {prefix}", per_concept, max_rows=200))
        for path, caption, wide in (
            (
                files.heatmaps.with_suffix(".jpg"),
                "concept maps of each model on held-out scenes; outline: the concept's mask, x: peak",
                True,
            ),
            (
                files.metrics_figure.with_suffix(".png"),
                "localisation and recognition side by side",
                False,
            ),
        ):
            if path.is_file():
                section.figures.append(FigureRef(path, f"{prefix}: {caption}", wide=wide))
    return section if section.tables or section.figures else None


def localization_sections(context: SectionContext) -> list[Section]:
    """The localisation (``loce localize``) and concept-bottleneck (``loce cbm eval``) sections of the runs.

    Example:
        >>> localization_sections(context)  # doctest: +SKIP
        [Section(title='Where the model sees each concept', ...), Section(title='Concept bottleneck ...', ...)]
    """
    sections = [_localize_section(context), _cbm_section(context)]
    return [s for s in sections if s is not None]
