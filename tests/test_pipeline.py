"""The fit pipeline: planted masks recovered end to end, resume after a crash, skips, and the CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from loce.cli.main import main
from loce.data import load_coco
from loce.errors import InputError
from loce.pipeline import fit_run
from loce.runs import default_job_name
from loce.store import LoCEStore
from planted_data import planted_model, write_planted_coco

TESTS = Path(__file__).parent
KEY = ["sample_id", "concept", "layer"]


def _rows(run: Path) -> pd.DataFrame:
    frame = LoCEStore.open(run).frame(status=None, columns=KEY + ["status", "iou", "steps"])
    return frame.sort_values(KEY, na_position="first").reset_index(drop=True)


def _vectors(run: Path) -> tuple[np.ndarray, pd.DataFrame]:
    X, meta = LoCEStore.open(run).vectors(layer="pool")
    order = np.lexsort((meta["concept"].to_numpy(), meta["sample_id"].to_numpy()))
    return X[order], meta.iloc[order].reset_index(drop=True)


@pytest.fixture
def planted(tmp_path):
    ann, images = write_planted_coco(tmp_path / "data", n=12)
    return load_coco(ann, images)


def test_planted_masks_are_recovered(planted, tmp_path):
    summary = fit_run(planted, planted_model(), ["pool"], tmp_path / "run", batch_size=5, progress=False)
    assert summary.images_processed == 12 and summary.vectors == 24 and summary.skips == {}
    X, meta = _vectors(tmp_path / "run")
    assert X.shape == (24, 3)
    red = meta["concept"].to_numpy() == "red"
    # The red square is reconstructed from the red channel: red weight largest, IoU high for both concepts.
    assert np.all(X[red, 0] > X[red, 1]) and np.all(X[red, 0] > X[red, 2])
    assert np.all(X[~red, 2] > X[~red, 0])
    assert meta["iou"].min() > 0.75
    # Provenance: the relative image path, the mask as RLE, the box and the instance attributes are stored.
    frame = LoCEStore.open(tmp_path / "run").frame(layer="pool")
    assert set(frame["image"]) == {f"img_{i:03d}.png" for i in range(12)}
    assert (frame["mask_height"] == 64).all() and (frame["mask_area"] > 0).all()
    assert frame["attributes"].str.contains('"kind"').all()
    assert (frame["iou_convention"] == "paper").all()  # the paper preset scores IoU the publication's way
    table = summary.table()
    assert set(table["concept"]) == {"red", "blue"} and (table["n_ok"] == 12).all()


def test_iou_convention_is_stored_per_row_and_old_shards_read_as_null(planted, tmp_path):
    import pyarrow.parquet as pq

    fit_run(
        planted, planted_model(), ["pool"], tmp_path / "run", settings="fast", batch_size=12, progress=False
    )
    frame = LoCEStore.open(tmp_path / "run").frame(layer="pool")
    assert (frame["iou_convention"] == "native").all()
    # a shard written before the column existed: its rows read back with a null convention (= native)
    (shard,) = (tmp_path / "run" / "loces").glob("*.parquet")
    table = pq.read_table(shard)
    pq.write_table(table.drop(["iou_convention"]).replace_schema_metadata(table.schema.metadata), shard)
    old = LoCEStore.open(tmp_path / "run").frame(layer="pool")
    assert len(old) == len(frame) and old["iou_convention"].isna().all()


def test_resume_after_crash_gives_the_same_rows(planted, tmp_path, monkeypatch):
    reference = tmp_path / "reference"
    fit_run(planted, planted_model(), ["pool"], reference, batch_size=4, progress=False)

    crashed = tmp_path / "crashed"
    calls = {"n": 0}
    original = LoCEStore.append

    def append_then_crash(self, job, rows):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("simulated crash while writing the second shard")
        return original(self, job, rows)

    monkeypatch.setattr(LoCEStore, "append", append_then_crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit_run(planted, planted_model(), ["pool"], crashed, batch_size=4, progress=False)
    monkeypatch.setattr(LoCEStore, "append", original)
    assert len(LoCEStore.open(crashed).completed_samples(default_job_name("planted"))) == 4

    summary = fit_run(planted, planted_model(), ["pool"], crashed, batch_size=4, progress=False)
    assert summary.images_done_before == 4 and summary.images_processed == 8
    pd.testing.assert_frame_equal(_rows(crashed), _rows(reference))
    (Xa, _), (Xb, _) = _vectors(crashed), _vectors(reference)
    np.testing.assert_allclose(Xa, Xb, atol=1e-6)

    again = fit_run(planted, planted_model(), ["pool"], crashed, batch_size=4, progress=False)
    assert again.images_processed == 0 and again.vectors == 0


KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {tests!r})
    from loce.data import load_coco
    from loce.pipeline import fit_run
    from loce.store import LoCEStore
    from planted_data import planted_model

    original = LoCEStore.append
    def slow_append(self, job, rows):
        time.sleep(0.15)  # widen the window in which a kill lands mid-run
        return original(self, job, rows)
    LoCEStore.append = slow_append
    ds = load_coco({ann!r}, {images!r})
    fit_run(ds, planted_model(), ["pool"], {out!r}, batch_size=2, progress=False)
    """
)


