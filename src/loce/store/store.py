"""``LoCEStore``: a run directory of LoCE shards plus its manifest -- create, resume, append, read.

Writing (one process at a time, guarded by a lock file)::

    store = LoCEStore.create("RUN", image_root=dataset.root)
    store.register_job(JobSpec("lite0", model="efficientnet-lite0", layers=["_blocks.10"], ...))
    todo = [s for s in dataset if s.sample_id not in store.completed_samples("lite0")]
    for group in batches(todo):
        store.append("lite0", rows_of(group))      # one atomic shard per group of whole images

Reading (any number of processes, also while a run is writing)::

    X, meta = LoCEStore.open("RUN").vectors(layer="_blocks.10")
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from loce.errors import StoreError
from loce.run_layout import RunLayout
from loce.store.atomic import remove_stale_temp_files, write_error
from loce.store.integrity import IntegrityReport, inspect_store, overlapping_jobs_in
from loce.store.manifest import JobSpec, Manifest, read_manifest, write_manifest
from loce.store.query import Selector, as_list, filter_expression, matrix_from_lists
from loce.store.schema import COLUMNS, HEAVY_COLUMNS, OK
from loce.store.shards import (
    ANNOTATION_NUMBER,
    ANNOTATION_SHARD,
    check_job_name,
    is_annotation_shard,
    list_shards,
    next_shard_number,
    read_shard,
    replace_shard,
    scan,
    shard_name,
    write_shard,
)
from loce.store.table import build_table

try:
    import fcntl
except ImportError:  # Windows: no advisory lock; one writer per run is then the user's responsibility.
    fcntl = None

META_COLUMNS = [c for c in COLUMNS if c not in HEAVY_COLUMNS]
SKIP_COLUMNS = ["sample_id", "image", "concept", "layer", "model", "method", "job", "status", "detail"]
FILE_SKIP_PREFIXES = ("missing_", "corrupt_", "truncated_", "unreadable_")
"""Skip reasons that come from a file (missing, corrupt, truncated, unreadable image or mask): a repaired or
restored file is worth another try, so a resumed run retries samples whose every row is such a skip."""
FILE_SKIP_REASONS = ("image_size_mismatch",)

_PREFERRED_JOBS: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar(
    "loce_preferred_jobs", default=None
)


@contextlib.contextmanager
def preferred_jobs(jobs: Sequence[str] | None) -> Iterator[None]:
    """Within the block, stores opened without ``jobs=`` read these jobs where jobs overlap (``loce --jobs``).

    Example:
        >>> with preferred_jobs(["loce.a"]):
        ...     pass  # LoCEStore.open("RUN").vectors(...) reads job loce.a, not the jobs overlapping it
    """
    token = _PREFERRED_JOBS.set(None if jobs is None else tuple(jobs))
    try:
        yield
    finally:
        _PREFERRED_JOBS.reset(token)


def acquire_write_lock(path: Path) -> int | None:
    """Take the exclusive write lock ``RUN/.lock`` (``None`` where there is no ``fcntl``); release it with
    :func:`release_write_lock`. The kernel releases it when the process dies, so a stale ``.lock`` file is harmless.

    Raises:
        StoreError: another process holds it, or the directory is not writable.
    """
    if fcntl is None:
        return None
    lock = RunLayout(path).lock
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise StoreError(
                f"{path} is not writable ({exc.strerror}); make it writable or choose another --out directory "
                "(reading it needs no write access)"
            ) from None
        raise write_error(lock, exc) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise StoreError(
            f"another process is writing to {path} (it holds {lock}); wait for it to finish or "
            "write to another --out directory"
        ) from None
    return fd


def release_write_lock(fd: int | None) -> None:
    """Release a lock taken by :func:`acquire_write_lock` (``None``: nothing to do)."""
    if fd is None:
        return
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def is_file_skip(status: str) -> bool:
    """True for a skip caused by a file (``missing_image``, ``truncated_image``, ``corrupt_mask``, ...).

    Example:
        >>> is_file_skip("truncated_image"), is_file_skip("empty_mask")
        (True, False)
    """
    return status.startswith(FILE_SKIP_PREFIXES) or status in FILE_SKIP_REASONS


class LoCEStore:
    """A LoCE run directory (``manifest.json`` + ``loces/*.parquet``), opened for reading or appending.

    Use :meth:`open` to read and :meth:`create` to write (it also resumes an existing run). A writable store holds
    an exclusive lock on ``RUN/.lock`` until :meth:`close` (or the end of a ``with`` block); the kernel releases it
    if the process dies, so a killed run never blocks its restart.

    Args:
        path: the run directory.
        mode: ``"r"`` (read only) or ``"a"`` (create if missing, append, resume).
        image_root: for ``mode="a"``, the directory image paths are relative to (recorded in the manifest).
        jobs: where jobs overlap (hold the same LoCEs), read these (default: the ``loce --jobs`` choice, else
            reading overlapping jobs together is refused).

    Example:
        >>> import tempfile
        >>> run = Path(tempfile.mkdtemp()) / "RUN"
        >>> with LoCEStore.create(run) as store:
        ...     store.register_job(JobSpec("j", model="m", layers=["l1"]))
        ...     _ = store.append("j", [{"sample_id": "a", "concept": "cat", "layer": "l1", "status": "ok",
        ...                             "vector": [1.0, 0.0], "iou": 0.7}])
        False
        >>> X, meta = LoCEStore.open(run).vectors(layer="l1")
        >>> X.shape, list(meta["concept"])
        ((1, 2), ['cat'])
    """

    def __init__(
        self,
        path: str | Path,
        mode: str = "r",
        image_root: str | Path | None = None,
        jobs: Sequence[str] | None = None,
    ) -> None:
        if mode not in ("r", "a"):
            raise ValueError(f"mode must be 'r' or 'a', got {mode!r}")
        self.path = Path(path)
        self.layout = RunLayout(self.path)
        self.mode = mode
        self.prefer_jobs: tuple[str, ...] | None = tuple(as_list(jobs)) if jobs is not None else None
        self._lock_fd: int | None = None
        self._writable = False
        self._registered: set[str] = set()
        self._completed: dict[str, set[str]] = {}
        self._integrity: tuple[Any, IntegrityReport] | None = None
        if mode == "r":
            self.manifest = read_manifest(self.path)
            self._check_preferred_jobs()
            return
        self._open_for_writing(image_root)

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, path: str | Path, jobs: Sequence[str] | None = None) -> LoCEStore:
        """Open an existing run for reading (raises :class:`StoreError` when there is none).

        Args:
            path: the run directory.
            jobs: the jobs to read where several jobs hold the same LoCEs (see :meth:`check`).
        """
        return cls(path, mode="r", jobs=jobs)

    def _check_preferred_jobs(self) -> None:
        chosen = self.prefer_jobs if self.prefer_jobs is not None else _PREFERRED_JOBS.get()
        unknown = sorted(set(chosen or ()) - {entry["name"] for entry in self.manifest.jobs})
        if unknown:
            raise StoreError(
                f"{self.path} has no job {unknown[0]!r}; its jobs are "
                f"{[entry['name'] for entry in self.manifest.jobs]}"
            )

    @classmethod
    def create(cls, path: str | Path, image_root: str | Path | None = None) -> LoCEStore:
        """Open a run for writing, creating it when missing; an existing run is resumed.

        Removes the temp files a killed writer left behind.

        Raises:
            StoreError: when another process is writing to the run, or the directory holds shards but no manifest.
        """
        return cls(path, mode="a", image_root=image_root)

    def _open_for_writing(self, image_root: str | Path | None) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise StoreError(f"{self.path} is a file, not a run directory; choose a directory for --out")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise write_error(self.path, exc) from None
        self._acquire_lock()
        try:
            remove_stale_temp_files(self.path)
            remove_stale_temp_files(self.shard_dir)
            if self.layout.manifest.exists():
                self.manifest = read_manifest(self.path)
                if not self.manifest.run_id_recorded:  # from before run ids: record the id readers derive
                    write_manifest(self.path, self.manifest)
            elif list_shards(self.shard_dir):
                raise StoreError(
                    f"{self.shard_dir} holds shards but {self.layout.manifest} is missing; restore the "
                    "manifest or use a new --out directory"
                )
            else:
                self.manifest = Manifest.new(image_root)
                self.shard_dir.mkdir(exist_ok=True)
                write_manifest(self.path, self.manifest)
            if image_root is not None:
                self._set_image_root(image_root)
            self.shard_dir.mkdir(exist_ok=True)
            self.check()
        except OSError as exc:
            self.close()
            raise write_error(self.path, exc) from None
        except BaseException:
            self.close()
            raise
        self._writable = True

    def _acquire_lock(self) -> None:
        self._lock_fd = acquire_write_lock(self.path)

    def close(self) -> None:
        """Release the write lock (no-op for a read-only store); the store cannot be written to afterwards."""
        self._writable = False
        release_write_lock(self._lock_fd)
        self._lock_fd = None

    def __enter__(self) -> LoCEStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LoCEStore({self.path.as_posix()!r}, mode={self.mode!r}, jobs={list(self.jobs)})"

    # ------------------------------------------------------------------ layout
    @property
    def shard_dir(self) -> Path:
        """``RUN/loces``: the directory pandas / polars / DuckDB read."""
        return self.layout.loces

    @property
    def run_id(self) -> str:
        """The run's id from its manifest (derived read-only for a run written before run ids)."""
        return self.manifest.run_id

    @property
    def image_root(self) -> Path | None:
        """The directory the ``image`` column is relative to."""
        return None if self.manifest.image_root is None else Path(self.manifest.image_root)

    @property
    def jobs(self) -> dict[str, JobSpec]:
        """Job name -> spec, in registration order."""
        return {entry["name"]: JobSpec.from_dict(entry) for entry in self.manifest.jobs}

    def image_path(self, image: str) -> Path:
        """The absolute path of a row's ``image`` value."""
        if self.image_root is None:
            raise StoreError(f"{self.layout.manifest} records no image_root; image paths cannot be resolved")
        return self.image_root / image

    def shards(self, job: str | None = None) -> list[Path]:
        """The shard files (of ``job``), sorted by job and number."""
        return list_shards(self.shard_dir, job)

    # ------------------------------------------------------------------ writing
    def _require_writable(self) -> None:
        if not self._writable:
            raise StoreError(f"{self.path} is open read-only (or closed); use LoCEStore.create(...) to write")

    def _set_image_root(self, image_root: str | Path) -> None:
        root = Path(image_root).resolve().as_posix()
        if self.manifest.image_root is None:
            self.manifest.image_root = root
            write_manifest(self.path, self.manifest)
        elif self.manifest.image_root != root:
            raise StoreError(
                f"{self.path} stores image paths relative to {self.manifest.image_root}, not {root}; write to a new "
                "--out directory, or edit image_root in manifest.json if the images moved"
            )

    def register_job(self, spec: JobSpec, image_root: str | Path | None = None) -> bool:
        """Record a job in the manifest, or check that a job of that name has the same settings (resume).

        Args:
            spec: what the job computes.
            image_root: the dataset's image root (must match the run's when already recorded).

        Returns:
            ``True`` when the job already existed (the run resumes it), ``False`` when it is new.

        Raises:
            StoreError: when a job of that name exists with a different model, layers, settings, dataset, method
                or seed (the message lists the differences).
        """
        self._require_writable()
        check_job_name(spec.name)
        if image_root is not None:
            self._set_image_root(image_root)
        existing = self.manifest.job(spec.name)
        if existing is not None:
            mismatch = existing.weights_mismatch(spec, self.path)
            differences = existing.differences(spec)
            if mismatch:
                also = f" (it also differs in: {'; '.join(differences)})" if differences else ""
                raise StoreError(mismatch + also)
            if differences:
                raise StoreError(
                    f"job {spec.name!r} in {self.path} was run with other settings ("
                    + "; ".join(differences)
                    + "); use a new --out directory or another job name to keep both"
                )
        else:
            self.manifest.add_job(spec)
            write_manifest(self.path, self.manifest)
        self._registered.add(spec.name)
        return existing is not None

    def append(self, job: str, rows: Any) -> Path:
        """Write the rows of a group of whole images as one new shard of ``job`` (atomically).

        Args:
            job: a job registered with :meth:`register_job` on this store object.
            rows: what :func:`loce.store.table.build_table` accepts (dict rows, dict of columns, DataFrame, Arrow
                table). ``job``, ``model``, ``method`` and ``settings_id`` default to the job's.

        Returns:
            The path of the new shard.

        Raises:
            StoreError: for invalid rows, an unregistered job, or samples the job has already stored (a shard
                holds whole images, and no image is stored twice).
        """
        self._require_writable()
        if job not in self._registered:
            raise StoreError(f"job {job!r} is not registered on this store; call register_job(spec) first")
        table = build_table(rows, defaults=self.row_defaults(job))
        if table.num_rows == 0:
            raise StoreError(f"no rows to append to job {job!r}; every image must leave at least one row")
        samples = set(pc.unique(table["sample_id"]).to_pylist())
        again = samples & self.completed_samples(job)
        if again:
            raise StoreError(
                f"{len(again)} sample(s) of this shard are already stored for job {job!r} (e.g. "
                f"{sorted(again)[:3]}); skip the samples in completed_samples({job!r})"
            )
        path = write_shard(self.shard_dir, job, next_shard_number(self.shard_dir, job), table)
        self._completed[job] |= samples
        return path

    def row_defaults(self, job: str) -> dict[str, Any]:
        """The column values every row of ``job`` gets unless it gives them (``job``, ``model``, ``method``, ...)."""
        spec = self.manifest.job(job)
        if spec is None:
            raise StoreError(f"job {job!r} is not in {self.layout.manifest}; call register_job(spec) first")
        defaults = {"job": job, "model": spec.model, "method": spec.method}
        if spec.settings_id is not None:
            defaults["settings_id"] = spec.settings_id
        return defaults

    def completed_samples(self, job: str) -> set[str]:
        """The ids of samples with rows in ``job``'s shards (including samples whose every row is a skip).

        The annotation-skip shard (``<job>-000000.parquet``) does not count: its samples were never processed.

        Raises:
            StoreError: naming a shard that cannot be read.
        """
        if job not in self._completed or self.mode == "r":
            done: set[str] = set()
            for path in self.shards(job):
                if not is_annotation_shard(path):
                    done.update(read_shard(path, ["sample_id"])["sample_id"].to_pylist())
            self._completed[job] = done
        return set(self._completed[job])

    def record_annotation_skips(self, job: str, rows: list[dict[str, Any]]) -> Path | None:
        """Store the skips the job's dataset recorded while reading annotations, once per job.

        They go to ``<job>-000000.parquet``, which is written when missing and replaced atomically when the
        dataset's skips changed (a resume never duplicates them); with no rows an old record is removed.

        Returns:
            The shard's path, or ``None`` when there is none.
        """
        self._require_writable()
        if job not in self._registered:
            raise StoreError(f"job {job!r} is not registered on this store; call register_job(spec) first")
        path = self.shard_dir / shard_name(job, ANNOTATION_NUMBER)
        if not rows:
            if path.exists():
                path.unlink()
            return None
        table = build_table(rows, defaults=self.row_defaults(job))
        if path.exists():
            old = read_shard(path, ["sample_id", "concept", "status", "detail"])
            if old.to_pylist() == table.select(["sample_id", "concept", "status", "detail"]).to_pylist():
                return path
            return replace_shard(path, job, table, kind=ANNOTATION_SHARD)
        return write_shard(self.shard_dir, job, ANNOTATION_NUMBER, table, kind=ANNOTATION_SHARD)

    def file_skipped_samples(self, job: str) -> dict[Path, set[str]]:
        """Samples whose every row is a file-level skip (see :func:`is_file_skip`), by the shard holding them.

        A resumed run retries them: the file may have been repaired or restored since.
        """
        out: dict[Path, set[str]] = {}
        for path in self.shards(job):
            if is_annotation_shard(path):
                continue
            table = read_shard(path, ["sample_id", "status", "layer"]).to_pandas()
            file_level = table["status"].map(is_file_skip) & table["layer"].isna()
            only = file_level.groupby(table["sample_id"]).all()
            ids = set(only.index[only.to_numpy()])
            if ids:
                out[path] = ids
        return out

    def replace_samples(self, job: str, shard: str | Path, rows: Any) -> Path:
        """Atomically replace the rows of some samples of one shard of ``job`` by ``rows`` (a retry).

        Every sample in ``rows`` must already be in ``shard``; the shard's other samples are kept unchanged.
        """
        self._require_writable()
        if job not in self._registered:
            raise StoreError(f"job {job!r} is not registered on this store; call register_job(spec) first")
        shard = Path(shard)
        new = build_table(rows, defaults=self.row_defaults(job))
        samples = set(pc.unique(new["sample_id"]).to_pylist())
        old = read_shard(shard)
        stored = set(pc.unique(old["sample_id"]).to_pylist())
        if not samples <= stored:
            raise StoreError(f"{sorted(samples - stored)[:3]} are not stored in {shard}; append them instead")
        kept = old.filter(pc.invert(pc.is_in(old["sample_id"], pa.array(sorted(samples)))))
        return replace_shard(shard, job, pa.concat_tables([kept, new.cast(kept.schema)]))

    # ------------------------------------------------------------------ reading
    def integrity(self, pages: bool = False) -> IntegrityReport:
        """Check the store against its manifest (see :mod:`loce.store.integrity`); changes nothing.

        Args:
            pages: also decode every page (verifies the Parquet page checksums of every shard; reads everything).
                Without it only the shards' footers and key columns are read, and the result is cached until a
                file of ``loces/`` changes.
        """
        if pages:
            return inspect_store(self.path, self.manifest, pages=True)
        signature = (self._listing(), tuple((e["name"], e.get("settings_id")) for e in self.manifest.jobs))
        if self._integrity is None or self._integrity[0] != signature:
            self._integrity = (signature, inspect_store(self.path, self.manifest))
        return self._integrity[1]

    def _listing(self) -> tuple:
        if not self.shard_dir.is_dir():
            return ()
        out = []
        for entry in self.shard_dir.iterdir():
            with contextlib.suppress(FileNotFoundError):
                st = entry.stat()
                out.append((entry.name, st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(sorted(out))

    def check(self) -> None:
        """Raise a :class:`StoreError` naming the files when the store is inconsistent (see :meth:`integrity`).

        Every read and every resume runs it: foreign or unregistered files in ``loces/``, shards with another
        job's rows or settings, and rows stored twice are refused instead of read.
        """
        problems = self.integrity().problems
        if problems:
            more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
            raise StoreError(
                f"{problems[0].message}{more}; `loce check {self.path}` lists the problems and "
                f"`loce check {self.path} --repair` moves the bad files to {self.path / 'quarantine'}"
            )

    def _read_filter(self, filter: ds.Expression | None) -> ds.Expression | None:
        """``filter`` restricted to the preferred jobs where jobs overlap; refuses a read that would mix them."""
        self.check()
        report = self.integrity()
        if not report.overlaps:
            return filter
        prefer = self.prefer_jobs if self.prefer_jobs is not None else _PREFERRED_JOBS.get()
        excluded, mixed = overlapping_jobs_in(report, filter, prefer)
        if mixed:
            first = mixed[0]
            raise StoreError(
                f"{self.path}: {first.describe()}; reading them together would count each LoCE twice. Choose "
                f"the job to read: `loce --jobs {first.jobs[0]} COMMAND ...` (library: "
                f"LoCEStore.open(run, jobs=[{first.jobs[0]!r}]) or job={first.jobs[0]!r})"
            )
        if excluded:
            keep = ~ds.field("job").isin(pa.array(excluded, type=pa.string()))
            filter = keep if filter is None else filter & keep
        return filter

    def table(self, columns: Sequence[str] | None = None, filter: ds.Expression | None = None) -> pa.Table:
        """Rows of every shard as an Arrow table (``columns`` projected, ``filter`` an Arrow dataset expression).

        Raises:
            StoreError: when the store is inconsistent (:meth:`check`), or the read would mix jobs that hold the
                same LoCEs (pass ``job=`` / open with ``jobs=``; ``loce --jobs`` on the command line).
        """
        return self._scan(columns, self._read_filter(filter))

    def _scan(self, columns: Sequence[str] | None, filter: ds.Expression | None) -> pa.Table:
        columns = list(COLUMNS if columns is None else columns)
        unknown = sorted(set(columns) - set(COLUMNS))
        if unknown:
            raise StoreError(f"unknown column(s) {unknown}; the store's columns are {COLUMNS}")
        return scan(self.shards(), columns, filter)

    def _per_job(self, columns: Sequence[str], filter: ds.Expression | None) -> pa.Table:
        """A read that keeps jobs apart (summaries, skip lists): consistency checked, overlaps allowed."""
        self.check()
        return self._scan(columns, filter)

    def verify(self) -> int:
        """Read every shard completely (checksums verified); returns the row count, raises on a damaged shard."""
        return sum(read_shard(path).num_rows for path in self.shards())

    def frame(
        self,
        layer: Selector = None,
        concepts: Selector = None,
        model: Selector = None,
        method: Selector = None,
        job: Selector = None,
        status: Selector = OK,
        columns: Sequence[str] | None = None,
    ):
        """Row metadata as a pandas DataFrame, without decoding vectors or masks unless ``columns`` asks for them.

        Every filter takes one value, a list of values, or ``None`` (no filter); ``status="ok"`` by default.

        Example:
            ``store.frame(layer="_blocks.10", concepts=["car", "bus"])[["sample_id", "concept", "iou"]]``
        """
        expression = filter_expression(
            layer=layer, concept=concepts, model=model, method=method, job=job, status=status
        )
        return self.table(META_COLUMNS if columns is None else columns, expression).to_pandas()

    def skips(self, layer: Selector = None, model: Selector = None, job: Selector = None):
        """The recorded skips (rows whose ``status`` is not ``"ok"``) as a pandas DataFrame."""
        expression = ds.field("status") != OK
        extra = filter_expression(layer=layer, model=model, job=job)
        if extra is not None:
            expression = expression & extra
        return self._per_job(SKIP_COLUMNS, expression).to_pandas()

    def vectors(
        self,
        layer: Selector,
        model: Selector = None,
        method: Selector = "loce",
        concepts: Selector = None,
        job: Selector = None,
        columns: Sequence[str] | None = None,
    ) -> tuple[np.ndarray, Any]:
        """The ``ok`` vectors matching the filters as an ``N x D`` float32 array, and their metadata.

        Args:
            layer: one layer (or a list of layers of equal dimension).
            model: model spec(s); ``None`` = any.
            method: ``"loce"`` by default; a baseline's name for its embeddings.
            concepts: concept name(s); ``None`` = all.
            job: job name(s); ``None`` = any.
            columns: metadata columns to return (default: all but ``vector`` and ``mask_rle``).

        Returns:
            ``(X, meta)``: row ``i`` of ``X`` is the vector of row ``i`` of the pandas DataFrame ``meta``.

        Raises:
            StoreError: when the selected vectors have different dimensions (e.g. two layers); read them per layer
                with :meth:`vectors_by_layer` or concatenate them with :meth:`multilayer_vectors`.

        Example:
            ``X, meta = store.vectors(layer="_blocks.10", concepts=["car", "bus"])``
        """
        meta_columns = [c for c in (META_COLUMNS if columns is None else columns) if c != "vector"]
        needed = list(dict.fromkeys([*meta_columns, "layer", "model", "dim", "vector"]))
        expression = filter_expression(
            layer=layer, concept=concepts, model=model, method=method, job=job, status=OK
        )
        table = self.table(needed, expression)
        _check_single_dim(table)
        X = matrix_from_lists(table["vector"])
        return X, table.select(meta_columns).to_pandas()

    def vectors_by_layer(
        self,
        layers: Selector = None,
        model: Selector = None,
        method: Selector = "loce",
        concepts: Selector = None,
        job: Selector = None,
    ) -> dict[str, tuple[np.ndarray, Any]]:
        """``{layer: (X, meta)}`` for each layer (default: every layer with ok rows), see :meth:`vectors`."""
        if layers is None:
            found = self.table(["layer"], filter_expression(model=model, method=method, job=job, status=OK))
            layers = sorted(pc.unique(found["layer"]).drop_null().to_pylist())
        return {
            name: self.vectors(layer=name, model=model, method=method, concepts=concepts, job=job)
            for name in as_list(layers)
        }

    def multilayer_vectors(
        self,
        layers: Sequence[str],
        model: Selector = None,
        method: Selector = "loce",
        concepts: Selector = None,
        job: Selector = None,
    ) -> tuple[np.ndarray, Any]:
        """Multi-layer LoCEs: each (sample, concept)'s vectors of ``layers`` concatenated in the given order.

        Only (model, method, sample, concept) keys with an ok vector in every layer are returned (sorted by key).

        Returns:
            ``(X, meta)``; ``meta`` has the key columns, ``image``, and one ``iou@<layer>`` column per layer;
            ``meta.attrs["layer_slices"]`` maps each layer to its ``(start, stop)`` columns in ``X``.

        Raises:
            StoreError: when a key appears twice in one layer (two jobs embed it: pass ``job``).

        Example:
            ``X, meta = store.multilayer_vectors(["_blocks.10", "_blocks.14"])``
        """
        layers = as_list(layers) or []
        if len(set(layers)) != len(layers) or not layers:
            raise StoreError(f"multilayer_vectors needs distinct layer names, got {layers}")
        key = ["model", "method", "sample_id", "concept"]
        merged, blocks = None, []
        for index, name in enumerate(layers):
            X, meta = self.vectors(
                layer=name,
                model=model,
                method=method,
                concepts=concepts,
                job=job,
                columns=[*key, "image", "iou"],
            )
            if meta.duplicated(key).any():
                raise StoreError(
                    f"layer {name!r} holds several rows per {key} (more than one job embeds it); pass job=..."
                )
            part = meta.rename(columns={"iou": f"iou@{name}"})
            part[f"_row{index}"] = np.arange(len(part))
            if merged is None:
                merged = part
            else:
                merged = merged.merge(part.drop(columns=["image"]), on=key, how="inner")
            blocks.append(X)
        merged = merged.sort_values(key, kind="stable").reset_index(drop=True)
        parts, slices, start = [], {}, 0
        for index, name in enumerate(layers):
            rows = merged.pop(f"_row{index}").to_numpy()
            block = blocks[index][rows] if len(rows) else np.zeros((0, blocks[index].shape[1]), np.float32)
            parts.append(block)
            slices[name] = (start, start + block.shape[1])
            start += block.shape[1]
        X = np.concatenate(parts, axis=1)
        merged.attrs["layer_slices"] = slices
        return X, merged

    def summary(self, job: Selector = None):
        """Counts and mean IoU per (job, model, method, layer, concept) as a pandas DataFrame.

        Columns: ``n_ok``, ``n_skipped``, ``mean_iou`` (over ok rows), ``not_converged`` (ok rows with IoU 0,
        the paper's criterion).
        """
        frame = self._per_job(
            ["job", "model", "method", "layer", "concept", "status", "iou"], filter_expression(job=job)
        ).to_pandas()
        group = ["job", "model", "method", "layer", "concept"]
        ok = frame["status"] == OK
        frame = frame.assign(
            n_ok=ok.astype(int),
            n_skipped=(~ok).astype(int),
            ok_iou=frame["iou"].where(ok),
            not_converged=(ok & (frame["iou"] == 0)).astype(int),
        )
        out = frame.groupby(group, dropna=False, sort=True).agg(
            n_ok=("n_ok", "sum"),
            n_skipped=("n_skipped", "sum"),
            mean_iou=("ok_iou", "mean"),
            not_converged=("not_converged", "sum"),
        )
        return out.reset_index()


def _check_single_dim(table: pa.Table) -> None:
    """Raise a :class:`StoreError` naming the layers and dims when the selected vectors differ in length."""
    if table.num_rows == 0:
        return
    dims = table.select(["model", "layer", "dim"]).group_by(["model", "layer", "dim"]).aggregate([])
    if len(pc.unique(dims["dim"])) > 1:
        found = ", ".join(
            f"{row['layer']} ({row['model']}): {row['dim']}"
            for row in sorted(dims.to_pylist(), key=lambda r: (r["model"], r["layer"]))
        )
        raise StoreError(
            f"the selected vectors have different dimensions ({found}); read one layer at a time "
            "(vectors_by_layer) or concatenate layers per sample (multilayer_vectors)"
        )
