"""Crash-safe file replacement: write to a hidden temp file, flush, fsync, rename, fsync the directory.

A reader (or a resumed run) sees either the old file or the complete new one, never a partial file, whatever
moment the writer is killed at. Temp files are named ``.<final name>.<pid>.<random>.tmp``: the leading dot makes
pandas / pyarrow skip them when reading a directory, and the ``.tmp`` suffix keeps them out of ``*.parquet`` /
``*.json`` globs (polars and DuckDB do match dot-files). :func:`remove_stale_temp_files` deletes the leftovers of
a killed writer.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

TEMP_PATTERN = re.compile(r"^\..+\.tmp$")


def temp_path_for(path: Path) -> Path:
    """A fresh temp-file path in the same directory as ``path`` (same file system, so the rename is atomic)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def fsync_dir(directory: Path) -> None:
    """Make a rename inside ``directory`` durable (no-op where directories cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[BinaryIO]:
    """Open a temp file for writing that replaces ``path`` atomically when the ``with`` block succeeds.

    On an exception (including a disk-full error while flushing) the temp file is removed and ``path`` is left as
    it was.

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "a.txt"
        >>> with atomic_output(target) as fh:
        ...     _ = fh.write(b"hello")
        >>> target.read_bytes()
        b'hello'
    """
    path = Path(path)
    tmp = temp_path_for(path)
    try:
        with open(tmp, "xb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically (see :func:`atomic_output`)."""
    with atomic_output(path) as fh:
        fh.write(data)


def remove_stale_temp_files(directory: str | Path) -> list[Path]:
    """Delete the temp files a killed writer left in ``directory``; returns the removed paths.

    Only call this while holding the store's write lock: another live writer's temp file looks the same.
    """
    directory = Path(directory)
    removed = []
    if not directory.is_dir():
        return removed
    for entry in directory.iterdir():
        if TEMP_PATTERN.match(entry.name) and entry.is_file():
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
                removed.append(entry)
    return removed
