"""``fit`` and ``embed`` on a Ray cluster: the rows of the local engine, computed by a pool of model actors.

The pipeline is Ray Data: every group of ``batch_size`` whole images is one item; CPU tasks decode it with
:func:`loce.batches.load_batch` (unreadable images and bad masks become the same skip rows as locally); an actor
pool holds one model per actor (on its GPU when ``gpus_per_worker`` > 0) and computes the group's rows with the
method's own :data:`~loce.runs.BatchProcessor` (:func:`loce.pipeline.loce_processor`,
:func:`loce.baselines.run.baseline_processor`) through :func:`loce.runs.group_rows`; the actor writes them as one
shard with the store's own table builder and atomic shard writer. The driver alone registers the job in the
manifest, plans the groups and counts what came back.

Shard names are unique without coordination: the driver numbers the groups of this call from one past the highest
shard number already in the store, so group ``k`` is shard ``base + k``. A retried group (its actor died) finds
its shard either absent (it is written once) or complete under its final name (atomic rename), in which case it is
not written again. A rerun after the driver is killed reads the shards that exist, like the local engine.

Models reach the actors by identity (:meth:`loce.models.LoadedModel.identity`: spec, weights request, checkpoint
file, preprocessing, fingerprint): each actor rebuilds the model with :func:`loce.models.load_model_from_identity`,
which refuses weights that do not hash to the driver's fingerprint, so no model object is unpickled. A checkpoint
file must be readable at the same path on every node. A module passed from Python (``"module:..."``, any spec
:func:`loce.models.load_model` does not know, or a Python preprocessing function) cannot be rebuilt from plain
values; it is shipped with Ray's own serialisation of the driver's object (``ray.put``), as trusted as the driver.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from loce.activations import ActivationBatch, ActivationSource, CacheOptions, ForwardCounts
from loce.batches import group_samples, load_batch
from loce.data.dataset import ConceptDataset
from loce.engines.options import RayOptions
from loce.engines.ray_cluster import WorkerPlan, plan_workers, ray_session
from loce.errors import InputError, LoceError, StoreError
from loce.models import KNOWN_SPECS, LoadedModel, load_model_from_identity
from loce.run_options import RunOptions
from loce.runs import (
    BatchProcessor,
    RunSummary,
    RunTimings,
    activation_source,
    file_skipped,
    group_rows,
    peak_memory_mb,
    prepare_job,
    progress_bar,
    retry_file_skips,
    start_job,
)
from loce.store import LoCEStore
from loce.store.shards import next_shard_number, read_shard, shard_name, write_shard
from loce.store.table import build_table

ProcessorFactory = Callable[..., BatchProcessor]
"""``factory(model, device=device) -> BatchProcessor``: builds a method's processor inside an actor."""

FAULT_ENV = "LOCE_RAY_FAULT"
"""Fault injection for tests: ``"GROUP:PHASE:MARKER[;...]"`` makes the actor computing group ``GROUP`` of the run
exit (``os._exit``) once, ``PHASE`` = ``before_write`` or ``after_write``; the ``MARKER`` file records that it did."""


def loadable_spec(spec: str) -> bool:
    """Whether :func:`loce.models.load_model` can rebuild a model from ``spec`` alone (a known name or prefix).

    Example:
        >>> loadable_spec("timm:resnet18"), loadable_spec("module:MyNet")
        (True, False)
    """
    prefixes = tuple(known.split(":")[0] + ":" for known in KNOWN_SPECS if ":" in known)
    return spec in KNOWN_SPECS or spec.startswith(prefixes)


