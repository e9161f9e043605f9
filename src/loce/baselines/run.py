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
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from loce.baselines.crop import default_crop_layer
from loce.baselines.embed import PER_SAMPLE_METHODS, EmbedOptions, embed_pairs
from loce.batches import LoadedBatch, iter_batches
from loce.capture import LayerCapture
from loce.data.dataset import ConceptDataset
from loce.errors import InputError
from loce.models import LoadedModel
from loce.pipeline import RunTimings, default_job_name
from loce.store import JobSpec, LoCEStore

METHODS = (*PER_SAMPLE_METHODS, "global")
"""Every baseline ``loce embed`` computes (the store's ``method`` values)."""


@dataclass
class EmbedRunSummary:
    """What an :func:`embed_run` call did.

    Attributes:
        out: the run directory; ``job``: the job name; ``method``: the baseline; ``layers``: the layers embedded.
        images_total: images in the dataset; ``images_done_before``: already stored when it started.
        images_processed: images processed by this call; ``vectors``: embeddings written by this call.
        skips: skip rows written by this call, per reason.
        timings: :class:`~loce.pipeline.RunTimings`; ``peak_memory_mb``: the process's peak resident memory.
    """

    out: Path
    job: str
    method: str
    layers: list[str]
    images_total: int
    images_done_before: int
    images_processed: int = 0
    vectors: int = 0
    skips: dict[str, int] = field(default_factory=dict)
    timings: RunTimings = field(default_factory=RunTimings)
    peak_memory_mb: float = 0.0

    def count_table(self):
        """Embeddings and skips per concept and layer over the whole job (pandas DataFrame)."""
        table = LoCEStore.open(self.out).summary(job=self.job)
        return table[["layer", "concept", "n_ok", "n_skipped"]]


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


def _rows(batch: LoadedBatch, vectors: dict) -> tuple[list[dict[str, Any]], int]:
    rows, count = [], 0
    for layer, result in vectors.items():
        for k, pair in enumerate(batch.pairs):
            ok = result.status[k] == "ok"
            count += ok
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
    return rows, count


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
) -> EmbedRunSummary:
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

    Returns:
        An :class:`EmbedRunSummary`. Calling again with the same arguments resumes.

    Example:
        >>> summary = embed_run(ds, load_model("efficientnet-lite0"), "window", "RUN",  # doctest: +SKIP
        ...                     ["_blocks.10", "_blocks.14"])
    """
    if method not in METHODS:
        raise InputError(f"unknown embedding method {method!r}; choose one of {', '.join(METHODS)}")
    if method == "global":
        from loce.baselines.global_run import global_run

        return global_run(
            dataset, model, resolve_layers(method, model, layers), out, settings=settings, job=job,
            batch_size=batch_size, device=device, layouts=layouts, strict=strict, seed=seed,
            progress=progress,
        )  # fmt: skip
    start = time.perf_counter()
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}")
    options = options or EmbedOptions()
    layers = resolve_layers(method, model, layers)
    torch.manual_seed(seed)
    method_settings = options.settings(method)
    job = job or default_job_name(model.spec, method)
    out = Path(out)
    torch_device = torch.device(device)
    module = model.module.to(torch_device)

    with LoCEStore.create(out, image_root=dataset.root) as store:
        store.register_job(
            JobSpec(
                name=job,
                model=model.spec,
                layers=tuple(layers),
                method=method,
                preprocessing=model.preprocessing.to_dict(),
                fit_settings=method_settings,
                settings_id=settings_id(method_settings),
                dataset=dataset.describe(),
                seed=seed,
            )
        )
        done = store.completed_samples(job)
        todo = [s for s in dataset if s.sample_id not in done]
        summary = EmbedRunSummary(
            out=out, job=job, method=method, layers=layers, images_total=len(dataset),
            images_done_before=len(dataset) - len(todo),
        )  # fmt: skip
        timings = summary.timings
        bar = progress_bar(len(todo), summary.images_done_before, f"embed {method}", progress)
        with LayerCapture(module, layers, layouts=layouts) as capture:
            batches = iter_batches(todo, batch_size, strict=strict)
            while True:
                t0 = time.perf_counter()
                batch = next(batches, None)
                timings.wait += time.perf_counter() - t0
                if batch is None:
                    break
                rows: list[dict[str, Any]] = []
                if batch.pairs:
                    t0 = time.perf_counter()
                    vectors = embed_pairs(
                        method, batch.images, batch.pairs, layers, model.preprocessing, capture,
                        device=torch_device, options=options,
                    )  # fmt: skip
                    timings.forward += time.perf_counter() - t0
                    rows, count = _rows(batch, vectors)
                    summary.vectors += count
                rows.extend(batch.skip_rows)
                for r in rows:
                    if r["status"] != "ok":
                        summary.skips[r["status"]] = summary.skips.get(r["status"], 0) + 1
                t0 = time.perf_counter()
                store.append(job, rows)
                timings.write += time.perf_counter() - t0
                summary.images_processed += len(batch.samples)
                if bar is not None:
                    elapsed = max(time.perf_counter() - start, 1e-9)
                    bar.update(len(batch.samples))
                    bar.set_postfix(
                        {"img/s": f"{summary.images_processed / elapsed:.1f}", "vectors": summary.vectors},
                        refresh=False,
                    )
        if bar is not None:
            bar.close()
    timings.total = time.perf_counter() - start
    summary.peak_memory_mb = peak_memory_mb()
    return summary


def peak_memory_mb() -> float:
    """The process's peak resident memory in MB."""
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def progress_bar(total: int, initial: int, desc: str, enabled: bool):
    """A tqdm bar on stderr (``None`` when disabled)."""
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total + initial, initial=initial, unit="img", desc=desc, file=sys.stderr, smoothing=0.1)
