"""The loop every embedding run shares: a job in a store, groups of whole images, one atomic shard per group.

:func:`loce.pipeline.fit_run` (LoCEs) and :func:`loce.baselines.embed_run` (crop, window, masked-pool) differ
only in how a group's rows are computed; that part is a :data:`BatchProcessor` they pass to :func:`run_batches`.
Everything else lives here once: registering the job (so a changed setting is refused instead of mixed), skipping
images already stored (resume), prefetching the next group, the progress bar, skip rows, timings and the summary.
"""

from __future__ import annotations

import re
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from loce.batches import DEFAULT_MAX_BATCH_BYTES, LoadedBatch, iter_batches
from loce.capture import LayerCapture, check_layers
from loce.data.dataset import ConceptDataset
from loce.data.sample import Sample
from loce.errors import InputError
from loce.models import LoadedModel
from loce.store import JobSpec, LoCEStore


@dataclass
class RunTimings:
    """Where a run's time went (seconds): model forward passes, fitting, store writes, waiting for image
    decoding, and the total."""

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
class RunSummary:
    """What one run call did.

    Attributes:
        out: the run directory; ``job``: the job name; ``method``: ``"loce"`` or a baseline; ``layers``: embedded.
        images_total: images in the dataset; ``images_done_before``: those already stored when it started.
        images_processed: images processed by this call; ``vectors``: embeddings written by this call.
        skips: skip rows written by this call, per reason.
        timings: :class:`RunTimings`; ``peak_memory_mb``: the process's peak resident memory.
        model_identity: the job's recorded model identity (:meth:`loce.models.LoadedModel.identity`).
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
    iou_sum: float = 0.0
    iou_count: int = 0
    model_identity: dict[str, Any] = field(default_factory=dict)

    def count_skip(self, status: str) -> None:
        """Count one skip row of reason ``status``."""
        self.skips[status] = self.skips.get(status, 0) + 1

    def count_rows(self, rows: Sequence[dict[str, Any]]) -> None:
        """Count a group's rows: vectors, skips per reason, and the IoU of fitted vectors."""
        for row in rows:
            if row["status"] == "ok":
                self.vectors += 1
                if row.get("iou") is not None:
                    self.iou_sum, self.iou_count = self.iou_sum + row["iou"], self.iou_count + 1
            else:
                self.count_skip(row["status"])

    def progress_postfix(self, elapsed: float) -> dict[str, str]:
        """The progress bar's figures after ``elapsed`` seconds: images/s, vectors/s, running mean IoU."""
        elapsed = max(elapsed, 1e-9)
        postfix = {
            "img/s": f"{self.images_processed / elapsed:.1f}",
            "vec/s": f"{self.vectors / elapsed:.1f}",
        }
        if self.iou_count:
            postfix["IoU"] = f"{self.iou_sum / self.iou_count:.3f}"
        return postfix

    def table(self):
        """Per concept and layer over the whole job: ``n_ok``, ``n_skipped``, ``mean_iou``, ``not_converged``."""
        return LoCEStore.open(self.out).summary(job=self.job).drop(columns=["job", "model", "method"])


BatchProcessor = Callable[[LoadedBatch, LayerCapture, RunTimings], list[dict[str, Any]]]
"""Computes a group's store rows (every (image, concept, layer) of its usable pairs); may add to the timings."""


def default_job_name(model_spec: str, method: str = "loce") -> str:
    """A job name from a method and a model spec, safe for file names (``"loce.efficientnet-lite0"``)."""
    name = re.sub(r"[^A-Za-z0-9_.+=-]+", "_", f"{method}.{model_spec}").strip("_")
    return name or method


