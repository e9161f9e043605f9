"""Location analysis: exact pasting, the R^2 score on planted embeddings, and which methods encode position."""

from __future__ import annotations

import numpy as np
import pytest

from baselines_helpers import coordinate_model
from loce.baselines.location import (
    is_constant,
    location_analysis,
    location_score,
    paste_grid,
    reduce_2d,
)
from loce.baselines.outputs import read_index, write_location
from loce.errors import InputError


def test_paste_grid_places_the_object_exactly():
    rng = np.random.default_rng(0)
    obj = rng.integers(1, 256, (12, 9, 3), dtype=np.uint8)
    mask = np.ones((12, 9), bool)
    mask[0, 0] = False
    background = np.zeros((40, 50, 3), np.uint8)
    out = paste_grid(obj, mask, background, grid=(3, 4))
    assert len(out) == 12
    # positions: box centres from the top-left to the bottom-right placement, row by row
    np.testing.assert_allclose(out.positions[0], (4.5, 6.0))
    np.testing.assert_allclose(out.positions[-1], (50 - 4.5, 40 - 6.0))
    assert sorted(set(out.positions[:, 0].round(1))) == [4.5, 18.5, 31.5, 45.5]
    for image, m, (cx, cy) in zip(out.images, out.masks, out.positions):
        left, top = int(cx - 4.5), int(cy - 6)
        assert m.sum() == mask.sum() and (image[~m] == 0).all()
        np.testing.assert_array_equal(image[top : top + 12, left : left + 9][mask], obj[mask])
    with pytest.raises(InputError, match="does not fit"):
        paste_grid(obj, mask, np.zeros((10, 10, 3), np.uint8))


def test_location_score_is_one_for_a_position_code_and_zero_without_position():
    rng = np.random.default_rng(1)
    positions = rng.uniform(0, 224, size=(64, 2))
    mixing = rng.normal(size=(12, 40))
    encoded = np.column_stack([positions, rng.normal(size=(64, 10))]) @ mixing  # position linearly mixed in
    assert location_score(encoded, positions).r2 > 0.99
    free = rng.normal(size=(64, 40))  # says nothing about the position
    score = location_score(free, positions)
    assert abs(score.r2) < 0.15 and abs(score.r2_x) < 0.2 and abs(score.r2_y) < 0.2
    only_x = np.column_stack([positions[:, 0], rng.normal(size=(64, 5))])
    score = location_score(only_x, positions)
    assert score.r2_x > 0.99 and abs(score.r2_y) < 0.2
    constant = np.ones((64, 8))
    assert is_constant(constant) and abs(location_score(constant, positions).r2) < 0.1


def test_reduce_2d_maps_constant_embeddings_to_the_origin():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(30, 6))
    assert reduce_2d(X, "pca").shape == (30, 2) and reduce_2d(X, "tsne").shape == (30, 2)
    assert (reduce_2d(np.ones((30, 6)), "tsne") == 0).all()
    with pytest.raises(InputError, match="reducer"):
        reduce_2d(X, "umap")


def test_masked_pool_encodes_position_and_crop_does_not(tmp_path):
    """The model's layer carries each cell's coordinates (CoordConv-like) beside the colours: pooling under the
    mask reads the position, a crop (the object alone, re-centred) cannot."""
    rng = np.random.default_rng(3)
    obj = rng.integers(60, 256, (14, 14, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:14, :14]
    mask = (yy - 6.5) ** 2 + (xx - 6.5) ** 2 <= 49
    background = np.full((64, 64, 3), 40, np.uint8)
    positioned = paste_grid(obj, mask, background, grid=(5, 5))
    result = location_analysis(
        coordinate_model(64), positioned, ["pool"], ["crop", "masked-pool", "loce"], folds=5
    )
    scores = result.scores.set_index("method")
    assert scores.at["masked-pool", "r2"] > 0.9
    assert scores.at["crop", "r2"] < 0.1 and bool(scores.at["crop", "constant"])
    assert set(result.coords["reducer"]) == {"pca", "tsne"} and len(result.coords) == 3 * 2 * 25
    written = write_location(
        result, tmp_path / "location", images=positioned.images, description={"object": "disk"}
    )
    index = read_index(tmp_path / "location")
    assert index["object"] == "disk" and {f["kind"] for f in index["figures"]} == {"positions", "location"}
    assert all(p.exists() for p in written)
