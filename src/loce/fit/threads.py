"""CPU parallelism for the fitting code: independent pieces of work in threads, each with single-threaded torch.

A LoCE fit is many small tensor operations. Splitting each of them over threads (torch's intra-op parallelism)
costs a synchronisation per operation, which dominates at these sizes and gets an order of magnitude worse when
other processes compete for the cores. Running independent chunks in parallel threads, each single-threaded,
avoids that: torch releases the GIL inside its operations, so the threads use the cores fully.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")


@contextmanager
def single_threaded_torch() -> Iterator[None]:
    """Run torch's CPU operations single-threaded inside the block (restores the previous setting after)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def run_parallel(fn: Callable[[T], R], items: Iterable[T], workers: int | None = None) -> list[R]:
    """``[fn(x) for x in items]`` in ``workers`` threads (default: ``torch.get_num_threads()``), torch single-threaded.

    The global torch thread setting is 1 during the call and restored afterwards, so do not run other torch
    work in other threads at the same time. Exceptions propagate.

    Example:
        >>> run_parallel(lambda x: x * x, range(4), workers=2)
        [0, 1, 4, 9]
    """
    items = list(items)
    workers = torch.get_num_threads() if workers is None else workers
    workers = max(1, min(workers, len(items)))
    with single_threaded_torch():
        if workers == 1:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(fn, items))
