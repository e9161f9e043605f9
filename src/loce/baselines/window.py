"""Window embeddings (seed paper ``003``, section IV): the k x k grid cells around the object's box centre.

In a layer's ``h x w`` grid, the cell holding the centre of the object's box is found through the model's
preprocessing, which stretches the whole image to the input: pixel ``(x, y)`` of a ``W x H`` image lies in cell
``(floor(y * h / H), floor(x * w / W))``. The window spans rows ``r - (k - 1) // 2 .. r + k // 2`` and the same
columns around ``c`` (centred for odd ``k``; for even ``k`` the extra row/column lies after the centre). Cells
outside the grid are zero and counted in ``padded_cells``. The vector is the ``C x k x k`` window flattened
channel by channel, row by row: ``vector[ch * k * k + i * k + j] = A[ch, r0 + i, c0 + j]``.

Example:
    >>> import torch
    >>> acts = torch.arange(16.0).view(1, 1, 4, 4)
    >>> vectors, padded = window_vectors(acts, [(0, 0)], k=3)
    >>> vectors.reshape(3, 3).tolist(), padded.tolist()
    ([[0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 4.0, 5.0]], [5])
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from loce.errors import InputError


def center_cell(box: Sequence[float], image_size: tuple[int, int], grid: tuple[int, int]) -> tuple[int, int]:
    """The ``(row, col)`` of the grid cell holding the centre of ``box``.

    Args:
        box: ``(x0, y0, x1, y1)`` in pixels, right/bottom exclusive.
        image_size: ``(H, W)`` of the image the box belongs to.
        grid: ``(h, w)`` of the layer's grid.

    Example:
        >>> center_cell((100, 20, 140, 60), (224, 224), (7, 7))  # centre (120, 40)
        (1, 3)
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    (height, width), (h, w) = image_size, grid
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    row = min(h - 1, max(0, math.floor(cy * h / height)))
    col = min(w - 1, max(0, math.floor(cx * w / width)))
    return row, col


def window_bounds(cell: tuple[int, int], k: int) -> tuple[int, int]:
    """``(r0, c0)``: the top-left cell of the ``k x k`` window around ``cell`` (may lie outside the grid)."""
    return cell[0] - (k - 1) // 2, cell[1] - (k - 1) // 2


def padded_cells(cell: tuple[int, int], k: int, grid: tuple[int, int]) -> int:
    """How many of the window's ``k * k`` cells lie outside an ``h x w`` grid.

    Example:
        >>> padded_cells((0, 0), 3, (7, 7)), padded_cells((3, 3), 3, (7, 7))
        (5, 0)
    """
    r0, c0 = window_bounds(cell, k)
    rows = min(grid[0], r0 + k) - max(0, r0)
    cols = min(grid[1], c0 + k) - max(0, c0)
    return k * k - max(rows, 0) * max(cols, 0)


def window_vectors(
    activations: torch.Tensor, cells: Sequence[tuple[int, int]], k: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """The flattened ``k x k`` windows of each sample's activations around its cell.

    Args:
        activations: ``N x C x h x w`` activations of one layer.
        cells: ``N`` ``(row, col)`` centre cells (see :func:`center_cell`).
        k: window side (cells), at least 1.

    Returns:
        ``(vectors, padded)``: ``N x (C * k * k)`` float32 vectors (zeros outside the grid) and the ``N`` counts
        of padded cells.

    Raises:
        InputError: ``k`` < 1, or the number of cells does not match the activations.
    """
    if int(k) != k or k < 1:
        raise InputError(f"the window size k must be a positive integer, got {k!r}")
    n, c, h, w = activations.shape
    if len(cells) != n:
        raise InputError(f"{len(cells)} centre cells for {n} activation maps; give one cell per sample")
    if n == 0:
        return np.zeros((0, c * k * k), np.float32), np.zeros(0, np.int64)
    # Padding by k on every side keeps every window inside the padded map.
    padded_maps = F.pad(activations.float(), (k, k, k, k))
    vectors = np.empty((n, c * k * k), dtype=np.float32)
    padding = np.empty(n, dtype=np.int64)
    for i, cell in enumerate(cells):
        row, col = int(cell[0]), int(cell[1])
        if not (0 <= row < h and 0 <= col < w):
            raise InputError(f"centre cell {(row, col)} lies outside the {h} x {w} grid")
        r0, c0 = window_bounds((row, col), k)
        window = padded_maps[i, :, r0 + k : r0 + 2 * k, c0 + k : c0 + 2 * k]
        vectors[i] = window.reshape(-1).cpu().numpy()
        padding[i] = padded_cells((row, col), k, (h, w))
    return vectors, padding
