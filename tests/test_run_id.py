"""The run id in the manifest: new runs get one, old runs get a derived one that readers never write."""

from __future__ import annotations

import json
import re

import pytest

from loce.errors import StoreError
from loce.store import JobSpec, LoCEStore, read_manifest
from loce.store.manifest import derived_run_id


def _run(path):
    with LoCEStore.create(path) as store:
        store.register_job(JobSpec("toy", model="toy-model", layers=["l1"]))
    return path


def test_a_new_run_records_a_random_run_id(tmp_path):
    a, b = _run(tmp_path / "a"), _run(tmp_path / "b")
    ids = [json.loads((run / "manifest.json").read_text())["run_id"] for run in (a, b)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids) and ids[0] != ids[1]
    assert LoCEStore.open(a).run_id == ids[0]
    with LoCEStore.create(a) as store:  # resuming keeps it
        store.register_job(JobSpec("other", model="toy-model", layers=["l2"]))
    assert LoCEStore.open(a).run_id == ids[0]


def test_an_old_run_gets_a_derived_id_that_readers_do_not_write(tmp_path):
    run = _run(tmp_path / "old")
    manifest = run / "manifest.json"
    data = json.loads(manifest.read_text())
    del data["run_id"]  # a run written before run ids
    manifest.write_text(json.dumps(data, indent=2))
    before = manifest.read_bytes()

    derived = derived_run_id(data)
    assert LoCEStore.open(run).run_id == derived == read_manifest(run).run_id
    assert not read_manifest(run).run_id_recorded
    assert manifest.read_bytes() == before  # reading changed nothing

    with LoCEStore.create(run):  # the first writer records the id the readers derived
        pass
    assert json.loads(manifest.read_text())["run_id"] == derived
    assert LoCEStore.open(run).run_id == derived and read_manifest(run).run_id_recorded


def test_a_damaged_run_id_is_refused_naming_the_manifest(tmp_path):
    run = _run(tmp_path / "bad")
    manifest = run / "manifest.json"
    data = json.loads(manifest.read_text())
    data["run_id"] = "not an id"
    manifest.write_text(json.dumps(data))
    with pytest.raises(StoreError, match=r"manifest\.json is damaged: \"run_id\""):
        LoCEStore.open(run)


def test_loce_info_names_the_run_by_full_path_and_run_id(tmp_path, capsys):
    from loce.cli.main import main

    run = _run(tmp_path / "RUN")
    assert main(["info", str(run)]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first == f"run {run.resolve()} (run id {LoCEStore.open(run).run_id})"
