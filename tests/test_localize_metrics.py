"""Localisation metrics on hand-made maps and masks, against values computed by hand (written out below)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from loce.errors import InputError
from loce.localize.metrics import (
    activation_l1,
    alignment_error,
    iou_at_threshold,
    localization_scores,
    mask_centroids,
    peak_locations,
    pointing_game,
    summarize_scores,
)

# A 4 x 4 map and a 2 x 3 mask (rows 1-2, columns 1-3):
#
#   map                         mask
#   0.1 0.2 0.0 0.0             . . . .
#   0.3 0.9 0.6 0.0             . X X X
#   0.0 0.7 0.4 0.0             . X X X
#   0.0 0.0 0.0 0.0             . . . .
MAP_A = np.array(
    [[0.1, 0.2, 0.0, 0.0], [0.3, 0.9, 0.6, 0.0], [0.0, 0.7, 0.4, 0.0], [0.0, 0.0, 0.0, 0.0]], dtype=np.float32
)
MASK = np.zeros((4, 4), bool)
MASK[1:3, 1:4] = True
DIAGONAL = np.sqrt(4**2 + 4**2)  # 5.656854...

# Map B: a single spike at (3, 3), outside the mask.
MAP_B = np.zeros((4, 4), np.float32)
MAP_B[3, 3] = 1.0


def test_iou_at_threshold_hand_values():
    # A > 0.5 = {(1,1), (1,2), (2,1)}: all inside the 6-pixel mask -> 3 / 6.
    # B > 0.5 = {(3,3)}: outside -> 0 / 7.
    iou = iou_at_threshold(np.stack([MAP_A, MAP_B]), np.stack([MASK, MASK]), threshold=0.5)
    np.testing.assert_allclose(iou, [0.5, 0.0])
    # threshold 0.35: A adds (2,2)=0.4 (inside) -> 4 / 6
    assert iou_at_threshold(MAP_A, MASK, 0.35)[0] == pytest.approx(4 / 6)
    # both empty -> nan
    assert np.isnan(iou_at_threshold(np.zeros((1, 2, 2)), np.zeros((1, 2, 2), bool))[0])


def test_peaks_and_centroids_hand_values():
    np.testing.assert_array_equal(peak_locations(np.stack([MAP_A, MAP_B])), [[1, 1], [3, 3]])
    # ties: the first maximum in row-major order
    tie = np.zeros((3, 4))
    tie[0, 3] = tie[2, 0] = 5.0
    np.testing.assert_array_equal(peak_locations(tie), [[0, 3]])
    # mask centroid: rows (1+1+1+2+2+2)/6 = 1.5, columns (1+2+3+1+2+3)/6 = 2.0
    np.testing.assert_allclose(mask_centroids(MASK), [[1.5, 2.0]])
    assert np.isnan(mask_centroids(np.zeros((2, 2), bool))).all()


def test_pointing_game_hand_values():
    maps, masks = np.stack([MAP_A, MAP_B]), np.stack([MASK, MASK])
    np.testing.assert_array_equal(pointing_game(maps, masks), [1.0, 0.0])
    # B's peak (3,3) is 1 pixel from the mask pixel (2,3): a hit with tolerance 1, not with 0.9
    np.testing.assert_array_equal(pointing_game(maps, masks, tolerance=1.0), [1.0, 1.0])
    np.testing.assert_array_equal(pointing_game(maps, masks, tolerance=0.9), [1.0, 0.0])


def test_alignment_error_hand_values():
    peaks = peak_locations(np.stack([MAP_A, MAP_B]))
    # A: peak (1,1) to centroid (1.5, 2): sqrt(0.25 + 1) = 1.118034 / 5.656854 = 0.197642
    # B: peak (3,3) to centroid (1.5, 2): sqrt(2.25 + 1) = 1.802776 / 5.656854 = 0.318689
    errors = alignment_error(peaks, (4, 4), masks=np.stack([MASK, MASK]))
    np.testing.assert_allclose(errors, [np.sqrt(1.25) / DIAGONAL, np.sqrt(3.25) / DIAGONAL])
    np.testing.assert_allclose(errors, [0.197642, 0.318689], atol=1e-6)
    # nearest of two reference points: B's peak (3,3) to (3, 2.5) is 0.5 -> 0.5 / 5.656854 = 0.088388
    refs = [np.array([[0.0, 0.0]]), np.array([[0.0, 0.0], [3.0, 2.5]])]
    np.testing.assert_allclose(
        alignment_error(peaks, (4, 4), reference_points=refs), [np.sqrt(2) / DIAGONAL, 0.088388], atol=1e-6
    )
    # a non-square image: the diagonal is sqrt(3^2 + 4^2) = 5; peak (0,0) to (0,4) = 4 -> 0.8
    assert alignment_error(np.array([[0.0, 0.0]]), (3, 4), reference_points=[np.array([[0.0, 4.0]])])[
        0
    ] == pytest.approx(0.8)
    with pytest.raises(InputError):
        alignment_error(peaks, (4, 4))


def test_activation_l1_hand_values():
    # A: sum 0.1+0.2+0.3+0.9+0.6+0.7+0.4 = 3.2; 3.2 / (16 * 0.9) = 0.222222
    # B: 1 / (16 * 1) = 0.0625;  flat map: 1;  all zero: nan
    values = activation_l1(np.stack([MAP_A, MAP_B, np.full((4, 4), 0.3), np.zeros((4, 4))]))
    np.testing.assert_allclose(values[:3], [3.2 / 14.4, 0.0625, 1.0], rtol=1e-6)
    assert np.isnan(values[3])
    # scale-free: the spread of 10 * A is that of A
    assert activation_l1(10 * MAP_A)[0] == pytest.approx(values[0])


def test_localization_scores_batches_and_uses_peak_maps():
    maps = torch.from_numpy(np.stack([MAP_A, MAP_B]))
    scores = localization_scores(maps, np.stack([MASK, MASK]))
    frame = scores.to_frame()
    np.testing.assert_allclose(frame["iou"], [0.5, 0.0])
    np.testing.assert_allclose(frame["pointing_game"], [1.0, 0.0])
    np.testing.assert_allclose(frame["alignment_error"], [0.197642, 0.318689], atol=1e-6)
    np.testing.assert_allclose(frame["activation_l1"], [3.2 / 14.4, 0.0625], rtol=1e-6)
    # a saturated map (two cells at exactly 1.0) takes its peak from the logits passed as peak_maps
    saturated = np.zeros((1, 4, 4), np.float32)
    saturated[0, 0, 0] = saturated[0, 2, 2] = 1.0
    logits = np.zeros((1, 4, 4), np.float32)
    logits[0, 0, 0], logits[0, 2, 2] = 20.0, 30.0
    s = localization_scores(saturated, MASK[None], peak_maps=logits)
    np.testing.assert_array_equal(s.peaks, [[2, 2]])
    assert s.pointing[0] == 1.0
    with pytest.raises(InputError, match="resize the maps"):
        localization_scores(np.zeros((1, 4, 5)), MASK[None])


def test_summarize_scores_means_per_group():
    frame = pd.DataFrame(
        {
            "concept": ["a", "a", "b"],
            "layer": ["l", "l", "l"],
            "kind": ["mean", "mean", "mean"],
            "iou": [0.2, 0.4, 1.0],
            "pointing_game": [1.0, 0.0, 1.0],
            "alignment_error": [0.1, 0.3, 0.0],
            "activation_l1": [0.5, 0.25, 0.1],
        }
    )
    table = summarize_scores(frame).set_index("concept")
    assert table.loc["a", "n"] == 2 and table.loc["b", "n"] == 1
    assert table.loc["a", "iou"] == pytest.approx(0.3)
    assert table.loc["a", "pointing_game"] == pytest.approx(0.5)
    assert table.loc["a", "alignment_error"] == pytest.approx(0.2)
    assert table.loc["a", "median_alignment_error"] == pytest.approx(0.2)
    assert table.loc["a", "activation_l1"] == pytest.approx(0.375)
