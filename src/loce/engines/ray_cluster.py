"""Connecting to a Ray cluster (or starting a local one) and sizing the worker pool from its resources.

An actor pool larger than the cluster waits for resources forever (on 2 cores, two 1-CPU actors beside a decode
task never start), so the pool is planned from ``ray.cluster_resources()`` and a request that cannot fit is refused
with a message saying what the cluster has.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from loce.engines.options import RayOptions
from loce.errors import InputError, LoceError

RAY_MISSING = 'the Ray engine needs Ray, which is not installed: pip install "loce[ray]"'
DECODE_CPUS = 0.25
"""CPUs reserved by each image-decoding task (reading PNG/JPEG files is light next to the forward pass)."""


class EngineError(LoceError):
    """The Ray engine cannot run as asked (Ray missing, cluster unreachable or too small)."""


def import_ray():
    """``import ray``, or an :class:`EngineError` naming ``pip install "loce[ray]"``."""
    try:
        import ray
    except ImportError:
        raise EngineError(RAY_MISSING) from None
    return ray


@contextlib.contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[Any]:
    """The ``ray`` module, connected: to ``address``, to the already initialised cluster, or to a new local one.

    A cluster this function starts (or connects to) is shut down on exit; one the caller initialised is left as is.
    Token authentication stays as Ray configures it (on by default).

    Example:
        >>> with ray_session() as ray:  # doctest: +SKIP
        ...     ray.cluster_resources()["CPU"]
    """
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    try:
        ray.init(address=address, num_cpus=None if address else num_cpus, include_dashboard=False,
                 logging_level=logging.WARNING, configure_logging=True)  # fmt: skip
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = address or "a new local cluster"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EngineError(f"cannot connect to the Ray cluster at {where}: {first}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


@dataclass(frozen=True)
class WorkerPlan:
    """The actor pool of a run: ``workers`` actors of ``cpus`` CPUs and ``gpus`` GPUs each, beside decode tasks
    of ``decode_cpus`` CPUs."""

    workers: int
    cpus: float
    gpus: float
    decode_cpus: float = DECODE_CPUS


def plan_workers(resources: dict[str, float], options: RayOptions) -> WorkerPlan:
    """Size the actor pool from a cluster's resources (``ray.cluster_resources()``).

    Default: one actor per ``gpus_per_worker`` GPUs, or on CPUs one per CPU but one (left for decoding). Each actor
    gets 1 CPU when the cluster has one to spare for the decode tasks, else an equal share of what is left after
    :data:`DECODE_CPUS` (so on 2 cores two actors and the decode tasks all run).

    Raises:
        EngineError: when the requested workers (or GPUs per worker) do not fit the cluster.

    Example:
        >>> plan_workers({"CPU": 2.0}, RayOptions(workers=2))
        WorkerPlan(workers=2, cpus=0.875, gpus=0.0, decode_cpus=0.25)
        >>> plan_workers({"CPU": 16.0, "GPU": 4.0}, RayOptions(gpus_per_worker=1)).workers
        4
    """
    cpus = float(resources.get("CPU", 0.0))
    gpus = float(resources.get("GPU", 0.0))
    gpw = float(options.gpus_per_worker)
    have = f"the cluster has {cpus:g} CPU(s) and {gpus:g} GPU(s)"
    if cpus < DECODE_CPUS * 2:
        raise EngineError(f"{have}; the Ray engine needs at least one CPU")
    if gpw > 0:
        if gpus < gpw:
            raise EngineError(f"{have}; --gpus-per-worker {gpw:g} cannot be met (use 0 for CPU workers)")
        fit = int(gpus // gpw)
        default = fit
    else:
        fit, default = max(1, int(cpus)), max(1, int(cpus) - 1)  # by default one CPU stays for decoding
    workers = options.workers if options.workers is not None else default
    if workers > fit:
        raise EngineError(
            f"{have}; {workers} workers with {gpw:g} GPU(s) each do not fit, use --workers {fit} or fewer"
        )
    share = 1.0 if cpus >= workers + 1 else (cpus - DECODE_CPUS) / workers
    return WorkerPlan(workers=workers, cpus=share, gpus=gpw)


def check_engine(engine: str) -> str:
    """``engine`` if it is ``"local"`` or ``"ray"``, else an :class:`InputError`."""
    from loce.engines.options import ENGINES

    if engine not in ENGINES:
        raise InputError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    return engine
