"""Interpolation matrices (== F.interpolate) and soft targets on the grid."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from loce.errors import InputError
from loce.fit import interpolation_matrix, prepare_targets, resize_bilinear


@pytest.mark.parametrize(
    ("size_in", "size_out"),
    [
        ((14, 14), (100, 100)),
        ((7, 7), (100, 100)),
        ((14, 10), (100, 100)),
        ((3, 5), (480, 640)),
        ((150, 120), (100, 100)),
        ((1, 1), (5, 5)),
        ((100, 100), (100, 100)),
        ((13, 17), (31, 7)),
    ],
)
def test_separable_resize_equals_f_interpolate(size_in, size_out):
    z = torch.randn(3, *size_in, dtype=torch.float64)
    expected = F.interpolate(z[:, None], size=size_out, mode="bilinear", align_corners=False)[:, 0]
    got = resize_bilinear(z, size_out)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    got32 = resize_bilinear(z.float(), size_out)
    torch.testing.assert_close(got32, expected.float(), rtol=0, atol=1e-5)


def test_interpolation_matrix_hand_values():
    # 2 -> 4: sources at -0.25 (clamped to 0), 0.25, 0.75, 1.25 (upper index clamped to 1).
    assert interpolation_matrix(4, 2).tolist() == [[1.0, 0.0], [0.75, 0.25], [0.25, 0.75], [0.0, 1.0]]
    # 4 -> 2 (shrinking, no anti-aliasing): sources at 0.5 and 2.5.
    assert interpolation_matrix(2, 4).tolist() == [[0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5]]
    m = interpolation_matrix(100, 14)
    assert m.shape == (100, 14)
    torch.testing.assert_close(m.sum(dim=1), torch.ones(100))
    assert int((m > 0).sum(dim=1).max()) <= 2


def test_area_targets_are_exact_coverage_fractions():
    mask = np.zeros((200, 200), bool)
    mask[50:150, 50:150] = True  # aligned with 2 x 2 cells
    mask[0, 0] = True  # one pixel: a quarter of cell (0, 0)
    t = prepare_targets([mask], grid=100, resize="area").soft[0]
    expected = torch.zeros(100, 100)
    expected[25:75, 25:75] = 1
    expected[0, 0] = 0.25
    torch.testing.assert_close(t, expected)


def test_antialiased_targets_match_torch_and_are_soft():
    rng = np.random.default_rng(0)
    masks = [rng.random((240, 320)) > 0.7, np.pad(np.ones((60, 60), bool), 90), rng.random((50, 70)) > 0.5]
    targets = prepare_targets(masks, grid=100)
    for i, m in enumerate(masks):
        x = torch.from_numpy(m.astype(np.float32))[None, None]
        expected = F.interpolate(x, size=(100, 100), mode="bilinear", align_corners=False, antialias=True)[
            0, 0
        ]
        torch.testing.assert_close(targets.soft[i], expected.clamp(0, 1))
    assert float(targets.soft.min()) >= 0 and float(targets.soft.max()) <= 1
    soft = targets.soft[0]
    assert bool(((soft > 0) & (soft < 1)).any())  # anti-aliasing gives fractional values
    # shrinking by 2.4 with a normalised filter roughly preserves the foreground share
    assert abs(float(targets.soft[1].mean()) - masks[1].mean()) < 0.01
    assert targets.mask_area.tolist() == [int(m.sum()) for m in masks]


def test_mixed_sizes_equal_one_at_a_time():
    masks = [np.pad(np.ones((20, 30), bool), 10), np.pad(np.ones((5, 5), bool), 3), np.eye(64, dtype=bool)]
    together = prepare_targets(masks)
    for i, m in enumerate(masks):
        torch.testing.assert_close(together.soft[i], prepare_targets([m]).soft[0])
    sub = together.subset([2, 0])
    torch.testing.assert_close(sub.soft[0], together.soft[2])
    assert sub.masks[1] is together.masks[0]


def test_degenerate_masks_get_a_status():
    masks = [np.zeros((10, 12), bool), np.ones((10, 12), bool), np.pad(np.ones((2, 2), bool), 4)]
    t = prepare_targets(masks)
    assert t.status == ("empty_mask", "full_mask", "ok")
    assert "no foreground" in t.detail[0] and "whole image" in t.detail[1] and t.detail[2] == ""


def test_bad_masks_raise():
    with pytest.raises(InputError, match="2-D"):
        prepare_targets([np.zeros((2, 3, 4), bool)])
    with pytest.raises(InputError, match="values other than 0 and 1"):
        prepare_targets([np.full((4, 4), 2)])
    assert prepare_targets([np.eye(4, dtype=np.uint8)]).masks[0].dtype == bool
