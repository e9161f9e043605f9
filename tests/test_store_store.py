"""LoCEStore: create / resume / append, completed samples, damaged shards, filtered reads, summaries."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loce.errors import StoreError
from loce.store import FORMAT_VERSION, JobSpec, LoCEStore, mask_from_rle, read_manifest
from loce.store.manifest import package_versions
from store_helpers import LAYER_DIMS, rows_for

SPEC = JobSpec(
    "lite0",
    model="efficientnet-lite0",
    layers=("l1", "l2"),
    preprocessing={"size": (224, 224), "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)},
    fit_settings={"objective": "pseudo_bce", "steps": 50, "lr": 0.1},
    settings_id="paper-1234",
    dataset={"kind": "coco", "categories": ["cat", "dog"]},
    seed=0,
)


def make_store(run: Path, groups=((0, 1, 2, 3), (4, 5, 6))) -> LoCEStore:
    store = LoCEStore.create(run, image_root=run.parent)
    store.register_job(SPEC)
    for group in groups:
        store.append("lite0", rows_for(group))
    return store


@pytest.fixture
def run(tmp_path) -> Path:
    make_store(tmp_path / "RUN").close()
    return tmp_path / "RUN"


def expected_ok(indices, layer):
    rows = [r for r in rows_for(indices) if r["status"] == "ok" and r["layer"] == layer]
    return np.stack([r["vector"] for r in rows]), rows


# ---------------------------------------------------------------- layout, manifest, jobs
def test_layout_and_manifest(run):
    assert sorted(p.name for p in (run / "loces").iterdir()) == [
        "lite0-000001.parquet",
        "lite0-000002.parquet",
    ]
    data = json.loads((run / "manifest.json").read_text())
    assert data["format"] == "loce-store" and data["format_version"] == FORMAT_VERSION
    assert data["created_by"].startswith("loce ")
    assert data["image_root"] == run.parent.resolve().as_posix()
    assert {"torch", "numpy", "loce", "python", "platform"} <= set(data["package_versions"])
    (job,) = data["jobs"]
    assert job["name"] == "lite0" and job["layers"] == ["l1", "l2"] and job["seed"] == 0
    assert job["preprocessing"]["size"] == [224, 224]
    assert job["fit_settings"] == {"lr": 0.1, "objective": "pseudo_bce", "steps": 50}
    assert job["settings_id"] == "paper-1234" and job["dataset"]["kind"] == "coco"
    assert read_manifest(run).job("lite0") == SPEC
    assert LoCEStore.open(run).jobs == {"lite0": SPEC}


def test_package_versions_name_the_libraries_that_shape_results():
    versions = package_versions()
    assert versions["numpy"] == np.__version__ and versions["pandas"] == pd.__version__


def test_same_settings_resume_and_different_settings_are_refused(run):
    with LoCEStore.create(run) as store:
        reordered = JobSpec(**{**SPEC.to_dict(), "layers": ["l2", "l1"]})
        assert store.register_job(reordered) is True  # resume
        other = JobSpec(**{**SPEC.to_dict(), "fit_settings": {**SPEC.fit_settings, "steps": 100}})
        with pytest.raises(
            StoreError, match=r"job 'lite0'.*fit_settings.*new --out directory or another job"
        ):
            store.register_job(other)
        with pytest.raises(StoreError, match="layers"):
            store.register_job(JobSpec(**{**SPEC.to_dict(), "layers": ["l1"]}))
        with pytest.raises(StoreError, match="model"):
            store.register_job(JobSpec(**{**SPEC.to_dict(), "model": "efficientnet-lite1"}))
        assert store.register_job(JobSpec("lite1", model="efficientnet-lite1", layers=["l1"])) is False
    assert [j["name"] for j in read_manifest(run).jobs] == ["lite0", "lite1"]


def test_image_root_must_match(run, tmp_path):
    with pytest.raises(StoreError, match="relative to"):
        LoCEStore.create(run, image_root=tmp_path / "elsewhere")
    with LoCEStore.create(run, image_root=run.parent) as store:
        assert store.image_path("images/a.png") == run.parent.resolve() / "images/a.png"


def test_bad_job_names_and_unregistered_jobs_are_refused(tmp_path):
    with LoCEStore.create(tmp_path / "RUN") as store:
        with pytest.raises(StoreError, match="job name"):
            store.register_job(JobSpec("../x", model="m", layers=["l1"]))
        with pytest.raises(StoreError, match="register_job"):
            store.append("lite0", rows_for([0]))


def test_read_only_store_cannot_write(run):
    store = LoCEStore.open(run)
    with pytest.raises(StoreError, match="read-only"):
        store.register_job(SPEC)


def test_one_writer_at_a_time(run):
    with LoCEStore.create(run):
        with pytest.raises(StoreError, match="another process is writing"):
            LoCEStore.create(run)
        LoCEStore.open(run).frame()  # readers are never blocked
    LoCEStore.create(run).close()  # released


def test_missing_or_foreign_or_newer_stores_are_refused(tmp_path, run):
    with pytest.raises(StoreError, match="not a LoCE store"):
        LoCEStore.open(tmp_path / "nothing")
    data = json.loads((run / "manifest.json").read_text())
    (run / "manifest.json").write_text(json.dumps({**data, "format_version": "2.0"}))
    with pytest.raises(StoreError, match="format 2.0, a newer format"):
        LoCEStore.open(run)
    (run / "manifest.json").write_text("{broken")
    with pytest.raises(StoreError, match="cannot be read as JSON"):
        LoCEStore.open(run)
    (run / "manifest.json").unlink()
    with pytest.raises(StoreError, match="holds shards but .*manifest.json is missing"):
        LoCEStore.create(run)


# ---------------------------------------------------------------- appending and resuming
def test_completed_samples_count_skip_only_samples(run):
    store = LoCEStore.open(run)
    assert store.completed_samples("lite0") == {f"s{i:04d}" for i in range(7)}
    assert store.frame(status=None, columns=["sample_id", "status"]).query("sample_id == 's0003'")[
        "status"
    ].tolist() == ["unreadable_image"]
    assert store.completed_samples("other") == set()


def test_a_sample_is_never_stored_twice(run):
    with LoCEStore.create(run) as store:
        store.register_job(SPEC)
        with pytest.raises(StoreError, match="already stored.*s0006"):
            store.append("lite0", rows_for([6, 7]))
        store.append("lite0", rows_for([7]))
        assert "s0007" in store.completed_samples("lite0")
        assert [p.name for p in store.shards()][-1] == "lite0-000003.parquet"


def test_stale_temp_files_are_removed_on_open_for_writing(run):
    stale = [run / "loces" / ".lite0-000003.parquet.999.abcd.tmp", run / ".manifest.json.999.abcd.tmp"]
    for path in stale:
        path.write_bytes(b"half a file")
    keep = run / "loces" / "notes.txt"
    keep.write_text("mine")
    LoCEStore.open(run).frame()  # reading never deletes anything
    assert all(p.exists() for p in stale)
    LoCEStore.create(run).close()
    assert not any(p.exists() for p in stale) and keep.exists()


def test_a_failed_write_leaves_no_shard_and_no_temp_file(run, monkeypatch):
    import loce.store.atomic as atomic

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    with LoCEStore.create(run) as store:
        store.register_job(SPEC)
        monkeypatch.setattr(atomic.os, "fsync", disk_full)
        with pytest.raises(StoreError, match=r"lite0-000003.parquet \(No space left"):
            store.append("lite0", rows_for([7]))
        monkeypatch.undo()
        assert sorted(p.name for p in (run / "loces").iterdir()) == [
            "lite0-000001.parquet",
            "lite0-000002.parquet",
        ]
        assert "s0007" not in store.completed_samples("lite0")
        store.append("lite0", rows_for([7]))  # the retry writes it


# ---------------------------------------------------------------- damaged shards
def test_truncated_shard_is_a_clear_error(run):
    shard = run / "loces" / "lite0-000002.parquet"
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    store = LoCEStore.open(run)
    for read in (
        lambda: store.completed_samples("lite0"),
        lambda: store.vectors(layer="l1"),
        lambda: store.frame(),
        store.verify,
    ):
        with pytest.raises(StoreError, match=r"lite0-000002\.parquet cannot be read.*--repair"):
            read()
    with pytest.raises(StoreError, match="lite0-000002"):
        LoCEStore.create(run).completed_samples("lite0")
    shard.unlink()  # what the message says to do
    assert LoCEStore.open(run).completed_samples("lite0") == {f"s{i:04d}" for i in range(4)}


def test_damaged_page_is_detected_by_checksums(run):
    shard = run / "loces" / "lite0-000001.parquet"
    data = bytearray(shard.read_bytes())
    middle = len(data) // 3
    data[middle : middle + 8] = bytes(b ^ 0xFF for b in data[middle : middle + 8])
    shard.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=r"lite0-000001\.parquet cannot be read"):
        LoCEStore.open(run).verify()


# ---------------------------------------------------------------- reading
def test_vectors_are_exactly_what_was_written(run):
    store = LoCEStore.open(run)
    for layer, dim in LAYER_DIMS.items():
        X, meta = store.vectors(layer=layer)
        expected, rows = expected_ok(range(7), layer)
        assert X.dtype == np.float32 and X.shape == (len(rows), dim)
        np.testing.assert_array_equal(X, expected)
        assert meta["sample_id"].tolist() == [r["sample_id"] for r in rows]
        assert meta["iou"].tolist() == [r["iou"] for r in rows]
        assert "vector" not in meta and "mask_rle" not in meta
        assert set(meta["status"]) == {"ok"} and set(meta["settings_id"]) == {"paper-1234"}


def test_filters_select_rows(run):
    store = LoCEStore.open(run)
    X, meta = store.vectors(layer="l2", concepts=["dog"])
    expected, rows = expected_ok(range(7), "l2")
    dogs = [i for i, r in enumerate(rows) if r["concept"] == "dog"]
    np.testing.assert_array_equal(X, expected[dogs])
    assert set(meta["concept"]) == {"dog"}
    assert store.vectors(layer="l1", model="no-such-model")[0].shape == (0, 0)
    assert len(store.frame(layer="l1", concepts="cat", model="efficientnet-lite0")) == len(
        [r for r in rows if r["concept"] == "cat"]
    )


def test_masks_come_back_from_the_store(run):
    meta = LoCEStore.open(run).frame(
        layer="l1", columns=["sample_id", "concept", "mask_rle", "mask_height", "mask_width"]
    )
    first = meta.iloc[0]
    rng = np.random.default_rng(0)  # sample_rows(0) draws the cat mask first
    expected = rng.random((6, 8)) < 0.4
    np.testing.assert_array_equal(
        mask_from_rle(first["mask_rle"], first["mask_height"], first["mask_width"]), expected
    )


def test_vectors_of_different_dims_need_a_layer_choice(run):
    store = LoCEStore.open(run)
    with pytest.raises(StoreError, match=r"different dimensions \(l1 \(efficientnet-lite0\): 8, l2 .*: 16\)"):
        store.vectors(layer=["l1", "l2"])
    by_layer = store.vectors_by_layer()
    assert sorted(by_layer) == ["l1", "l2"]
    assert by_layer["l2"][0].shape[1] == 16


def test_multilayer_vectors_concatenate_samples_present_in_all_layers(tmp_path):
    # Layer l2 misses sample s0000's cat (skipped there), so that key is dropped.
    rows = rows_for([0, 1, 2])
    for row in rows:
        if row["sample_id"] == "s0000" and row["concept"] == "cat" and row["layer"] == "l2":
            row.update(status="fit_failed", detail="constant activations", vector=None)
    with LoCEStore.create(tmp_path / "RUN") as store:
        store.register_job(SPEC)
        store.append("lite0", rows)
    X, meta = LoCEStore.open(tmp_path / "RUN").multilayer_vectors(["l2", "l1"])
    assert meta.attrs["layer_slices"] == {"l2": (0, 16), "l1": (16, 24)}
    ok = {(r["sample_id"], r["concept"], r["layer"]): r for r in rows if r["status"] == "ok"}
    keys = sorted({(s, c) for s, c, _ in ok if (s, c, "l1") in ok and (s, c, "l2") in ok})
    assert list(zip(meta["sample_id"], meta["concept"])) == keys
    assert ("s0000", "cat") not in keys
    for i, (s, c) in enumerate(keys):
        np.testing.assert_array_equal(
            X[i], np.concatenate([ok[(s, c, "l2")]["vector"], ok[(s, c, "l1")]["vector"]])
        )
        assert meta["iou@l1"][i] == ok[(s, c, "l1")]["iou"]


def test_skips_and_summary_are_hand_countable(run):
    store = LoCEStore.open(run)
    skips = store.skips()
    # s0003: unreadable image (one row); s0001 and s0006: dog has an empty mask (one row per layer)
    assert sorted(zip(skips["sample_id"], skips["status"])) == [
        ("s0001", "empty_mask"),
        ("s0001", "empty_mask"),
        ("s0003", "unreadable_image"),
        ("s0006", "empty_mask"),
        ("s0006", "empty_mask"),
    ]
    summary = store.summary()
    cat_l1 = summary.query("layer == 'l1' and concept == 'cat'").iloc[0]
    rows = [r for r in rows_for(range(7)) if r.get("layer") == "l1" and r.get("concept") == "cat"]
    assert cat_l1["n_ok"] == 6 and cat_l1["n_skipped"] == 0
    assert cat_l1["mean_iou"] == pytest.approx(np.mean([r["iou"] for r in rows]))
    assert cat_l1["not_converged"] == sum(r["iou"] == 0 for r in rows)
    dog_l2 = summary.query("layer == 'l2' and concept == 'dog'").iloc[0]
    assert (dog_l2["n_ok"], dog_l2["n_skipped"]) == (4, 2)
    image_level = summary[summary["layer"].isna()].iloc[0]
    assert (image_level["n_ok"], image_level["n_skipped"]) == (0, 1)


def test_reading_an_empty_store(tmp_path):
    LoCEStore.create(tmp_path / "RUN").close()
    store = LoCEStore.open(tmp_path / "RUN")
    assert store.frame().empty and store.skips().empty and store.summary().empty
    assert store.vectors(layer="l1")[0].shape == (0, 0)


def test_no_pickle_in_the_store_package():
    source = Path(__file__).parents[1] / "src" / "loce" / "store"
    for path in source.glob("*.py"):
        text = path.read_text()
        for word in ("pickle", "allow_pickle=True", "torch.save", "np.save("):
            assert word not in text, f"{path.name} uses {word}"
