"""Soft targets on the common grid, and the bilinear interpolation matrices of the native-grid trick.

Bilinear resizing (``align_corners=False``) is linear and separable: resizing an ``h x w`` map ``z`` to
``H x W`` is ``U_H @ z @ U_W.T`` with the ``H x h`` and ``W x w`` matrices of :func:`interpolation_matrix`, the
same numbers ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)`` computes. So a LoCE's
logits can be computed on the layer's own grid and only that one channel resized, instead of all C channels.

The publication's soft target is scikit-image's ``resize(mask.astype(float), (100, 100))`` with its defaults. It is
linear and separable too: :func:`skimage_resize_matrix` is its 1-D operator (a Gaussian anti-aliasing pre-filter
with boundary mode 'mirror' when shrinking, then order-1 interpolation at pixel centres with mirrored borders), and
:func:`skimage_resize` applies it to float maps. Binary masks are resized through their row runs (see
:func:`_skimage_resize_binary`), which costs about as much as PyTorch's anti-aliased interpolation.

Soft targets depend only on the masks and the grid, not on the layer: compute them once with
:func:`prepare_targets` and pass them to :meth:`loce.fit.LoCEFitter.fit` for every layer of the same images.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.sparse
import torch
import torch.nn.functional as F
from torch import Tensor

from loce.errors import InputError
from loce.fit.threads import run_parallel

# Elements of one stack of masks resized at once: bounded memory for large images, and cache-sized (faster).
RESIZE_CHUNK_ELEMENTS = 1 << 20


@lru_cache(maxsize=256)
def _interpolation_matrix_f64(n_out: int, n_in: int) -> Tensor:
    scale = n_in / n_out
    rows = torch.arange(n_out, dtype=torch.float64)
    source = ((rows + 0.5) * scale - 0.5).clamp(min=0.0)
    lower = source.floor().long().clamp(max=n_in - 1)
    upper = (lower + 1).clamp(max=n_in - 1)
    upper_weight = (source - lower).clamp(0.0, 1.0)
    matrix = torch.zeros(n_out, n_in, dtype=torch.float64)
    index = torch.arange(n_out)
    matrix.index_put_((index, lower), 1.0 - upper_weight, accumulate=True)
    matrix.index_put_((index, upper), upper_weight, accumulate=True)
    return matrix


def interpolation_matrix(
    n_out: int, n_in: int, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> Tensor:
    """The ``n_out x n_in`` matrix of 1-D bilinear resizing with ``align_corners=False`` (PyTorch's convention).

    Output pixel ``i`` samples the input at ``s = max((i + 0.5) * n_in / n_out - 0.5, 0)`` and mixes input
    pixels ``floor(s)`` and ``min(floor(s) + 1, n_in - 1)`` with weights ``1 - frac(s)`` and ``frac(s)``; every
    row sums to 1. No anti-aliasing (like ``F.interpolate(..., antialias=False)``, also when shrinking).

    Example:
        >>> m = interpolation_matrix(4, 2)
        >>> m.tolist()
        [[1.0, 0.0], [0.75, 0.25], [0.25, 0.75], [0.0, 1.0]]
    """
    if n_out < 1 or n_in < 1:
        raise InputError(f"cannot build a {n_out} x {n_in} interpolation matrix: both sizes must be >= 1.")
    return _interpolation_matrix_f64(int(n_out), int(n_in)).to(device=device, dtype=dtype)


def resize_bilinear(maps: Tensor, size: tuple[int, int], out: Tensor | None = None) -> Tensor:
    """Bilinearly resize ``n x h x w`` maps to ``n x H x W`` (``align_corners=False``) by two matrix products.

    Equal to ``F.interpolate(maps[:, None], size, mode="bilinear", align_corners=False)[:, 0]`` up to float
    rounding, in ``O(H h w + H W w)`` work per map; faster than ``F.interpolate`` for small ``h x w``.
    ``out``: an optional contiguous buffer of ``n * H * W`` elements to write the result into.
    """
    n, h, w = maps.shape
    rows = interpolation_matrix(size[0], h, device=maps.device, dtype=maps.dtype)
    cols_t = interpolation_matrix(size[1], w, device=maps.device, dtype=maps.dtype).T
    tall = torch.matmul(rows, maps)  # n x H x w
    if out is None:
        return (tall.reshape(n * size[0], w) @ cols_t).view(n, size[0], size[1])
    result = torch.mm(tall.reshape(n * size[0], w), cols_t, out=out.view(n * size[0], size[1]))
    return result.view(n, size[0], size[1])


# scipy.ndimage.gaussian_filter's defaults, as scikit-image's resize calls it
GAUSSIAN_TRUNCATE = 4.0
GAUSSIAN_MIN_SIGMA = 1e-15


def _mirror_index(index: np.ndarray, n: int) -> np.ndarray:
    """scipy.ndimage's 'mirror' boundary (scikit-image's 'reflect'): ``d c b | a b c d | c b a``, periodic."""
    if n == 1:
        return np.zeros_like(index)
    period = 2 * (n - 1)
    index = np.mod(index, period)
    return np.where(index > n - 1, period - index, index)


@lru_cache(maxsize=256)
def _skimage_resize_matrix_f64(n_out: int, n_in: int) -> np.ndarray:
    sigma = max(0.0, (n_in / n_out - 1.0) / 2.0)
    matrix = np.zeros((n_out, n_in))
    source = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    lower = np.floor(source).astype(np.int64)
    frac = source - lower
    rows = np.arange(n_out)
    np.add.at(matrix, (rows, _mirror_index(lower, n_in)), 1.0 - frac)
    np.add.at(matrix, (rows, _mirror_index(lower + 1, n_in)), frac)
    if sigma > GAUSSIAN_MIN_SIGMA:
        radius = int(GAUSSIAN_TRUNCATE * sigma + 0.5)
        offsets = np.arange(-radius, radius + 1)
        weights = np.exp(-0.5 * (offsets / sigma) ** 2)
        weights /= weights.sum()
        gauss = np.zeros((n_in, n_in))
        for i in range(n_in):
            np.add.at(gauss[i], _mirror_index(i + offsets, n_in), weights)
        matrix = matrix @ gauss
    matrix.setflags(write=False)
    return matrix


def skimage_resize_matrix(n_out: int, n_in: int) -> np.ndarray:
    """The ``n_out x n_in`` float64 matrix of scikit-image's ``resize`` (defaults, ``order=1``) along one axis.

    When shrinking (``n_in > n_out``) a Gaussian pre-filter with ``sigma = (n_in / n_out - 1) / 2``, truncated at
    4 sigma, with the 'mirror' boundary of ``scipy.ndimage``; then, as for enlarging, linear interpolation at
    ``s = (i + 0.5) * n_in / n_out - 0.5`` with mirrored borders (``ndimage.zoom(grid_mode=True)``). The 2-D
    resize is ``M_H @ image @ M_W.T`` followed by clipping to the image's value range. Rows sum to 1.

    Example:
        >>> skimage_resize_matrix(4, 2).tolist()  # enlarging: the border sample at -0.25 mirrors to 0.25
        [[0.75, 0.25], [0.75, 0.25], [0.25, 0.75], [0.25, 0.75]]
    """
    if n_out < 1 or n_in < 1:
        raise InputError(f"cannot build a {n_out} x {n_in} resize matrix: both sizes must be >= 1.")
    return _skimage_resize_matrix_f64(int(n_out), int(n_in))


# Output rows per block of the banded row resize: each block multiplies only the input rows it reaches.
BAND_ROWS = 48


@lru_cache(maxsize=256)
def _row_blocks(n_out: int, n_in: int) -> tuple[tuple[int, int, int, int, Tensor], ...]:
    """The skimage resize matrix cut into row blocks ``(r0, r1, c0, c1, M[r0:r1, c0:c1])`` with their support."""
    matrix = skimage_resize_matrix(n_out, n_in)
    blocks = []
    for r0 in range(0, n_out, BAND_ROWS):
        r1 = min(n_out, r0 + BAND_ROWS)
        support = np.flatnonzero(np.abs(matrix[r0:r1]).sum(axis=0))
        c0, c1 = int(support[0]), int(support[-1]) + 1
        blocks.append((r0, r1, c0, c1, torch.tensor(matrix[r0:r1, c0:c1])))
    return tuple(blocks)


def skimage_resize(
    maps: Tensor, size: tuple[int, int], *, clip: bool = True, out: Tensor | None = None
) -> Tensor:
    """Resize ``n x h x w`` float maps to ``n x H x W`` exactly as scikit-image's ``resize`` with its defaults.

    Equal, up to float rounding, to ``skimage.transform.resize(map, size)`` per map (anti-aliasing when
    shrinking, order 1, mode 'reflect', clipped to each map's value range unless ``clip=False``), without calling
    scikit-image. Computed as a dense product along the width and a banded one along the height (only the input
    rows each block of output rows reaches), in float32 (float64 maps stay float64).

    Args:
        maps: ``n x h x w`` floats.
        size: ``(H, W)``.
        clip: clip each map to its value range (scikit-image's ``clip=True``; rounding only, for order 1).
        out: an optional buffer of at least ``H * n * W`` elements of the maps' dtype to write into.

    Returns:
        ``n x H x W`` (a view of an ``H x n x W`` tensor: rows of all maps are computed together).

    Example:
        >>> skimage_resize(torch.tensor([[[0.0, 1.0]]]), (1, 4)).tolist()  # the border samples mirror inwards
        [[[0.25, 0.25, 0.75, 0.75]]]
    """
    n, h, w = maps.shape
    height, width = int(size[0]), int(size[1])
    dtype, device = maps.dtype, maps.device
    across = torch.tensor(skimage_resize_matrix(width, w).T, dtype=dtype, device=device)  # w x W
    # rows of every map side by side: (h, n, w) -> (h, n, W)
    wide = torch.mm(maps.permute(1, 0, 2).reshape(h * n, w), across).view(h, n * width)
    result = torch.empty(height * n * width, dtype=dtype, device=device) if out is None else out
    result = result[: height * n * width].view(height, n * width)
    for r0, r1, c0, c1, block in _row_blocks(height, h):
        torch.mm(block.to(device=device, dtype=dtype), wide[c0:c1], out=result[r0:r1])
    resized = result.view(height, n, width).permute(1, 0, 2)
    if clip and n:
        flat = maps.reshape(n, -1)
        low, high = flat.amin(dim=1).view(n, 1, 1), flat.amax(dim=1).view(n, 1, 1)
        resized = torch.maximum(torch.minimum(resized, high), low)
    return resized


@lru_cache(maxsize=64)
def _run_sums(n_out: int, n_in: int) -> np.ndarray:
    """``(n_in + 1) x n_out``: row ``c`` is the sum of the first ``c`` columns of ``skimage_resize_matrix.T``."""
    cumulative = np.zeros((n_in + 1, n_out))
    np.cumsum(skimage_resize_matrix(n_out, n_in).T, axis=0, out=cumulative[1:])
    return cumulative


def _skimage_resize_binary(masks: np.ndarray, grid: int) -> Tensor:
    """scikit-image's resize of a ``k x H x W`` boolean stack to ``k x grid x grid`` floats (clipped to [0, 1]).

    Along the rows, a run of ones ``[a, b)`` contributes ``S[b] - S[a]`` with ``S`` the running sums of the
    resize matrix's columns (:func:`_run_sums`), so the cost follows the number of runs instead of the width;
    the short second axis is a dense matrix product.
    """
    k, h, w = masks.shape
    flat = masks.reshape(k * h, w)
    changes = np.flatnonzero(flat[:, 1:] != flat[:, :-1])
    rows, cols = np.divmod(changes, w - 1) if w > 1 else (changes, changes)
    cols = cols + 1
    # a run starting at c subtracts S[c], a run ending at c (the first zero after ones) adds S[c]; S[0] = 0
    signs = np.where(flat[rows, cols], -1.0, 1.0)
    last = np.flatnonzero(flat[:, -1])  # runs ending at the right border add S[w]
    runs = scipy.sparse.csr_matrix(
        (
            np.concatenate([signs, np.ones(len(last))]),
            (np.concatenate([rows, last]), np.concatenate([cols, np.full(len(last), w)])),
        ),
        shape=(k * h, w + 1),
    )
    along_rows = np.asarray(runs @ _run_sums(grid, w), dtype=np.float32)
    down = torch.from_numpy(skimage_resize_matrix(grid, h).astype(np.float32))
    return torch.matmul(down, torch.from_numpy(along_rows).view(k, h, grid)).clamp_(0.0, 1.0)


def as_binary_mask(mask, index: int) -> np.ndarray:
    """Check one mask (2-D, boolean or 0/1) and return it as a boolean numpy array; ``InputError`` otherwise."""
    if isinstance(mask, Tensor):
        mask = mask.detach().cpu().numpy()
    array = np.asarray(mask)
    if array.ndim != 2:
        raise InputError(
            f"mask {index} has shape {array.shape}; each mask must be a 2-D (H x W) boolean array "
            "(the union of the concept's instances in one image)."
        )
    if array.dtype == np.bool_:
        return array
    if array.size and not np.isin(array, (0, 1)).all():
        raise InputError(
            f"mask {index} (dtype {array.dtype}) holds values other than 0 and 1; pass a boolean mask, "
            "e.g. `mask > 0` for a label image."
        )
    return array.astype(bool)


@dataclass(frozen=True)
class FitTargets:
    """Soft targets of a batch of masks on the common grid, plus what the fitter needs to score the LoCEs.

    Attributes:
        grid: side of the square grid.
        resize: how the masks were resized (``"skimage"``, ``"bilinear_antialias"`` or ``"area"``).
        soft: ``n x grid x grid`` float32 tensor (CPU), values in [0, 1].
        masks: the boolean masks at their own resolution (kept for the IoU at mask resolution).
        mask_area: foreground pixels of each mask at its own resolution.
        status: ``"ok"``, ``"empty_mask"`` or ``"full_mask"`` per mask.
        detail: a sentence per mask explaining a non-ok status (empty for ``"ok"``).
    """

    grid: int
    resize: str
    soft: Tensor
    masks: tuple[np.ndarray, ...]
    mask_area: np.ndarray
    status: tuple[str, ...]
    detail: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.masks)

    def subset(self, indices: Sequence[int] | np.ndarray) -> FitTargets:
        """The targets of the given samples, in that order."""
        idx = [int(i) for i in np.asarray(indices).reshape(-1)]
        return FitTargets(
            grid=self.grid,
            resize=self.resize,
            soft=self.soft[idx],
            masks=tuple(self.masks[i] for i in idx),
            mask_area=self.mask_area[idx],
            status=tuple(self.status[i] for i in idx),
            detail=tuple(self.detail[i] for i in idx),
        )


_scratch = threading.local()


def _float_stack(masks: list[np.ndarray]) -> np.ndarray:
    """The masks as one ``k x H x W`` float32 array, in a per-thread buffer reused across calls.

    Reusing the buffer avoids page faults on a fresh multi-megabyte allocation per chunk; numpy converts bool to
    float32 about 4x faster than torch.
    """
    needed = len(masks) * masks[0].size
    buffer = getattr(_scratch, "buffer", None)
    if buffer is None or buffer.size < needed:
        buffer = _scratch.buffer = np.empty(max(needed, RESIZE_CHUNK_ELEMENTS), dtype=np.float32)
    stack = buffer[:needed].reshape(len(masks), *masks[0].shape)
    for i, m in enumerate(masks):
        np.copyto(stack[i], m)
    return stack


TARGET_RESIZES = ("skimage", "bilinear_antialias", "area")


def _resize_group(masks: list[np.ndarray], grid: int, resize: str) -> Tensor:
    """Resize ``k`` boolean masks of one shape to ``k x grid x grid`` floats in [0, 1]."""
    if resize == "skimage":
        return _skimage_resize_binary(np.stack(masks), grid)
    x = torch.from_numpy(_float_stack(masks)).unsqueeze(1)
    if resize == "bilinear_antialias":
        out = F.interpolate(x, size=(grid, grid), mode="bilinear", align_corners=False, antialias=True)
    elif resize == "area":
        out = F.interpolate(x, size=(grid, grid), mode="area")
    else:
        raise InputError(f"unknown target resize {resize!r}; use one of {list(TARGET_RESIZES)}.")
    return out[:, 0].clamp_(0.0, 1.0)


def prepare_targets(masks: Sequence[np.ndarray], grid: int = 100, *, resize: str = "skimage") -> FitTargets:
    """Soft grid targets for a batch of binary masks, each at its own resolution.

    The paper's target (``resize="skimage"``) is ``skimage.transform.resize(mask.astype(float), (grid, grid))``
    with scikit-image's defaults (see :func:`skimage_resize_matrix`): when shrinking, a Gaussian pre-filter, so the
    target has a soft Gaussian tail (and ``t > 0`` on it, which sets the paper's alpha); when enlarging, plain
    interpolation. ``resize="bilinear_antialias"`` uses ``torch.nn.functional.interpolate(mode="bilinear",
    align_corners=False, antialias=True)`` instead, a triangle filter as wide as the scale factor (PIL-like; a
    different target, not the paper's), and ``resize="area"`` averages boxes (exact coverage fractions for integer
    factors). Masks of equal size are resized together, in bounded-memory chunks.

    Empty and full masks get status ``"empty_mask"`` / ``"full_mask"``: nothing to localise, the fitter skips them.

    Example:
        >>> import numpy as np
        >>> m = np.zeros((200, 300), bool); m[50:150, 100:200] = True
        >>> t = prepare_targets([m], grid=100)
        >>> t.soft.shape, t.status, int(t.mask_area[0])
        (torch.Size([1, 100, 100]), ('ok',), 10000)
    """
    if resize not in TARGET_RESIZES:
        raise InputError(f"unknown target resize {resize!r}; use one of {list(TARGET_RESIZES)}.")
    binary = [as_binary_mask(m, i) for i, m in enumerate(masks)]
    soft = torch.zeros(len(binary), grid, grid, dtype=torch.float32)
    by_shape: dict[tuple[int, int], list[int]] = {}
    for i, m in enumerate(binary):
        if m.size == 0:
            raise InputError(f"mask {i} has shape {m.shape} (no pixels); masks must be at least 1 x 1.")
        by_shape.setdefault(m.shape, []).append(i)
    jobs = []
    for (h, w), members in by_shape.items():
        per_chunk = max(1, RESIZE_CHUNK_ELEMENTS // (h * w))
        jobs += [members[start : start + per_chunk] for start in range(0, len(members), per_chunk)]

    def resize_job(part: list[int]) -> None:
        soft[part] = _resize_group([binary[i] for i in part], grid, resize)

    run_parallel(resize_job, jobs)
    area = np.array([np.count_nonzero(m) for m in binary], dtype=np.int64)
    status, detail = [], []
    for i, m in enumerate(binary):
        h, w = m.shape
        if area[i] == 0:
            status.append("empty_mask")
            detail.append(f"mask {i} ({h} x {w}) has no foreground pixel: there is nothing to localise.")
        elif area[i] == m.size:
            status.append("full_mask")
            detail.append(
                f"mask {i} ({h} x {w}) covers the whole image: a LoCE needs background to tell the concept from."
            )
        else:
            status.append("ok")
            detail.append("")
    return FitTargets(grid, resize, soft, tuple(binary), area, tuple(status), tuple(detail))
