"""``loce localize``: a run's concept vectors projected onto new images, with tables and figures written out.

:func:`localize_run` takes the vectors (:mod:`loce.localize.vectors`) and the model from a run directory, runs
the engine (:func:`loce.localize.engine.localize_samples`) and writes, under ``RUN/localization/<name>/``::

    metrics.csv     one row per (image, vector): concept, layer, kind, label, has_concept, metrics, peak_prob
    summary.csv     per (concept, layer, kind, label): n, iou, pointing_game, alignment_error, ...
    vectors.json    what each projected vector is (kind, source, dim, norm), plus notes and settings
    heatmaps/<concept>/<label>@<layer>/<image>.png   overlays of the first example images
    figures/heatmaps_<concept>.jpg                   a grid: example images x vectors, masks outlined, peaks marked

(the names: :class:`loce.run_layout.LocalizationFiles`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from loce.activations import CacheOptions
from loce.data.sample import Sample
from loce.errors import InputError, StoreError
from loce.figures._base import PHOTO_FORMATS
from loce.localize.engine import LocalizationResult, localize_samples
from loce.localize.heatmaps import overlay
from loce.localize.vectors import STORE_KINDS, ConceptVector, concept_vectors
from loce.models import LoadedModel
from loce.run_layout import LocalizationFiles, RunLayout
from loce.store import LoCEStore


def write_localization(
    result: LocalizationResult, out: str | Path, *, settings: dict | None = None
) -> list[Path]:
    """Write the tables, overlays and heat-map figures of a :class:`LocalizationResult` under ``out``.

    Returns:
        The files written (tables first).
    """
    from loce.figures import save_figure
    from loce.figures.localization import HeatmapRow, heatmap_grid
    from loce.store.atomic import write_bytes_atomic

    layout = LocalizationFiles(Path(out))
    out = layout.directory
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for path, frame in ((layout.metrics, result.per_map), (layout.summary, result.summary)):
        write_bytes_atomic(path, frame.to_csv(index=False).encode("utf-8"))
        files.append(path)
    record = {
        "vectors": [v.describe() for v in result.vectors],
        "notes": result.notes,
        "settings": settings or {},
    }
    write_bytes_atomic(layout.vectors, json.dumps(record, indent=2, sort_keys=True).encode("utf-8"))
    files.append(layout.vectors)
    from PIL import Image

    for concept, exs in result.examples.items():
        for ex in exs:
            for key, heat in ex.heatmaps.items():
                path = layout.overlay(concept, key, Path(ex.label).stem)
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(overlay(ex.image, heat)).save(path)
                files.append(path)
        if exs:
            columns = list(dict.fromkeys(k for ex in exs for k in ex.heatmaps))
            rows = [HeatmapRow(Path(ex.label).name, ex.image, ex.mask, ex.heatmaps, ex.peaks) for ex in exs]
            fig = heatmap_grid(rows, columns, suptitle=f"where the model sees {concept!r}")
            files += save_figure(fig, layout.heatmap_figure(concept), formats=PHOTO_FORMATS)
    result.out, result.files = out, files
    return files


def run_job(store: LoCEStore, layers: Sequence[str] | None, job: str | None):
    """The LoCE job of a run to take vectors (and the model) from: the named one, or the only ``loce`` job."""
    jobs = {name: spec for name, spec in store.jobs.items() if spec.method == "loce"}
    if job is not None:
        if job not in jobs:
            raise StoreError(f"{store.path} has no LoCE job {job!r}; its LoCE jobs are {sorted(jobs)}")
        return jobs[job]
    if layers:
        jobs = {n: s for n, s in jobs.items() if set(layers) <= set(s.layers)}
    if len(jobs) != 1:
        raise StoreError(
            f"{store.path} has {len(jobs)} LoCE jobs with the requested layers ({sorted(jobs)}); choose one with "
            "--job"
        )
    return next(iter(jobs.values()))


def localize_run(
    run: str | Path,
    concepts: Sequence[str],
    samples: Sequence[Sample],
    *,
    layers: Sequence[str] | None = None,
    kinds: Sequence[str] = STORE_KINDS,
    sample_id: str | None = None,
    centroids: dict[str, np.ndarray] | None = None,
    job: str | None = None,
    model: LoadedModel | None = None,
    device: str = "cpu",
    name: str | None = None,
    out: str | Path | None = None,
    threshold: float = 0.5,
    tolerance: float = 0.0,
    batch_size: int = 16,
    examples: int = 6,
    progress: bool = True,
    activation_cache: CacheOptions | bool = True,
) -> LocalizationResult:
    """Project concept vectors of a run onto ``samples`` and write the results to ``RUN/localization/<name>``.

    Args:
        run: the run directory (``loce fit RUN``).
        concepts: the concepts whose vectors to project.
        samples: the images (a :class:`~loce.data.ConceptDataset` with masks for metrics, or
            :func:`image_folder_samples`).
        layers: layers to project at (default: every layer of the job).
        kinds: vector kinds from the store (``"mean"``, ``"loce"``, ``"global"``).
        sample_id: the sample whose LoCE is the ``"loce"`` kind (default the most typical one).
        centroids: extra named vectors (sub-concept centroids) added for every concept at the single layer.
        job: the LoCE job to use when the run has several.
        model: the model (default: loaded from the job's model spec and preprocessing).
        device: where the model runs when it is loaded here.
        name: sub-directory of ``RUN/localization`` (default: the concept names joined by ``+``).
        out: write here instead of ``RUN/localization/<name>``.
        threshold, tolerance, batch_size, examples, progress: see :func:`localize_samples`.
        activation_cache: :class:`~loce.activations.CacheOptions` (``True`` / ``False``: on / off); by default
            the images' activations are cached in ``RUN/cache/activations``, shared with the run's other steps.

    Returns:
        The :class:`LocalizationResult` (``out`` and ``files`` set).

    Example:
        >>> from loce.data import load_coco
        >>> test = load_coco("scenes_test/annotations.json", "scenes_test/images")  # doctest: +SKIP
        >>> res = localize_run("RUN", ["mug", "duck"], test)  # doctest: +SKIP
        >>> res.summary[["concept", "layer", "kind", "alignment_error"]]  # doctest: +SKIP
    """
    from loce.models import load_model_from_identity

    store = LoCEStore.open(run)
    spec = run_job(store, layers, job)
    layers = list(layers or spec.layers)
    if centroids and len(layers) != 1:
        raise InputError("centroids belong to one layer; pass exactly one layer with them")
    vectors: list[ConceptVector] = []
    notes: list[str] = []
    for concept in concepts:
        for layer in layers:
            found, missing = concept_vectors(
                store, concept, layer, kinds=kinds, sample_id=sample_id, centroids=centroids, job=spec.name
            )
            vectors += found
            notes += missing
    if len(notes) > 1 and all(note.startswith("no 'global' vector") for note in notes):
        notes = [
            f"{run} has no 'global' vectors of the requested concepts and layers (add them with `loce embed --method global`)"
        ]
    if model is None:
        if spec.model.startswith("module:"):
            raise InputError(
                f"the run's model {spec.model!r} was passed from Python and cannot be reloaded; pass model=..."
            )
        identity = spec.model_identity or {"spec": spec.model, "preprocessing": spec.preprocessing}
        model = load_model_from_identity(identity, device=device)
    result = localize_samples(
        model,
        vectors,
        samples,
        threshold=threshold,
        tolerance=tolerance,
        batch_size=batch_size,
        examples=examples,
        progress=progress,
        activation_cache=CacheOptions.of(activation_cache).located(run),
    )
    result.notes = notes + result.notes
    target = (
        Path(out) if out is not None else RunLayout(run).localization(name or "+".join(concepts)).directory
    )
    write_localization(
        result,
        target,
        settings={
            "run": str(run),
            "job": spec.name,
            "model": spec.model,
            "layers": layers,
            "kinds": list(kinds),
            "threshold": threshold,
            "tolerance": tolerance,
            "images": len(samples),
        },
    )
    return result
