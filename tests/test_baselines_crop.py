"""Crop embeddings: canvases hold only mask pixels (black elsewhere), keep the aspect, and ignore the background."""

from __future__ import annotations

import json

import numpy as np
import pytest

from baselines_helpers import coordinate_model, pair
from loce.baselines.crop import crop_canvas, default_crop_layer, mask_box
from loce.baselines.embed import embed_pairs
from loce.capture import LayerCapture
from loce.errors import InputError, LayerError


def blob(shape: tuple[int, int], seed: int) -> np.ndarray:
    """An irregular mask: a union of random disks."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    mask = np.zeros(shape, bool)
    for _ in range(4):
        cy, cx = rng.integers(10, shape[0] - 10), rng.integers(10, shape[1] - 10)
        mask |= (yy - cy) ** 2 + (xx - cx) ** 2 <= int(rng.integers(3, 9)) ** 2
    return mask


@pytest.mark.parametrize("aspect", [1.0, 0.5, 1.75])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_canvas_holds_exactly_the_mask_pixels_and_black_elsewhere(seed, aspect):
    rng = np.random.default_rng(seed)
    image = rng.integers(1, 256, (60, 80, 3), dtype=np.uint8)  # no black pixel in the image itself
    mask = blob((60, 80), seed)
    canvas = crop_canvas(image, mask, aspect=aspect)
    x0, y0, x1, y1 = canvas.box
    assert (x0, y0, x1, y1) == mask_box(mask)
    left, top = canvas.offset
    placed = np.zeros(canvas.image.shape[:2], bool)
    placed[top : top + y1 - y0, left : left + x1 - x0] = mask[y0:y1, x0:x1]
    # every mask pixel is there, unchanged; everything else is black
    np.testing.assert_array_equal(canvas.image[placed], image[y0:y1, x0:x1][mask[y0:y1, x0:x1]])
    assert (canvas.image[~placed] == 0).all()
    assert placed.sum() == mask.sum()
    # the canvas fits the crop tightly in one direction and has the requested aspect (up to one pixel)
    height, width = canvas.image.shape[:2]
    assert height >= y1 - y0 and width >= x1 - x0
    assert height == y1 - y0 or width == x1 - x0
    assert abs(width - aspect * height) <= max(1.0, aspect)


def test_canvas_margin_and_centring_by_hand():
    image = np.full((10, 10, 3), 7, np.uint8)
    mask = np.zeros((10, 10), bool)
    mask[2:4, 1:9] = True  # 2 x 8 crop
    canvas = crop_canvas(image, mask, margin=0.25)  # 2 px border -> 6 x 12 inner, square canvas 12 x 12
    assert canvas.image.shape == (12, 12, 3) and canvas.offset == (2, 5)
    assert canvas.describe() == {"crop_box": [1, 2, 9, 4], "canvas": [12, 12], "offset": [2, 5]}
    with pytest.raises(InputError, match="no foreground"):
        crop_canvas(image, np.zeros((10, 10), bool))


def test_default_layer_is_a_documented_per_model_choice():
    assert default_crop_layer("efficientnet-lite0") == "_avg_pooling"
    assert default_crop_layer("torchvision:resnet50@IMAGENET1K_V2") == "avgpool"
    with pytest.raises(LayerError, match="--layers"):
        default_crop_layer("timm:vit_small_patch16_224")


def test_crop_embedding_ignores_background_and_position():
    """The same object on two different backgrounds at two positions: its crops, hence embeddings, are equal."""
    model = coordinate_model(size=64)
    rng = np.random.default_rng(3)
    obj = rng.integers(1, 256, (20, 14, 3), dtype=np.uint8)
    obj_mask = np.add.outer(np.arange(20), np.arange(14)) % 5 != 0  # an irregular object shape
    images, pairs = [], []
    for i, (top, left) in enumerate([(5, 7), (40, 44)]):
        image = rng.integers(0, 256, (70, 70, 3), dtype=np.uint8)
        mask = np.zeros((70, 70), bool)
        mask[top : top + 20, left : left + 14] = obj_mask
        image[mask] = obj[obj_mask]
        images.append(image)
        pairs.append(pair(i, mask))
    empty = pair(2, np.zeros((70, 70), bool))
    images.append(images[0])
    with LayerCapture(model.module, ["pool"]) as capture:
        out = embed_pairs("crop", images, [*pairs, empty], ["pool"], model.preprocessing, capture)["pool"]
    assert out.status == ["ok", "ok", "empty_mask"]
    np.testing.assert_allclose(out.vectors[0], out.vectors[1], atol=1e-6)
    assert (out.vectors[2] == 0).all() and "no foreground" in out.detail[2]
    assert json.loads(out.detail[0])["crop_box"] == [7, 5, 21, 25]
