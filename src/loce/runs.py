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
from loce.store.layer_order import module_depths
from loce.store.shards import read_shard
from loce.store.store import is_file_skip


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
        retried: images whose every stored row was a file-level skip (missing, corrupt, truncated...) and that
            this call tried again; ``retried_embedded``: those of them that now have vectors;
            ``retried_changed``: those whose rows were replaced (embedded, or skipped for another reason).
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
    retried: int = 0
    retried_embedded: int = 0
    retried_changed: int = 0
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
            "img/s": f"{(self.images_processed + self.retried) / elapsed:.1f}",
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
        layer_depth=module_depths(model.module, layers),
    )


def check_run_arguments(layers: Sequence[str], batch_size: int) -> list[str]:
    """The distinct ``layers`` in order; raises :class:`InputError` for no layers or a batch size below 1."""
    layers = list(dict.fromkeys(layers))
    if not layers:
        raise InputError("no layers given; list a model's layers with `loce layers MODEL`")
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}")
    return layers


def check_dataset(dataset: ConceptDataset) -> None:
    """Refuse an empty dataset before anything is written (the message says what the annotations skipped)."""
    if len(dataset) == 0:
        counts = dataset.skips.counts()
        why = f" (skipped while reading the annotations: {counts})" if counts else ""
        raise InputError(f"the dataset under {dataset.root} has no image to embed{why}; nothing was written")


def annotation_skip_rows(dataset: ConceptDataset) -> list[dict[str, Any]]:
    """The dataset's annotation-time skips as store rows (one per (sample, concept); details joined).

    A skip that names no sample (an annotation entry without a usable id) gets the id ``"(no id) N"``.
    """
    rows: dict[tuple[str, str | None, str | None], dict[str, Any]] = {}
    for k, record in enumerate(dataset.skips):
        sample_id = record.sample_id if record.sample_id is not None else f"(no id) {k}"
        key = (str(sample_id), record.concept, record.layer)
        if key in rows:
            rows[key]["detail"] += f" | {record.detail}"
            continue
        rows[key] = {"sample_id": key[0], "image": None, "concept": record.concept, "layer": record.layer,
                     "status": record.reason, "detail": record.detail}  # fmt: skip
    return list(rows.values())


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

    Checks the arguments, that the dataset is not empty, and the layers (one blank image through the model), so
    a bad layer or empty data writes nothing.
    """
    layers = check_run_arguments(layers, batch_size)
    check_dataset(dataset)
    job = job or default_job_name(model.spec, method)
    check_layers(model, layers, layouts=layouts)
    return job_spec(dataset, model, layers, job=job, method=method, settings=settings, settings_id=settings_id,
                    seed=seed)  # fmt: skip


def start_job(store: LoCEStore, spec: JobSpec, dataset: ConceptDataset) -> tuple[list[Sample], RunSummary]:
    """Register ``spec`` in ``store`` (refusing changed settings), record the dataset's annotation-time skips
    (once per job, :meth:`~loce.store.LoCEStore.record_annotation_skips`) and list the samples not yet stored.

    Returns:
        ``(todo, summary)``: the samples to process, in dataset order, and an empty :class:`RunSummary`.
    """
    store.register_job(spec)
    store.record_annotation_skips(spec.name, annotation_skip_rows(dataset))
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
        retry = file_skipped(store, job, dataset)
        n_retry = sum(len(samples) for _, samples in retry)
        bar = progress_bar(len(todo) + n_retry, summary.images_done_before - n_retry, method, progress)
        with LayerCapture(module, layers, layouts=layouts) as capture:
            retry_file_skips(store, retry, capture, process, summary, batch_size=batch_size, strict=strict,
                             max_batch_bytes=max_batch_bytes, bar=bar)  # fmt: skip
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


def file_skipped(store: LoCEStore, job: str, dataset: ConceptDataset) -> list[tuple[Path, list[Sample]]]:
    """``(shard, samples of the dataset)`` whose every stored row is a file-level skip: worth another try, the
    file may have been repaired or restored since (see :func:`loce.store.store.is_file_skip`)."""
    by_id = {s.sample_id: s for s in dataset}
    out = []
    for shard, ids in store.file_skipped_samples(job).items():
        samples = [by_id[i] for i in sorted(ids) if i in by_id]
        if samples:
            out.append((shard, samples))
    return out


def retry_file_skips(
    store: LoCEStore,
    retry: list[tuple[Path, list[Sample]]],
    capture: LayerCapture,
    process: BatchProcessor,
    summary: RunSummary,
    *,
    batch_size: int,
    strict: bool,
    max_batch_bytes: int | None,
    bar=None,
) -> None:
    """Compute the samples of :func:`file_skipped` again and replace their rows where the outcome changed."""
    for shard, samples in retry:
        for batch in iter_batches(samples, batch_size, strict=strict, max_bytes=max_batch_bytes):
            retry_rows(store, shard, batch, group_rows(batch, capture, summary.timings, process), summary)
            if bar is not None:
                bar.update(len(batch.samples))


def retry_rows(
    store: LoCEStore, shard: Path, batch: LoadedBatch, rows: list[dict[str, Any]], summary: RunSummary
) -> None:
    """Replace, atomically within ``shard``, the rows of the retried samples of ``batch`` whose outcome changed.

    A sample still skipped for the same reasons keeps its stored rows (nothing is rewritten for it).
    """
    stored = read_shard(shard, ["sample_id", "status"]).to_pandas()
    stored = {k: sorted(v) for k, v in stored.groupby("sample_id")["status"]}
    by_sample: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_sample.setdefault(row["sample_id"], []).append(row)
    changed: list[dict[str, Any]] = []
    for sample_id, sample_rows in by_sample.items():
        summary.retried += 1
        statuses = sorted(r["status"] for r in sample_rows)
        still_skipped = all(is_file_skip(r["status"]) and r.get("layer") is None for r in sample_rows)
        if still_skipped and statuses == stored.get(sample_id):
            continue
        summary.retried_changed += 1
        summary.retried_embedded += any(s == "ok" for s in statuses)
        summary.count_rows(sample_rows)
        changed.extend(sample_rows)
    if changed:
        t0 = time.perf_counter()
        store.replace_samples(summary.job, shard, changed)
        summary.timings.write += time.perf_counter() - t0
