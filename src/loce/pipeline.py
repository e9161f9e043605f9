"""A LoCE run: dataset -> groups of images -> one forward pass per group -> LoCEs of every layer -> store shards.

This is what ``loce fit`` runs; notebook users call :func:`fit_run` directly. A run is resumable: the store knows
which images are done (their shard exists), so running the same call again continues with the rest, and a run
killed at any moment loses at most the group in flight.
"""

from __future__ import annotations

import re
import resource
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from loce.batches import LoadedBatch, iter_batches
from loce.capture import LayerCapture
from loce.data.dataset import ConceptDataset
from loce.errors import InputError
from loce.fit import LoCEFitter, resolve_settings
from loce.fit.settings import FitSettings
from loce.models import LoadedModel
from loce.store import JobSpec, LoCEStore


@dataclass
class RunTimings:
    """Where a run's time went (seconds): model forward passes, LoCE fitting, everything else, the total."""

    forward: float = 0.0
    fit: float = 0.0
    write: float = 0.0
    wait: float = 0.0
    total: float = 0.0

    @property
    def outside_forward_share(self) -> float:
        """Share of the total time not spent in the model's forward pass."""
        return 0.0 if self.total <= 0 else 1.0 - self.forward / self.total


@dataclass
class FitRunSummary:
    """What a :func:`fit_run` call did.

    Attributes:
        out: the run directory.
        job: the job name in the store.
        images_total: images in the dataset; ``images_done_before``: those already in the store when it started.
        images_processed: images processed by this call; ``loces``: LoCEs written by this call.
        skips: skip rows written by this call, per reason.
        timings: :class:`RunTimings`; ``peak_memory_mb``: the process's peak resident memory.
    """

    out: Path
    job: str
    images_total: int
    images_done_before: int
    images_processed: int = 0
    loces: int = 0
    skips: dict[str, int] = field(default_factory=dict)
    timings: RunTimings = field(default_factory=RunTimings)
    peak_memory_mb: float = 0.0

    def iou_table(self):
        """LoCE count, skips, mean IoU and not-converged count per concept and layer, over the whole job."""
        table = LoCEStore.open(self.out).summary(job=self.job)
        return table.drop(columns=["job", "model", "method"])


def default_job_name(model_spec: str, method: str = "loce") -> str:
    """A job name from a method and a model spec, safe for file names (``"loce.efficientnet-lite0"``)."""
    name = re.sub(r"[^A-Za-z0-9_.+=-]+", "_", f"{method}.{model_spec}").strip("_")
    return name or method


def _peak_memory_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def _fit_rows(
    batch: LoadedBatch,
    activations: dict[str, torch.Tensor],
    fitter: LoCEFitter,
) -> tuple[list[dict[str, Any]], int]:
    """Fit every pair of the batch at every layer; return the store rows and the number of LoCEs."""
    if not batch.pairs:
        return [], 0
    index = torch.as_tensor([p.image_index for p in batch.pairs])
    targets = fitter.prepare_targets([p.mask for p in batch.pairs])
    rows: list[dict[str, Any]] = []
    loces = 0
    for layer, acts in activations.items():
        fitter.fit(acts.index_select(0, index), targets=targets)
        for k, pair in enumerate(batch.pairs):
            ok = fitter.status_[k] == "ok"
            loces += ok
            rows.append(
                {
                    "sample_id": pair.sample_id,
                    "image": pair.image,
                    "concept": pair.concept,
                    "layer": layer,
                    "status": fitter.status_[k],
                    "detail": None if ok else fitter.detail_[k],
                    "vector": fitter.embeddings_[k] if ok else None,
                    "iou": float(fitter.iou_[k]) if ok else None,
                    "loss": float(fitter.loss_[k]) if ok else None,
                    "steps": int(fitter.steps_[k]),
                    "mask": pair.mask,
                    "box": pair.box,
                    "attributes": pair.attributes,
                }
            )
    return rows, loces


