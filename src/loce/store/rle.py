"""Binary masks <-> COCO compressed RLE strings (the store's ``mask_rle`` column).

The string is the ``counts`` field of COCO's compressed run-length encoding (column-major runs, LEB128-like ASCII),
so any COCO tool decodes it: ``pycocotools.mask.decode({"size": [h, w], "counts": s})``. Height and width are
stored in their own columns. Encoding uses pycocotools; decoding is done here in numpy (same result, checked in
the tests against pycocotools) so that a damaged string is reported instead of decoded into garbage.
"""

from __future__ import annotations

import numpy as np
from pycocotools import mask as coco_mask

from loce.errors import InputError


def rle_from_mask(mask: np.ndarray) -> str:
    """Encode a 2-D binary mask as a COCO compressed RLE ``counts`` string.

    Args:
        mask: ``H x W`` array; nonzero (or ``True``) pixels are inside the mask.

    Returns:
        The ASCII ``counts`` string. Together with ``(H, W)`` it restores the mask exactly.

    Raises:
        InputError: when ``mask`` is not 2-D or has a zero-sized side.

    Example:
        >>> m = np.zeros((4, 5), dtype=bool); m[1:3, 2:4] = True
        >>> s = rle_from_mask(m)
        >>> bool((mask_from_rle(s, 4, 5) == m).all())
        True
    """
    mask = np.asarray(mask)
    if mask.ndim != 2 or 0 in mask.shape:
        raise InputError(f"a mask must be a non-empty 2-D array to be RLE-encoded, got shape {mask.shape}")
    as_uint8 = np.asfortranarray(mask != 0, dtype=np.uint8)
    return coco_mask.encode(as_uint8)["counts"].decode("ascii")


def mask_from_rle(rle: str | bytes, height: int, width: int) -> np.ndarray:
    """Decode a COCO compressed RLE ``counts`` string into a boolean ``height x width`` mask.

    Args:
        rle: the ``counts`` string (as stored in ``mask_rle``).
        height: mask height (``mask_height``).
        width: mask width (``mask_width``).

    Raises:
        InputError: when the string does not describe exactly ``height * width`` pixels.

    Example:
        >>> mask_from_rle(rle_from_mask(np.ones((2, 3), bool)), 2, 3).all()
        np.True_
    """
    counts = rle.encode("ascii") if isinstance(rle, str) else bytes(rle)
    height, width = int(height), int(width)
    if height <= 0 or width <= 0:
        raise InputError(f"cannot decode an RLE mask of size {height} x {width}")
    runs = np.asarray(_decode_counts(counts), dtype=np.int64)
    if runs.sum() != height * width or (runs < 0).any():
        raise InputError(
            f"RLE string {counts[:40]!r} describes {int(runs.sum())} pixels, not {height} x {width}: the "
            "mask_rle, mask_height and mask_width of this row do not belong together (corrupt or edited store?)"
        )
    # Runs alternate background / foreground, starting with background, in column-major order.
    flat = np.repeat(np.arange(runs.size) % 2 == 1, runs)
    return np.ascontiguousarray(flat.reshape(width, height).T)


def _decode_counts(counts: bytes) -> list[int]:
    """The run lengths of a COCO compressed RLE string (the inverse of pycocotools' ``rleToString``)."""
    runs: list[int] = []
    p = 0
    while p < len(counts):
        x = 0
        k = 0
        more = True
        while more:
            if p >= len(counts):
                raise InputError(f"RLE string {counts[:40]!r} ends in the middle of a run")
            c = counts[p] - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(runs) > 2:
            x += runs[-2]
        runs.append(x)
    return runs
