"""The bad-input corpus, store and environment part: every case is generated here and states its expected outcome.

Store damage: each way of damaging a run (a truncated, zero-byte or garbage shard, a flipped byte in a page or
the footer, a foreign Parquet file, another schema, a copied shard, another job's or settings' rows...) is applied
to a fresh run and gives three cases:

- ``read``: every reader refuses: ``LoCEStore.vectors`` raises a one-line ``StoreError`` naming the file, and
  ``loce info RUN`` exits 1 with that one line on stderr (no traceback);
- ``check``: ``loce check RUN`` exits 1 and reports the problem's kind and the file, changing nothing;
- ``repair``: ``loce check RUN --repair`` moves exactly the bad file(s) to ``RUN/quarantine/`` (byte-identical, never
  deleted), exits 0, and the store reads again with the rows of the intact shards.

Manifest and environment cases (a missing, corrupt or newer manifest, a lock left by a dead process, a read-only
directory, a full disk, ``--out`` on a file, overlapping jobs, a closed pipe, ...) each state their outcome: an
exit code with one stderr line containing a given text, a ``StoreError`` text, or a check of what was accepted.
``docs/RELIABILITY.md`` lists every case.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import loce.store.atomic as atomic
import loce.store.store as store_module
from loce.cli.main import main
from loce.errors import StoreError
from loce.store import JobSpec, LoCEStore
from loce.store.shards import write_shard
from loce.store.table import build_table
from planted_data import write_planted_coco
from store_helpers import rows_for

SPEC = JobSpec("lite0", model="m", layers=("l1", "l2"), settings_id="paper-1234", fit_settings={"steps": 50})
GROUPS = ((0, 1, 2, 4), (5, 6, 8), (9, 11, 12))
FIT = [
    "fit",
    "--model",
    "torchvision:resnet18",
    "--layers",
    "layer2",
    "--input-size",
    "64",
    "64",
    "--no-progress",
]


def make_run(run: Path, specs=(SPEC,), groups=GROUPS) -> Path:
    with LoCEStore.create(run, image_root=run.parent) as store:
        for spec in specs:
            store.register_job(spec)
            for group in groups:
                store.append(spec.name, rows_for(group))
    return run


def n_ok(groups, layer="l1") -> int:
    return sum(r["status"] == "ok" and r["layer"] == layer for g in groups for r in rows_for(g))


def snapshot(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = [
        line for line in captured.err.splitlines() if line.strip() and not line.startswith("loce: warning")
    ]
    assert len(lines) == 1 and lines[0].startswith("loce: error: "), captured.err
    return lines[0]


# ------------------------------------------------------------------------------------------------ store damage
def shard(run: Path, number: int = 2, job: str = "lite0") -> Path:
    return run / "loces" / f"{job}-{number:06d}.parquet"


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def column_chunk(path: Path, column: str):
    meta = pq.ParquetFile(path).metadata.row_group(0)
    names = [meta.column(i).path_in_schema for i in range(meta.num_columns)]
    return meta.column(names.index(column))


def flip_in_column(column: str) -> Callable[[Path], None]:
    def damage(run: Path) -> None:
        chunk = column_chunk(shard(run), column)  # flip a byte of the payload of the chunk's last data page
        start = chunk.dictionary_page_offset if chunk.has_dictionary_page else chunk.data_page_offset
        flip(shard(run), start + chunk.total_compressed_size - 2)

    return damage


def truncate(run: Path) -> None:
    data = shard(run).read_bytes()
    shard(run).write_bytes(data[: len(data) // 2])


def zero_bytes(run: Path) -> None:
    shard(run).write_bytes(b"")


def garbage(run: Path) -> None:
    shard(run).write_bytes(b"this is not a parquet file\n" * 40)


def flip_footer(run: Path) -> None:
    flip(shard(run), len(shard(run).read_bytes()) - 20)


def foreign_parquet(run: Path) -> None:
    pd.DataFrame({"sample_id": ["s0000"], "vector": [[1.0, 2.0]]}).to_parquet(run / "loces" / "extra.parquet")


def directory_named_parquet(run: Path) -> None:
    (run / "loces" / "more.parquet").mkdir()
    (run / "loces" / "more.parquet" / "part-0.parquet").write_bytes(shard(run, 1).read_bytes())


def wrong_schema(run: Path) -> None:
    pq.write_table(pa.table({"a": [1, 2], "b": ["x", "y"]}), shard(run, 4))


def wrong_type(run: Path) -> None:
    table = pq.read_table(shard(run, 3))
    table = table.set_column(table.schema.get_field_index("dim"), "dim", pa.array(["8"] * table.num_rows))
    shard(run, 3).unlink()
    pq.write_table(table, shard(run, 4))


def copied_shard(run: Path) -> None:
    shutil.copy(shard(run, 1), shard(run, 9))


def copied_to_unregistered_job(run: Path) -> None:
    shutil.copy(shard(run, 1), shard(run, 1, job="lite1"))


def other_jobs_shard_renamed(run: Path) -> None:
    with LoCEStore.create(run) as store:
        store.register_job(JobSpec("other", model="m", layers=("l1", "l2"), settings_id="paper-1234"))
        store.append("other", rows_for([30, 31]))
    shard(run, 1, job="other").rename(shard(run, 4))


def rows(indices, **defaults) -> pa.Table:
    return build_table(rows_for(indices), defaults={"job": "lite0", "model": "m", "method": "loce",
                                                    "settings_id": "paper-1234", **defaults})  # fmt: skip


def other_settings(run: Path) -> None:
    write_shard(run / "loces", "lite0", 4, rows([30, 31], settings_id="fast-9999"))


def other_model(run: Path) -> None:
    write_shard(run / "loces", "lite0", 4, rows([30, 31], model="m2"))


def duplicate_rows_inside_a_shard(run: Path) -> None:
    table = rows([30, 31])
    pq.write_table(pa.concat_tables([table, table.slice(0, 3)]), shard(run, 4))


@dataclass(frozen=True)
class Damage:
    id: str
    apply: Callable[[Path], None]
    kind: str  # what `loce check` reports
    names: tuple[str, ...]  # the files the problem names
    moved: tuple[str, ...]  # what --repair moves aside
    kept_groups: tuple = GROUPS  # the groups whose rows read again after --repair
    read: str = "vector"  # the column whose read is refused; `loce info` (key columns) too when "vector"


TWO = lambda n: shard(Path("."), n).name  # noqa: E731 -- file names for the table below

DAMAGES = [
    Damage("shard-truncated", truncate, "unreadable", (TWO(2),), (TWO(2),), (GROUPS[0], GROUPS[2])),
    Damage("shard-zero-bytes", zero_bytes, "unreadable", (TWO(2),), (TWO(2),), (GROUPS[0], GROUPS[2])),
    Damage("shard-garbage", garbage, "unreadable", (TWO(2),), (TWO(2),), (GROUPS[0], GROUPS[2])),
    Damage(
        "shard-footer-byte-flipped", flip_footer, "unreadable", (TWO(2),), (TWO(2),), (GROUPS[0], GROUPS[2])
    ),
    Damage(
        "shard-key-page-byte-flipped",
        flip_in_column("sample_id"),
        "damaged",
        (TWO(2),),
        (TWO(2),),
        (GROUPS[0], GROUPS[2]),
    ),  # fmt: skip
    Damage(
        "shard-vector-page-byte-flipped",
        flip_in_column("vector.list.element"),
        "damaged",
        (TWO(2),),
        (TWO(2),),
        (GROUPS[0], GROUPS[2]),
        read="vector only",
    ),  # fmt: skip
    Damage(
        "shard-mask-page-byte-flipped",
        flip_in_column("mask_rle"),
        "damaged",
        (TWO(2),),
        (TWO(2),),
        (GROUPS[0], GROUPS[2]),
        read="mask_rle only",
    ),  # fmt: skip
    Damage(
        "foreign-parquet-in-loces", foreign_parquet, "foreign_file", ("extra.parquet",), ("extra.parquet",)
    ),
    Damage(
        "directory-named-like-parquet",
        directory_named_parquet,
        "foreign_file",
        ("more.parquet",),
        ("more.parquet",),
    ),  # fmt: skip
    Damage("shard-of-another-schema", wrong_schema, "wrong_schema", (TWO(4),), (TWO(4),)),
    Damage("shard-column-of-another-type", wrong_type, "wrong_schema", (TWO(4),), (TWO(4),), GROUPS[:2]),
    Damage("shard-copied-under-a-new-number", copied_shard, "duplicate_rows", (TWO(1), TWO(9)), (TWO(9),)),
    Damage(
        "shard-copied-under-an-unregistered-job",
        copied_to_unregistered_job,
        "unregistered_job",
        ("lite1-000001.parquet",),
        ("lite1-000001.parquet",),
    ),  # fmt: skip
    Damage("shard-of-another-job-renamed", other_jobs_shard_renamed, "wrong_job", (TWO(4),), (TWO(4),)),
    Damage("shard-fitted-with-other-settings", other_settings, "other_settings", (TWO(4),), (TWO(4),)),
    Damage("shard-of-another-model", other_model, "wrong_job", (TWO(4),), (TWO(4),)),
    Damage(
        "rows-twice-inside-one-shard", duplicate_rows_inside_a_shard, "duplicate_rows", (TWO(4),), (TWO(4),)
    ),
]


@pytest.mark.parametrize("damage", DAMAGES, ids=lambda d: d.id)
def test_damaged_store_is_refused_by_readers(damage, tmp_path, capsys):
    run = make_run(tmp_path / "RUN")
    damage.apply(run)
    store = LoCEStore.open(run)
    with pytest.raises(StoreError) as raised:
        if damage.read == "mask_rle only":
            store.frame(columns=["sample_id", "mask_rle"])
        else:
            store.vectors(layer="l1")
    message = str(raised.value)
    assert "\n" not in message and any(name in message for name in damage.names), message
    if damage.read != "vector":  # a damaged page of a heavy column: metadata reads (`loce info`) still work
        assert main(["info", str(run)]) == 0
        return
    assert main(["info", str(run)]) == 1
    line = one_error_line(capsys)
    assert any(name in line for name in damage.names), line


@pytest.mark.parametrize("damage", DAMAGES, ids=lambda d: d.id)
def test_damaged_store_is_reported_by_check_without_changes(damage, tmp_path, capsys):
    run = make_run(tmp_path / "RUN")
    damage.apply(run)
    before = snapshot(run)
    assert main(["check", str(run)]) == 1
    captured = capsys.readouterr()
    assert captured.err == ""
    assert f"problem ({damage.kind})" in captured.out, captured.out
    assert all(name in captured.out for name in damage.names), captured.out
    assert snapshot(run) == before


@pytest.mark.parametrize("damage", DAMAGES, ids=lambda d: d.id)
def test_damaged_store_is_repaired_by_moving_files_aside(damage, tmp_path, capsys):
    run = make_run(tmp_path / "RUN")
    damage.apply(run)
    before = snapshot(run)
    assert main(["check", str(run), "--repair"]) == 0
    out = capsys.readouterr().out
    assert "moving" in out and out.index("moving") < out.index("the store reads again")
    moved = sorted(p.name for p in (run / "quarantine").iterdir())
    assert moved == sorted(damage.moved)
    for name in damage.moved:
        source = next(k for k in before if k.startswith(f"loces/{name}"))
        if (run / "quarantine" / name).is_file():
            assert (run / "quarantine" / name).read_bytes() == before[source]  # moved, byte-identical
    X, _ = LoCEStore.open(run).vectors(layer="l1")
    assert X.shape[0] == n_ok(damage.kept_groups)
    assert main(["check", str(run)]) == 0


# ------------------------------------------------------------------------------------------ manifest, environment
@dataclass(frozen=True)
class Env:
    id: str
    run: Callable[[Path, pytest.MonkeyPatch, object], None]  # does the case and asserts its outcome
    outcome: str  # for the table in docs/RELIABILITY.md


def _manifest(run: Path) -> dict:
    return json.loads((run / "manifest.json").read_text())


def _write_manifest(run: Path, data) -> None:
    (run / "manifest.json").write_text(json.dumps(data) if not isinstance(data, str) else data)


def _cli_error(argv, text: str, capsys, code: int = 1) -> None:
    assert main([str(a) for a in argv]) == code
    assert text in one_error_line(capsys)


def manifest_missing(tmp, monkeypatch, capsys):
    run = make_run(tmp / "RUN")
    (run / "manifest.json").unlink()
    _cli_error(["info", run], "manifest.json does not exist", capsys)
    with pytest.raises(StoreError, match=r"holds shards but .*manifest.json is missing"):
        LoCEStore.create(run)


def manifest_corrupt(tmp, monkeypatch, capsys):
    run = make_run(tmp / "RUN")
    _write_manifest(run, (run / "manifest.json").read_text()[:50])
    _cli_error(["check", run], "manifest.json cannot be read as JSON", capsys)


def manifest_not_loce(tmp, monkeypatch, capsys):
    run = make_run(tmp / "RUN")
    _write_manifest(run, {"format": "something-else", "jobs": []})
    _cli_error(["info", run], "is not a LoCE store manifest", capsys)


def manifest_newer_major(tmp, monkeypatch, capsys):
    run = make_run(tmp / "RUN")
    _write_manifest(run, {**_manifest(run), "format_version": "2.0"})
    _cli_error(["info", run], "has store format 2.0, a newer format", capsys)


def manifest_newer_minor(tmp, monkeypatch, capsys):
    run = make_run(tmp / "RUN")
    data = _manifest(run)
    data["format_version"], data["future"] = "1.9", {"kept": True}
    data["jobs"][0]["future_job_key"] = [1, 2]
    _write_manifest(run, data)
    with LoCEStore.create(run) as store:
        store.register_job(JobSpec("new", model="m", layers=("l3",)))
    after = _manifest(run)
    assert after["format_version"] == "1.9" and after["future"] == {"kept": True}
    assert after["jobs"][0]["future_job_key"] == [1, 2]
    assert LoCEStore.open(run).vectors(layer="l1")[0].shape[0] == n_ok(GROUPS)


def manifest_jobs_malformed(tmp, monkeypatch, capsys):
    run = make_run(tmp / "RUN")
    _write_manifest(run, {**_manifest(run), "jobs": [{"layers": []}]})
    _cli_error(["info", run], 'manifest.json is damaged: "jobs" must be a list', capsys)


def manifest_bad_version_text(tmp, monkeypatch, capsys):
    run = make_run(tmp / "RUN")
    _write_manifest(run, {**_manifest(run), "format_version": "one"})
    _cli_error(["info", run], "unrecognised store format version 'one'", capsys)


def lock_left_by_dead_process(tmp, monkeypatch, capsys):
    run = make_run(tmp / "RUN")
    code = ("import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
            "fcntl.flock(fd, fcntl.LOCK_EX); os._exit(0)")  # fmt: skip
    import subprocess

    subprocess.run([sys.executable, "-c", code, str(run / ".lock")], check=True, timeout=60)
    assert (run / ".lock").exists()
    with LoCEStore.create(run) as store:  # the kernel released the dead writer's lock
        store.register_job(SPEC)
        store.append("lite0", rows_for([20]))


def lock_held_by_a_live_writer(tmp, monkeypatch, capsys):
    run = make_run(tmp / "RUN")
    with LoCEStore.create(run), pytest.raises(StoreError, match=r"another process is writing to .*\.lock"):
        LoCEStore.create(run)
    assert LoCEStore.open(run).vectors(layer="l1")[0].shape[0] == n_ok(GROUPS)  # reading needs no lock


def temp_files_of_a_killed_writer(tmp, monkeypatch, capsys):
    run = make_run(tmp / "RUN")
    ours = [atomic.temp_path_for(run / "manifest.json"), atomic.temp_path_for(shard(run, 4))]
    users = [run / ".my-notes.tmp", run / "loces" / ".draft.tmp"]
    for path in ours + users:
        path.write_bytes(b"partial")
    LoCEStore.create(run).close()
    assert not any(p.exists() for p in ours) and all(p.exists() for p in users)


def read_only_run_directory(tmp, monkeypatch, capsys):
    run = make_run(tmp / "RUN")
    real_open = store_module.os.open

    def refuse(path, *args, **kwargs):
        if str(path).startswith(str(run)):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(store_module.os, "open", refuse)
    with pytest.raises(StoreError, match=r"RUN is not writable \(Permission denied\)"):
        LoCEStore.create(run)
    assert LoCEStore.open(run).vectors(layer="l1")[0].shape[0] == n_ok(GROUPS)


def disk_full_while_writing_a_shard(tmp, monkeypatch, capsys):
    run = make_run(tmp / "RUN")
    before = snapshot(run)
    with LoCEStore.create(run) as store:
        store.register_job(SPEC)
        monkeypatch.setattr(
            atomic.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space"))
        )
        with pytest.raises(StoreError, match=r"cannot write .*lite0-000004\.parquet \(No space\)"):
            store.append("lite0", rows_for([20]))
        monkeypatch.undo()
    assert snapshot(run) == before  # no partial shard, no temp file, the earlier shards intact


def disk_full_during_fit(tmp, monkeypatch, capsys):
    ann, images = write_planted_coco(tmp / "data", n=2)
    monkeypatch.setattr(
        atomic.os, "fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space"))
    )
    _cli_error([*FIT, "--coco", ann, "--images", images, "--out", tmp / "run"], "(No space); nothing partial",
               capsys)  # fmt: skip
    assert not [p for p in (tmp / "run").rglob("*") if p.name.endswith(".tmp")]


def out_is_a_file(tmp, monkeypatch, capsys):
    ann, images = write_planted_coco(tmp / "data", n=2)
    (tmp / "afile").write_text("keep")
    _cli_error([*FIT, "--coco", ann, "--images", images, "--out", tmp / "afile"], "afile is a file, not a run",
               capsys)  # fmt: skip
    assert (tmp / "afile").read_text() == "keep"


def out_inside_a_file(tmp, monkeypatch, capsys):
    (tmp / "afile").write_text("keep")
    with pytest.raises(StoreError, match=r"cannot write .*afile/RUN \(Not a directory\)"):
        LoCEStore.create(tmp / "afile" / "RUN")


def info_on_a_file(tmp, monkeypatch, capsys):
    (tmp / "afile").write_text("keep")
    _cli_error(["info", tmp / "afile"], "afile/manifest.json does not exist", capsys)


def check_on_an_empty_directory(tmp, monkeypatch, capsys):
    (tmp / "empty").mkdir()
    _cli_error(["check", tmp / "empty"], "empty/manifest.json does not exist", capsys)


def run_without_shards(tmp, monkeypatch, capsys):
    run = make_run(tmp / "RUN", groups=())
    assert main(["check", str(run)]) == 0 and "no problems" in capsys.readouterr().out
    shutil.rmtree(run / "loces")
    assert main(["check", str(run)]) == 0 and LoCEStore.open(run).frame().empty


def notes_next_to_the_shards(tmp, monkeypatch, capsys):
    run = make_run(tmp / "RUN")
    (run / "loces" / "README.txt").write_text("my notes")
    assert main(["check", str(run)]) == 0
    assert LoCEStore.open(run).vectors(layer="l1")[0].shape[0] == n_ok(GROUPS)


def overlapping_jobs(tmp, monkeypatch, capsys):
    twin = JobSpec("lite0b", model="m", layers=("l1", "l2"), settings_id="paper-5678")
    run = make_run(tmp / "RUN", specs=(SPEC, twin))
    with pytest.raises(StoreError, match=r"jobs 'lite0', 'lite0b' both hold.*`loce --jobs lite0 COMMAND"):
        LoCEStore.open(run).vectors(layer="l1")
    assert main(["check", str(run)]) == 0 and "note: jobs 'lite0', 'lite0b'" in capsys.readouterr().err
    assert LoCEStore.open(run, jobs=["lite0b"]).vectors(layer="l1")[0].shape[0] == n_ok(GROUPS)


def unknown_job_choice(tmp, monkeypatch, capsys):
    run = make_run(tmp / "RUN")
    _cli_error(["--jobs", "nope", "info", run], "has no job 'nope'; its jobs are ['lite0']", capsys)
    _cli_error(["info", run, "--jobs", "nope"], "has no job 'nope'", capsys)  # after the command too


def invalid_job_name(tmp, monkeypatch, capsys):
    with (
        LoCEStore.create(tmp / "RUN") as store,
        pytest.raises(StoreError, match="cannot be used in shard file"),
    ):
        store.register_job(JobSpec("../escape", model="m", layers=("l1",)))


def image_root_changed(tmp, monkeypatch, capsys):
    run = make_run(tmp / "RUN")
    with pytest.raises(StoreError, match="stores image paths relative to"):
        LoCEStore.create(run, image_root=tmp / "elsewhere")


def resume_with_other_settings(tmp, monkeypatch, capsys):
    run = make_run(tmp / "RUN")
    changed = JobSpec(
        "lite0", model="m", layers=("l1", "l2"), settings_id="paper-1234", fit_settings={"steps": 9}
    )
    with (
        LoCEStore.create(run) as store,
        pytest.raises(StoreError, match=r"fit_settings\.steps: stored 50, requ"),
    ):
        store.register_job(changed)


def output_into_a_closed_pipe(tmp, monkeypatch, capsys):
    run = make_run(tmp / "RUN")

    class ClosedPipe:
        def write(self, text):
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

        flush = write

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main(["info", str(run), "--skips"]) == 141
    monkeypatch.undo()
    assert capsys.readouterr().err == ""


def debug_after_the_command(tmp, monkeypatch, capsys):
    with pytest.raises(StoreError):
        main(["info", str(tmp / "missing"), "--debug"])
    _cli_error(["info", tmp / "missing"], "missing/manifest.json does not exist", capsys)


ENV = [
    Env(
        "manifest-missing",
        manifest_missing,
        'info: exit 1, "manifest.json does not exist"; resume refused: '
        '"holds shards but ... manifest.json is missing"',
    ),  # fmt: skip
    Env("manifest-corrupt-json", manifest_corrupt, 'check: exit 1, "manifest.json cannot be read as JSON"'),
    Env("manifest-of-another-format", manifest_not_loce, 'info: exit 1, "is not a LoCE store manifest"'),
    Env("manifest-newer-major", manifest_newer_major, 'info: exit 1, "has store format 2.0, a newer format"'),
    Env(
        "manifest-newer-minor",
        manifest_newer_minor,
        "accepted; a rewrite keeps its version and unknown keys (top level and per job)",
    ),  # fmt: skip
    Env("manifest-jobs-malformed", manifest_jobs_malformed, 'info: exit 1, "manifest.json is damaged"'),
    Env(
        "manifest-version-not-a-number",
        manifest_bad_version_text,
        "info: exit 1, \"unrecognised store format version 'one'\"",
    ),  # fmt: skip
    Env(
        "lock-left-by-a-dead-process",
        lock_left_by_dead_process,
        "accepted: the kernel released the lock; the run resumes",
    ),  # fmt: skip
    Env(
        "lock-held-by-a-live-writer",
        lock_held_by_a_live_writer,
        '`StoreError`: "another process is writing to ... .lock"; reading still works',
    ),  # fmt: skip
    Env(
        "temp-files-of-a-killed-writer",
        temp_files_of_a_killed_writer,
        "accepted: loce's temp files removed, the user's `.my-notes.tmp` and `loces/.draft.tmp` kept",
    ),  # fmt: skip
    Env(
        "read-only-run-directory",
        read_only_run_directory,
        '`StoreError`: "RUN is not writable (Permission denied)"; reading still works',
    ),  # fmt: skip
    Env(
        "disk-full-while-writing-a-shard",
        disk_full_while_writing_a_shard,
        '`StoreError`: "cannot write ... lite0-000004.parquet (No space)"; the directory byte-identical',
    ),  # fmt: skip
    Env(
        "disk-full-during-fit",
        disk_full_during_fit,
        'fit: exit 1, one line "... (No space); nothing partial was kept"; no temp file left',
    ),  # fmt: skip
    Env(
        "out-is-a-file",
        out_is_a_file,
        'fit: exit 1, "afile is a file, not a run directory"; the file untouched',
    ),
    Env(
        "out-inside-a-file", out_inside_a_file, '`StoreError`: "cannot write ... afile/RUN (Not a directory)"'
    ),
    Env("info-on-a-file", info_on_a_file, 'info: exit 1, "afile/manifest.json does not exist"'),
    Env(
        "check-on-an-empty-directory",
        check_on_an_empty_directory,
        'check: exit 1, "manifest.json does not exist"',
    ),  # fmt: skip
    Env("run-without-shards", run_without_shards, "check: exit 0, no problems (also without `loces/`)"),
    Env(
        "notes-next-to-the-shards",
        notes_next_to_the_shards,
        "accepted: a non-Parquet file in `loces/` is left alone",
    ),  # fmt: skip
    Env(
        "overlapping-jobs",
        overlapping_jobs,
        "`StoreError`: \"jobs 'lite0', 'lite0b' both hold ... `loce --jobs "
        'lite0 COMMAND`"; check: exit 0 with a note; read with `jobs=`',
    ),  # fmt: skip
    Env(
        "unknown-job-choice",
        unknown_job_choice,
        "`--jobs nope` (before or after the command): exit 1, \"has no job 'nope'\"",
    ),  # fmt: skip
    Env("invalid-job-name", invalid_job_name, '`StoreError`: "cannot be used in shard file names"'),
    Env("image-root-changed", image_root_changed, '`StoreError`: "stores image paths relative to"'),
    Env(
        "resume-with-other-settings",
        resume_with_other_settings,
        '`StoreError`: "fit_settings.steps: stored 50, requested 9"',
    ),  # fmt: skip
    Env("output-into-a-closed-pipe", output_into_a_closed_pipe, "exit 141, nothing on stderr"),
    Env(
        "debug-after-the-command",
        debug_after_the_command,
        "`loce info RUN --debug` raises (traceback); without it one line",
    ),  # fmt: skip
]


@pytest.mark.parametrize("case", ENV, ids=lambda c: c.id)
def test_environment_case(case, tmp_path, monkeypatch, capsys):
    case.run(tmp_path, monkeypatch, capsys)


def test_corpus_size():
    assert len(DAMAGES) * 3 + len(ENV) >= 40


def test_reliability_doc_lists_every_store_case():
    text = (Path(__file__).parents[1] / "docs" / "RELIABILITY.md").read_text(encoding="utf-8")
    section = text.split("## Store and environment", 1)[1].split("\n## ", 1)[0]
    missing = [d.id for d in DAMAGES if f"| `{d.id}` |" not in section]
    missing += [c.id for c in ENV if f"| `{c.id}` |" not in section]
    assert not missing, f"docs/RELIABILITY.md lacks the store cases {missing}"


def reliability_table() -> str:
    """The markdown rows of docs/RELIABILITY.md's store table (``python tests/test_corpus_store.py``)."""
    lines = [
        "| case | read (`vectors`, `loce info`) | `loce check` | `loce check --repair` moves |",
        "| --- | --- | --- | --- |",
    ]
    for d in DAMAGES:
        names = ", ".join(f'"{n}"' for n in d.names)
        read = ("`StoreError` / `loce info` exit 1" if d.read == "vector" else
                f"`StoreError` reading {d.read.split()[0]} (metadata reads work)")  # fmt: skip
        lines.append(f"| `{d.id}` | {read}, naming {names} | exit 1, `{d.kind}` | {', '.join(d.moved)} |")
    lines += ["", "| case | outcome |", "| --- | --- |"]
    lines += [f"| `{c.id}` | {c.outcome} |" for c in ENV]
    return "\n".join(lines)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONPATH", "src")
    print(reliability_table())
