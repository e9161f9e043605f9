"""``localize_run`` end to end on a planted world: a tiny colour model, red squares, a store of planted LoCEs.

The model's layer has four channels per 4 x 4 pixel cell: mean red, green, blue, and a constant 1. The planted
LoCEs of "red" are noisy copies of ``[4, -2, -2, -1]``: logit ``4R - 2G - 2B - 1`` is +3 on pure red and -1 on
the grey background, so their projections light up exactly the red squares.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from loce.data import ConceptAnnotation, ConceptDataset, Instance, Sample
from loce.errors import InputError, StoreError
from loce.localize.engine import image_folder_samples
from loce.localize.run import localize_run
from loce.localize.vectors import concept_vectors, load_vector_file
from loce.models import LoadedModel
from loce.preprocessing import Preprocessing
from loce.report.collect import SectionContext
from loce.report.sections_localization import localization_sections
from loce.store import JobSpec, LoCEStore

SIZE = 32
RED_VECTOR = np.array([4.0, -2.0, -2.0, -1.0], np.float32)


class ColourCells(nn.Module):
    """4 x 4 average pooling, then a fixed 1x1 conv giving (R, G, B, 1) per cell (layer name ``"1"``)."""

    def __init__(self) -> None:
        super().__init__()
        conv = nn.Conv2d(3, 4, 1)
        with torch.no_grad():
            conv.weight.zero_()
            conv.bias.zero_()
            for k in range(3):
                conv.weight[k, k] = 1.0
            conv.bias[3] = 1.0
        self.layers = nn.Sequential(nn.AvgPool2d(4), conv)

    def forward(self, x):
        return self.layers(x)


def tiny_model() -> LoadedModel:
    module = ColourCells().eval()
    return LoadedModel(
        module.layers, Preprocessing(size=(SIZE, SIZE), mean=(0, 0, 0), std=(1, 1, 1)), "module:x"
    )


def red_sample(index: int, top: int, left: int, with_red: bool = True) -> Sample:
    image = np.full((SIZE, SIZE, 3), 128, np.uint8)
    mask = np.zeros((SIZE, SIZE), bool)
    if with_red:
        mask[top : top + 8, left : left + 8] = True
        image[mask] = (255, 0, 0)
    concepts = {}
    if with_red:
        concepts["red"] = ConceptAnnotation(
            "red",
            lambda m=mask: m,
            [Instance(box=(left, top, left + 8, top + 8), load_mask=lambda m=mask: m)],
        )
    return Sample(
        str(index),
        image_path=None,
        rel_path=f"{index:03d}.png",
        concepts=concepts,
        load_image=lambda im=image: im,
    )


@pytest.fixture()
def run_dir(tmp_path):
    run = tmp_path / "RUN"
    rng = np.random.default_rng(0)
    with LoCEStore.create(run, image_root=tmp_path) as store:
        store.register_job(JobSpec("j", model="module:x", layers=["1"]))
        rows = []
        for i in range(5):
            rows.append(
                {
                    "sample_id": f"s{i}",
                    "concept": "red",
                    "layer": "1",
                    "status": "ok",
                    "vector": (RED_VECTOR + rng.normal(0, 0.2, 4)).astype(np.float32),
                    "iou": 0.8,
                }
            )
            rows.append(
                {
                    "sample_id": f"s{i}",
                    "concept": "blue",
                    "layer": "1",
                    "status": "ok",
                    "vector": np.array([-2, -2, 4, -1], np.float32),
                    "iou": 0.8,
                }
            )
        store.append("j", rows)
    return run


def dataset() -> ConceptDataset:
    samples = [red_sample(i, top, left) for i, (top, left) in enumerate([(0, 0), (8, 16), (20, 12), (16, 4)])]
    samples.append(red_sample(4, 0, 0, with_red=False))
    return ConceptDataset(samples, ["red"], ".")


def test_localize_run_finds_the_planted_squares_and_writes_outputs(run_dir):
    result = localize_run(run_dir, ["red"], dataset(), model=tiny_model(), examples=2, progress=False)
    summary = result.summary.set_index("kind")
    assert set(summary.index) == {"mean", "loce"}
    assert any("global" in note for note in result.notes)  # the run has no global vectors
    for kind in ("mean", "loce"):
        assert summary.loc[kind, "n"] == 4
        assert summary.loc[kind, "iou"] > 0.6  # bilinear edges widen the 8 x 8 squares to ~9.5 x 9.5 px
        assert summary.loc[kind, "pointing_game"] == 1.0
        assert summary.loc[kind, "alignment_error"] < 0.1
        assert summary.loc[kind, "peak_prob_with"] > 0.9
        assert summary.loc[kind, "peak_prob_without"] < 0.5  # the grey image without red
    per_map = result.per_map
    assert len(per_map) == 10 and per_map["has_concept"].sum() == 8
    out = run_dir / "localization" / "red"
    assert result.out == out
    for name in ("metrics.csv", "summary.csv", "vectors.json", "figures/heatmaps_red.jpg"):
        assert (out / name).is_file(), name
    assert len(list((out / "heatmaps" / "red").rglob("*.png"))) == 4  # 2 examples x 2 vectors
    record = json.loads((out / "vectors.json").read_text())
    assert [v["kind"] for v in record["vectors"]] == ["mean", "loce"]
    # the report section reads what was written
    context = SectionContext(runs=[run_dir], rows=pd.DataFrame(), figures=run_dir, colors={})
    sections = localization_sections(context)
    assert [s.key for s in sections] == ["localization"]
    assert sections[0].tables[0].frame["kind"].tolist() == ["loce", "mean"]
    assert sections[0].figures[0].path.name == "heatmaps_red.jpg"


def test_vectors_from_the_store_and_from_files(run_dir, tmp_path):
    store = LoCEStore.open(run_dir)
    vectors, notes = concept_vectors(store, "red", "1", centroids={"near": np.ones(4)})
    assert [v.kind for v in vectors] == ["mean", "loce", "centroid"]
    mean = vectors[0].vector
    np.testing.assert_allclose(mean, RED_VECTOR, atol=0.3)
    # the typical LoCE is the one with the highest cosine to the mean
    X, meta = store.vectors(layer="1", concepts="red", columns=["sample_id"])
    cosine = X @ mean / np.linalg.norm(X, axis=1) / np.linalg.norm(mean)
    assert vectors[1].extra["sample_id"] == meta["sample_id"][int(np.argmax(cosine))]
    assert notes and "global" in notes[0]
    with pytest.raises(InputError, match="4 channels"):
        concept_vectors(store, "red", "1", centroids={"bad": np.ones(3)})
    with pytest.raises(StoreError, match="no ok LoCE"):
        concept_vectors(store, "green", "1")
    np.savez(tmp_path / "c.npz", near=np.ones(4), far=np.zeros((2, 4)))
    loaded = load_vector_file(tmp_path / "c.npz")
    assert sorted(loaded) == ["far0", "far1", "near"]
    np.save(tmp_path / "v.npy", np.ones((2, 4)))
    assert sorted(load_vector_file(tmp_path / "v.npy")) == ["v0", "v1"]
    with pytest.raises(InputError):
        load_vector_file(tmp_path / "missing.npy")


def test_plain_images_get_heat_maps_without_metrics(run_dir, tmp_path):
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    for i, (top, left) in enumerate([(0, 0), (12, 20)]):
        Image.fromarray(red_sample(i, top, left).load_image()).save(folder / f"p{i}.png")
    samples = image_folder_samples(folder)
    result = localize_run(
        run_dir, ["red"], samples, kinds=("mean",), model=tiny_model(), name="photos", progress=False
    )
    assert result.per_map["has_concept"].isna().all()
    assert "alignment_error" not in result.per_map.columns
    assert (result.per_map["peak_prob"] > 0.9).all()
    assert (run_dir / "localization" / "photos" / "figures" / "heatmaps_red.jpg").is_file()
    with pytest.raises(InputError):
        image_folder_samples(tmp_path / "nothing")
