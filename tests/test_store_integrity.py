"""A self-checking store: copied, foreign, other-settings and duplicate shards are refused by every reader;
overlapping jobs need an explicit choice; `loce check` finds damage (page checksums) and `--repair` moves it aside;
loce removes only its own temp files; a newer minor manifest keeps its unknown keys."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

import loce.store.store as store_module
from loce.cli.main import main
from loce.errors import StoreError
from loce.store import JobSpec, LoCEStore, read_manifest
from store_helpers import rows_for

SPEC = JobSpec("lite0", model="m", layers=("l1", "l2"), settings_id="paper-1234", fit_settings={"steps": 50})
GROUPS = ((0, 1, 2, 4), (5, 6, 8))


def make_run(run: Path, specs=(SPEC,), groups=GROUPS) -> Path:
    with LoCEStore.create(run, image_root=run.parent) as store:
        for spec in specs:
            store.register_job(spec)
            for group in groups:
                store.append(spec.name, rows_for(group))
    return run


@pytest.fixture
def run(tmp_path) -> Path:
    return make_run(tmp_path / "RUN")


def n_ok(indices, layer="l1") -> int:
    return sum(r["status"] == "ok" and r["layer"] == layer for r in rows_for(indices))


READERS = {
    "vectors": lambda s: s.vectors(layer="l1"),
    "vectors_by_layer": lambda s: s.vectors_by_layer(),
    "multilayer_vectors": lambda s: s.multilayer_vectors(["l1", "l2"]),
    "frame": lambda s: s.frame(),
    "table": lambda s: s.table(["sample_id"]),
    "summary": lambda s: s.summary(),
    "skips": lambda s: s.skips(),
}


# ---------------------------------------------------------------- point 2: duplicate and foreign rows
@pytest.mark.parametrize("reader", sorted(READERS))
def test_a_shard_copied_under_a_new_number_is_refused_by_every_reader(run, reader):
    shutil.copy(run / "loces" / "lite0-000001.parquet", run / "loces" / "lite0-000009.parquet")
    with pytest.raises(StoreError, match=r"twice.*lite0-000001\.parquet, lite0-000009\.parquet.*loce check"):
        READERS[reader](LoCEStore.open(run))


def test_a_shard_copied_under_an_unregistered_job_name_is_refused(run):
    shutil.copy(run / "loces" / "lite0-000002.parquet", run / "loces" / "lite1-000001.parquet")
    with pytest.raises(StoreError, match=r"lite1-000001\.parquet belongs to job 'lite1'.*does not list"):
        LoCEStore.open(run).vectors(layer="l1")


def test_a_shard_of_another_job_renamed_into_this_job_is_refused(tmp_path):
    other = JobSpec("other", model="m", layers=("l1", "l2"), settings_id="paper-1234")
    run = make_run(tmp_path / "RUN", specs=(SPEC,), groups=((0, 1),))
    with LoCEStore.create(run) as store:
        store.register_job(other)
        store.append("other", rows_for([20, 21]))
    (run / "loces" / "other-000001.parquet").rename(run / "loces" / "lite0-000002.parquet")
    with pytest.raises(
        StoreError, match=r"lite0-000002\.parquet is named for job 'lite0' but holds rows with job"
    ):
        LoCEStore.open(run).frame()


def test_a_shard_fitted_with_other_settings_is_refused(run):
    from loce.store.shards import write_shard
    from loce.store.table import build_table

    defaults = {"job": "lite0", "model": "m", "method": "loce", "settings_id": "fast-9999"}
    write_shard(run / "loces", "lite0", 3, build_table(rows_for([30, 31]), defaults=defaults))
    with pytest.raises(
        StoreError, match=r"lite0-000003\.parquet holds rows fitted with settings \['fast-9999'\]"
    ):
        LoCEStore.open(run).vectors(layer="l1")


def test_a_foreign_parquet_file_in_loces_is_refused(run):
    pd.DataFrame({"sample_id": ["a"], "vector": [[1.0, 2.0]]}).to_parquet(run / "loces" / "extra.parquet")
    with pytest.raises(StoreError, match=r"extra\.parquet is a Parquet file but not a shard of this run"):
        LoCEStore.open(run).vectors(layer="l1")
    (run / "loces" / "extra.parquet").unlink()
    (run / "loces" / "notes.txt").write_text("my own notes")  # not Parquet: nobody reads it, it is left alone
    assert LoCEStore.open(run).vectors(layer="l1")[0].shape[0] == n_ok([0, 1, 2, 4, 5, 6, 8])


def test_overlapping_jobs_are_read_only_with_an_explicit_job_choice(tmp_path):
    from loce.store.store import preferred_jobs

    twin = JobSpec(
        "lite0b", model="m", layers=("l1", "l2"), settings_id="paper-5678", fit_settings={"steps": 9}
    )
    run = make_run(tmp_path / "RUN", specs=(SPEC, twin))
    store = LoCEStore.open(run)
    expected = n_ok([0, 1, 2, 4, 5, 6, 8])
    with pytest.raises(StoreError, match=r"jobs 'lite0', 'lite0b' both hold loce vectors.*loce --jobs lite0"):
        store.vectors(layer="l1")
    with pytest.raises(StoreError, match="count each LoCE twice"):
        store.frame(concepts="cat")
    assert store.vectors(layer="l1", job="lite0")[0].shape[0] == expected
    assert LoCEStore.open(run, jobs=["lite0b"]).vectors(layer="l1")[1]["job"].eq("lite0b").all()
    with preferred_jobs(["lite0"]):
        X, meta = LoCEStore.open(run).vectors(layer="l1")
    assert X.shape[0] == expected and set(meta["job"]) == {"lite0"}
    assert set(store.summary()["job"]) == {"lite0", "lite0b"}  # per-job summaries keep jobs apart
    with pytest.raises(StoreError, match="has no job 'nope'"):
        LoCEStore.open(run, jobs=["nope"])


def test_jobs_that_do_not_overlap_read_together(tmp_path):
    other_layer = JobSpec("l3job", model="m", layers=("l3",), settings_id="paper-1234")
    run = make_run(tmp_path / "RUN", groups=((0, 1, 2),))
    with LoCEStore.create(run) as store:
        store.register_job(other_layer)
        rows = [dict(r, layer="l3") for r in rows_for([0, 1, 2]) if r.get("layer") == "l1"]
        store.append("l3job", rows)
    frame = LoCEStore.open(run).frame()
    assert set(frame["layer"]) == {"l1", "l2", "l3"} and not frame.duplicated(["job", "sample_id", "concept",
                                                                                "layer"]).any()  # fmt: skip


def test_the_consistency_check_is_cached_and_reads_only_key_columns(run, monkeypatch):
    calls = []
    real = store_module.inspect_store
    monkeypatch.setattr(store_module, "inspect_store", lambda *a, **k: calls.append(1) or real(*a, **k))
    read_columns = []
    real_read = pq.ParquetFile.read
    monkeypatch.setattr(pq.ParquetFile, "read", lambda self, columns=None, **k: read_columns.append(columns)
                        or real_read(self, columns=columns, **k))  # fmt: skip
    store = LoCEStore.open(run)
    for _ in range(3):
        store.vectors(layer="l1")
    assert len(calls) == 1
    assert read_columns and all(
        c is not None and "vector" not in c and "mask_rle" not in c for c in read_columns
    )
    shutil.copy(run / "loces" / "lite0-000001.parquet", run / "loces" / "lite0-000003.parquet")
    with pytest.raises(StoreError, match="twice"):  # a changed directory is checked again
        store.vectors(layer="l1")


def test_a_resume_refuses_a_store_with_duplicate_rows(run):
    shutil.copy(run / "loces" / "lite0-000001.parquet", run / "loces" / "lite0-000005.parquet")
    with pytest.raises(StoreError, match="lite0-000005.parquet"):
        LoCEStore.create(run)


# ---------------------------------------------------------------- loce check / --repair
def flip_byte_in_vector_page(path: Path) -> None:
    meta = pq.ParquetFile(path).metadata
    names = [meta.row_group(0).column(i).path_in_schema for i in range(meta.num_columns)]
    chunk = meta.row_group(0).column(names.index("vector.list.element"))
    offset = chunk.data_page_offset + chunk.total_compressed_size // 2
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_check_reports_a_flipped_byte_that_key_reads_miss_and_repair_moves_it_aside(run, capsys):
    shard = run / "loces" / "lite0-000002.parquet"
    flip_byte_in_vector_page(shard)
    damaged = shard.read_bytes()
    LoCEStore.open(run).frame()  # metadata reads do not decode the damaged vector page
    assert main(["check", str(run)]) == 1
    out = capsys.readouterr().out
    assert "problem (damaged)" in out and "lite0-000002.parquet" in out and "--repair" in out
    assert shard.read_bytes() == damaged  # check changes nothing
    assert main(["check", str(run), "--repair"]) == 0
    out = capsys.readouterr().out
    assert out.index("lite0-000002.parquet -> ") < out.index("the store reads again")
    assert (run / "quarantine" / "lite0-000002.parquet").read_bytes() == damaged  # moved, never deleted
    assert main(["check", str(run)]) == 0 and "no problems" in capsys.readouterr().out


def test_repair_moves_the_later_duplicate_and_the_foreign_file(run, capsys):
    shutil.copy(run / "loces" / "lite0-000001.parquet", run / "loces" / "lite0-000007.parquet")
    shutil.copy(run / "loces" / "lite0-000001.parquet", run / "loces" / "copy.parquet")
    assert main(["check", str(run), "--repair"]) == 0
    assert sorted(p.name for p in (run / "quarantine").iterdir()) == ["copy.parquet", "lite0-000007.parquet"]
    assert sorted(p.name for p in (run / "loces").iterdir()) == [
        "lite0-000001.parquet",
        "lite0-000002.parquet",
    ]
    assert LoCEStore.open(run).vectors(layer="l1")[0].shape[0] == n_ok([0, 1, 2, 4, 5, 6, 8])
    capsys.readouterr()
    # A second copy of the same name does not overwrite the first one in quarantine.
    shutil.copy(run / "loces" / "lite0-000001.parquet", run / "loces" / "lite0-000007.parquet")
    assert main(["check", str(run), "--repair"]) == 0
    assert sorted(p.name for p in (run / "quarantine").iterdir()) == [
        "copy.parquet", "lite0-000007.parquet", "lite0-000007.parquet.1"]  # fmt: skip


def test_check_notes_overlapping_jobs_without_failing(tmp_path, capsys):
    twin = JobSpec("lite0b", model="m", layers=("l1", "l2"), settings_id="paper-5678")
    run = make_run(tmp_path / "RUN", specs=(SPEC, twin), groups=((0, 1),))
    assert main(["check", str(run)]) == 0
    assert "note: jobs 'lite0', 'lite0b' both hold" in capsys.readouterr().err  # notes go to stderr


# ---------------------------------------------------------------- point 10: only loce's own temp files
def test_opening_for_writing_removes_only_loces_own_temp_files(run):
    mine = [run / ".my-notes.tmp", run / "loces" / ".draft.tmp", run / ".x.2.tmp"]
    for path in mine:
        path.write_text("the user's")
    from loce.store.atomic import temp_path_for

    stale = [temp_path_for(run / "manifest.json"), temp_path_for(run / "loces" / "lite0-000003.parquet")]
    for path in stale:
        path.write_bytes(b"half")
    LoCEStore.create(run).close()
    assert all(p.read_text() == "the user's" for p in mine)
    assert not any(p.exists() for p in stale)


# ---------------------------------------------------------------- point 16: newer minor manifest
def test_a_newer_minor_manifest_keeps_its_unknown_keys_when_rewritten(run):
    path = run / "manifest.json"
    data = json.loads(path.read_text())
    data["format_version"] = "1.9"
    data["provenance"] = {"written_by": "loce 9.0", "signed": True}
    data["jobs"][0]["model_identity"] = {"fingerprint": "ab" * 32}
    path.write_text(json.dumps(data))
    with LoCEStore.create(run) as store:
        store.register_job(JobSpec("new", model="m", layers=("l1",)))
    after = json.loads(path.read_text())
    assert after["format_version"] == "1.9"
    assert after["provenance"] == {"written_by": "loce 9.0", "signed": True}
    assert after["jobs"][0]["model_identity"] == {"fingerprint": "ab" * 32}
    assert [j["name"] for j in after["jobs"]] == ["lite0", "new"]
    assert read_manifest(run).extra == {"provenance": {"written_by": "loce 9.0", "signed": True}}
