"""Wall-clock time of each part of a report build (``loce report --profile`` prints it).

Example:
    >>> timer = SectionTimer()
    >>> with timer("overview"):
    ...     pass
    >>> [name for name, _ in timer.totals()]
    ['overview']
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager


class SectionTimer:
    """Accumulates seconds per named part; ``group`` sums several parts under one name in :meth:`totals`.

    Parts may nest: a part's own time excludes the parts timed inside it, so the totals add up to the build.
    """

    def __init__(self) -> None:
        self.parts: list[tuple[str, str, float]] = []
        self._inner: list[float] = []

    @contextmanager
    def __call__(self, name: str, group: str | None = None) -> Iterator[None]:
        start = time.perf_counter()
        self._inner.append(0.0)
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            inner = self._inner.pop()
            if self._inner:
                self._inner[-1] += elapsed
            self.parts.append((name, group or name, elapsed - inner))

    def totals(self) -> list[tuple[str, float]]:
        """``(group, seconds)`` in the order the groups first ran."""
        out: dict[str, float] = {}
        for _, group, seconds in self.parts:
            out[group] = out.get(group, 0.0) + seconds
        return list(out.items())

    def lines(self) -> list[str]:
        """One line per group, then the total, for printing.

        Example:
            >>> SectionTimer().lines()
            ['total: 0.00 s']
        """
        totals = self.totals()
        width = max((len(g) for g, _ in totals), default=0)
        rows = [f"{g.ljust(width)}  {s:7.2f} s" for g, s in totals]
        return rows + [f"total: {sum(s for _, s in totals):.2f} s"]
