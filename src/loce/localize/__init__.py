"""Where a model sees a concept: projections of concept vectors onto images and localisation metrics.

- :mod:`~loce.localize.heatmaps`: batched projections of ``K`` vectors onto ``B`` images at image resolution,
  thresholds, overlays.
- :mod:`~loce.localize.metrics`: IoU at a threshold, pointing game, peak-to-centroid alignment error (over the
  image diagonal), activation L1 spread; batched; summary tables per concept, layer and vector kind.
- :mod:`~loce.localize.vectors`: the vectors of a run (a LoCE, the concept mean, a ``global`` vector) and given
  ones (sub-concept centroids, files).
- :mod:`~loce.localize.engine`: model + vectors + images -> per-map metrics and example maps.
- :mod:`~loce.localize.run`: ``loce localize``: a run's vectors on new images, tables and figures written to
  ``RUN/localization/<name>/``.

The Loc-CBM-style concept bottleneck lives in :mod:`loce.cbm`.

Example:
    >>> from loce.data import load_coco
    >>> from loce.localize import localize_run
    >>> test = load_coco("scenes_test/annotations.json", "scenes_test/images")  # doctest: +SKIP
    >>> localize_run("RUN", ["mug"], test).summary  # doctest: +SKIP
"""

from loce.localize.engine import (
    LocalizationResult,
    image_folder_samples,
    instance_centroids,
    localize_samples,
    summarize_localization,
)
from loce.localize.heatmaps import (
    ConceptMaps,
    concept_heatmaps,
    concept_logits,
    overlay,
    resize_map,
    threshold_maps,
)
from loce.localize.metrics import (
    METRIC_COLUMNS,
    LocalizationScores,
    activation_l1,
    alignment_error,
    iou_at_threshold,
    localization_scores,
    mask_centroids,
    peak_locations,
    pointing_game,
    summarize_scores,
)
from loce.localize.run import localize_run, run_job, write_localization
from loce.localize.vectors import (
    STORE_KINDS,
    ConceptVector,
    concept_mean,
    concept_vectors,
    global_vector,
    load_vector_file,
    typical_loce,
)

__all__ = [
    "METRIC_COLUMNS",
    "STORE_KINDS",
    "ConceptMaps",
    "ConceptVector",
    "LocalizationResult",
    "LocalizationScores",
    "activation_l1",
    "alignment_error",
    "concept_heatmaps",
    "concept_logits",
    "concept_mean",
    "concept_vectors",
    "global_vector",
    "image_folder_samples",
    "instance_centroids",
    "iou_at_threshold",
    "load_vector_file",
    "localization_scores",
    "localize_run",
    "localize_samples",
    "mask_centroids",
    "overlay",
    "peak_locations",
    "pointing_game",
    "resize_map",
    "run_job",
    "summarize_localization",
    "summarize_scores",
    "threshold_maps",
    "typical_loce",
    "write_localization",
]