@dataclass(frozen=True)
class ModelSource:
    """How an actor gets the model: its identity, from which the actor reloads and checks the weights
    (:func:`loce.models.load_model_from_identity`), or Ray's copy of a model built in Python."""

    identity: dict[str, Any]
    model_ref: Any = None

    @classmethod
    def of(cls, model: LoadedModel, ray) -> ModelSource:
        """The source of ``model``: its identity when a spec rebuilds it, else ``ray.put`` of the model."""
        identity = model.identity()
        rebuildable = loadable_spec(model.spec) and identity["preprocessing"].get("resize") != "callable"
        if rebuildable:
            return cls(identity)
        model.module.cpu()
        return cls(identity, ray.put(model))

    def load(self, device: torch.device) -> LoadedModel:
        """The model in the actor, on ``device``: reloaded weights hash to the driver's fingerprint."""
        if self.model_ref is None:
            return load_model_from_identity(self.identity, device=str(device))
        import ray

        model = ray.get(self.model_ref)
        model.module = model.module.to(device)
        return model


@dataclass(frozen=True)
class ShardTarget:
    """Where the actors write: the run's shard directory, the job, its row defaults and the first shard number."""

    shard_dir: str
    job: str
    defaults: dict[str, Any]
    base: int

    def path(self, group: int) -> Path:
        """The shard file of group ``group`` of this call."""
        return Path(self.shard_dir) / shard_name(self.job, self.base + group)


def _faults(spec: str | None) -> list[tuple[int, str, Path]]:
    faults = []
    for part in filter(None, (spec or "").split(";")):
        group, phase, marker = part.split(":", 2)
        if phase not in ("before_write", "after_write"):
            raise InputError(f"{FAULT_ENV}: phase must be before_write or after_write, got {phase!r}")
        faults.append((int(group), phase, Path(marker)))
    return faults


def _maybe_die(faults: list[tuple[int, str, Path]], group: int, phase: str) -> None:
    for k, when, marker in faults:
        if k == group and when == phase and not marker.exists():
            marker.write_text(f"actor {os.getpid()} exited at group {group} ({phase})\n")
            os._exit(1)


def decode_groups(batch: dict[str, np.ndarray], strict: bool = False) -> dict[str, np.ndarray]:
    """Ray Data task: decode each group of samples with :func:`loce.batches.load_batch` (skips recorded)."""
    loaded = np.empty(len(batch["samples"]), dtype=object)
    errors = []
    for j, samples in enumerate(batch["samples"]):
        try:
            loaded[j] = load_batch(list(samples), strict)
            errors.append("")
        except LoceError as exc:  # --strict: the driver raises it (exceptions lose their type crossing Ray)
            loaded[j] = None
            errors.append(error_text(exc))
    return {"group": np.asarray(batch["group"]), "batch": loaded, "error": np.array(errors, dtype=object)}


def error_text(exc: LoceError) -> str:
    """``"ClassName<TAB>message"`` of a :class:`~loce.errors.LoceError`, rebuilt in the driver by
    :func:`raise_error_text`."""
    return f"{type(exc).__name__}\t{exc}"


def raise_error_text(text: str) -> None:
    """Raise the :mod:`loce.errors` error that :func:`error_text` described (``LoceError`` for other classes)."""
    import loce.errors

    name, _, message = text.partition("\t")
    cls = getattr(loce.errors, name, LoceError)
    raise (cls if isinstance(cls, type) and issubclass(cls, LoceError) else LoceError)(message)


def _stats(
    group: int,
    rows: Sequence[dict[str, Any]],
    n_images: int,
    timings: RunTimings,
    written: bool,
    counts: ForwardCounts,
) -> dict:
    summary = RunSummary(out=Path("."), job="", method="", layers=[], images_total=0, images_done_before=0)
    summary.count_rows(rows)
    return {
        "group": group,
        "images": n_images,
        "vectors": summary.vectors,
        "skips": json.dumps(summary.skips, sort_keys=True),
        "iou_sum": summary.iou_sum,
        "iou_count": summary.iou_count,
        "forward": timings.forward,
        "fit": timings.fit,
        "write": timings.write,
        "written": written,
        "forwarded": counts.forwarded,
        "cached": counts.cached,
        "peak_mb": peak_memory_mb(),
        "pid": os.getpid(),
    }


def _difference(after: ForwardCounts, before: ForwardCounts) -> ForwardCounts:
    return ForwardCounts(after.forwarded - before.forwarded, after.cached - before.cached,
                         after.inputs - before.inputs, after.seconds - before.seconds)  # fmt: skip


