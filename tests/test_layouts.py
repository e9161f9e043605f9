"""Layout rules: which reading of an output shape is the spatial grid, and token prefixes / grids."""

from __future__ import annotations

import pytest
import torch

from loce.errors import LayerError
from loce.layouts import (
    FROM_MODEL,
    GIVEN,
    GUESSED,
    Layout,
    TokenHints,
    first_tensor,
    resolve_layout,
    resolve_layout_basis,
    to_nchw,
)


@pytest.mark.parametrize(
    ("shape", "size", "hints", "expected"),
    [
        ((2, 64, 56, 56), (224, 224), TokenHints(), Layout("nchw")),
        ((2, 56, 56, 96), (224, 224), TokenHints(), Layout("nhwc")),
        ((2, 7, 7, 768), (224, 224), TokenHints(), Layout("nhwc")),
        ((2, 16, 16, 16), (64, 64), TokenHints(), Layout("nchw")),  # both readings fit: NCHW wins
        ((2, 147, 147, 64), (299, 299), TokenHints(), Layout("nhwc")),  # valid-padding convolutions
        ((2, 197, 384), (224, 224), TokenHints(), Layout("tokens", 1, (14, 14))),
        ((2, 141, 192), (224, 160), TokenHints(), Layout("tokens", 1, (14, 10))),
        ((2, 12, 32), (96, 128), TokenHints(), Layout("tokens", 0, (3, 4))),
        ((2, 21, 384), (56, 56), TokenHints((14, 14), 5), Layout("tokens", 5, (4, 4))),
        (
            (2, 16, 384),
            (56, 56),
            TokenHints((14, 14), 5),
            Layout("tokens", 0, (4, 4)),
        ),  # patch_embed: no prefix
    ],
)
def test_resolve_layout(shape, size, hints, expected):
    assert resolve_layout(shape, size, hints=hints) == expected


def test_ambiguous_token_grid_asks_for_an_explicit_layout():
    # 5 tokens on a 32 x 32 input: 1 prefix + 2 x 2, or 4 prefix + 1 x 1.
    with pytest.raises(LayerError, match=r"'blk'.*tokens:P"):
        resolve_layout((2, 5, 8), (32, 32), layer="blk")
    assert resolve_layout((2, 5, 8), (32, 32), "tokens:1") == Layout("tokens", 1, (2, 2))
    assert resolve_layout((2, 5, 8), (32, 32), "tokens:1:1x4") == Layout("tokens", 1, (1, 4))
    with pytest.raises(LayerError, match="not 2 \\+ 2x2"):
        resolve_layout((2, 5, 8), (32, 32), "tokens:2:2x2")
    with pytest.raises(LayerError, match="unknown"):
        Layout.parse("channels-last")


def test_to_nchw_reads_first_tensor_of_containers():
    t = torch.arange(2 * 6 * 4, dtype=torch.float64).reshape(2, 6, 4)  # 2 prefix + 2 x 2 grid, 4 channels
    out = to_nchw((None, [t, torch.zeros(1)]), (32, 32), "tokens:2")
    assert out.dtype == torch.float32 and tuple(out.shape) == (2, 4, 2, 2)
    # channel c at grid (i, j) is token 2 + 2 i + j
    assert out[1, 3, 1, 0].item() == t[1, 2 + 2, 3].item()
    assert first_tensor({"a": None, "b": t}) is t
    with pytest.raises(LayerError, match="without any tensor"):
        to_nchw(("text",), (32, 32), layer="x")


def test_resolve_layout_basis_says_what_decided_the_layout():
    # given by the caller, declared by the model (patch size / prefix count), or read off the shape alone
    assert resolve_layout_basis((2, 7, 7, 768), (224, 224), "nhwc") == (Layout("nhwc"), GIVEN)
    assert resolve_layout_basis((2, 5, 8), (32, 32), "tokens:1") == (Layout("tokens", 1, (2, 2)), GIVEN)
    assert resolve_layout_basis((2, 197, 384), (224, 224), hints=TokenHints((16, 16))) == (
        Layout("tokens", 1, (14, 14)),
        FROM_MODEL,
    )
    assert resolve_layout_basis((2, 21, 384), (56, 56), hints=TokenHints(None, 5)) == (
        Layout("tokens", 5, (4, 4)),
        FROM_MODEL,
    )
    assert resolve_layout_basis((2, 197, 384), (224, 224)) == (Layout("tokens", 1, (14, 14)), GUESSED)
    assert resolve_layout_basis((2, 16, 16, 16), (64, 64)) == (Layout("nchw"), GUESSED)
