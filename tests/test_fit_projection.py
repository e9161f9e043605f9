"""Projections (heat maps) and the IoU at mask resolution, against hand-computed values and naive upsampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from loce.errors import InputError
from loce.fit import binary_iou, logits, mask_iou, project, projection_iou, projection_maps, resize_maps


def test_binary_iou_hand_values():
    a = np.array([[1, 1, 0], [0, 1, 0]], bool)
    b = np.array([[0, 1, 1], [0, 1, 0]], bool)
    assert binary_iou(a, b) == pytest.approx(2 / 4)
    assert binary_iou(a, a) == 1.0
    assert binary_iou(a, ~a) == 0.0
    assert np.isnan(binary_iou(np.zeros((2, 2), bool), np.zeros((2, 2), bool)))


def test_projection_iou_hand_values_with_mixed_mask_sizes():
    # Sample 0: logits [1, -1] on a 1 x 2 grid, brought to a 1 x 4 mask: bilinear values 1, 0.5, -0.5, -1
    # -> prediction [T, T, F, F]. Sample 1: the same logits to a 1 x 2 mask (identity) -> [T, F].
    # Sample 2: logits [-1, 1] to 1 x 4 -> [F, F, T, T].
    z = torch.tensor([[[1.0, -1.0]], [[1.0, -1.0]], [[-1.0, 1.0]]])
    masks = [
        np.array([[1, 0, 0, 0]], bool),  # inter 1, union 2
        np.array([[1, 1]], bool),  # inter 1, union 2
        np.array([[0, 1, 1, 1]], bool),  # inter 2, union 3
    ]
    np.testing.assert_allclose(projection_iou(z, masks), [1 / 2, 1 / 2, 2 / 3])
    masks[0] = np.array([[1, 1, 1, 0]], bool)  # inter 2, union 3
    np.testing.assert_allclose(projection_iou(z, masks), [2 / 3, 1 / 2, 2 / 3])


def test_projection_iou_equals_naive_full_resolution_computation():
    g = torch.Generator().manual_seed(0)
    acts = torch.randn(5, 6, 7, 9, generator=g)
    v = torch.randn(5, 6, generator=g)
    rng = np.random.default_rng(0)
    sizes = [(50, 60), (33, 20), (50, 60), (7, 9), (120, 90)]
    masks = [rng.random(s) > 0.5 for s in sizes]
    got = projection_iou(logits(v, acts), masks)
    for i, m in enumerate(masks):
        up = F.interpolate(acts[i : i + 1], size=m.shape, mode="bilinear", align_corners=False)[0]
        pred = torch.sigmoid(torch.einsum("c,chw->hw", v[i], up)).numpy() > 0.5
        assert got[i] == pytest.approx(binary_iou(pred, m), abs=1e-3)


def test_project_equals_upsampling_all_channels_first():
    g = torch.Generator().manual_seed(1)
    acts = torch.randn(3, 10, 14, 14, generator=g)
    v = torch.randn(10, generator=g)
    up = F.interpolate(acts, size=(100, 100), mode="bilinear", align_corners=False)
    expected = torch.sigmoid(torch.einsum("c,bchw->bhw", v, up))
    torch.testing.assert_close(project(v, acts, size=(100, 100)), expected, rtol=0, atol=1e-5)
    native = project(v.numpy(), acts)
    torch.testing.assert_close(native, torch.sigmoid(torch.einsum("c,bchw->bhw", v, acts)), rtol=0, atol=1e-6)
    per_sample = project(torch.stack([v, -v, 2 * v]), acts)
    torch.testing.assert_close(per_sample[1], 1 - native[1], rtol=0, atol=1e-6)


def test_project_rejects_mismatched_shapes():
    with pytest.raises(InputError, match="do not fit"):
        project(torch.ones(5), torch.zeros(2, 4, 3, 3))
    with pytest.raises(InputError, match="B x C x h x w"):
        project(torch.ones(4), torch.zeros(4, 3, 3))
    with pytest.raises(InputError, match="one mask per sample"):
        projection_iou(torch.zeros(2, 3, 3), [np.ones((3, 3), bool)])


def _paper_iou_with_scikit_image(v: torch.Tensor, acts: torch.Tensor, mask: np.ndarray) -> float:
    """The publication's score, written out: all channels upsampled to 100 x 100, projected, resized by skimage."""
    from skimage.transform import resize

    up = F.interpolate(acts[None].double(), size=(100, 100), mode="bilinear", align_corners=False)[0]
    projection = torch.sigmoid(torch.einsum("c,chw->hw", v.double(), up)).numpy()
    return binary_iou(resize(projection, mask.shape) > 0.5, mask)