class ModelWorker:
    """Ray Data actor: one model (behind the run's activation source) per actor; computes and writes each group's
    shard. Torch runs with the driver's thread count, so float results match the local engine's."""

    def __init__(
        self,
        source: ModelSource,
        layers: list[str],
        layouts: dict[str, str] | None,
        factory: ProcessorFactory,
        device: str,
        target: ShardTarget,
        seed: int,
        faults: str | None,
        cache: CacheOptions | None = None,
        torch_threads: int | None = None,
    ) -> None:
        if torch_threads:
            torch.set_num_threads(int(torch_threads))
        torch.manual_seed(seed)
        self.device = torch.device(device)
        self.model = source.load(self.device)
        self.source = ActivationSource(self.model, layers, layouts=layouts, device=self.device, cache=cache)
        self.source.__enter__()
        self.process = factory(self.model, device=self.device)
        self.target = target
        self.faults = _faults(faults)

    def _existing(self, path: Path, sample_ids: list[str]) -> list[dict[str, Any]] | None:
        """The rows of a shard a previous attempt of this group completed, or ``None`` when there is none."""
        if not path.exists():
            return None
        table = read_shard(path, ["sample_id", "status", "iou"])
        if set(table["sample_id"].to_pylist()) != set(sample_ids):
            raise StoreError(f"{path} exists but holds other samples than its group; is another run writing?")
        return table.to_pylist()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        out: dict[str, list] = {}
        for group, loaded, error in zip(batch["group"], batch["batch"], batch["error"], strict=True):
            group = int(group)
            started = time.time()  # wall clock (one clock for the actors and the driver of one machine)
            timings = RunTimings()
            before = dataclasses.replace(self.source.counts)
            try:
                if error:
                    raise_error_text(error)
                path = self.target.path(group)
                rows = self._existing(path, loaded.sample_ids)
                written = rows is None
                if written:
                    rows = group_rows(ActivationBatch(loaded, self.source), timings, self.process)
                    _maybe_die(self.faults, group, "before_write")
                    t0 = time.perf_counter()
                    write_shard(path.parent, self.target.job, self.target.base + group,
                                build_table(rows, defaults=self.target.defaults))  # fmt: skip
                    timings.write += time.perf_counter() - t0
                    _maybe_die(self.faults, group, "after_write")
                counts = _difference(self.source.counts, before)
                stats = {**_stats(group, rows, len(loaded.samples), timings, written, counts), "error": ""}
            except LoceError as exc:
                stats = {**_stats(group, [], 0, timings, False, ForwardCounts()), "error": error_text(exc)}
            stats["started"] = started
            for key, value in stats.items():
                out.setdefault(key, []).append(value)
        return out


def ray_run_batches(
    dataset: ConceptDataset,
    model: LoadedModel,
    layers: Sequence[str],
    out: str | Path,
    factory: ProcessorFactory,
    *,
    method: str,
    settings: dict[str, Any],
    settings_id: str,
    options: RunOptions | None = None,
    ray_options: RayOptions | None = None,
) -> RunSummary:
    """:func:`loce.runs.run_batches` on a Ray cluster: same job, same groups, same rows, same shards.

    Args:
        factory: builds the method's :data:`~loce.runs.BatchProcessor` in each actor (see :data:`ProcessorFactory`).
        ray_options: cluster address, workers, GPUs per worker (:class:`~loce.engines.RayOptions`).
        Other arguments: as :func:`loce.runs.run_batches`.

    Returns:
        A :class:`~loce.runs.RunSummary`; timings add up the workers' time, ``peak_memory_mb`` is the largest
        resident memory of the driver and of any worker.
    """
    start = time.perf_counter()
    options = options or RunOptions()
    ray_options = ray_options or RayOptions()
    out = Path(out)
    spec = prepare_job(dataset, model, layers, method=method, settings=settings, settings_id=settings_id,
                       options=options)  # fmt: skip
    layers = list(spec.layers)
    if ray_options.gpus_per_worker > 0 and torch.device(options.device).type == "cpu":
        options = dataclasses.replace(options, device="cuda")
    with LoCEStore.create(out, image_root=dataset.root) as store:
        todo, summary = start_job(store, spec, dataset)
        groups = group_samples(todo, options.batch_size, options.max_batch_bytes)
        if groups:
            target = ShardTarget(str(store.shard_dir), spec.name, store.row_defaults(spec.name),
                                 next_shard_number(store.shard_dir, spec.name))  # fmt: skip
            with ray_session(ray_options.address) as ray:
                plan = plan_workers(ray.cluster_resources(), ray_options)
                stats = _run_pipeline(ray, groups, model, layers, factory, target, plan, options, out,
                                      summary)  # fmt: skip
            _check_complete(store, spec.name, todo)
            summary.peak_memory_mb = max([peak_memory_mb(), *(s["peak_mb"] for s in stats)])
        _retry_file_skips_here(store, dataset, model, spec, factory, summary, options, out)
        summary.peak_memory_mb = max(summary.peak_memory_mb, peak_memory_mb())
    summary.timings.total = time.perf_counter() - start
    return summary


