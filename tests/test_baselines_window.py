"""Window embeddings: the window lies where the box centre is (planted coordinate maps), padding is recorded."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from baselines_helpers import box_mask, coordinate_model, pair
from loce.baselines.embed import EmbedOptions, embed_pairs
from loce.baselines.window import center_cell, padded_cells, window_vectors
from loce.capture import LayerCapture
from loce.errors import InputError


def coordinate_maps(n: int, h: int, w: int) -> torch.Tensor:
    """Channel 0 holds each cell's row + 1, channel 1 its column + 1 (so padding zeros are told apart)."""
    rows = torch.arange(1, h + 1, dtype=torch.float32).view(1, 1, h, 1).expand(n, 1, h, w)
    cols = torch.arange(1, w + 1, dtype=torch.float32).view(1, 1, 1, w).expand(n, 1, h, w)
    return torch.cat([rows, cols], dim=1).contiguous()


def test_center_cell_by_hand():
    # 224 px, 7 cells: 32 px per cell. Centre (120, 40) -> column 3 (96..127), row 1 (32..63).
    assert center_cell((100, 20, 140, 60), (224, 224), (7, 7)) == (1, 3)
    # Non-square image and grid: 100 x 300 image on a 5 x 10 grid; centre (x=299.5, y=0.5) -> last column, row 0.
    assert center_cell((299, 0, 300, 1), (100, 300), (5, 10)) == (0, 9)
    assert center_cell((0, 0, 300, 100), (100, 300), (5, 10)) == (2, 5)


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_window_lies_around_the_centre_cell_with_zero_padding(k):
    h, w = 6, 9
    cells = [(r, c) for r in range(h) for c in range(w)]
    acts = coordinate_maps(len(cells), h, w)
    vectors, padding = window_vectors(acts, cells, k)
    assert vectors.shape == (len(cells), 2 * k * k)
    for (r, c), vector, pad in zip(cells, vectors, padding):
        window = vector.reshape(2, k, k)
        r0, c0 = r - (k - 1) // 2, c - (k - 1) // 2
        expected_rows = np.array([[rr + 1 if 0 <= rr < h and 0 <= cc < w else 0 for cc in range(c0, c0 + k)]
                                  for rr in range(r0, r0 + k)])  # fmt: skip
        expected_cols = np.array([[cc + 1 if 0 <= rr < h and 0 <= cc < w else 0 for cc in range(c0, c0 + k)]
                                  for rr in range(r0, r0 + k)])  # fmt: skip
        np.testing.assert_array_equal(window[0], expected_rows)
        np.testing.assert_array_equal(window[1], expected_cols)
        assert pad == int((expected_rows == 0).sum()) == padded_cells((r, c), k, (h, w))
        if k % 2 == 1:  # odd windows are centred: their middle cell is the centre cell
            assert tuple(window[:, k // 2, k // 2]) == (r + 1, c + 1)


def test_window_rejects_bad_input():
    acts = coordinate_maps(1, 4, 4)
    with pytest.raises(InputError, match="positive integer"):
        window_vectors(acts, [(0, 0)], k=0)
    with pytest.raises(InputError, match="outside"):
        window_vectors(acts, [(4, 0)], k=3)
    with pytest.raises(InputError, match="one cell per sample"):
        window_vectors(acts, [(0, 0), (1, 1)], k=3)


def test_embedded_window_follows_the_box_centre_through_the_model():
    """End to end: the model's layer holds each cell's coordinates, so the vector's centre names its cell."""
    model = coordinate_model(size=56)
    rng = np.random.default_rng(0)
    images, pairs, expected = [], [], []
    for i in range(12):
        height, width = int(rng.integers(40, 90)), int(rng.integers(40, 90))
        x0, y0 = int(rng.integers(0, width - 5)), int(rng.integers(0, height - 5))
        x1, y1 = int(rng.integers(x0 + 1, width + 1)), int(rng.integers(y0 + 1, height + 1))
        images.append(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))
        pairs.append(pair(i, box_mask((height, width), x0, y0, x1, y1)))
        # by hand: the centre pixel position scaled to the 7 x 7 grid
        expected.append((int((y0 + y1) / 2 * 7 // height), int((x0 + x1) / 2 * 7 // width)))
    with LayerCapture(model.module, ["coords"]) as capture:
        out = embed_pairs("window", images, pairs, ["coords"], model.preprocessing, capture,
                          options=EmbedOptions(window_size=3))["coords"]  # fmt: skip
    assert out.status == ["ok"] * 12
    for vector, detail, (r, c) in zip(out.vectors, out.detail, expected):
        window = vector.reshape(2, 3, 3)
        assert (window[0, 1, 1], window[1, 1, 1]) == (r, c)
        info = json.loads(detail)
        assert info["center_cell"] == [r, c] and info["grid"] == [7, 7] and info["k"] == 3
        assert info["padded_cells"] == padded_cells((r, c), 3, (7, 7))
