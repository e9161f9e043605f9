"""The ``global`` embedding run: one Net2Vec-style vector per (concept, layer), fitted over all of its samples.

One pass over the dataset captures the activations of every usable (image, concept) pair at every layer (kept in
memory: about ``pairs x C x h x w x 4`` bytes per layer, e.g. 53 MB for 600 pairs at 112 x 14 x 14; cap a large
dataset with ``--max-per-category``); then each concept's vector is fitted per layer
(:func:`~loce.baselines.global_vector.fit_shared_vector`) and written as its own shard.

Rows (see ``docs/STORE.md``): ``sample_id = "global:<concept>"``, ``image`` null, ``method = "global"``,
``vector`` the global vector, ``iou`` the mean IoU of its thresholded projection over the concept's samples,
``loss`` the mean per-sample objective, ``steps`` the optimiser steps, ``detail`` a JSON object (samples used,
left out, mean / median IoU, IoU-0 count). A concept without any usable sample gets a ``no_samples`` skip row.
Inputs that could not be read are recorded as skip rows with their own sample ids (in one shard, written once).
Resuming continues with the concepts whose ``global:<concept>`` rows are missing.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from loce.activations import iter_activations
from loce.baselines.global_vector import fit_shared_vector
from loce.data.dataset import ConceptDataset
from loce.errors import InputError
from loce.fit import resolve_settings
from loce.models import LoadedModel
from loce.run_options import RunOptions
from loce.runs import (
    RunSummary,
    activation_source,
    default_job_name,
    job_spec,
    peak_memory_mb,
    progress_bar,
    with_cache_settings,
)
from loce.store import LoCEStore

GLOBAL_PREFIX = "global:"


def global_sample_id(concept: str) -> str:
    """The ``sample_id`` of a concept's global rows.

    Example:
        >>> global_sample_id("mug")
        'global:mug'
    """
    return f"{GLOBAL_PREFIX}{concept}"


def global_run(
    dataset: ConceptDataset,
    model: LoadedModel,
    layers: Sequence[str],
    out: str | Path,
    *,
    settings: Any = "paper",
    options: RunOptions | None = None,
    **run_options: Any,
) -> RunSummary:
    """Fit and store one global vector per (concept, layer) of ``dataset``.

    Args: as :func:`loce.baselines.run.embed_run`; ``settings`` are the fit settings of the shared objective.

    Returns:
        A :class:`~loce.runs.RunSummary` (``images_processed`` counts the images read).

    Example:
        >>> global_run(ds, load_model("efficientnet-lite0"), ["_blocks.14"], "RUN")  # doctest: +SKIP
    """
    options = RunOptions.of(options, **run_options)
    start = time.perf_counter()
    layers = list(dict.fromkeys(layers))
    if not layers:
        raise InputError("no layers given for global vectors; e.g. --layers _blocks.10,_blocks.14")
    fit_settings = resolve_settings(settings)
    torch.manual_seed(options.seed)
    job = options.job or default_job_name(model.spec, "global")
    out = Path(out)
    torch_device = torch.device(options.device)
    with LoCEStore.create(out, image_root=dataset.root) as store:
        settings, settings_id = with_cache_settings({"shared_over": "concept", **fit_settings.to_dict()},
                                                    f"global-{fit_settings.settings_id}", options)  # fmt: skip
        store.register_job(job_spec(dataset, model, layers, job=job, method="global", seed=options.seed,
                                    settings=settings, settings_id=settings_id))  # fmt: skip
        done = store.completed_samples(job)
        concepts = [c for c in dataset.categories if global_sample_id(c) not in done]
        wanted = set(concepts)
        samples = [s for s in dataset if wanted & set(s.concepts)]
        summary = RunSummary(
            out=out, job=job, method="global", layers=layers, images_total=len(dataset),
            images_done_before=len(dataset) - len(samples),
        )  # fmt: skip
        acts: dict[tuple[str, str], list[torch.Tensor]] = defaultdict(list)
        masks: dict[str, list[np.ndarray]] = defaultdict(list)
        skip_rows: list[dict[str, Any]] = []
        bar = progress_bar(len(samples), 0, "global: capture", options.progress)
        with activation_source(model, layers, out, options) as source:
            for item in iter_activations(source, samples, options.batch_size, strict=options.strict,
                                         max_bytes=options.max_batch_bytes):  # fmt: skip
                batch = item.batch
                skip_rows.extend(r for r in batch.skip_rows if r["sample_id"] not in done)
                pairs = [p for p in batch.pairs if p.concept in wanted]
                if pairs:
                    t0 = time.perf_counter()
                    activations = item.activations
                    summary.timings.forward += time.perf_counter() - t0
                    for layer in layers:
                        for p in pairs:
                            acts[(p.concept, layer)].append(activations[layer][p.image_index].cpu().clone())
                    framed = dict(zip(map(id, batch.pairs), item.pair_masks()))  # in the model's input frame
                    for p in pairs:
                        masks[p.concept].append(framed[id(p)])
                summary.images_processed += len(batch.samples)
                if bar is not None:
                    bar.update(len(batch.samples))
        summary.count_forwards(source.counts)
        if bar is not None:
            bar.close()
        if skip_rows:
            store.append(job, skip_rows)
        for row in skip_rows:
            summary.count_skip(row["status"])

        bar = progress_bar(len(concepts), 0, "global: fit", options.progress)
        for concept in concepts:
            t0 = time.perf_counter()
            rows = [
                _global_row(concept, layer, acts.pop((concept, layer), []), masks.get(concept, []),
                            fit_settings, torch_device, options.seed)
                for layer in layers
            ]  # fmt: skip
            summary.timings.fit += time.perf_counter() - t0
            for row in rows:
                if row["status"] == "ok":
                    summary.vectors += 1
                else:
                    summary.count_skip(row["status"])
            t0 = time.perf_counter()
            store.append(job, rows)
            summary.timings.write += time.perf_counter() - t0
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
    summary.timings.total = time.perf_counter() - start
    summary.peak_memory_mb = peak_memory_mb()
    return summary


def _global_row(
    concept: str,
    layer: str,
    activations: list[torch.Tensor],
    masks: list[np.ndarray],
    settings,
    device: torch.device,
    seed: int,
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "sample_id": global_sample_id(concept),
        "image": None,
        "concept": concept,
        "layer": layer,
    }
    if not activations:
        return {
            **row,
            "status": "no_samples",
            "detail": f"concept {concept!r} has no usable (image, mask) pair in the dataset; no global vector",
        }
    try:
        fit = fit_shared_vector(torch.stack(activations), masks, settings, device=device, seed=seed)
    except InputError as exc:
        return {**row, "status": "no_samples", "detail": f"concept {concept!r}, layer {layer!r}: {exc}"}
    info = fit.describe()
    return {
        **row,
        "status": "ok",
        "detail": json.dumps(info),
        "vector": fit.vector,
        "iou": info["mean_iou"],
        "iou_convention": settings.iou_convention,
        "loss": float(np.nanmean(fit.loss)),
        "steps": fit.steps,
    }
