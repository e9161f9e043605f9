"""Mask-pooled embeddings: a layer's activations averaged under the object's mask, weighted by covered area.

The model's preprocessing stretches the whole image to its input, so grid cell ``(i, j)`` of an ``h x w`` layer
covers the image rectangle ``[i H / h, (i + 1) H / h) x [j W / w, (j + 1) W / w)``. A cell's weight is the
number of mask pixels inside that rectangle, pixels cut by a cell border counted in proportion to the part of
their area inside it (exact area weighting, any ratio of image to grid size). The embedding is
``sum_ij weight_ij A[:, i, j] / sum_ij weight_ij``: the mean feature over the object's area.

Example:
    >>> import numpy as np
    >>> mask = np.zeros((4, 4), bool); mask[:2, :3] = True
    >>> cell_coverage(mask, (2, 2)).tolist()
    [[4.0, 2.0], [0.0, 0.0]]
"""

from __future__ import annotations

import numpy as np
import torch

from loce.errors import InputError


def overlap_matrix(n_cells: int, n_pixels: int) -> np.ndarray:
    """``n_cells x n_pixels``: the length of pixel ``p = [p, p + 1)`` inside cell ``i = [i P / n, (i + 1) P / n)``.

    Every column sums to 1 (each pixel is shared out completely); every row sums to ``P / n``.

    Example:
        >>> overlap_matrix(2, 3).tolist()
        [[1.0, 0.5, 0.0], [0.0, 0.5, 1.0]]
    """
    if n_cells < 1 or n_pixels < 1:
        raise InputError(f"cannot map {n_pixels} pixels to {n_cells} cells: both must be >= 1")
    edges = np.arange(n_cells + 1, dtype=np.float64) * n_pixels / n_cells
    pixels = np.arange(n_pixels, dtype=np.float64)
    low = np.maximum(edges[:-1, None], pixels[None, :])
    high = np.minimum(edges[1:, None], pixels[None, :] + 1)
    return np.clip(high - low, 0.0, None)


def cell_coverage(mask: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """Mask area (in pixels) inside each cell of an ``h x w`` grid stretched over the mask's image.

    Args:
        mask: ``H x W`` boolean mask.
        grid: ``(h, w)`` of the layer.

    Returns:
        ``h x w`` float64 weights summing to the mask's pixel count.
    """
    mask = np.asarray(mask, dtype=np.float64)
    if mask.ndim != 2:
        raise InputError(f"the mask must be 2-D (H x W), got shape {mask.shape}")
    rows = overlap_matrix(grid[0], mask.shape[0])
    cols = overlap_matrix(grid[1], mask.shape[1])
    return rows @ mask @ cols.T


def masked_pool(activations: torch.Tensor, weights: np.ndarray) -> np.ndarray:
    """Weighted spatial means ``sum_ij w_ij A[:, i, j] / sum_ij w_ij`` per sample.

    Args:
        activations: ``N x C x h x w`` activations of one layer.
        weights: ``N x h x w`` non-negative weights (:func:`cell_coverage` of each sample's mask).

    Returns:
        ``N x C`` float32 vectors.

    Raises:
        InputError: shapes that do not match, or a sample whose weights sum to 0 (an empty mask).

    Example:
        >>> acts = torch.arange(4.0).view(1, 1, 2, 2)
        >>> masked_pool(acts, np.array([[[1.0, 0.0], [0.0, 3.0]]])).tolist()
        [[2.25]]
    """
    n, _, h, w = activations.shape
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (n, h, w):
        raise InputError(
            f"weights of shape {weights.shape} do not fit activations of shape {tuple(activations.shape)}"
        )
    totals = weights.reshape(n, -1).sum(axis=1)
    if n and not (totals > 0).all():
        raise InputError(f"sample {int(np.argmin(totals))} has zero mask weight; skip empty masks first")
    normalised = torch.from_numpy(weights / np.maximum(totals, 1e-300)[:, None, None]).to(
        device=activations.device, dtype=torch.float64
    )
    vectors = torch.einsum("nchw,nhw->nc", activations.double(), normalised)
    return vectors.float().cpu().numpy()