def fit_run(
    dataset: ConceptDataset,
    model: LoadedModel,
    layers: Sequence[str],
    out: str | Path,
    *,
    settings: str | FitSettings | dict = "paper",
    job: str | None = None,
    batch_size: int = 32,
    device: str = "cpu",
    layouts: dict[str, str] | None = None,
    strict: bool = False,
    seed: int = 0,
    progress: bool = True,
) -> FitRunSummary:
    """Fit LoCEs of ``layers`` for every (image, concept) of ``dataset`` and store them under ``out``.

    One forward pass per group of ``batch_size`` images captures all layers at once; each group's rows (LoCEs and
    skips) become one atomic shard. Calling it again with the same arguments resumes: images already stored are
    not recomputed. Different settings under the same job name raise a ``StoreError`` (use another ``job``).

    Args:
        dataset: images with concept masks (:func:`loce.data.load_coco`, ``load_voc``, ``load_folder``).
        model: a :class:`~loce.models.LoadedModel` (:func:`loce.models.load_model`).
        layers: names of the layers to embed (see :func:`loce.capture.list_layers`).
        out: the run directory (created if missing).
        settings: fit settings: a preset name (``"paper"``), a dict or a :class:`~loce.fit.FitSettings`.
        job: the job's name in the store; default ``"loce.<model spec>"``.
        batch_size: images per forward pass and per shard.
        device: ``"cpu"``, ``"cuda"`` or ``"mps"``; the model is moved there.
        layouts: per-layer output layout overrides (``{"layer": "nhwc"}``, see :mod:`loce.capture`).
        strict: raise on the first bad input instead of recording a skip row.
        seed: seeds torch and every random step (recorded in the manifest).
        progress: show a progress bar (images/s, LoCEs/s, running mean IoU) on stderr.

    Returns:
        A :class:`FitRunSummary`.

    Example:
        >>> from loce.data import load_coco
        >>> from loce.models import load_model
        >>> ds = load_coco("scenes/annotations.json", "scenes/images")  # doctest: +SKIP
        >>> summary = fit_run(ds, load_model("efficientnet-lite0"), ["_blocks.10"], "RUN")  # doctest: +SKIP
        >>> summary.iou_table()  # doctest: +SKIP
    """
    start = time.perf_counter()
    layers = list(dict.fromkeys(layers))
    if not layers:
        raise InputError("no layers given; list a model's layers with `loce layers MODEL`")
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}")
    torch.manual_seed(seed)
    fit_settings = resolve_settings(settings)
    job = job or default_job_name(model.spec)
    out = Path(out)
    torch_device = torch.device(device)
    module = model.module.to(torch_device)

    with LoCEStore.create(out, image_root=dataset.root) as store:
        store.register_job(
            JobSpec(
                name=job,
                model=model.spec,
                layers=tuple(layers),
                method="loce",
                preprocessing=model.preprocessing.to_dict(),
                fit_settings=fit_settings.to_dict(),
                settings_id=fit_settings.settings_id,
                dataset=dataset.describe(),
                seed=seed,
            )
        )
        done = store.completed_samples(job)
        todo = [s for s in dataset if s.sample_id not in done]
        summary = FitRunSummary(
            out=out, job=job, images_total=len(dataset), images_done_before=len(dataset) - len(todo)
        )
        fitter = LoCEFitter(fit_settings, device=torch_device, seed=seed)
        timings = summary.timings
        bar = _progress_bar(len(todo), summary.images_done_before, enabled=progress)
        iou_sum, iou_n = 0.0, 0
        with LayerCapture(module, layers, layouts=layouts) as capture:
            batches = iter_batches(todo, batch_size, strict=strict)
            while True:
                t0 = time.perf_counter()
                batch = next(batches, None)
                timings.wait += time.perf_counter() - t0
                if batch is None:
                    break
                rows: list[dict[str, Any]] = []
                if batch.images:
                    t0 = time.perf_counter()
                    inputs = model.preprocessing(batch.images).to(torch_device)
                    activations = capture(inputs)
                    timings.forward += time.perf_counter() - t0
                    t0 = time.perf_counter()
                    rows, loces = _fit_rows(batch, activations, fitter)
                    timings.fit += time.perf_counter() - t0
                    summary.loces += loces
                    ious = [r["iou"] for r in rows if r["status"] == "ok"]
                    iou_sum += float(np.sum(ious)) if ious else 0.0
                    iou_n += len(ious)
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
                        {
                            "img/s": f"{summary.images_processed / elapsed:.1f}",
                            "LoCE/s": f"{summary.loces / elapsed:.1f}",
                            "IoU": f"{iou_sum / iou_n:.3f}" if iou_n else "-",
                        },
                        refresh=False,
                    )
        if bar is not None:
            bar.close()
    timings.total = time.perf_counter() - start
    summary.peak_memory_mb = _peak_memory_mb()
    return summary


def _progress_bar(total: int, initial: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(
        total=total + initial, initial=initial, unit="img", desc="fit", file=sys.stderr, smoothing=0.1
    )