def test_paper_iou_equals_the_publication_computation():
    g = torch.Generator().manual_seed(2)
    acts = torch.randn(6, 6, 7, 9, generator=g)
    v = torch.randn(6, 6, generator=g)
    rng = np.random.default_rng(2)
    sizes = [(480, 640), (33, 20), (480, 640), (7, 9), (120, 90), (100, 100)]  # enlarging, shrinking, mixed
    masks = [rng.random(s) > 0.5 for s in sizes]
    got = projection_iou(logits(v, acts), masks, convention="paper")
    native = projection_iou(logits(v, acts), masks)
    for i, m in enumerate(masks):
        assert got[i] == pytest.approx(_paper_iou_with_scikit_image(v[i], acts[i], m), abs=1e-4)
    assert not np.allclose(got, native)  # a different convention, not a renamed one
    # the same maps from project(): formed on the grid, resized like scikit-image
    from skimage.transform import resize

    maps = project(v[:1], acts[:1], size=(33, 20), convention="paper")[0].numpy()
    up = F.interpolate(acts[:1].double(), size=(100, 100), mode="bilinear", align_corners=False)[0]
    on_grid = torch.sigmoid(torch.einsum("c,chw->hw", v[0].double(), up)).numpy()
    np.testing.assert_allclose(maps, resize(on_grid, (33, 20)), rtol=0, atol=1e-5)
    assert project(v[:1], acts[:1], convention="paper").shape == (1, 100, 100)
    with pytest.raises(InputError, match="convention"):
        projection_iou(logits(v, acts), masks, convention="skimage")


def test_mask_iou_hand_values_for_arrays_tensors_and_sequences():
    pred = np.array([[[1, 1, 0]], [[0, 0, 0]], [[1, 0, 1]]], bool)
    masks = np.array([[[0, 1, 1]], [[0, 0, 0]], [[1, 0, 1]]], bool)
    expected = [1 / 3, np.nan, 1.0]  # inter 1 / union 3; both empty; identical
    np.testing.assert_allclose(mask_iou(pred, masks), expected)
    np.testing.assert_allclose(mask_iou(torch.from_numpy(pred), torch.from_numpy(masks)), expected)
    np.testing.assert_allclose(mask_iou(pred, list(masks)), expected)
    assert mask_iou(pred[:0], masks[:0]).shape == (0,)
    with pytest.raises(InputError, match="same shape"):
        mask_iou(pred, [np.zeros((1, 4), bool)] * 3)
    with pytest.raises(InputError, match="3 predictions but 2 masks"):
        mask_iou(pred, masks[:2])


def test_mask_iou_equals_the_counting_it_replaced():
    """The localisation metrics counted with torch reductions, ``binary_iou`` with numpy: all agree."""
    rng = np.random.default_rng(3)
    pred = rng.random((6, 9, 11)) > 0.6
    masks = rng.random((6, 9, 11)) > 0.5
    masks[2] = False
    pred[2] = False
    p, t = torch.from_numpy(pred), torch.from_numpy(masks)
    inter = (p & t).flatten(1).sum(dim=1).double()
    union = (p | t).flatten(1).sum(dim=1).double()
    old = (inter / union.clamp_min(1)).numpy()
    old[union.numpy() == 0] = np.nan
    np.testing.assert_array_equal(mask_iou(pred, masks), old)
    assert [binary_iou(a, b) for a, b in zip(pred, masks)][:2] == old[:2].tolist()


def test_projection_maps_equal_the_naive_conventions_for_any_leading_shape():
    from skimage.transform import resize

    g = torch.Generator().manual_seed(4)
    z = torch.randn(2, 3, 5, 7, generator=g)
    native = projection_maps(z, (20, 28))
    naive_native = torch.sigmoid(F.interpolate(z, size=(20, 28), mode="bilinear", align_corners=False))
    torch.testing.assert_close(native, naive_native, rtol=0, atol=1e-5)
    torch.testing.assert_close(projection_maps(z), torch.sigmoid(z), rtol=0, atol=0)
    paper = projection_maps(z, (40, 30), convention="paper", grid=50)
    assert paper.shape == (2, 3, 40, 30)
    on_grid = torch.sigmoid(F.interpolate(z.double(), size=(50, 50), mode="bilinear", align_corners=False))
    for b in range(2):
        for k in range(3):
            expected = resize(on_grid[b, k].numpy(), (40, 30))
            np.testing.assert_allclose(paper[b, k].numpy(), expected, rtol=0, atol=1e-5)
    with pytest.raises(InputError, match="convention"):
        projection_maps(z, convention="exact")


def test_resize_maps_equals_interpolate_and_keeps_maps_of_the_right_size():
    g = torch.Generator().manual_seed(5)
    maps = torch.randn(4, 2, 3, 6, generator=g)
    expected = F.interpolate(maps, size=(9, 4), mode="bilinear", align_corners=False)
    torch.testing.assert_close(resize_maps(maps, (9, 4)), expected, rtol=0, atol=1e-6)
    assert resize_maps(maps, (3, 6)) is maps
    assert resize_maps(maps[0, 0], (6, 12)).shape == (6, 12)
