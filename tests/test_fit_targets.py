"""Interpolation matrices (== F.interpolate) and soft targets on the grid."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from loce.errors import InputError
from loce.fit import interpolation_matrix, prepare_targets, resize_bilinear
from loce.fit.objectives import foreground_share
from loce.fit.targets import skimage_resize, skimage_resize_matrix


def _varied_masks(n: int, seed: int = 0) -> list[np.ndarray]:
    """Masks of many sizes and aspect ratios (shrinking, enlarging, mixed, odd, 1-pixel-wide) and shapes."""
    rng = np.random.default_rng(seed)
    fixed = [
        (480, 640),
        (427, 640),
        (101, 99),
        (100, 100),
        (37, 53),
        (1, 7),
        (9, 1),
        (1, 1),
        (250, 40),
        (33, 777),
    ]
    masks = []
    for i in range(n):
        h, w = fixed[i] if i < len(fixed) else (int(rng.integers(1, 700)), int(rng.integers(1, 700)))
        m = np.zeros((h, w), bool)
        y, x = int(rng.integers(0, h)), int(rng.integers(0, w))
        m[y : y + int(rng.integers(1, h + 1)), x : x + int(rng.integers(1, w + 1))] = True
        if i % 3 == 1:  # ragged edges, holes and isolated pixels: many runs per row
            m ^= rng.random((h, w)) < 0.03
        elif i % 3 == 2:
            yy, xx = np.ogrid[:h, :w]
            m |= (yy - h / 2) ** 2 / (h / 3 + 1) ** 2 + (xx - w / 3) ** 2 / (w / 4 + 1) ** 2 < 1
        masks.append(m)
    return masks


def test_paper_targets_equal_scikit_image_resize():
    from skimage.transform import resize

    masks = _varied_masks(60)
    targets = prepare_targets(masks, grid=100)  # the default: the paper's target
    assert targets.resize == "skimage"
    worst = 0.0
    for i, m in enumerate(masks):
        expected = resize(m.astype(float), (100, 100))
        worst = max(worst, float(np.abs(targets.soft[i].numpy() - expected).max()))
    assert worst <= 1e-6
    # other grids too, and float maps through skimage_resize (any size, both directions per axis)
    rng = np.random.default_rng(1)
    for m in masks[:12]:
        assert (
            np.abs(prepare_targets([m], grid=31).soft[0].numpy() - resize(m.astype(float), (31, 31))).max()
            <= 1e-6
        )
        p = rng.random(m.shape)
        for size in [(100, 100), (5, 300), (m.shape[0] * 2 + 1, max(1, m.shape[1] // 3))]:
            got = skimage_resize(torch.from_numpy(p)[None], size)[0].numpy()
            assert np.abs(got - resize(p, size)).max() <= 1e-12


def test_paper_target_alpha_counts_the_gaussian_tail():
    # a 480 x 640 mask shrunk by 4.8 / 6.4: the Gaussian's tail reaches further than the triangle filter
    mask = np.zeros((480, 640), bool)
    mask[100:300, 200:420] = True
    paper = prepare_targets([mask]).soft
    triangle = prepare_targets([mask], resize="bilinear_antialias").soft
    # t > 0 spans (rows 20.8 +- ~2 sigma_rows ...): more cells than the triangle's, which sets alpha
    assert float(foreground_share(paper.flatten(1))[0]) > float(foreground_share(triangle.flatten(1))[0])
    from skimage.transform import resize

    expected = resize(mask.astype(float), (100, 100))
    assert int((paper[0] > 0).sum()) == int((expected > 0).sum())  # the same alpha as the publication's


def test_skimage_resize_matrix_hand_values():
    # enlarging 2 -> 4: samples at -0.25, 0.25, 0.75, 1.25, borders mirrored (-0.25 -> 0.25, 1.25 -> 0.75)
    assert skimage_resize_matrix(4, 2).tolist() == [[0.75, 0.25], [0.75, 0.25], [0.25, 0.75], [0.25, 0.75]]
    # shrinking 3 -> 1: sigma 1, radius 4, mirror boundary folds the kernel back; one sample at the centre
    x = np.arange(-4, 5)
    w = np.exp(-0.5 * x**2)
    w /= w.sum()
    mirrored = np.abs(np.mod(1 + x, 4))
    mirrored = np.where(mirrored > 2, 4 - mirrored, mirrored)
    expected = np.bincount(mirrored, weights=w, minlength=3)
    np.testing.assert_allclose(skimage_resize_matrix(1, 3)[0], expected, rtol=0, atol=1e-15)
    assert np.allclose(skimage_resize_matrix(100, 480).sum(axis=1), 1.0)


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


def test_triangle_targets_match_torch_and_are_soft():
    rng = np.random.default_rng(0)
    masks = [rng.random((240, 320)) > 0.7, np.pad(np.ones((60, 60), bool), 90), rng.random((50, 70)) > 0.5]
    targets = prepare_targets(masks, grid=100, resize="bilinear_antialias")
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