def _retry_file_skips_here(store, dataset, model, spec, factory, summary, options: RunOptions, out) -> None:
    """Retry, in the driver as the local engine does, the images a previous run could not read (usually few:
    files repaired or restored since; see :func:`loce.runs.file_skipped`)."""
    retry = file_skipped(store, spec.name, dataset)
    if not retry:
        return
    with activation_source(model, spec.layers, out, options) as source:
        retry_file_skips(store, retry, source, factory(model, device=source.device), summary, options)
    summary.count_forwards(source.counts)


def _run_pipeline(
    ray, groups, model, layers, factory, target, plan: WorkerPlan, options: RunOptions, out, summary
) -> list[dict[str, Any]]:
    from ray.data import ActorPoolStrategy, DataContext

    context = DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    items = [{"group": k, "samples": group} for k, group in enumerate(groups)]
    data = ray.data.from_items(items, override_num_blocks=len(items))
    data = data.map_batches(
        partial(decode_groups, strict=options.strict), batch_size=1, num_cpus=plan.decode_cpus
    )
    data = data.map_batches(
        ModelWorker,
        fn_constructor_kwargs={
            "source": ModelSource.of(model, ray),
            "layers": list(layers),
            "layouts": options.layouts,
            "factory": factory,
            "device": str(options.device),
            "target": target,
            "seed": options.seed,
            "faults": os.environ.get(FAULT_ENV),
            "cache": _absolute(options.activation_cache.located(out)),
            "torch_threads": torch.get_num_threads(),
        },
        batch_size=1,
        compute=ActorPoolStrategy(size=plan.workers),
        num_cpus=plan.cpus,
        num_gpus=plan.gpus,
    )
    bar = progress_bar(
        sum(len(g) for g in groups), summary.images_done_before, summary.method, options.progress
    )
    start, started = time.perf_counter(), time.time()
    stats = []
    try:
        for row in data.iter_rows():
            if row["error"]:
                raise_error_text(row["error"])
            stats.append(row)
            summary.images_processed += row["images"]
            summary.vectors += row["vectors"]
            for reason, n in json.loads(row["skips"]).items():
                summary.skips[reason] = summary.skips.get(reason, 0) + n
            summary.iou_sum += row["iou_sum"]
            summary.iou_count += row["iou_count"]
            summary.images_forwarded += row["forwarded"]
            summary.images_cached += row["cached"]
            for name in ("forward", "fit", "write"):
                setattr(summary.timings, name, getattr(summary.timings, name) + row[name])
            if bar is not None:
                bar.update(row["images"])
                bar.set_postfix(summary.progress_postfix(time.perf_counter() - start), refresh=False)
    except LoceError:
        raise
    except Exception as exc:
        raise _user_error(exc) from None
    finally:
        if bar is not None:
            bar.close()
    if stats:
        summary.timings.startup = max(0.0, min(row["started"] for row in stats) - started)
    return stats