def peak_memory_mb() -> float:
    """The process's peak resident memory in MB."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def progress_bar(total: int, initial: int, desc: str, enabled: bool):
    """A tqdm bar over images on stderr, or ``None`` when disabled."""
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total + initial, initial=initial, unit="img", desc=desc, file=sys.stderr, smoothing=0.1)


def job_spec(
    dataset: ConceptDataset,
    model: LoadedModel,
    layers: Sequence[str],
    *,
    job: str,
    method: str,
    settings: dict[str, Any],
    settings_id: str,
    seed: int,
) -> JobSpec:
    """The :class:`~loce.store.JobSpec` of a run: everything that determines its rows."""
    return JobSpec(
        name=job,
        model=model.spec,
        layers=tuple(layers),
        method=method,
        preprocessing=model.preprocessing.to_dict(),
        fit_settings=settings,
        settings_id=settings_id,
        dataset=dataset.describe(),
        seed=seed,
        model_identity=model.identity(),
    )


def check_run_arguments(layers: Sequence[str], batch_size: int) -> list[str]:
    """The distinct ``layers`` in order; raises :class:`InputError` for no layers or a batch size below 1."""
    layers = list(dict.fromkeys(layers))
    if not layers:
        raise InputError("no layers given; list a model's layers with `loce layers MODEL`")
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}")
    return layers


def prepare_job(
    dataset: ConceptDataset,
    model: LoadedModel,
    layers: Sequence[str],
    *,
    method: str,
    settings: dict[str, Any],
    settings_id: str,
    job: str | None,
    batch_size: int,
    seed: int,
    layouts: dict[str, str] | None = None,
) -> JobSpec:
    """The checked :class:`~loce.store.JobSpec` of a run, before anything is written (every engine calls it).

    Checks the arguments and the layers (one blank image through the model), so a bad layer writes nothing.
    """
    layers = check_run_arguments(layers, batch_size)
    job = job or default_job_name(model.spec, method)
    check_layers(model, layers, layouts=layouts)
    return job_spec(dataset, model, layers, job=job, method=method, settings=settings, settings_id=settings_id,
                    seed=seed)  # fmt: skip


def start_job(store: LoCEStore, spec: JobSpec, dataset: ConceptDataset) -> tuple[list[Sample], RunSummary]:
    """Register ``spec`` in ``store`` (refusing changed settings) and list the samples not yet stored.

    Returns:
        ``(todo, summary)``: the samples to process, in dataset order, and an empty :class:`RunSummary`.
    """
    store.register_job(spec)
    done = store.completed_samples(spec.name)
    todo = [s for s in dataset if s.sample_id not in done]
    summary = RunSummary(out=store.path, job=spec.name, method=spec.method, layers=list(spec.layers),
                         images_total=len(dataset), images_done_before=len(dataset) - len(todo),
                         model_identity=spec.model_identity)  # fmt: skip
    return todo, summary


def run_batches(
    dataset: ConceptDataset,
    model: LoadedModel,
    layers: Sequence[str],
    out: str | Path,
    process: BatchProcessor,
    *,
    method: str,
    settings: dict[str, Any],
    settings_id: str,
    job: str | None = None,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    layouts: dict[str, str] | None = None,
    strict: bool = False,
    seed: int = 0,
    progress: bool = True,
    max_batch_bytes: int | None = DEFAULT_MAX_BATCH_BYTES,
) -> RunSummary:
    """Run ``process`` over every image of ``dataset`` not yet in the job, writing one shard per group.

    Args:
        dataset, model, layers, out: what to embed, with which model and layers, into which run directory.
        process: computes a group's rows (see :data:`BatchProcessor`); the group's skip rows are added here.
        method, settings, settings_id: recorded in the job; a job of the same name with other values is refused.
        job: the job's name; default ``"<method>.<model spec>"``.
        batch_size: images per group (forward pass and shard).
        device: where the model runs (it is moved there).
        layouts: per-layer output layout overrides (see :mod:`loce.capture`).
        strict: raise on the first bad input instead of recording a skip row.
        seed: seeds torch; recorded in the job.
        progress: a progress bar with images/s, vectors/s and, for fitted vectors, the running mean IoU.
        max_batch_bytes: memory budget of a group's decoded images and masks; a group of large images is cut
            short (:func:`loce.batches.group_samples`; ``None``: only ``batch_size`` counts).

    Returns:
        A :class:`RunSummary`.
    """
    start = time.perf_counter()
    check_run_arguments(layers, batch_size)
    torch.manual_seed(seed)
    out = Path(out)
    module = model.module.to(torch.device(device))
    spec = prepare_job(dataset, model, layers, method=method, settings=settings, settings_id=settings_id, job=job,
                       batch_size=batch_size, seed=seed, layouts=layouts)  # fmt: skip
    layers, job = list(spec.layers), spec.name

    with LoCEStore.create(out, image_root=dataset.root) as store:
        todo, summary = start_job(store, spec, dataset)
        timings = summary.timings
        bar = progress_bar(len(todo), summary.images_done_before, method, progress)
        with LayerCapture(module, layers, layouts=layouts) as capture:
            batches = iter_batches(todo, batch_size, strict=strict, max_bytes=max_batch_bytes)
            while True:
                t0 = time.perf_counter()
                batch = next(batches, None)
                timings.wait += time.perf_counter() - t0
                if batch is None:
                    break
                rows = group_rows(batch, capture, timings, process)
                summary.count_rows(rows)
                t0 = time.perf_counter()
                store.append(job, rows)
                timings.write += time.perf_counter() - t0
                summary.images_processed += len(batch.samples)
                if bar is not None:
                    bar.update(len(batch.samples))
                    bar.set_postfix(summary.progress_postfix(time.perf_counter() - start), refresh=False)
        if bar is not None:
            bar.close()
    timings.total = time.perf_counter() - start
    summary.peak_memory_mb = peak_memory_mb()
    return summary


def group_rows(
    batch: LoadedBatch, capture: LayerCapture, timings: RunTimings, process: BatchProcessor
) -> list[dict[str, Any]]:
    """Every store row of one group: ``process``'s rows of its usable pairs, then the group's skip rows."""
    rows = process(batch, capture, timings) if batch.pairs else []
    rows.extend(batch.skip_rows)
    return rows
