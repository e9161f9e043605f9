"""Soft targets on the common grid, and the bilinear interpolation matrices of the native-grid trick.

Bilinear resizing (``align_corners=False``) is linear and separable: resizing an ``h x w`` map ``z`` to
``H x W`` is ``U_H @ z @ U_W.T`` with the ``H x h`` and ``W x w`` matrices of :func:`interpolation_matrix`, the
same numbers ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)`` computes. So a LoCE's
logits can be computed on the layer's own grid and only that one channel resized, instead of all C channels.

Soft targets depend only on the masks and the grid, not on the layer: compute them once with
:func:`prepare_targets` and pass them to :meth:`loce.fit.LoCEFitter.fit` for every layer of the same images.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
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
        resize: how the masks were resized (``"bilinear_antialias"`` or ``"area"``).
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


def _resize_group(masks: list[np.ndarray], grid: int, resize: str) -> Tensor:
    """Resize ``k`` boolean masks of one shape to ``k x grid x grid`` floats in [0, 1]."""
    x = torch.from_numpy(_float_stack(masks)).unsqueeze(1)
    if resize == "bilinear_antialias":
        out = F.interpolate(x, size=(grid, grid), mode="bilinear", align_corners=False, antialias=True)
    elif resize == "area":
        out = F.interpolate(x, size=(grid, grid), mode="area")
    else:
        raise InputError(f"unknown target resize {resize!r}; use 'bilinear_antialias' or 'area'.")
    return out[:, 0].clamp_(0.0, 1.0)


def prepare_targets(
    masks: Sequence[np.ndarray], grid: int = 100, *, resize: str = "bilinear_antialias"
) -> FitTargets:
    """Soft grid targets for a batch of binary masks, each at its own resolution.

    The paper's target (``resize="bilinear_antialias"``) is the float mask resized to ``grid x grid`` by
    ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False, antialias=True)``: when shrinking, a
    triangle filter as wide as the scale factor (like PIL's bilinear resize), so edge cells get fractional values;
    when enlarging, plain bilinear interpolation. ``resize="area"`` averages boxes instead (exact coverage
    fractions for integer factors). Masks of equal size are resized together, in bounded-memory chunks.

    Empty and full masks get status ``"empty_mask"`` / ``"full_mask"``: nothing to localise, the fitter skips them.

    Example:
        >>> import numpy as np
        >>> m = np.zeros((200, 300), bool); m[50:150, 100:200] = True
        >>> t = prepare_targets([m], grid=100)
        >>> t.soft.shape, t.status, int(t.mask_area[0])
        (torch.Size([1, 100, 100]), ('ok',), 10000)
    """
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
