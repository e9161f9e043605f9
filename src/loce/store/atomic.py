"""Crash-safe file replacement: write to a hidden temp file, flush, fsync, rename, fsync the directory.

A reader (or a resumed run) sees either the old file or the complete new one, never a partial file, whatever
moment the writer is killed at. Temp files are named ``.<final name>.loce-<pid>-<8 hex>.tmp``: the leading dot
makes pandas / pyarrow skip them when reading a directory, and the ``.tmp`` suffix keeps them out of
``*.parquet`` / ``*.json`` globs (polars and DuckDB do match dot-files). :func:`remove_stale_temp_files` deletes
the leftovers of a killed writer -- and only those: a user's own ``.notes.tmp`` next to them is never touched.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from loce.errors import StoreError

TEMP_PATTERN = re.compile(r"^\..+\.(loce-\d+-[0-9a-f]{8}|\d+\.[0-9a-f]{4,})\.tmp$")
"""loce's own temp names: ``.<name>.loce-<pid>-<8 hex>.tmp`` (and the ``.<name>.<pid>.<hex>.tmp`` of earlier versions)."""


def is_temp_name(name: str) -> bool:
    """True for the name of a temp file that loce wrote (never for a user's ``.notes.tmp``).

    Example:
        >>> is_temp_name(temp_path_for(Path("RUN/manifest.json")).name), is_temp_name(".my-notes.tmp")
        (True, False)
    """
    return TEMP_PATTERN.match(name) is not None


def temp_path_for(path: Path) -> Path:
    """A fresh temp-file path in the same directory as ``path`` (same file system, so the rename is atomic)."""
    return path.with_name(f".{path.name}.loce-{os.getpid()}-{secrets.token_hex(4)}.tmp")


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
        if is_temp_name(entry.name) and entry.is_file():
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
                removed.append(entry)
    return removed


def write_error(path: Path, exc: OSError) -> StoreError:
    """The error for a file of the store that cannot be written (full disk, read-only directory, ...)."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno == errno.ENOSPC:
        hint = "free some space and run the same command again; it resumes where it stopped"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = f"make {path.parent} writable or choose another --out directory"
    else:
        hint = "fix the cause and run the same command again; it resumes where it stopped"
    return StoreError(
        f"cannot write {path} ({reason}); nothing partial was kept. {hint[0].upper()}{hint[1:]}"
    )
