"""Collecting a report from a real (small, synthetic) run directory, and the `loce report` command."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest_report import synthetic_image
from loce.cli.main import main
from loce.errors import StoreError
from loce.report.collect import collect_report, overview_facts, quality_table, read_rows, skip_table
from loce.store import JobSpec, LoCEStore, rle_from_mask

pytest.importorskip("matplotlib")

CONCEPTS = ["ball", "mug"]
LAYERS = ["blocks.5", "blocks.11"]


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A run: 3 images per concept, 2 layers; known IoUs; one skip row; one image deleted after fitting."""
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    root.mkdir()
    rows = []
    for c, concept in enumerate(CONCEPTS):
        for i in range(3):
            sample_id = f"{concept}{i}"
            image, mask = synthetic_image(rng, i, c)
            Image.fromarray(image).save(root / f"{sample_id}.png")
            for li, layer in enumerate(LAYERS):
                rows.append(
                    {
                        "sample_id": sample_id,
                        "image": f"{sample_id}.png",
                        "concept": concept,
                        "layer": layer,
                        "status": "ok",
                        "vector": rng.normal(size=4).tolist(),
                        "iou": 0.1 * (i + 1) + 0.3 * li,
                        "mask_rle": rle_from_mask(mask),
                        "mask_height": mask.shape[0],
                        "mask_width": mask.shape[1],
                    }
                )
    rows[0]["iou"] = 0.0  # one LoCE that did not converge
    rows.append(
        {
            "sample_id": "mug9",
            "image": "mug9.png",
            "concept": "mug",
            "layer": "blocks.5",
            "status": "empty_mask",
            "detail": "the mask of mug in mug9.png is empty",
        }
    )
    run = tmp_path / "run"
    with LoCEStore.create(run, image_root=root) as store:
        store.register_job(JobSpec("lite0", model="efficientnet-lite0", layers=LAYERS))
        store.append("lite0", rows)
    (root / "mug2.png").unlink()  # moved away after the fit: the report leaves it out
    return run


def test_overview_and_tables_count_what_the_store_holds(run_dir):
    rows = read_rows([run_dir])
    facts = overview_facts(rows)
    assert facts["models"] == "efficientnet-lite0"
    assert facts["layers"] == "blocks.5, blocks.11"
    assert (facts["images"], facts["concepts"], facts["LoCEs"], facts["skipped rows"]) == (7, 2, 12, 1)
    assert facts["IoU = 0 (not converged)"] == 1
    expected_mean = np.mean([0.0, 0.2, 0.3, 0.4, 0.5, 0.6] + [0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    assert facts["mean IoU"] == pytest.approx(expected_mean)
    quality = quality_table(rows)
    assert list(quality[["layer", "concept"]].itertuples(index=False, name=None)) == [
        ("blocks.5", "ball"),
        ("blocks.5", "mug"),
        ("blocks.11", "ball"),
        ("blocks.11", "mug"),
    ]
    mug5 = quality[(quality["layer"] == "blocks.5") & (quality["concept"] == "mug")].iloc[0]
    assert (mug5["LoCEs"], mug5["skipped"], mug5["iou_zero"]) == (3, 1, 0)
    assert mug5["mean_iou"] == pytest.approx(0.2)
    skips = skip_table(rows)
    assert skips[["reason", "rows"]].values.tolist() == [["empty_mask", 1]]


def test_collect_report_draws_quality_and_example_figures(run_dir, tmp_path):
    data = collect_report([run_dir], tmp_path / "out", examples_per_concept=3, progress=False)
    assert [s.title for s in data.sections] == ["LoCE quality", "Examples"]
    quality, examples = data.sections
    assert len(quality.figures) == 1 and quality.figures[0].tags.model == "efficientnet-lite0"
    assert all(
        f.path.is_file() and f.path.is_relative_to(tmp_path / "out") for s in data.sections for f in s.figures
    )
    assert "1 image could not be read" in examples.galleries[0].caption
    tiles = [t for _, row in examples.galleries[0].rows for t in row]  # thumbnails of the readable images
    assert tiles and all(t.image.is_file() and t.image.is_relative_to(tmp_path / "out") for t in tiles)
    assert data.concepts == ["ball", "mug"]


def test_loce_report_command_writes_the_page_and_prints_its_path(run_dir, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["report", str(run_dir), "--out", str(out), "--no-progress", "--examples", "2"]) == 0
    printed = capsys.readouterr().out.strip()
    assert Path(printed) == (out / "index.html").resolve()
    text = (out / "index.html").read_text()
    for src in re.findall(r'<img src="([^"]+)"', text):
        assert (out / src).is_file()
    payload = re.search(r'<script type="application/json" id="loce-data">(.*?)</script>', text, re.S).group(1)
    assert json.loads(payload)["maps"] == []


def test_loce_report_names_a_directory_that_is_not_a_run(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nothing"), "--out", str(tmp_path / "r"), "--no-progress"]) == 1
    assert "nothing" in capsys.readouterr().err
    with pytest.raises(StoreError):
        read_rows([tmp_path / "nothing"])
