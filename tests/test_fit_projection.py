"""Projections (heat maps) and the IoU at mask resolution, against hand-computed values and naive upsampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from loce.errors import InputError
from loce.fit import binary_iou, logits, project, projection_iou


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
