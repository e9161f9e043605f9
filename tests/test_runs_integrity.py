"""The run loop: validated before a job is registered, file-level skips retried on resume, annotation-time skips
stored once per job."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import nn

from loce.cli.common import print_run_summary
from loce.cli.main import main
from loce.data import load_coco
from loce.errors import InputError, LayerError
from loce.models import LoadedModel
from loce.pipeline import fit_run
from loce.preprocessing import Preprocessing
from loce.store import LoCEStore
from planted_data import planted_model, write_planted_coco


def snapshot(run: Path) -> dict[str, bytes]:
    """Every file under ``run`` (relative path -> bytes); ``{}`` when it does not exist."""
    if not run.exists():
        return {}
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def fit(ds, out, layers=("pool",), model=None, **kw):
    return fit_run(ds, model or planted_model(), list(layers), out, batch_size=4, progress=False, **kw)


@pytest.fixture
def data(tmp_path):
    return write_planted_coco(tmp_path / "data", n=6)


# ---------------------------------------------------------------- point 11: validate before registering
def test_a_mistyped_layer_leaves_the_run_as_it_was_and_the_corrected_command_works(data, tmp_path):
    ann, images = data
    ds = load_coco(ann, images)
    out = tmp_path / "run"
    with pytest.raises(LayerError, match="poool"):
        fit(ds, out, layers=["poool"], job="second")
    assert not out.exists()  # a new run directory is not even created
    fit(ds, out, layers=["pool"], job="first")
    before = snapshot(out)
    with pytest.raises(LayerError, match="poool"):
        fit(ds, out, layers=["poool"], job="second")
    assert snapshot(out) == before  # same files, byte-identical manifest and shards
    summary = fit(ds, out, layers=["pool"], job="second")  # the corrected command is accepted
    assert summary.images_processed == 6 and summary.vectors == 12


class FixedSizeNet(nn.Module):
    """Works only on 32 x 32 inputs (a linear layer over the flattened map)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 32 * 32, 2)

    def forward(self, x):
        return self.fc(self.conv(x).flatten(1))


def test_an_input_size_the_model_rejects_is_refused_before_anything_is_written(data, tmp_path):
    ann, images = data
    model = LoadedModel(
        FixedSizeNet().eval(), Preprocessing((64, 64), (0.5,) * 3, (0.5,) * 3), spec="fixed32"
    )
    out = tmp_path / "run"
    with pytest.raises(LayerError, match=r"FixedSizeNet on a 1 x 3 x 64 x 64 input failed.*--input-size"):
        fit(load_coco(ann, images), out, layers=["conv"], model=model)
    assert not out.exists()


def test_an_empty_dataset_is_refused_before_anything_is_written(data, tmp_path):
    ann, images = data
    for p in images.iterdir():
        p.unlink()
    out = tmp_path / "run"
    out.mkdir()
    with pytest.raises(InputError, match=r"no image to embed.*missing_image"):
        fit(load_coco(ann, images), out)
    assert list(out.iterdir()) == []


# ---------------------------------------------------------------- point 12: retry file-level skips
def test_a_repaired_image_is_recomputed_on_resume_and_the_summary_says_so(data, tmp_path, capsys):
    ann, images = data
    good = (images / "img_002.png").read_bytes()
    (images / "img_002.png").write_bytes(good[: len(good) // 2])
    out = tmp_path / "run"
    first = fit(load_coco(ann, images), out)
    assert first.skips == {"truncated_image": 1} and first.vectors == 10
    shards = sorted(p.name for p in (out / "loces").iterdir())
    unchanged = fit(load_coco(ann, images), out)  # still truncated: tried, nothing rewritten
    assert (unchanged.retried, unchanged.retried_embedded) == (1, 0)
    assert sorted(p.name for p in (out / "loces").iterdir()) == shards

    (images / "img_002.png").write_bytes(good)
    summary = fit(load_coco(ann, images), out)
    assert (summary.retried, summary.retried_embedded, summary.vectors) == (1, 1, 2)
    print_run_summary(summary)
    assert "retried 1 images previously skipped (missing, corrupt or truncated files), 1 now embedded" in (
        capsys.readouterr().out
    )
    store = LoCEStore.open(out)
    assert store.skips().empty
    X, meta = store.vectors(layer="pool")
    assert X.shape == (12, 3) and (meta["sample_id"] == "3").sum() == 2
    assert sorted(p.name for p in (out / "loces").iterdir()) == shards  # replaced in place, not added
    again = fit(load_coco(ann, images), out)
    assert (again.retried, again.images_processed, again.vectors) == (0, 0, 0)


def test_a_restored_missing_image_is_embedded_on_resume(data, tmp_path):
    ann, images = data
    moved = tmp_path / "img_004.png"
    os.replace(images / "img_004.png", moved)
    out = tmp_path / "run"
    fit(load_coco(ann, images), out)
    os.replace(moved, images / "img_004.png")
    summary = fit(load_coco(ann, images), out)  # the dataset now has one more image: resumed, not refused
    assert summary.images_processed == 1 and summary.vectors == 2
    store = LoCEStore.open(out)
    assert store.skips().empty  # the annotation-time record of the missing file is gone
    assert store.vectors(layer="pool")[0].shape == (12, 3)


def test_a_changed_dataset_option_is_named_in_full(data, tmp_path):
    ann, images = data
    out = tmp_path / "run"
    fit(load_coco(ann, images), out)
    with pytest.raises(Exception, match=r"dataset\.options\.categories: stored null, requested \[\"red\"\]"):
        fit(load_coco(ann, images, categories=["red"]), out)


# ---------------------------------------------------------------- point 13: annotation-time skips are stored
def test_annotation_time_skips_are_stored_once_per_job(data, tmp_path, capsys):
    ann, images = data
    (images / "img_001.png").unlink()
    out = tmp_path / "run"
    ds = load_coco(ann, images)
    assert ds.skips.counts() == {"missing_image": 1}
    fit(ds, out)
    fit(load_coco(ann, images), out)  # resume: not stored twice
    skips = LoCEStore.open(out).skips()
    assert skips[["sample_id", "status"]].values.tolist() == [["2", "missing_image"]]
    assert "img_001.png" in skips["detail"].iloc[0]
    assert main(["info", str(out), "--skips"]) == 0
    printed = capsys.readouterr().out
    assert "missing_image" in printed and "no skips" not in printed


def test_the_blank_probe_does_not_change_the_fitted_vectors(data, tmp_path):
    ann, images = data
    torch.manual_seed(0)
    a = fit(load_coco(ann, images), tmp_path / "a")
    b = fit(load_coco(ann, images), tmp_path / "b")
    Xa, _ = LoCEStore.open(tmp_path / "a").vectors(layer="pool")
    Xb, _ = LoCEStore.open(tmp_path / "b").vectors(layer="pool")
    assert a.vectors == b.vectors == 12 and (Xa == Xb).all()
