"""Shard files: ``RUN/loces/<job>-NNNNNN.parquet``, written atomically, listed, and read with clear errors.

A shard holds every row of a group of whole images. It appears under its final name only once it is complete
and on disk (temp file, flush, fsync, rename, directory fsync), so "the shard exists" means "its images are done".
A shard that cannot be read (truncated by a full disk, damaged) raises :class:`StoreError` naming the file; it is
never skipped silently.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from loce.errors import StoreError
from loce.run_layout import shard_file_name
from loce.store.atomic import atomic_output, write_error
from loce.store.schema import META_JOB, META_KIND, SCHEMA, STRING_COLUMNS

ANNOTATION_SHARD = "annotation_skips"
"""``META_KIND`` of shard number 0 of a job: the skips its dataset recorded while reading annotations."""
ANNOTATION_NUMBER = 0
SHARD_PATTERN = re.compile(r"^(?P<job>.+)-(?P<number>\d{6,})\.parquet$")
JOB_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+=-]*$")

_WRITE_OPTIONS = {
    "compression": "zstd",
    "use_dictionary": STRING_COLUMNS,
    "write_page_checksum": True,
    "write_statistics": True,
}


def check_job_name(name: str) -> str:
    """Return ``name`` if it can be used in shard file names, else raise :class:`StoreError`.

    Example:
        >>> check_job_name("lite0_blocks")
        'lite0_blocks'
    """
    if not isinstance(name, str) or not JOB_NAME_PATTERN.match(name):
        raise StoreError(
            f"job name {name!r} cannot be used in shard file names; use letters, digits and _ . + = - "
            "(starting with a letter or digit), e.g. 'lite0'"
        )
    return name


def shard_name(job: str, number: int) -> str:
    """The file name of shard ``number`` of ``job``.

    Example:
        >>> shard_name("lite0", 7)
        'lite0-000007.parquet'
    """
    return shard_file_name(check_job_name(job), number)


def parse_shard_name(name: str) -> tuple[str, int] | None:
    """``"lite0-000007.parquet"`` -> ``("lite0", 7)``; ``None`` for anything that is not a shard name."""
    match = SHARD_PATTERN.match(name)
    if match is None or name.startswith((".", "_")):
        return None
    return match["job"], int(match["number"])


def list_shards(directory: str | Path, job: str | Iterable[str] | None = None) -> list[Path]:
    """The shard files in ``directory`` (of ``job`` or of several jobs), sorted by job and number."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    wanted = None if job is None else ({job} if isinstance(job, str) else set(job))
    found = []
    for entry in directory.iterdir():
        parsed = parse_shard_name(entry.name)
        if parsed is not None and (wanted is None or parsed[0] in wanted):
            found.append((parsed, entry))
    return [path for _, path in sorted(found)]


def next_shard_number(directory: str | Path, job: str) -> int:
    """One more than the highest shard number of ``job`` in ``directory`` (1 for the first shard)."""
    numbers = [parse_shard_name(p.name)[1] for p in list_shards(directory, job)]
    return max(numbers, default=0) + 1


def is_annotation_shard(path: Path) -> bool:
    """True for ``<job>-000000.parquet``, the shard of annotation-time skips (not a group of processed images)."""
    parsed = parse_shard_name(Path(path).name)
    return parsed is not None and parsed[1] == ANNOTATION_NUMBER


def _write(path: Path, job: str, table: pa.Table, kind: str | None) -> None:
    metadata = dict(SCHEMA.metadata)
    metadata[META_JOB] = job.encode()
    if kind is not None:
        metadata[META_KIND] = kind.encode()
    table = table.cast(SCHEMA).replace_schema_metadata(metadata)
    try:
        with atomic_output(path) as fh:
            pq.write_table(table, fh, **_WRITE_OPTIONS)
    except OSError as exc:
        raise write_error(path, exc) from None


def write_shard(
    directory: str | Path, job: str, number: int, table: pa.Table, kind: str | None = None
) -> Path:
    """Write ``table`` as shard ``number`` of ``job`` atomically; returns the final path.

    Raises:
        StoreError: when that shard already exists (shards are never overwritten), or the write fails (naming
            the file and the cause, e.g. a full disk; nothing partial is left).
    """
    directory = Path(directory)
    path = directory / shard_name(job, number)
    if path.exists():
        raise StoreError(f"{path} already exists; shards are never overwritten (is another process writing?)")
    _write(path, job, table, kind)
    return path


def replace_shard(path: str | Path, job: str, table: pa.Table, kind: str | None = None) -> Path:
    """Atomically replace the existing shard ``path`` of ``job`` by ``table`` (readers see old or new, whole).

    Used to retry images whose every row was a file-level skip, and to refresh the annotation-skip shard.
    """
    path = Path(path)
    _write(path, job, table, kind)
    return path


def _file_format() -> ds.ParquetFileFormat:
    return ds.ParquetFileFormat(
        default_fragment_scan_options=ds.ParquetFragmentScanOptions(page_checksum_verification=True)
    )


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, control characters shown as ``?`` (its type's name when empty).

    Example:
        >>> first_line(ValueError("bad thrift: \\x0f\\nmore"))
        'bad thrift: ?'
    """
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return "".join(c if c.isprintable() else "?" for c in line)


def shard_error(path: Path, exc: BaseException) -> StoreError:
    """The error for an unreadable shard: which file, why, and what to do."""
    reason = first_line(exc)
    return StoreError(
        f"shard {path} cannot be read ({reason}); it is damaged (e.g. truncated by a full disk). Move it aside with "
        f"`loce check {path.parent.parent} --repair` and run the same `loce fit` command again to recompute its "
        "images"
    )


def read_shard(path: str | Path, columns: list[str] | None = None) -> pa.Table:
    """Read one shard (all columns or ``columns``) with page checksums verified.

    Raises:
        StoreError: naming the file when it cannot be read or does not have the store's columns.
    """
    path = Path(path)
    try:
        parquet = pq.ParquetFile(path, page_checksum_verification=True)
        present = set(parquet.schema_arrow.names)
        wanted = SCHEMA.names if columns is None else list(columns)
        table = parquet.read(columns=[c for c in wanted if c in present])
        arrays = [
            table[c].cast(SCHEMA.field(c).type)
            if c in present
            else pa.nulls(table.num_rows, SCHEMA.field(c).type)
            for c in wanted
        ]
        return pa.Table.from_arrays(arrays, schema=pa.schema([SCHEMA.field(c) for c in wanted]))
    except (OSError, pa.ArrowException, KeyError, ValueError) as exc:
        raise shard_error(path, exc) from None


def open_dataset(paths: list[Path]) -> ds.Dataset:
    """A pyarrow dataset over ``paths`` with the store schema (missing columns of older shards read as null)."""
    return ds.dataset([str(p) for p in paths], schema=SCHEMA, format=_file_format())


def scan(paths: list[Path], columns: list[str], filter: ds.Expression | None = None) -> pa.Table:
    """Read ``columns`` of the rows matching ``filter`` from the shards ``paths``.

    Only the projected columns are decoded; shards whose statistics exclude the filter are skipped.

    Raises:
        StoreError: naming the first unreadable shard.
    """
    if not paths:
        return pa.schema([SCHEMA.field(c) for c in columns]).empty_table()
    try:
        return open_dataset(paths).to_table(columns=columns, filter=filter)
    except (OSError, pa.ArrowException) as exc:
        for path in paths:
            read_shard(path)  # raises a StoreError naming the bad file
        raise StoreError(f"reading the shards failed: {exc}") from exc
