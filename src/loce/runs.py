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

from loce.activations import ActivationBatch, ActivationSource, ForwardCounts, iter_activations
from loce.batches import LoadedBatch
from loce.capture import check_layers
from loce.data.dataset import ConceptDataset
from loce.data.sample import Sample
from loce.errors import InputError
from loce.models import LoadedModel
from loce.reprs import short_repr
from loce.run_options import RunOptions
from loce.store import JobSpec, LoCEStore
from loce.store.layer_order import module_depths
from loce.store.shards import read_shard
from loce.store.store import is_file_skip


@dataclass
class RunTimings:
    """Where a run's time went (seconds): model forward passes, fitting, store writes, waiting for image
    decoding, the total, and (Ray engine) ``startup``: from the start of the pipeline until the first group of
    images was being computed (worker processes importing torch, Ray Data and the model's package, the model
    loaded in each actor), a cost paid once per run whatever its size."""

    forward: float = 0.0
    fit: float = 0.0
    write: float = 0.0
    wait: float = 0.0
    total: float = 0.0
    startup: float = 0.0

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
        images_forwarded: images whose activations this call computed with a forward pass;
            ``images_cached``: images whose activations came from the activation cache.
    """

    __repr__ = short_repr

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
    images_forwarded: int = 0
    images_cached: int = 0

    def count_forwards(self, counts: ForwardCounts) -> None:
        """Add an activation source's counts (images forwarded, images served from the cache)."""
        self.images_forwarded += counts.forwarded
        self.images_cached += counts.cached

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


BatchProcessor = Callable[[ActivationBatch, RunTimings], list[dict[str, Any]]]
"""Computes a group's store rows (every (image, concept, layer) of its usable pairs) from an
:class:`~loce.activations.ActivationBatch` (its activations, or its source's capture); may add to the timings."""


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
        environment={"torch_threads": torch.get_num_threads()},
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
    options: RunOptions,
) -> JobSpec:
    """The checked :class:`~loce.store.JobSpec` of a run, before anything is written (every engine calls it).

    Checks the arguments, that the dataset is not empty, and the layers (one blank image through the model), so
    a bad layer or empty data writes nothing. A float16 activation cache is part of the job's settings (its
    vectors differ in the last digits), so resuming with another precision is refused.
    """
    layers = check_run_arguments(layers, options.batch_size)
    check_dataset(dataset)
    job = options.job or default_job_name(model.spec, method)
    check_layers(model, layers, layouts=options.layouts)
    settings, settings_id = with_cache_settings(settings, settings_id, options)
    return job_spec(dataset, model, layers, job=job, method=method, settings=settings, settings_id=settings_id,
                    seed=options.seed)  # fmt: skip


def with_cache_settings(settings: dict[str, Any], settings_id: str, options: RunOptions) -> tuple[dict, str]:
    """A job's settings and settings id with the activation cache's precision when it changes results (float16:
    ``activation_dtype`` added, ``"+float16"`` appended), else unchanged.

    Example:
        >>> with_cache_settings({"a": 1}, "paper-1", RunOptions.of())
        ({'a': 1}, 'paper-1')
    """
    cache = options.activation_cache
    extra = cache.settings() if cache.enabled else {}
    if not extra:
        return settings, settings_id
    return {**settings, **extra}, f"{settings_id}+{extra['activation_dtype']}"


def activation_source(model: LoadedModel, layers: Sequence[str], out: str | Path, options: RunOptions
                      ) -> ActivationSource:  # fmt: skip
    """The :class:`~loce.activations.ActivationSource` of a run: its model, layers and layouts on its device,
    behind the run's activation cache (``RUN/cache/activations`` unless the options name another)."""
    return ActivationSource(model, layers, layouts=options.layouts, device=options.device,
                            cache=options.activation_cache.located(out))  # fmt: skip


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
    options: RunOptions | None = None,
) -> RunSummary:
    """Run ``process`` over every image of ``dataset`` not yet in the job, writing one shard per group.

    Args:
        dataset, model, layers, out: what to embed, with which model and layers, into which run directory.
        process: computes a group's rows (see :data:`BatchProcessor`); the group's skip rows are added here.
        method, settings, settings_id: recorded in the job; a job of the same name with other values is refused.
        options: :class:`~loce.run_options.RunOptions` (job name, batch size, device, layouts, strict, seed,
            progress bar, memory budget per group, activation cache).

    Returns:
        A :class:`RunSummary`.
    """
    start = time.perf_counter()
    options = options or RunOptions()
    torch.manual_seed(options.seed)
    out = Path(out)
    spec = prepare_job(dataset, model, layers, method=method, settings=settings, settings_id=settings_id,
                       options=options)  # fmt: skip
    layers, job = list(spec.layers), spec.name

    with LoCEStore.create(out, image_root=dataset.root) as store:
        todo, summary = start_job(store, spec, dataset)
        timings = summary.timings
        retry = file_skipped(store, job, dataset)
        n_retry = sum(len(samples) for _, samples in retry)
        bar = progress_bar(
            len(todo) + n_retry, summary.images_done_before - n_retry, method, options.progress
        )
        with activation_source(model, layers, out, options) as source:
            retry_file_skips(store, retry, source, process, summary, options, bar=bar)
            batches = iter_activations(source, todo, options.batch_size, strict=options.strict,
                                       max_bytes=options.max_batch_bytes)  # fmt: skip
            while True:
                t0 = time.perf_counter()
                item = next(batches, None)
                timings.wait += time.perf_counter() - t0
                if item is None:
                    break
                rows = group_rows(item, timings, process)
                summary.count_rows(rows)
                t0 = time.perf_counter()
                store.append(job, rows)
                timings.write += time.perf_counter() - t0
                summary.images_processed += len(item.batch.samples)
                if bar is not None:
                    bar.update(len(item.batch.samples))
                    bar.set_postfix(summary.progress_postfix(time.perf_counter() - start), refresh=False)
        summary.count_forwards(source.counts)
        if bar is not None:
            bar.close()
    timings.total = time.perf_counter() - start
    summary.peak_memory_mb = peak_memory_mb()
    return summary


def group_rows(item: ActivationBatch, timings: RunTimings, process: BatchProcessor) -> list[dict[str, Any]]:
    """Every store row of one group: ``process``'s rows of its usable pairs, then the group's skip rows."""
    rows = process(item, timings) if item.batch.pairs else []
    rows.extend(item.skip_rows)
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
    source: ActivationSource,
    process: BatchProcessor,
    summary: RunSummary,
    options: RunOptions,
    bar=None,
) -> None:
    """Compute the samples of :func:`file_skipped` again and replace their rows where the outcome changed."""
    for shard, samples in retry:
        for item in iter_activations(source, samples, options.batch_size, strict=options.strict,
                                     max_bytes=options.max_batch_bytes):  # fmt: skip
            retry_rows(store, shard, item.batch, group_rows(item, summary.timings, process), summary)
            if bar is not None:
                bar.update(len(item.batch.samples))


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