@pytest.mark.slow
def test_kill9_at_random_moments_then_resume(tmp_path):
    ann, images = write_planted_coco(tmp_path / "data", n=16)
    reference = tmp_path / "reference"
    fit_run(load_coco(ann, images), planted_model(), ["pool"], reference, batch_size=2, progress=False)

    out = tmp_path / "killed"
    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT.format(tests=str(TESTS), ann=str(ann), images=str(images), out=str(out)))
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    rng = np.random.default_rng(3)
    kills = 0

    def shards() -> int:
        return len(list((out / "loces").glob("*.parquet"))) if (out / "loces").exists() else 0

    for _ in range(20):
        before = shards()
        proc = subprocess.Popen([sys.executable, str(script)], env=env)
        # Kill at a random moment after the restarted run has made progress (so every round moves forward).
        deadline = time.monotonic() + 120
        while proc.poll() is None and shards() == before and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(float(rng.uniform(0.0, 0.4)))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            continue
        assert proc.returncode == 0
        break
    else:
        pytest.fail("the run never finished after 20 restarts")
    assert kills >= 1, "no kill landed mid-run; the test did not test resuming"
    pd.testing.assert_frame_equal(_rows(out), _rows(reference))
    np.testing.assert_allclose(_vectors(out)[0], _vectors(reference)[0], atol=1e-6)


def test_bad_inputs_become_recorded_skips(tmp_path):
    ann, images = write_planted_coco(tmp_path / "data", n=6)
    (images / "img_001.png").write_bytes(b"not a png at all")
    with Image.open(images / "img_002.png") as im:  # the annotation says 64 x 64; the file is now 48 x 48
        im.resize((48, 48)).save(images / "img_002.png")
    ds = load_coco(ann, images)
    summary = fit_run(ds, planted_model(), ["pool"], tmp_path / "run", batch_size=4, progress=False)
    skips = LoCEStore.open(tmp_path / "run").skips()
    by_sample = dict(zip(skips["sample_id"], skips["status"], strict=False))
    assert by_sample["2"] == "corrupt_image" and by_sample["3"] == "image_size_mismatch"
    assert summary.vectors == 8 and sum(summary.skips.values()) == 2
    X, meta = LoCEStore.open(tmp_path / "run").vectors(layer="pool")
    assert np.isfinite(X).all() and set(meta["sample_id"]) == {"1", "4", "5", "6"}

    with pytest.raises(InputError, match="img_001.png"):
        fit_run(load_coco(ann, images, strict=True), planted_model(), ["pool"], tmp_path / "strict",
                batch_size=4, strict=True, progress=False)  # fmt: skip


def test_unknown_layer_is_a_clear_error(planted, tmp_path):
    from loce.errors import LayerError

    with pytest.raises(LayerError, match="poool"):
        fit_run(planted, planted_model(), ["poool"], tmp_path / "run", progress=False)


def test_cli_fit_and_info(tmp_path, capsys):
    ann, images = write_planted_coco(tmp_path / "data", n=4)
    out = tmp_path / "run"
    code = main(["fit", "--model", "torchvision:resnet18", "--layers", "layer2,layer3", "--input-size", "64", "64",
                 "--coco", str(ann), "--images", str(images), "--out", str(out), "--no-progress"])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "16 LoCEs of layer2, layer3 written" in printed  # 4 images x 2 concepts x 2 layers
    X, meta = LoCEStore.open(out).vectors(layer="layer3")
    assert X.shape == (8, 256)
    assert main(["info", str(out), "--skips"]) == 0
    assert "layer2" in capsys.readouterr().out
    # Resuming with other settings under the same job is refused with an explanation, not silently mixed.
    code = main(["fit", "--model", "torchvision:resnet18", "--layers", "layer3", "--input-size", "64", "64",
                 "--coco", str(ann), "--images", str(images), "--out", str(out), "--no-progress"])  # fmt: skip
    assert code == 1
    assert "layers" in capsys.readouterr().err


def test_fit_help_lists_examples(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    assert "examples:" in capsys.readouterr().out
