"""Thumbnails are shared by runs of one dataset and never mixed up between datasets that reuse sample ids."""

from __future__ import annotations

import shutil

import numpy as np
from PIL import Image

from conftest_analysis_report import make_run
from loce.report.analysis_galleries import ImageSource, TileMaker
from loce.store import LoCEStore


def test_same_sample_ids_in_another_dataset_get_their_own_thumbnail(tmp_path):
    # two datasets numbered alike (a held-out set named like the training set): same sample ids, other images
    run_a, _, labels = make_run(tmp_path / "a", seed=0)
    run_b, _, _ = make_run(tmp_path / "b", seed=5)
    sample_id, concept = "ball000", labels[0]
    folder = tmp_path / "report" / "img" / "thumbs"
    colors = {concept: "#1f77b4"}
    tile_a = TileMaker(ImageSource(run_a), folder, colors)(sample_id, concept, "a")
    tile_b = TileMaker(ImageSource(run_b), folder, colors)(sample_id, concept, "b")
    assert tile_a.image != tile_b.image
    picture_a, picture_b = (np.asarray(Image.open(t.image), float) for t in (tile_a, tile_b))
    assert np.abs(picture_a - picture_b).mean() > 5  # each shows its own image, not the first one written


def test_runs_of_one_dataset_share_their_thumbnails(tmp_path):
    # a second model fitted on the same images and masks: its tiles are the files the first run wrote
    run_a, _, labels = make_run(tmp_path / "a", seed=0)
    run_b = tmp_path / "a" / "run-second-model"
    shutil.copytree(run_a, run_b)
    assert LoCEStore.open(run_b).image_path("ball000.png") == LoCEStore.open(run_a).image_path("ball000.png")
    folder = tmp_path / "report" / "img" / "thumbs"
    colors = {"ball": "#1f77b4"}
    tile_a = TileMaker(ImageSource(run_a), folder, colors)("ball000", "ball", "a")
    written = tile_a.image.stat().st_mtime_ns
    tile_b = TileMaker(ImageSource(run_b), folder, colors)("ball000", "ball", "b")
    assert tile_b.image == tile_a.image and tile_b.image.stat().st_mtime_ns == written
    assert len(list(folder.iterdir())) == 1
    # another outline colour (another report's palette) is another picture
    tile_c = TileMaker(ImageSource(run_b), folder, {"ball": "#d62728"})("ball000", "ball", "c")
    assert tile_c.image != tile_a.image