def _absolute(cache: CacheOptions) -> CacheOptions:
    """The cache with an absolute directory (actors may run in another working directory)."""
    return dataclasses.replace(cache, directory=Path(cache.directory).resolve())


def _user_error(exc: BaseException) -> BaseException:
    """The :class:`~loce.errors.LoceError` a worker raised (Ray wraps it), or ``exc`` itself."""
    seen = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, LoceError):
            return type(current)(str(current).strip().splitlines()[-1]) if "\n" in str(current) else current
        cause = getattr(current, "cause", None)
        current = cause if isinstance(cause, BaseException) else (current.__cause__ or current.__context__)
    return exc


def _check_complete(store: LoCEStore, job: str, todo) -> None:
    """Every sample of this call is in exactly one shard of the job (none lost, none written twice)."""
    owner: dict[str, Path] = {}
    for path in store.shards(job):
        for sample in set(read_shard(path, ["sample_id"])["sample_id"].to_pylist()):
            if sample in owner:
                raise StoreError(
                    f"sample {sample!r} of job {job!r} is in two shards ({owner[sample].name}, {path.name}); was "
                    "an earlier run still writing? Delete the newer shard and run the same command again"
                )
            owner[sample] = path
    missing = [s.sample_id for s in todo if s.sample_id not in owner]
    if missing:
        raise StoreError(
            f"{len(missing)} sample(s) of job {job!r} have no shard after the Ray run (e.g. {missing[:3]}); "
            "run the same command again to compute them"
        )


def ray_fit_run(
    dataset: ConceptDataset,
    model: LoadedModel,
    layers: Sequence[str],
    out: str | Path,
    *,
    settings: Any = "paper",
    options: RunOptions | None = None,
    ray_options: RayOptions | None = None,
    **run_options: Any,
) -> RunSummary:
    """:func:`loce.pipeline.fit_run` on a Ray cluster (same arguments, plus ``ray_options``); same rows.

    Example:
        >>> summary = ray_fit_run(ds, load_model("efficientnet-lite0"), ["_blocks.10"], "RUN",  # doctest: +SKIP
        ...                       ray_options=RayOptions(workers=2))
    """
    from loce.fit import resolve_settings
    from loce.pipeline import loce_processor

    options = RunOptions.of(options, **run_options)
    fit_settings = resolve_settings(settings)
    return ray_run_batches(
        dataset, model, layers, out, partial(loce_processor, settings=fit_settings, seed=options.seed),
        method="loce", settings=fit_settings.to_dict(), settings_id=fit_settings.settings_id, options=options,
        ray_options=ray_options,
    )  # fmt: skip


def ray_embed_run(
    dataset: ConceptDataset,
    model: LoadedModel,
    layers: Sequence[str] | None,
    out: str | Path,
    *,
    method: str,
    embed_options: Any = None,
    settings: Any = "paper",
    options: RunOptions | None = None,
    ray_options: RayOptions | None = None,
    **run_options: Any,
) -> RunSummary:
    """:func:`loce.baselines.embed_run` on a Ray cluster for ``crop``, ``window`` and ``masked-pool``.

    ``global`` fits one vector per concept over all its samples at once and has no per-group work to spread:
    it is refused (run it with the local engine).
    """
    from loce.baselines.embed import PER_SAMPLE_METHODS, EmbedOptions
    from loce.baselines.run import baseline_processor, resolve_layers
    from loce.baselines.run import settings_id as method_settings_id

    if method not in PER_SAMPLE_METHODS:
        raise InputError(
            f"method {method!r} cannot run on the Ray engine (it needs every sample of a concept at once); "
            "use --engine local"
        )
    options = RunOptions.of(options, **run_options)
    embed_options = embed_options or EmbedOptions()
    layers = resolve_layers(method, model, layers)
    method_settings = embed_options.settings(method)
    return ray_run_batches(
        dataset, model, layers, out, partial(baseline_processor, method, layers=layers, options=embed_options),
        method=method, settings=method_settings, settings_id=method_settings_id(method_settings), options=options,
        ray_options=ray_options,
    )  # fmt: skip
