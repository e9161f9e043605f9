"""A LoCE run: dataset -> groups of images -> activations (one forward pass per group, or the cache) -> LoCEs of every layer -> store shards.

This is what ``loce fit`` runs; notebook users call :func:`fit_run` directly. A run is resumable: the store knows
which images are done (their shard exists), so running the same call again continues with the rest, and a run
killed at any moment loses at most the group in flight.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from loce.activations import ActivationBatch
from loce.batches import LoadedBatch
from loce.data.dataset import ConceptDataset
from loce.fit import LoCEFitter, resolve_settings
from loce.fit.settings import FitSettings
from loce.models import LoadedModel
from loce.run_options import RunOptions
from loce.runs import BatchProcessor, RunSummary, RunTimings, run_batches

__all__ = ["fit_run", "loce_processor", "loce_rows"]


def _strip_index(detail: str) -> str:
    """The fitter's sentence without its batch position ("sample 3: ..."), which means nothing in the store."""
    return re.sub(r"^sample \d+: ", "", detail or "")


def loce_rows(
    batch: LoadedBatch,
    activations: dict[str, torch.Tensor],
    fitter: LoCEFitter,
    masks: Sequence[np.ndarray] | None = None,
) -> list[dict[str, Any]]:
    """Fit every pair of ``batch`` at every layer of ``activations``; return the store rows.

    ``masks`` are the pairs' masks in the model's input frame (:meth:`loce.activations.ActivationBatch.pair_masks`;
    default the pairs' own masks, right under a stretch); the stored mask stays the image's own. Soft targets are
    prepared once and shared by all layers; each pair's row carries its vector (``ok`` rows), IoU, final loss,
    steps, mask (encoded once by the store), box and instance attributes.
    """
    index = torch.as_tensor([p.image_index for p in batch.pairs])
    targets = fitter.prepare_targets(list(masks) if masks is not None else [p.mask for p in batch.pairs])
    rows: list[dict[str, Any]] = []
    for layer, acts in activations.items():
        fitter.fit(acts.index_select(0, index.to(acts.device)), targets=targets)
        for k, pair in enumerate(batch.pairs):
            ok = fitter.status_[k] == "ok"
            rows.append(
                {
                    "sample_id": pair.sample_id,
                    "image": pair.image,
                    "concept": pair.concept,
                    "layer": layer,
                    "status": fitter.status_[k],
                    "detail": None
                    if ok
                    else f"{pair.image}, {pair.concept}, {layer}: {_strip_index(fitter.detail_[k])}",
                    "vector": fitter.embeddings_[k] if ok else None,
                    "iou": float(fitter.iou_[k]) if ok else None,
                    "iou_convention": fitter.settings_.iou_convention if ok else None,
                    "loss": float(fitter.loss_[k]) if ok else None,
                    "steps": int(fitter.steps_[k]),
                    "mask": pair.mask,
                    "box": pair.box,
                    "attributes": pair.attributes,
                }
            )
    return rows


def loce_processor(
    model: LoadedModel, settings: FitSettings, device: torch.device, seed: int = 0
) -> BatchProcessor:
    """The :data:`~loce.runs.BatchProcessor` of a LoCE run: the group's activations, then :func:`loce_rows`.

    Every engine builds its rows with this function (:func:`fit_run` locally, the Ray engine in each actor).
    """
    fitter = LoCEFitter(settings, device=device, seed=seed)

    def process(item: ActivationBatch, timings: RunTimings) -> list[dict[str, Any]]:
        t0 = time.perf_counter()
        activations = item.activations
        timings.forward += time.perf_counter() - t0
        t0 = time.perf_counter()
        rows = loce_rows(item.batch, activations, fitter, item.pair_masks())
        timings.fit += time.perf_counter() - t0
        return rows

    return process


def fit_run(
    dataset: ConceptDataset,
    model: LoadedModel,
    layers: Sequence[str],
    out: str | Path,
    *,
    settings: str | FitSettings | dict = "paper",
    options: RunOptions | None = None,
    **run_options: Any,
) -> RunSummary:
    """Fit LoCEs of ``layers`` for every (image, concept) of ``dataset`` and store them under ``out``.

    One forward pass per group of ``batch_size`` images captures all layers at once (or the run's activation
    cache serves them); each group's rows (LoCEs and skips) become one atomic shard. Calling it again with the same
    arguments resumes: images already stored are not recomputed. Different settings under the same job name raise
    a ``StoreError`` (use another ``job``).

    Args:
        dataset: images with concept masks (:func:`loce.data.load_coco`, ``load_voc``, ``load_folder``).
        model: a :class:`~loce.models.LoadedModel` (:func:`loce.models.load_model`).
        layers: names of the layers to embed (see :func:`loce.capture.list_layers`).
        out: the run directory (created if missing).
        settings: fit settings: a preset name (``"paper"``), a dict or a :class:`~loce.fit.FitSettings`.
        options: a :class:`~loce.run_options.RunOptions`.
        run_options: fields of :class:`~loce.run_options.RunOptions` as keywords (``job``, ``batch_size``,
            ``device``, ``layouts``, ``strict``, ``seed``, ``progress``, ``max_batch_bytes``,
            ``activation_cache``), overriding ``options``.

    Returns:
        A :class:`~loce.runs.RunSummary`; ``summary.table()`` gives the IoU per concept and layer.

    Example:
        >>> from loce.data import load_coco
        >>> from loce.models import load_model
        >>> ds = load_coco("scenes/annotations.json", "scenes/images")  # doctest: +SKIP
        >>> summary = fit_run(ds, load_model("efficientnet-lite0"), ["_blocks.10"], "RUN")  # doctest: +SKIP
        >>> summary.table()  # doctest: +SKIP
    """
    options = RunOptions.of(options, **run_options)
    fit_settings = resolve_settings(settings)
    process = loce_processor(model, fit_settings, torch.device(options.device), options.seed)
    return run_batches(
        dataset, model, layers, out, process,
        method="loce", settings=fit_settings.to_dict(), settings_id=fit_settings.settings_id, options=options,
    )  # fmt: skip
