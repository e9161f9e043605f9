"""kill -9 at random moments, restart until done: the store ends with exactly the rows of an uninterrupted run.

A writer script (run as a subprocess) appends deterministic rows of 30 samples in shards of 3 images through the
store API, sleeping between shards; its ``os.replace`` is slowed down so that kills also land between "temp file
written" and "renamed". The test kills it with SIGKILL at seeded random moments (and once exactly while a temp
file exists), checks after every kill that every shard on disk is complete, restarts it until it finishes, and
compares the final table with an uninterrupted run's.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow.compute as pc
import pytest

from loce.store import KEY_COLUMNS, LoCEStore

TESTS_DIR = Path(__file__).parent
N_SAMPLES = 30
PER_SHARD = 3

WRITER = textwrap.dedent(
    f"""
    import os, sys, time
    sys.path.insert(0, {str(TESTS_DIR)!r})
    from store_helpers import rows_for
    from loce.store import JobSpec, LoCEStore

    real_replace = os.replace

    def slow_replace(src, dst):  # widen the window between "temp file complete" and "renamed"
        time.sleep(0.03)
        real_replace(src, dst)

    os.replace = slow_replace
    run = sys.argv[1]
    spec = JobSpec("j", model="m", layers=["l1", "l2"], fit_settings={{"steps": 50}}, settings_id="s1", seed=0)
    with LoCEStore.create(run, image_root=run) as store:
        store.register_job(spec)
        done = store.completed_samples("j")
        todo = [i for i in range({N_SAMPLES}) if f"s{{i:04d}}" not in done]
        print("ready", len(todo), flush=True)
        for start in range(0, len(todo), {PER_SHARD}):
            store.append("j", rows_for(todo[start : start + {PER_SHARD}]))
            time.sleep(0.02)
    print("done", flush=True)
    """
)


def start_writer(script: Path, run: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(script), str(run)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_ready(proc: subprocess.Popen) -> int:
    """Wait for the writer's "ready N" line; returns N, the number of samples it still has to write."""
    line = proc.stdout.readline()
    assert line.startswith("ready"), proc.stderr.read()
    return int(line.split()[1])


def temp_files(run: Path) -> list[Path]:
    return [p for d in (run, run / "loces") if d.is_dir() for p in d.iterdir() if p.name.endswith(".tmp")]


def sorted_table(run: Path):
    table = LoCEStore.open(run).table()
    return table.sort_by([(c, "ascending") for c in KEY_COLUMNS])


def assert_no_duplicate_keys(table) -> None:
    counts = table.group_by(KEY_COLUMNS).aggregate([([], "count_all")])
    assert pc.max(counts["count_all"]).as_py() == 1


def shard_count(run: Path) -> int:
    return len(list((run / "loces").glob("*.parquet"))) if (run / "loces").is_dir() else 0


def wait_for_shards(proc: subprocess.Popen, run: Path, count: int, timeout: float = 30.0) -> None:
    deadline = time.perf_counter() + timeout
    while shard_count(run) < count and proc.poll() is None and time.perf_counter() < deadline:
        time.sleep(0.002)


@pytest.mark.slow
def test_killed_runs_resume_to_the_same_rows(tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(WRITER)

    reference = tmp_path / "reference"
    proc = start_writer(script, reference)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "done" in stdout, stderr
    expected = sorted_table(reference)
    assert len(LoCEStore.open(reference).completed_samples("j")) == N_SAMPLES

    run = tmp_path / "killed"
    rng = random.Random(1234)
    interrupted, temp_left = 0, 0
    for attempt in range(6):
        proc = start_writer(script, run)
        if attempt == 0:
            time.sleep(rng.uniform(0.0, 0.4))  # may land in start-up or in creating the manifest
        else:
            remaining = wait_ready(proc)
            if attempt == 3:  # kill exactly while a shard's temp file exists (before its rename)
                deadline = time.perf_counter() + 10
                while not temp_files(run) and proc.poll() is None and time.perf_counter() < deadline:
                    time.sleep(0.001)
            else:
                # a random moment of a random shard's write cycle (write, slowed rename, pause), never the last
                before = shard_count(run)
                new_shards = -(-remaining // PER_SHARD)
                wait_for_shards(proc, run, before + rng.randint(0, max(new_shards - 2, 0)))
                time.sleep(rng.uniform(0.0, 0.06))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=60)
        if proc.returncode == 0:
            break
        assert proc.returncode == -signal.SIGKILL, stderr
        interrupted += 1
        temp_left += bool(temp_files(run))
        if (run / "manifest.json").exists():
            store = LoCEStore.open(run)
            store.verify()  # every shard on disk is complete and readable
            assert_no_duplicate_keys(store.table(KEY_COLUMNS))
    proc = start_writer(script, run)  # the last restart runs to the end
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr

    assert interrupted >= 5, "the kills must interrupt real work"
    assert temp_left >= 1, "at least one kill must land between writing a temp file and renaming it"
    assert temp_files(run) == []  # the restarts removed what the killed writers left
    actual = sorted_table(run)
    assert_no_duplicate_keys(actual)
    assert actual.num_rows == expected.num_rows
    assert actual.equals(expected)
    assert LoCEStore.open(run).completed_samples("j") == {f"s{i:04d}" for i in range(N_SAMPLES)}
