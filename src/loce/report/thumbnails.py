"""Small images of one sample with its concept's mask outlined: what the map shows on hover.

Written once per (sample, concept) under a file name derived from both, so reports of several layers and models
share them and a second report build reuses them.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np

from loce.figures.colors import hex_to_rgb


def thumbnail_path(
    folder: Path, sample_id: str, concept: str, suffix: str = ".jpg", *, origin: str = ""
) -> Path:
    """The thumbnail file of ``(sample_id, concept)`` in ``folder``: readable, filesystem-safe and unique.

    ``origin`` says what the picture is made of (the image file, the mask, the outline colour): runs of one dataset
    share their thumbnails, while two datasets that use the same sample ids (a held-out set numbered like the
    training set) get different files instead of each other's pictures.

    Example:
        >>> thumbnail_path(Path("img/thumbs"), "000042", "traffic light").name
        '000042_traffic-light_dcda657f.jpg'
        >>> thumbnail_path(Path("img/thumbs"), "000042", "traffic light", origin="/data/b/000042.jpg").name
        '000042_traffic-light_e05da76a.jpg'
    """
    key = f"{sample_id}\x00{concept}" + (f"\x00{origin}" if origin else "")
    digest = hashlib.sha1(key.encode()).hexdigest()[:8]
    parts = [re.sub(r"[^A-Za-z0-9]+", "-", str(p)).strip("-")[:40] or "x" for p in (sample_id, concept)]
    return Path(folder) / f"{parts[0]}_{parts[1]}_{digest}{suffix}"


def _resize_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a boolean mask to ``(width, height)`` (bilinear, thresholded at 0.5: smooth edges)."""
    from PIL import Image

    img = Image.fromarray(mask.astype(np.uint8) * 255)
    return np.asarray(img.resize(size, Image.Resampling.BILINEAR)) >= 128


def _outline(mask: np.ndarray, width: int) -> np.ndarray:
    """Pixels within ``width`` pixels of the mask's edge (inside and outside)."""
    from PIL import Image, ImageFilter

    img = Image.fromarray(mask.astype(np.uint8) * 255)
    size = 2 * width + 1
    grown = np.asarray(img.filter(ImageFilter.MaxFilter(size))) > 0
    shrunk = np.asarray(img.filter(ImageFilter.MinFilter(size))) > 0
    return grown & ~shrunk


def crop_box(mask: np.ndarray, margin: float = 0.35, min_size: int = 48) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` around the mask, widened by ``margin`` of its size each side, kept in the image.

    Example:
        >>> m = np.zeros((100, 100), bool); m[40:60, 40:60] = True
        >>> crop_box(m, margin=0.5, min_size=0)
        (30, 30, 70, 70)
    """
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return 0, 0, w, h
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    bw, bh = x1 - x0, y1 - y0
    half_w = max(bw * (1 + 2 * margin), min_size) / 2
    half_h = max(bh * (1 + 2 * margin), min_size) / 2
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return (
        int(max(0, np.floor(cx - half_w))),
        int(max(0, np.floor(cy - half_h))),
        int(min(w, np.ceil(cx + half_w))),
        int(min(h, np.ceil(cy + half_h))),
    )


def object_crop(
    image: np.ndarray, mask: np.ndarray | None, margin: float = 0.35, min_size: int = 48
) -> tuple[np.ndarray, np.ndarray | None]:
    """The image and mask cut to the object's surroundings (:func:`crop_box`); the whole image without a mask.

    A mask of another resolution is stretched over the image first (as the model saw it).

    Example:
        >>> img = np.zeros((100, 200, 3), np.uint8); m = np.zeros((100, 200), bool); m[40:60, 90:110] = True
        >>> [a.shape[:2] for a in object_crop(img, m, margin=0.5, min_size=0)]
        [(40, 40), (40, 40)]
    """
    rgb = np.asarray(image)
    if mask is None or not np.asarray(mask).any():
        return rgb, mask
    h, w = rgb.shape[:2]
    m = np.asarray(mask).astype(bool)
    full = m if m.shape == (h, w) else _resize_mask(m, (w, h))
    x0, y0, x1, y1 = crop_box(full, margin=margin, min_size=min_size)
    return rgb[y0:y1, x0:x1], full[y0:y1, x0:x1]


def write_thumbnail(
    image: np.ndarray,
    mask: np.ndarray | None,
    path: Path,
    *,
    size: int = 160,
    color: str = "#ff2d55",
    crop: bool = True,
    dim: float = 0.65,
    overwrite: bool = False,
) -> Path:
    """Write a small image of ``image`` with ``mask`` outlined (JPEG or PNG by the path's suffix).

    Args:
        image: ``H x W x 3`` uint8 RGB (or ``H x W`` grey).
        mask: boolean mask of the concept; other resolutions are stretched over the image. ``None``: no outline.
        path: output file; parent folders are created.
        size: the longer side of the thumbnail in pixels.
        color: outline colour (the concept's colour from :func:`loce.figures.concept_colors`).
        crop: crop to the mask's surroundings (else the whole image).
        dim: brightness of the pixels outside the mask (1.0 keeps them as they are).
        overwrite: rewrite an existing file (default: keep it; thumbnails are written once per sample and concept).

    Returns:
        ``path``.

    Example:
        >>> write_thumbnail(img, mask, thumbnail_path(out / "img" / "thumbs", "42", "cat"), color="#1f77b4")  # doctest: +SKIP
    """
    from PIL import Image

    path = Path(path)
    if path.exists() and not overwrite:
        return path
    rgb = np.asarray(image)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    rgb = rgb[:, :, :3].astype(np.uint8)
    h, w = rgb.shape[:2]
    full_mask = None
    if mask is not None and np.asarray(mask).any():
        m = np.asarray(mask).astype(bool)
        full_mask = m if m.shape == (h, w) else _resize_mask(m, (w, h))
    x0, y0, x1, y1 = crop_box(full_mask) if (crop and full_mask is not None) else (0, 0, w, h)
    scale = size / max(x1 - x0, y1 - y0)
    out_w, out_h = max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))
    thumb = np.asarray(
        Image.fromarray(rgb[y0:y1, x0:x1]).resize((out_w, out_h), Image.Resampling.LANCZOS)
    ).astype(float)
    if full_mask is not None:
        m = _resize_mask(full_mask[y0:y1, x0:x1], (out_w, out_h))
        thumb[~m] *= dim
        thumb[_outline(m, width=max(1, size // 80))] = np.array(hex_to_rgb(color)) * 255
    path.parent.mkdir(parents=True, exist_ok=True)
    result = Image.fromarray(np.clip(thumb, 0, 255).astype(np.uint8))
    if path.suffix.lower() in (".jpg", ".jpeg"):
        result.save(path, quality=85, optimize=True)
    else:
        result.save(path)
    return path
