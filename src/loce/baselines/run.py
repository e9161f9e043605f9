"""The embedding run of a baseline: dataset -> groups of images -> baseline vectors of every layer -> store shards.

What ``loce embed`` runs. It mirrors :func:`loce.pipeline.fit_run`: one job per (method, model) in the same run
directory as the LoCEs (rows carry ``method`` = ``crop``, ``window`` or ``masked-pool``), one atomic shard per
group of whole images, resumable (images with a shard are not recomputed), bad inputs recorded as skip rows.
The ``global`` method has its own flow (:func:`loce.baselines.global_run.global_run`); :func:`embed_run`
dispatches to it.

Rows: ``vector`` is the embedding, ``iou`` / ``loss`` / ``steps`` are null (nothing is fitted), the mask, box and
instance attributes are stored as for LoCEs, and ``detail`` holds a JSON object saying how the vector was made
(``window``: centre cell, grid, k, padded cells; ``crop``: crop box, canvas size, offset; ``masked-pool``: grid,
cells covered).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from loce.baselines.crop import default_crop_layer
from loce.baselines.embed import PER_SAMPLE_METHODS, EmbedOptions, embed_pairs
from loce.batches import DEFAULT_MAX_BATCH_BYTES, LoadedBatch
from loce.capture import LayerCapture
from loce.data.dataset import ConceptDataset
from loce.errors import InputError
from loce.models import LoadedModel
from loce.runs import BatchProcessor, RunSummary, RunTimings, run_batches

METHODS = (*PER_SAMPLE_METHODS, "global")
"""Every baseline ``loce embed`` computes (the store's ``method`` values)."""


def settings_id(settings: dict[str, Any]) -> str:
    """A short stable id of a method's settings (``"<method>-<12 hex digits>"``)."""
    payload = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return f"{settings.get('method', 'baseline')}-{hashlib.sha256(payload.encode()).hexdigest()[:12]}"


def resolve_layers(method: str, model: LoadedModel, layers: Sequence[str] | None) -> list[str]:
    """The layers to embed: the given ones, or for ``crop`` the model's penultimate layer by default."""
    layers = list(dict.fromkeys(layers or []))
    if layers:
        return layers
    if method == "crop":
        return [default_crop_layer(model.spec)]
    raise InputError(
        f"method {method!r} needs layers with a spatial grid (e.g. --layers _blocks.10,_blocks.14); "
        "`loce layers MODEL` lists them"
    )


def _rows(batch: LoadedBatch, vectors: dict) -> list[dict[str, Any]]:
    rows = []
    for layer, result in vectors.items():
        for k, pair in enumerate(batch.pairs):
            ok = result.status[k] == "ok"
            rows.append(
                {
                    "sample_id": pair.sample_id,
                    "image": pair.image,
                    "concept": pair.concept,
                    "layer": layer,
                    "status": result.status[k],
                    "detail": result.detail[k],
                    "vector": result.vectors[k] if ok else None,
                    "mask": pair.mask,
                    "box": pair.box,
                    "attributes": pair.attributes,
                }
            )
    return rows


def baseline_processor(
    method: str, model: LoadedModel, layers: Sequence[str], options: EmbedOptions, device: torch.device
) -> BatchProcessor:
    """The :data:`~loce.runs.BatchProcessor` of a per-sample baseline (``crop``, ``window``, ``masked-pool``).

    Every engine builds its rows with this function (:func:`embed_run` locally, the Ray engine in each actor).
    """
    layers = list(layers)

    def process(batch: LoadedBatch, capture: LayerCapture, timings: RunTimings) -> list[dict[str, Any]]:
        t0 = time.perf_counter()
        vectors = embed_pairs(method, batch.images, batch.pairs, layers, model.preprocessing, capture,
                              device=device, options=options)  # fmt: skip
        timings.forward += time.perf_counter() - t0
        return _rows(batch, vectors)

    return process


def embed_run(
    dataset: ConceptDataset,
    model: LoadedModel,
    method: str,
    out: str | Path,
    layers: Sequence[str] | None = None,
    *,
    options: EmbedOptions | None = None,
    settings: str | dict | Any = "paper",
    job: str | None = None,
    batch_size: int = 32,
    device: str = "cpu",
    layouts: dict[str, str] | None = None,
    strict: bool = False,
    seed: int = 0,
    progress: bool = True,
    max_batch_bytes: int | None = DEFAULT_MAX_BATCH_BYTES,
) -> RunSummary:
    """Embed every (image, concept) of ``dataset`` with a baseline and store the vectors under ``out``.

    Args:
        dataset: images with concept masks.
        model: a :class:`~loce.models.LoadedModel`.
        method: ``"crop"``, ``"window"``, ``"masked-pool"`` or ``"global"``.
        out: the run directory (created if missing; may already hold LoCEs and other baselines).
        layers: layers to embed; for ``crop`` default the model's penultimate layer
            (:data:`loce.baselines.crop.PENULTIMATE_LAYERS`), required for the others.
        options: :class:`~loce.baselines.embed.EmbedOptions` (window size, crop margin).
        settings: fit settings of ``global`` vectors (preset name, dict or ``FitSettings``); unused otherwise.
        job: the job's name; default ``"<method>.<model spec>"``.
        batch_size: images per forward pass and per shard.
        device: ``"cpu"``, ``"cuda"`` or ``"mps"``.
        layouts: per-layer output layout overrides (see :mod:`loce.capture`).
        strict: raise on the first bad input instead of recording a skip row.
        seed: seeds torch (recorded in the manifest).
        progress: show a progress bar on stderr.
        max_batch_bytes: memory budget of a group's decoded images and masks; a group of large images is cut
            short (:func:`loce.batches.group_samples`; ``None``: only ``batch_size`` counts).

    Returns:
        A :class:`~loce.runs.RunSummary`. Calling again with the same arguments resumes.

    Example:
        >>> summary = embed_run(ds, load_model("efficientnet-lite0"), "window", "RUN",  # doctest: +SKIP
        ...                     ["_blocks.10", "_blocks.14"])
    """
    from loce.preprocessing import require_stretch

    require_stretch(getattr(model, "preprocessing", None), "embed")
    if method not in METHODS:
        raise InputError(f"unknown embedding method {method!r}; choose one of {', '.join(METHODS)}")
    if method == "global":
        from loce.baselines.global_run import global_run

        return global_run(
            dataset, model, resolve_layers(method, model, layers), out, settings=settings, job=job,
            batch_size=batch_size, device=device, layouts=layouts, strict=strict, seed=seed,
            progress=progress, max_batch_bytes=max_batch_bytes,
        )  # fmt: skip
    options = options or EmbedOptions()
    layers = resolve_layers(method, model, layers)
    method_settings = options.settings(method)
    torch_device = torch.device(device)
    process = baseline_processor(method, model, layers, options, torch_device)
    return run_batches(
        dataset, model, layers, out, process,
        method=method, settings=method_settings, settings_id=settings_id(method_settings), job=job,
        batch_size=batch_size, device=torch_device, layouts=layouts, strict=strict, seed=seed, progress=progress,
        max_batch_bytes=max_batch_bytes,
    )  # fmt: skip
