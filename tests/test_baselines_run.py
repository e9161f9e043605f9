"""The embedding run: rows in the shared store, resumable after a crash, bad inputs recorded as skips, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from loce.baselines import embed_run, global_sample_id
from loce.cli.main import main
from loce.data import load_coco
from loce.errors import InputError, LayerError, StoreError
from loce.pipeline import fit_run
from loce.store import LoCEStore
from planted_data import planted_model, write_planted_coco

KEY = ["method", "sample_id", "concept", "layer"]


@pytest.fixture
def planted(tmp_path):
    ann, images = write_planted_coco(tmp_path / "data", n=10)
    return load_coco(ann, images)


def rows(run, job=None) -> pd.DataFrame:
    frame = LoCEStore.open(run).frame(status=None, job=job, columns=[*KEY, "status", "detail", "vector"])
    frame["vector"] = frame["vector"].map(lambda v: None if v is None else np.asarray(v).tolist())
    return frame.sort_values(KEY, na_position="first").reset_index(drop=True)


@pytest.mark.parametrize("method", ["crop", "window", "masked-pool", "global"])
def test_each_method_writes_rows_beside_the_loces(planted, tmp_path, method):
    run = tmp_path / "run"
    fit_run(planted, planted_model(), ["pool"], run, batch_size=4, progress=False)
    summary = embed_run(planted, planted_model(), ["pool"], run, method=method, batch_size=4, progress=False)
    store = LoCEStore.open(run)
    X, meta = store.vectors(layer="pool", method=method)
    assert (meta["method"] == method).all() and np.isfinite(X).all()
    assert store.vectors(layer="pool")[0].shape == (20, 3)  # the LoCEs are untouched and still the default
    if method == "global":
        assert summary.vectors == 2 and sorted(meta["sample_id"]) == ["global:blue", "global:red"]
        detail = json.loads(meta["detail"].iloc[0])
        assert detail["samples"] == 10 and meta["iou"].between(0, 1).all() and meta["image"].isna().all()
    else:
        assert summary.vectors == 20 and X.shape == (20, 27 if method == "window" else 3)
        assert meta["iou"].isna().all() and (meta["mask_area"] > 0).all()
        assert all(isinstance(json.loads(d), dict) for d in meta["detail"])
        assert meta["attributes"].str.contains('"kind"').all()  # the instance attributes travel along
    job = store.jobs[summary.job]
    assert job.method == method and job.layers == ("pool",)


def test_window_vectors_of_the_planted_squares_are_red(planted, tmp_path):
    embed_run(planted, planted_model(), ["pool"], tmp_path / "run", method="window", progress=False)
    X, meta = LoCEStore.open(tmp_path / "run").vectors(layer="pool", method="window")
    centre = X.reshape(-1, 3, 3, 3)[:, :, 1, 1]  # channel values of the centre cell
    red = (meta["concept"] == "red").to_numpy()
    # The centre of a red square's box is red: red channel high, blue low (normalised to [-1, 1]).
    assert (centre[red, 0] > 0.5).all() and (centre[red, 2] < -0.5).all()


def test_crop_defaults_to_the_penultimate_layer_and_needs_one_otherwise(planted, tmp_path):
    with pytest.raises(LayerError, match="--layers"):
        embed_run(planted, planted_model(), None, tmp_path / "run", method="crop", progress=False)
    with pytest.raises(InputError, match="spatial grid"):
        embed_run(planted, planted_model(), None, tmp_path / "run", method="window", progress=False)


def test_resume_after_a_crash_gives_the_same_rows(planted, tmp_path, monkeypatch):
    reference = tmp_path / "reference"
    embed_run(planted, planted_model(), ["pool"], reference, method="window", batch_size=3, progress=False)
    crashed = tmp_path / "crashed"
    original, calls = LoCEStore.append, {"n": 0}

    def append_then_crash(self, job, rows):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("simulated crash while writing the third shard")
        return original(self, job, rows)

    monkeypatch.setattr(LoCEStore, "append", append_then_crash)
    with pytest.raises(RuntimeError, match="simulated crash"):
        embed_run(planted, planted_model(), ["pool"], crashed, method="window", batch_size=3, progress=False)
    monkeypatch.setattr(LoCEStore, "append", original)
    summary = embed_run(
        planted, planted_model(), ["pool"], crashed, method="window", batch_size=3, progress=False
    )
    assert summary.images_done_before == 6 and summary.images_processed == 4
    pd.testing.assert_frame_equal(rows(crashed), rows(reference))
    again = embed_run(
        planted, planted_model(), ["pool"], crashed, method="window", batch_size=3, progress=False
    )
    assert again.images_processed == 0 and again.vectors == 0
    with pytest.raises(StoreError, match="window_size"):  # other settings under the same job are refused
        from loce.baselines import EmbedOptions

        embed_run(planted, planted_model(), ["pool"], crashed, method="window", embed_options=EmbedOptions(window_size=5),
                  progress=False)  # fmt: skip


def test_global_run_resumes_by_concept(planted, tmp_path, monkeypatch):
    reference = tmp_path / "reference"
    embed_run(planted, planted_model(), ["pool"], reference, method="global", progress=False)
    crashed = tmp_path / "crashed"
    original, calls = LoCEStore.append, {"n": 0}

    def append_then_crash(self, job, rows):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("simulated crash after the first concept")
        return original(self, job, rows)

    monkeypatch.setattr(LoCEStore, "append", append_then_crash)
    with pytest.raises(RuntimeError):
        embed_run(planted, planted_model(), ["pool"], crashed, method="global", progress=False)
    monkeypatch.setattr(LoCEStore, "append", original)
    assert LoCEStore.open(crashed).completed_samples("global.planted") == {global_sample_id("red")}
    summary = embed_run(planted, planted_model(), ["pool"], crashed, method="global", progress=False)
    assert summary.vectors == 1
    a, b = rows(crashed), rows(reference)
    pd.testing.assert_frame_equal(a.drop(columns=["vector"]), b.drop(columns=["vector"]))
    np.testing.assert_allclose(np.stack(a["vector"]), np.stack(b["vector"]), atol=1e-6)


@pytest.mark.parametrize("method", ["masked-pool", "global"])
def test_bad_inputs_become_recorded_skips(tmp_path, method):
    ann, images = write_planted_coco(tmp_path / "data", n=6)
    (images / "img_001.png").write_bytes(b"not a png at all")
    with Image.open(images / "img_002.png") as im:  # the annotation says 64 x 64; the file is now 48 x 48
        im.resize((48, 48)).save(images / "img_002.png")
    summary = embed_run(load_coco(ann, images), planted_model(), ["pool"], tmp_path / "run", method=method,
                        batch_size=4, progress=False)  # fmt: skip
    skips = LoCEStore.open(tmp_path / "run").skips()
    assert dict(zip(skips["sample_id"], skips["status"])) == {
        "2": "corrupt_image",
        "3": "image_size_mismatch",
    }
    assert summary.skips == {"corrupt_image": 1, "image_size_mismatch": 1}
    X, meta = LoCEStore.open(tmp_path / "run").vectors(layer="pool", method=method)
    if method == "global":
        assert [json.loads(d)["samples"] for d in meta["detail"]] == [4, 4]
    else:
        assert set(meta["sample_id"]) == {"1", "4", "5", "6"}
    with pytest.raises(InputError, match="img_001.png"):
        embed_run(load_coco(ann, images, strict=True), planted_model(), ["pool"], tmp_path / "strict",
                  method=method, strict=True, progress=False)  # fmt: skip


def test_cli_embed_and_compare(tmp_path, capsys):
    ann, images = write_planted_coco(tmp_path / "data", n=6)
    out = tmp_path / "run"
    common = ["--model", "torchvision:resnet18", "--input-size", "64", "64", "--coco", str(ann), "--images",
              str(images), "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(["embed", "--method", "crop", *common]) == 0  # default layer: avgpool
    assert "12 crop vectors of avgpool" in capsys.readouterr().out
    assert main(["embed", "--method", "window", "--layers", "layer3", "--window-size", "1", *common]) == 0
    assert LoCEStore.open(out).vectors(layer="avgpool", method="crop")[0].shape == (12, 512)
    assert LoCEStore.open(out).vectors(layer="layer3", method="window")[0].shape == (12, 256)
    assert main(["embed", "--method", "window", *common]) == 1
    assert "spatial grid" in capsys.readouterr().err
    assert main(["compare-methods", str(out), "--k", "1,3", "--no-figures", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "precision_at_3" in printed and "window" in printed and "best mAP" in printed
    table = pd.read_csv(out / "analysis" / "methods" / "comparison.csv")
    assert set(table["method"]) == {"crop", "window"} and table["precision_at_1"].between(0, 1).all()
