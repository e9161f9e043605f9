"""Settings of the activation cache, defined once for the Python API and the CLI.

A run keeps the activations of every image it forwarded under ``RUN/cache/activations/`` (:func:`cache_dir`), so
the next method on the same images, model, preprocessing and layers reads them instead of running the model again.

Example:
    >>> CacheOptions().dtype, CacheOptions(enabled=False).enabled
    ('float32', False)
    >>> CacheOptions.parse_limit_gb(0.5)
    536870912
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from loce.errors import InputError

DEFAULT_LIMIT_GB = 4.0
"""Default size limit of one cache directory (GB, 2**30 bytes)."""

CACHE_DTYPES = ("float32", "float16")
"""Stored precisions: float32 (default: results identical to no cache) or float16 (half the disk, opt-in)."""


@dataclass(frozen=True)
class CacheOptions:
    """Whether and how a run caches activations.

    Attributes:
        enabled: read and write the cache (``False``: every image is forwarded, nothing is written).
        limit_bytes: the directory never grows beyond this; when full, new entries are not written (existing ones
            are kept and served, the rest is forwarded each time).
        dtype: ``"float32"`` or ``"float16"`` (opt-in; recorded in the job, whose settings id it changes).
        directory: where entries live; ``None``: the run's ``cache/activations`` (:func:`cache_dir`).
    """

    enabled: bool = True
    limit_bytes: int = int(DEFAULT_LIMIT_GB * 2**30)
    dtype: str = "float32"
    directory: Path | None = None

    def __post_init__(self) -> None:
        if self.dtype not in CACHE_DTYPES:
            raise InputError(
                f"activation cache dtype must be one of {', '.join(CACHE_DTYPES)}, got {self.dtype!r}"
            )
        if self.limit_bytes < 0:
            raise InputError(f"the activation cache limit must not be negative, got {self.limit_bytes} bytes")

    @classmethod
    def of(cls, value: CacheOptions | bool | None) -> CacheOptions:
        """``value`` as options: ``True`` / ``None`` the defaults, ``False`` off.

        Example:
            >>> CacheOptions.of(False).enabled, CacheOptions.of(None).enabled
            (False, True)
        """
        if isinstance(value, CacheOptions):
            return value
        return cls(enabled=value is not False)

    @staticmethod
    def parse_limit_gb(gb: float) -> int:
        """Bytes of a limit given in GB (2**30 bytes)."""
        return int(float(gb) * 2**30)

    def settings(self) -> dict[str, str]:
        """What the cache changes in a job's results: nothing at float32, ``{"activation_dtype": "float16"}``."""
        return {} if self.dtype == "float32" else {"activation_dtype": self.dtype}

    def located(self, run: str | Path) -> CacheOptions:
        """These options with ``directory`` set to ``run``'s cache when none was given."""
        from dataclasses import replace

        return self if self.directory is not None else replace(self, directory=cache_dir(run))


def cache_dir(run: str | Path) -> Path:
    """The activation cache of a run directory: ``RUN/cache/activations`` (:attr:`loce.run_layout.RunLayout.activation_cache`).

    Example:
        >>> cache_dir("RUN").as_posix()
        'RUN/cache/activations'
    """
    from loce.run_layout import RunLayout

    return RunLayout(run).activation_cache
