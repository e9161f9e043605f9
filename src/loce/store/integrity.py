"""Is a run's ``loces/`` directory what its manifest says? Foreign files, wrong jobs or settings, duplicate rows.

A store is consistent when every file in ``loces/`` is a shard of a registered job, every shard is readable with
the store's columns, every row's ``job`` / ``model`` / ``method`` / ``settings_id`` is its job's, and within a job
no ``(sample_id, concept, layer, method)`` key appears twice. :func:`inspect_store` finds every violation from the
shards' footers and key columns only (vectors and masks are not decoded unless ``pages=True``); the store's
readers refuse an inconsistent store, and ``loce check RUN --repair`` moves the offending files aside.

Jobs may legitimately cover the same (model, method, layer, sample, concept) -- two jobs of one run with other
settings, say -- but reading both together counts each LoCE twice; :class:`Overlap` records where they do, so a
reader can ask for an explicit job choice.

Example:
    >>> report = inspect_store("RUN", read_manifest("RUN"))  # doctest: +SKIP
    >>> [p.message for p in report.problems]  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from loce.run_layout import RunLayout
from loce.store.atomic import is_temp_name
from loce.store.manifest import JobSpec, Manifest
from loce.store.schema import KEY_COLUMNS, META_KIND, OK, REQUIRED_COLUMNS, SCHEMA
from loce.store.shards import ANNOTATION_SHARD, first_line, parse_shard_name

OVERLAP_KEY = ["model", "method", "layer", "sample_id", "concept"]
"""Rows of two jobs with equal values here describe the same LoCE (ok rows with a layer only)."""

_IDENTITY_COLUMNS = ["job", "model", "method", "settings_id"]
_READ_COLUMNS = list(dict.fromkeys([*KEY_COLUMNS, *_IDENTITY_COLUMNS, "status"]))


@dataclass(frozen=True)
class Problem:
    """One inconsistency of a store.

    Attributes:
        kind: ``foreign_file``, ``unregistered_job``, ``unreadable``, ``wrong_schema``, ``wrong_job``,
            ``other_settings``, ``damaged`` or ``duplicate_rows``.
        message: a sentence naming the file(s) and the problem.
        paths: the files concerned.
        move_aside: the files ``loce check --repair`` moves to ``RUN/quarantine/`` (the store reads again after).
    """

    kind: str
    message: str
    paths: tuple[Path, ...]
    move_aside: tuple[Path, ...]


@dataclass(frozen=True)
class Overlap:
    """Jobs holding rows of the same LoCEs: ``pairs`` (sample, concept) pairs of (model, method, layer)."""

    jobs: tuple[str, ...]
    model: str
    method: str
    layer: str
    concepts: tuple[str, ...]
    pairs: int

    def describe(self) -> str:
        """A sentence naming the jobs and what they share."""
        return (
            f"jobs {', '.join(repr(j) for j in self.jobs)} both hold {self.method} vectors of model {self.model!r}, "
            f"layer {self.layer!r} for the same {self.pairs} (sample, concept) pairs"
        )


@dataclass
class IntegrityReport:
    """What :func:`inspect_store` found: problems (the store must not be read), overlaps between jobs, counts."""

    problems: list[Problem] = field(default_factory=list)
    overlaps: list[Overlap] = field(default_factory=list)
    shards: int = 0
    rows: int = 0

    @property
    def ok(self) -> bool:
        """True when there is no problem (overlaps are not problems; they need a job choice when read)."""
        return not self.problems

    def overlap_frame(self) -> pa.Table:
        """One row per (overlap index, job, model, method, layer, concept): what a read filter can exclude."""
        rows = [
            {"overlap": k, "job": job, "model": o.model, "method": o.method, "layer": o.layer, "concept": c,
             "status": OK}
            for k, o in enumerate(self.overlaps)
            for job in o.jobs
            for c in o.concepts
        ]  # fmt: skip
        names = ["overlap", "job", "model", "method", "layer", "concept", "status"]
        if not rows:
            return pa.table({n: pa.array([], pa.int64() if n == "overlap" else pa.string()) for n in names})
        return pa.Table.from_pylist(rows)


def _names(paths) -> str:
    shown = [p.name for p in paths][:4]
    more = len(list(paths)) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def _shard_problem(path: Path, spec: JobSpec, table: pa.Table) -> Problem | None:
    """A wrong job, model, method or settings id in a shard's rows, or ``None``."""
    expected = {"job": spec.name, "model": spec.model, "method": spec.method}
    for column, value in expected.items():
        found = sorted(set(pc.unique(table[column]).to_pylist()) - {value}, key=str)
        if found:
            return Problem(
                "wrong_job",
                f"shard {path} is named for job {spec.name!r} but holds rows with {column} {found[:3]} (the job's "
                f"is {value!r}); it was copied from another job or run",
                (path,),
                (path,),
            )
    if spec.settings_id is not None:
        found = sorted(set(pc.unique(table["settings_id"]).to_pylist()) - {spec.settings_id}, key=str)
        if found:
            return Problem(
                "other_settings",
                f"shard {path} holds rows fitted with settings {found[:3]}, but job {spec.name!r} was run with "
                f"{spec.settings_id!r}; it comes from another run or job",
                (path,),
                (path,),
            )
    return None


