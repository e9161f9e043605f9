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
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from loce.activations import ActivationBatch
from loce.baselines.crop import default_crop_layer
from loce.baselines.embed import PER_SAMPLE_METHODS, EmbedOptions, embed_pairs
from loce.batches import LoadedBatch
from loce.data.dataset import ConceptDataset
from loce.errors import InputError
from loce.models import LoadedModel
from loce.run_options import RunOptions
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

    def process(item: ActivationBatch, timings: RunTimings) -> list[dict[str, Any]]:
        t0 = time.perf_counter()
        batch = item.batch
        if method == "crop":  # crops its canvases from the image itself and forwards them
            pairs, activations = batch.pairs, None
        else:  # masks in the model's input frame, aligned with the activation grid (any --resize mode)
            pairs = [replace(p, mask=m) for p, m in zip(batch.pairs, item.pair_masks())]
            activations = item.activations
        vectors = embed_pairs(method, batch.images, pairs, layers, model.preprocessing, item.source.forward,
                              device=device, options=options, activations=activations)  # fmt: skip
        timings.forward += time.perf_counter() - t0
        return _rows(batch, vectors)

    return process


def embed_run(
    dataset: ConceptDataset,
    model: LoadedModel,
    layers: Sequence[str] | None,
    out: str | Path,
    *,
    method: str,
    embed_options: EmbedOptions | None = None,
    settings: str | dict | Any = "paper",
    options: RunOptions | None = None,
    **run_options: Any,
) -> RunSummary:
    """Embed every (image, concept) of ``dataset`` with a baseline and store the vectors under ``out``.

    Args:
        dataset: images with concept masks.
        model: a :class:`~loce.models.LoadedModel`.
        layers: layers to embed; for ``crop`` ``None`` means the model's penultimate layer
            (:data:`loce.baselines.crop.PENULTIMATE_LAYERS`), required for the others.
        out: the run directory (created if missing; may already hold LoCEs and other baselines).
        method: ``"crop"``, ``"window"``, ``"masked-pool"`` or ``"global"``.
        embed_options: :class:`~loce.baselines.embed.EmbedOptions` (window size, crop margin).
        settings: fit settings of ``global`` vectors (preset name, dict or ``FitSettings``); unused otherwise.
        options: a :class:`~loce.run_options.RunOptions`.
        run_options: fields of :class:`~loce.run_options.RunOptions` as keywords (``job``, ``batch_size``,
            ``device``, ``layouts``, ``strict``, ``seed``, ``progress``, ``max_batch_bytes``,
            ``activation_cache``), overriding ``options``. The default job name is ``"<method>.<model spec>"``.

    Returns:
        A :class:`~loce.runs.RunSummary`. Calling again with the same arguments resumes.

    Example:
        >>> summary = embed_run(ds, load_model("efficientnet-lite0"), ["_blocks.10", "_blocks.14"],  # doctest: +SKIP
        ...                     "RUN", method="window")
    """
    options = RunOptions.of(options, **run_options)
    if method not in METHODS:
        raise InputError(f"unknown embedding method {method!r}; choose one of {', '.join(METHODS)}")
    if method == "global":
        from loce.baselines.global_run import global_run

        return global_run(dataset, model, resolve_layers(method, model, layers), out, settings=settings,
                          options=options)  # fmt: skip
    embed_options = embed_options or EmbedOptions()
    layers = resolve_layers(method, model, layers)
    method_settings = embed_options.settings(method)
    process = baseline_processor(method, model, layers, embed_options, torch.device(options.device))
    return run_batches(
        dataset, model, layers, out, process,
        method=method, settings=method_settings, settings_id=settings_id(method_settings), options=options,
    )  # fmt: skip
