"""Masked pooling: exact area weights of the mask on the layer's grid, and the weighted mean of the activations."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from baselines_helpers import box_mask, coordinate_model, pair
from loce.baselines.embed import embed_pairs
from loce.baselines.masked_pool import cell_coverage, masked_pool, overlap_matrix
from loce.capture import LayerCapture
from loce.errors import InputError


def test_overlap_matrix_shares_every_pixel_out_completely():
    for cells, pixels in [(7, 224), (7, 100), (3, 5), (14, 13)]:
        m = overlap_matrix(cells, pixels)
        np.testing.assert_allclose(m.sum(axis=0), 1.0)
        np.testing.assert_allclose(m.sum(axis=1), pixels / cells)
    # 3 pixels on 2 cells: the middle pixel is cut in half
    np.testing.assert_allclose(overlap_matrix(2, 3), [[1.0, 0.5, 0.0], [0.0, 0.5, 1.0]])


def test_coverage_equals_area_pooling_for_integer_ratios():
    rng = np.random.default_rng(0)
    mask = rng.random((56, 84)) > 0.6
    coverage = cell_coverage(mask, (7, 7))  # cells of 8 x 12 pixels
    area = F.interpolate(torch.from_numpy(mask.astype(np.float32))[None, None], size=(7, 7), mode="area")[
        0, 0
    ]
    np.testing.assert_allclose(coverage, area.numpy() * 96, rtol=1e-6)


def test_coverage_by_hand_for_a_non_integer_ratio():
    mask = np.zeros((3, 3), bool)
    mask[1, 1] = True  # the centre pixel lies half in each of the two cells along both axes
    np.testing.assert_allclose(cell_coverage(mask, (2, 2)), np.full((2, 2), 0.25))
    mask = np.ones((5, 7), bool)
    assert cell_coverage(mask, (3, 2)).sum() == pytest.approx(35.0)


def test_masked_pool_is_the_area_weighted_mean():
    acts = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 0.0], [0.0, 10.0]]]])  # 1 x 2 x 2 x 2
    weights = np.array([[[3.0, 1.0], [0.0, 0.0]]])
    np.testing.assert_allclose(masked_pool(acts, weights), [[(3 * 1 + 2) / 4, 0.0]])
    with pytest.raises(InputError, match="zero mask weight"):
        masked_pool(acts, np.zeros((1, 2, 2)))
    with pytest.raises(InputError, match="do not fit"):
        masked_pool(acts, np.ones((1, 3, 2)))


def test_embedded_masked_pool_is_the_mean_cell_coordinate_under_the_mask():
    """Through the model: the coordinate layer averaged under a box mask gives the box's mean cell position."""
    model = coordinate_model(size=56)
    mask = box_mask(
        (56, 56), 8, 16, 24, 40
    )  # rows 16..39 -> cells 2..4, cols 8..23 -> cells 1..2 (8 px cells)
    with LayerCapture(model.module, ["coords"]) as capture:
        out = embed_pairs("masked-pool", [np.zeros((56, 56, 3), np.uint8)], [pair(0, mask)], ["coords"],
                          model.preprocessing, capture)["coords"]  # fmt: skip
    np.testing.assert_allclose(out.vectors[0], [3.0, 1.5], atol=1e-6)
    assert json.loads(out.detail[0]) == {"grid": [7, 7], "cells_covered": 6}
