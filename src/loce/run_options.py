"""The options every embedding run shares (``fit_run``, ``embed_run``, the Ray engine's runs), defined once.

A run function takes them as keywords (``fit_run(ds, model, layers, out, batch_size=8, progress=False)``) or as
one :class:`RunOptions` (``options=RunOptions(batch_size=8)``); keywords override the object's values. The CLI
builds the same object (:func:`loce.cli.common.run_options_from_args`), so its defaults are these.

Example:
    >>> RunOptions.of(batch_size=8).batch_size, RunOptions.of(activation_cache=False).activation_cache.enabled
    (8, False)
    >>> RunOptions.of(batch=8)
    Traceback (most recent call last):
    ...
    TypeError: unknown run option 'batch'; the options are: job, batch_size, device, layouts, strict, seed, progress, max_batch_bytes, activation_cache
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from loce.activations.options import CacheOptions
from loce.batches import DEFAULT_MAX_BATCH_BYTES


@dataclass(frozen=True)
class RunOptions:
    """How a run computes and writes; none of them changes a vector except ``activation_cache.dtype``.

    Attributes:
        job: the job's name in the store; default ``"<method>.<model spec>"``.
        batch_size: images per forward pass and per store shard.
        device: ``"cpu"``, ``"cuda"`` or ``"mps"``; the model is moved there.
        layouts: per-layer output layout overrides (``{"layer": "nhwc"}``, see :mod:`loce.capture`).
        strict: raise on the first bad input instead of recording a skip row.
        seed: seeds torch and every random step (recorded in the manifest).
        progress: a progress bar on stderr.
        max_batch_bytes: memory budget of a group's decoded images and masks; a group of large images is cut
            short (:func:`loce.batches.group_samples`; ``None``: only ``batch_size`` counts).
        activation_cache: :class:`~loce.activations.CacheOptions` (``True`` / ``False`` for on / off); on by
            default, in ``RUN/cache/activations``.
    """

    job: str | None = None
    batch_size: int = 32
    device: str = "cpu"
    layouts: dict[str, str] | None = None
    strict: bool = False
    seed: int = 0
    progress: bool = True
    max_batch_bytes: int | None = DEFAULT_MAX_BATCH_BYTES
    activation_cache: CacheOptions = field(default_factory=CacheOptions)

    @classmethod
    def of(cls, options: RunOptions | None = None, **values: Any) -> RunOptions:
        """``options`` (default: the defaults) with ``values`` replacing fields; a bool ``activation_cache`` means
        on / off with the default limit and dtype."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in values if k not in names]
        if unknown:
            raise TypeError(f"unknown run option {unknown[0]!r}; the options are: {', '.join(names)}")
        if "activation_cache" in values:
            values["activation_cache"] = CacheOptions.of(values["activation_cache"])
        return dataclasses.replace(options or cls(), **values)
