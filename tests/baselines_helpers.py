"""Shared pieces of the baseline tests: a model whose layer holds each cell's own coordinates, and pair builders."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from loce.batches import Pair
from loce.models import LoadedModel
from loce.preprocessing import Preprocessing


class CoordinateMap(nn.Module):
    """``N x 3 x H x W`` -> ``N x 2 x h x w`` with channel 0 = the cell's row, channel 1 = its column."""

    def __init__(self, grid: tuple[int, int]) -> None:
        super().__init__()
        self.grid = grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = self.grid
        rows = torch.arange(h, dtype=x.dtype).view(1, 1, h, 1).expand(x.shape[0], 1, h, w)
        cols = torch.arange(w, dtype=x.dtype).view(1, 1, 1, w).expand(x.shape[0], 1, h, w)
        return torch.cat([rows, cols], dim=1)


class CoordinateNet(nn.Module):
    """Layer ``coords``: the coordinate map on a 7 x 7 grid; layer ``pool``: 8 x 8 average pooling of RGB
    concatenated with the coordinates of its 8 x 8 grid (a CoordConv-like layer: colour AND position)."""

    def __init__(self) -> None:
        super().__init__()
        self.coords = CoordinateMap((7, 7))
        self.pool = PooledWithCoordinates()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x).mean(dim=(2, 3)) + self.coords(x).mean(dim=(1, 2, 3)).unsqueeze(1)


class PooledWithCoordinates(nn.Module):
    """8 x 8 average pooling of the RGB input (at 64 px: 3 x 8 x 8) plus 2 coordinate channels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = nn.functional.avg_pool2d(x, 8)
        return torch.cat([pooled, CoordinateMap(tuple(pooled.shape[2:]))(x)], dim=1)


def coordinate_model(size: int = 64) -> LoadedModel:
    """:class:`CoordinateNet` with a [0, 1] -> [-1, 1] preprocessing at ``size`` px."""
    return LoadedModel(
        CoordinateNet().eval(), Preprocessing((size, size), (0.5,) * 3, (0.5,) * 3), "coordinates"
    )


def pair(index: int, mask: np.ndarray, concept: str = "thing") -> Pair:
    """A :class:`~loce.batches.Pair` for image ``index`` of a group."""
    return Pair(index, f"s{index}", f"img_{index}.png", concept, mask, None, None)


def box_mask(shape: tuple[int, int], x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """A boolean mask with the box ``[x0, x1) x [y0, y1)`` set."""
    mask = np.zeros(shape, dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask
