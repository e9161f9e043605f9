"""``loce check``'s library side: a full check of a run (page checksums included) and moving bad shards aside.

Nothing is ever deleted: a damaged, foreign or duplicate shard is moved to ``RUN/quarantine/`` (same file name, a
number appended when taken), after which the store reads again and a resumed run recomputes the images the moved
shards held.

Example:
    >>> report = check_store("RUN")  # doctest: +SKIP
    >>> moves = planned_moves("RUN", report)  # doctest: +SKIP
    >>> move_aside("RUN", moves)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path

from loce.errors import StoreError
from loce.run_layout import RunLayout
from loce.store.atomic import fsync_dir, write_error
from loce.store.integrity import IntegrityReport, inspect_store
from loce.store.manifest import read_manifest
from loce.store.store import acquire_write_lock, release_write_lock


def check_store(run: str | Path, pages: bool = True) -> IntegrityReport:
    """Check ``run`` completely (see :func:`loce.store.integrity.inspect_store`); changes nothing.

    Raises:
        StoreError: when the manifest is missing, damaged or of a format this ``loce`` cannot read.
    """
    run = Path(run)
    return inspect_store(run, read_manifest(run), pages=pages)


def planned_moves(run: str | Path, report: IntegrityReport) -> list[tuple[Path, Path, str]]:
    """``(file, destination in RUN/quarantine/, problem kind)`` for every file the report says to move aside."""
    target_dir = RunLayout(run).quarantine
    taken = {p.name for p in target_dir.iterdir()} if target_dir.is_dir() else set()
    moves, seen = [], set()
    for problem in report.problems:
        for path in problem.move_aside:
            if path in seen:
                continue
            seen.add(path)
            name, k = path.name, 1
            while name in taken:
                name, k = f"{path.name}.{k}", k + 1
            taken.add(name)
            moves.append((path, target_dir / name, problem.kind))
    return moves


def move_aside(run: str | Path, moves: list[tuple[Path, Path, str]]) -> None:
    """Move the files of ``moves`` into ``RUN/quarantine/`` while holding the run's write lock.

    Raises:
        StoreError: when another process is writing to the run, or a file cannot be moved.
    """
    run = Path(run)
    fd = acquire_write_lock(run)
    try:
        target_dir = RunLayout(run).quarantine
        try:
            target_dir.mkdir(exist_ok=True)
            for source, target, _ in moves:
                if target.exists():
                    raise StoreError(f"{target} already exists; nothing more was moved")
                os.replace(source, target)
        except OSError as exc:
            raise write_error(target_dir, exc) from None
        fsync_dir(target_dir)
        if moves:
            fsync_dir(moves[0][0].parent)
    finally:
        release_write_lock(fd)
