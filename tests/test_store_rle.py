"""Masks <-> COCO compressed RLE strings: exact round trips and agreement with pycocotools."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as coco_mask

from loce.errors import InputError
from loce.store.rle import _decode_counts, mask_from_rle, rle_from_mask

# pycocotools' own decode (used here as the ground truth) warns under numpy 2; loce's decoder does not use it.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SHAPES = [(1, 1), (1, 17), (23, 1), (7, 5), (64, 48), (101, 257)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("density", [0.0, 0.02, 0.5, 0.97, 1.0])
def test_random_masks_round_trip_exactly(shape, density):
    rng = np.random.default_rng([shape[0], shape[1], int(density * 100)])
    mask = rng.random(shape) < density
    if density == 1.0:
        assert mask.all()
    if density == 0.0:
        assert not mask.any()
    text = rle_from_mask(mask)
    assert isinstance(text, str) and text.isascii()
    back = mask_from_rle(text, *shape)
    assert back.dtype == bool and back.shape == shape
    np.testing.assert_array_equal(back, mask)
    # Any COCO tool decodes the stored string to the same mask.
    np.testing.assert_array_equal(coco_mask.decode({"size": list(shape), "counts": text.encode()}), mask)


def test_blobby_masks_round_trip():
    yy, xx = np.mgrid[:120, :160]
    mask = ((yy - 60) ** 2 + (xx - 70) ** 2 < 40**2) | ((yy > 100) & (xx < 20))
    np.testing.assert_array_equal(mask_from_rle(rle_from_mask(mask), 120, 160), mask)


def test_hand_computed_runs_are_column_major():
    # [[0, 1], [1, 1]] read column by column: 0, 1 | 1, 1 -> one background pixel, then three foreground.
    mask = np.array([[0, 1], [1, 1]], dtype=bool)
    text = rle_from_mask(mask)
    assert _decode_counts(text.encode()) == [1, 3]
    expected = coco_mask.frPyObjects({"counts": [1, 3], "size": [2, 2]}, 2, 2)["counts"].decode()
    assert text == expected


def test_nonzero_values_count_as_inside():
    mask = np.array([[0, 255], [3, 0]], dtype=np.uint8)
    np.testing.assert_array_equal(mask_from_rle(rle_from_mask(mask), 2, 2), mask > 0)


def test_bad_inputs_raise():
    with pytest.raises(InputError, match="2-D"):
        rle_from_mask(np.zeros((2, 2, 2), bool))
    with pytest.raises(InputError, match="2-D"):
        rle_from_mask(np.zeros((0, 3), bool))
    text = rle_from_mask(np.eye(5, dtype=bool))
    with pytest.raises(InputError, match="25|not 5 x 6"):
        mask_from_rle(text, 5, 6)
    with pytest.raises(InputError):
        mask_from_rle(text, 0, 5)
    # a cut string: the runs no longer add up (or a run is cut in the middle)
    with pytest.raises(InputError):
        mask_from_rle(text[:-2], 5, 5)
