"""Batched projections: equal to the naive computation, and a planted vector localises its planted region."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from loce.errors import InputError
from loce.localize.heatmaps import concept_heatmaps, concept_logits, overlay, resize_map, threshold_maps
from loce.localize.metrics import localization_scores


def test_batched_heatmaps_equal_naive_upsample_then_project():
    g = torch.Generator().manual_seed(0)
    acts = torch.randn(3, 6, 5, 7, generator=g)
    vectors = torch.randn(4, 6, generator=g)
    maps = concept_heatmaps(vectors, acts, size=(20, 28))
    assert maps.logits.shape == (3, 4, 20, 28)
    up = F.interpolate(acts, size=(20, 28), mode="bilinear", align_corners=False)
    naive = torch.einsum("kc,bchw->bkhw", vectors, up)
    torch.testing.assert_close(maps.logits, naive, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(maps.probabilities, torch.sigmoid(naive), atol=1e-5, rtol=1e-4)
    # without size: the layer's own grid
    assert concept_heatmaps(vectors, acts).logits.shape == (3, 4, 5, 7)


def test_concept_logits_checks_dimensions():
    with pytest.raises(InputError, match="C=6"):
        concept_logits(torch.ones(2, 5), torch.ones(1, 6, 3, 3))
    with pytest.raises(InputError):
        concept_logits(torch.ones(6), torch.ones(6, 3, 3))


def test_planted_vector_localises_the_planted_region():
    """Activations: noise and -d everywhere, +3 d in the cells of a planted 3 x 2 block; v = 2 d finds the block."""
    g = torch.Generator().manual_seed(1)
    b, c, h, w, scale = 4, 16, 8, 8, 8
    direction = torch.randn(c, generator=g)
    direction /= direction.norm()
    acts = 0.3 * torch.randn(b, c, h, w, generator=g) - direction.view(1, c, 1, 1)
    masks = np.zeros((b, h * scale, w * scale), bool)
    for i, (r, col) in enumerate([(1, 1), (4, 5), (2, 4), (5, 0)]):
        acts[i, :, r : r + 3, col : col + 2] += 4.0 * direction.view(c, 1, 1)
        masks[i, r * scale : (r + 3) * scale, col * scale : (col + 2) * scale] = True
    maps = concept_heatmaps(2.0 * direction, acts, size=(h * scale, w * scale))
    prob, z = maps.probabilities[:, 0], maps.logits[:, 0]
    scores = localization_scores(prob, masks, peak_maps=z)
    assert (scores.iou > 0.6).all(), scores.iou  # measured 0.74-0.86 (bilinear edges)
    assert (scores.pointing == 1.0).all()
    # the block centre is at most ~1.5 cells from the peak: 12 px / (64 * sqrt 2) = 0.13
    assert (scores.alignment_error < 0.13).all(), scores.alignment_error
    # a random vector does not localise the region
    other = torch.randn(c, generator=g)
    other -= (other @ direction) * direction
    random_scores = localization_scores(
        concept_heatmaps(other, acts, size=(64, 64)).probabilities[:, 0], masks
    )
    assert random_scores.iou.mean() < 0.3


def test_threshold_resize_and_overlay():
    np.testing.assert_array_equal(threshold_maps(np.array([[0.2, 0.6]]), 0.5), [[False, True]])
    np.testing.assert_allclose(resize_map(np.array([[0.0, 1.0]]), (1, 4)), [[0.0, 0.25, 0.75, 1.0]])
    image = np.full((8, 8, 3), 100, np.uint8)
    heat = np.zeros((2, 2))
    heat[0, 0] = 1.0
    out = overlay(image, heat, alpha=0.8)
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8
    # zero heat leaves the image unchanged; the hot corner is recoloured
    np.testing.assert_array_equal(out[7, 7], image[7, 7])
    assert not np.array_equal(out[0, 0], image[0, 0])
    with pytest.raises(InputError):
        overlay(np.zeros((8, 8)), heat)