def _read_keys(path: Path, pages: bool) -> tuple[pa.Table | None, Problem | None, bool]:
    """The key and identity columns of a shard, or the problem that prevents reading it; plus "is annotation"."""
    try:
        parquet = pq.ParquetFile(path, page_checksum_verification=True)
        schema = parquet.schema_arrow
    except (OSError, pa.ArrowException, ValueError) as exc:
        reason = first_line(exc)
        return None, Problem("unreadable", f"shard {path} cannot be read ({reason})", (path,),
                             (path,)), False  # fmt: skip
    missing = [c for c in REQUIRED_COLUMNS if c not in schema.names]
    wrong = [
        f"{c} is {schema.field(c).type}, not {SCHEMA.field(c).type}"
        for c in SCHEMA.names
        if c in schema.names and schema.field(c).type != SCHEMA.field(c).type
    ]
    if missing or wrong:
        what = (f"lacks the columns {missing}" if missing else "") + ("; " if missing and wrong else "")
        what += f"has other column types ({'; '.join(wrong[:3])})" if wrong else ""
        return None, Problem("wrong_schema", f"shard {path} is not a LoCE shard: it {what}", (path,),
                             (path,)), False  # fmt: skip
    annotation = (schema.metadata or {}).get(META_KIND) == ANNOTATION_SHARD.encode()
    try:
        if pages:
            parquet.read()
        present = [c for c in _READ_COLUMNS if c in schema.names]
        table = parquet.read(columns=present)
        for c in _READ_COLUMNS:
            if c not in schema.names:
                table = table.append_column(c, pa.nulls(table.num_rows, pa.string()))
    except (OSError, pa.ArrowException, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return (
            None,
            Problem("damaged", f"shard {path} cannot be read, it is damaged ({reason})", (path,), (path,)),
            False,
        )
    return table, None, annotation


def _duplicates(job: str, paths: list[Path], tables: list[pa.Table]) -> Problem | None:
    """Rows of one job with the same key in several places; the later shards are the ones to move aside."""
    import pandas as pd

    if not tables:
        return None
    counts = pa.concat_tables([t.select(KEY_COLUMNS) for t in tables]).group_by(
        KEY_COLUMNS, use_threads=False
    )
    if pc.max(counts.aggregate([([], "count_all")])["count_all"]).as_py() <= 1:
        return None  # the usual case, decided in Arrow; the shards are attributed below only on a duplicate
    frames = [t.select(KEY_COLUMNS).to_pandas().assign(_shard=k) for k, t in enumerate(tables)]
    keys = pd.concat(frames, ignore_index=True)
    dup = keys.duplicated(KEY_COLUMNS, keep=False)
    if not dup.any():
        return None
    involved = keys[dup]
    first = involved.groupby(KEY_COLUMNS, dropna=False)["_shard"].transform("min")
    later = sorted(set(involved["_shard"][involved["_shard"] != first]))
    shards = sorted(set(involved["_shard"]))
    if not later:  # the duplicates are inside one shard
        later = shards
    n = int(keys.duplicated(KEY_COLUMNS).sum())
    return Problem(
        "duplicate_rows",
        f"job {job!r} holds {n} rows twice (same sample, concept, layer, method) in the shards "
        f"{_names([paths[k] for k in shards])}; a shard was copied or written twice",
        tuple(paths[k] for k in shards),
        tuple(paths[k] for k in later),
    )


def _overlaps(tables: dict[str, list[pa.Table]]) -> list[Overlap]:
    import pandas as pd

    if len([job for job, parts in tables.items() if parts]) < 2:
        return []
    frames = []
    for job, parts in tables.items():
        for table in parts:
            ok = pc.and_(pc.equal(table["status"], OK), pc.is_valid(table["layer"]))
            frames.append(table.filter(ok).select(OVERLAP_KEY).to_pandas().assign(job=job))
    rows = pd.concat(frames, ignore_index=True).drop_duplicates([*OVERLAP_KEY, "job"])
    shared = rows[rows.duplicated(OVERLAP_KEY, keep=False)]
    if shared.empty:
        return []
    jobs_of = shared.groupby(OVERLAP_KEY, dropna=False)["job"].agg(lambda s: tuple(sorted(s)))
    found = jobs_of.reset_index().groupby(["job", "model", "method", "layer"], dropna=False)
    out = []
    for (jobs, model, method, layer), part in found:
        out.append(
            Overlap(jobs, model, method, layer, tuple(sorted(set(part["concept"].dropna()))), int(len(part)))
        )
    return sorted(out, key=lambda o: (o.jobs, o.model, o.method, o.layer))


def inspect_store(run_dir: str | Path, manifest: Manifest, pages: bool = False) -> IntegrityReport:
    """Find every inconsistency between ``RUN/loces/`` and the manifest (see the module docstring).

    Args:
        run_dir: the run directory.
        manifest: its manifest (already read; a manifest that cannot be read is the caller's error).
        pages: also decode every page of every shard (verifies the Parquet page checksums; slower).

    Returns:
        An :class:`IntegrityReport`; nothing on disk is changed.
    """
    shard_dir = RunLayout(run_dir).loces
    report = IntegrityReport()
    if not shard_dir.is_dir():
        return report
    jobs = {entry["name"]: JobSpec.from_dict(entry) for entry in manifest.jobs}
    by_job: dict[str, list[tuple[int, Path]]] = {}
    for entry in sorted(shard_dir.iterdir()):
        if is_temp_name(entry.name):
            continue
        parsed = parse_shard_name(entry.name)
        if parsed is None and not entry.name.endswith(".parquet"):
            continue  # the user's own notes: not read by loce, not Parquet
        if parsed is None or entry.is_dir():
            report.problems.append(Problem(
                "foreign_file",
                f"{entry} is a Parquet file but not a shard of this run (shards are files named "
                "<job>-NNNNNN.parquet); readers of loces/ (pandas, DuckDB) would mix its rows in",
                (entry,), (entry,),
            ))  # fmt: skip
        elif parsed[0] not in jobs:
            report.problems.append(Problem(
                "unregistered_job",
                f"shard {entry} belongs to job {parsed[0]!r}, which the manifest does not list (jobs: "
                f"{sorted(jobs)}); it was copied from another run or renamed",
                (entry,), (entry,),
            ))  # fmt: skip
        else:
            by_job.setdefault(parsed[0], []).append((parsed[1], entry))
    key_tables: dict[str, list[pa.Table]] = {}
    for job, numbered in by_job.items():
        paths, tables = [], []
        for _, path in sorted(numbered):
            table, problem, annotation = _read_keys(path, pages)
            if problem is None:
                problem = _shard_problem(path, jobs[job], table)
            if problem is not None:
                report.problems.append(problem)
                continue
            report.shards += 1
            report.rows += table.num_rows
            if annotation:  # annotation-time skips: one record per job, checked on its own
                problem = _duplicates(job, [path], [table])
                if problem is not None:
                    report.problems.append(problem)
                continue
            paths.append(path)
            tables.append(table)
        problem = _duplicates(job, paths, tables)
        if problem is not None:
            report.problems.append(problem)
            bad = set(problem.move_aside)
            tables = [t for p, t in zip(paths, tables, strict=True) if p not in bad]
        key_tables[job] = tables
    report.overlaps = _overlaps(key_tables)
    return report


def overlapping_jobs_in(
    report: IntegrityReport, expression, prefer: tuple[str, ...] | None
) -> tuple[list[str], list[Overlap]]:
    """For a read with ``expression`` (an Arrow dataset filter or ``None``): the jobs to leave out because the
    reader preferred others, and the overlaps the read would still mix.

    A filter on columns other than job / model / method / layer / concept / status is treated as admitting
    every overlap (the read is refused rather than risk mixing).
    """
    import pyarrow.dataset as ds

    excluded: set[str] = set()
    if prefer:
        for o in report.overlaps:
            if set(o.jobs) & set(prefer):
                excluded |= set(o.jobs) - set(prefer)
    frame = report.overlap_frame()
    if excluded:
        frame = frame.filter(pc.invert(pc.is_in(frame["job"], pa.array(sorted(excluded)))))
    if expression is not None and frame.num_rows:
        with contextlib.suppress(pa.ArrowException, ValueError):  # a filter on other columns: keep every row
            frame = ds.dataset(frame).to_table(filter=expression)
    mixed = []
    if frame.num_rows:
        overlap = frame["overlap"].to_numpy()
        jobs = np.asarray(frame["job"].to_pylist(), dtype=object)
        for k in sorted(set(overlap.tolist())):
            if len(set(jobs[overlap == k])) > 1:
                mixed.append(report.overlaps[k])
    return sorted(excluded), mixed
