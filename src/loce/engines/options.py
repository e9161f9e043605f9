"""How to reach a Ray cluster and how many workers to use (plain values; importing this needs no Ray)."""

from __future__ import annotations

from dataclasses import dataclass

from loce.errors import InputError

ENGINES = ("local", "ray")
"""The engines ``--engine`` accepts."""


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide a Ray run is.

    Attributes:
        address: a running cluster (``"auto"``, ``"ray://head:10001"``, ``"10.0.0.1:6379"``); ``None`` starts a
            local cluster for this run and stops it afterwards.
        workers: model actors (one model each); ``None`` sizes the pool from the cluster (one per
            ``gpus_per_worker`` GPUs when that is > 0, else one per CPU but one).
        gpus_per_worker: GPUs each actor reserves (0: CPU actors; 0.5 packs two actors on one GPU).

    Example:
        >>> RayOptions(workers=2).workers
        2
    """

    address: str | None = None
    workers: int | None = None
    gpus_per_worker: float = 0.0

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise InputError(f"--workers must be at least 1, got {self.workers}")
        if self.gpus_per_worker < 0:
            raise InputError(f"--gpus-per-worker must be 0 or more, got {self.gpus_per_worker}")
