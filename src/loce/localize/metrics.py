"""Localisation metrics of concept heat maps against ground-truth masks, batched, and their summary tables.

All metrics work on maps and masks of one resolution (``B x H x W``; bring heat maps to the mask's resolution
first, see :func:`loce.localize.heatmaps.concept_heatmaps`). Pixel ``(r, c)`` has its centre at row ``r``,
column ``c``; distances are in pixels.

- **IoU at a threshold**: ``|{map > t} & mask| / |{map > t} | mask|`` (``nan`` when both are empty). For LoCE
  projections (sigmoid maps) ``t = 0.5`` is the paper's criterion.
- **Peak**: the pixel of the maximum; on ties the first in row-major order (``argmax``). Pass logits as
  ``peak_maps`` when a sigmoid map saturates (``sigmoid`` is monotone, so the peak is the same, without ties).
- **Pointing game**: 1 when the peak lies on the mask (or within ``tolerance`` pixels of a mask pixel), else 0.
- **Alignment error**: the distance from the peak to the reference point (the mask's centroid, or the nearest of
  several given points such as instance centroids), divided by the image diagonal ``sqrt(H^2 + W^2)``. This is
  Loc-CBM's keypoint alignment error made resolution-free.
- **Activation L1 (spread)**: ``sum |a| / (H * W * max |a|)``, the L1 norm of the map after scaling its peak to
  1, per pixel. It is ``1`` for a flat map and ``k / (H W)`` for a map that is 1 on ``k`` pixels and 0
  elsewhere: the share of the image that carries activation. ``nan`` for an all-zero map.

Example:
    >>> import numpy as np
    >>> maps = np.zeros((1, 4, 4)); maps[0, 1, 1] = 1.0
    >>> masks = np.zeros((1, 4, 4), bool); masks[0, 1:3, 1:3] = True
    >>> s = localization_scores(maps, masks)
    >>> float(s.pointing[0]), round(float(s.alignment_error[0]), 4), float(s.activation_l1[0])
    (1.0, 0.125, 0.0625)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from loce.errors import InputError
from loce.fit.projection import mask_iou

#: Metric columns of :meth:`LocalizationScores.to_frame`, in table order.
METRIC_COLUMNS: tuple[str, ...] = ("iou", "pointing_game", "alignment_error", "activation_l1")


def _as_tensor(values: Tensor | np.ndarray, what: str, dtype: torch.dtype) -> Tensor:
    tensor = torch.as_tensor(values)
    if tensor.ndim == 2:
        tensor = tensor.unsqueeze(0)
    if tensor.ndim != 3:
        raise InputError(f"{what} must be B x H x W (or one H x W map), got shape {tuple(tensor.shape)}.")
    return tensor.to(dtype)


def _check_pair(maps: Tensor, masks: Tensor) -> None:
    if maps.shape != masks.shape:
        raise InputError(
            f"heat maps of shape {tuple(maps.shape)} and masks of shape {tuple(masks.shape)} differ; resize the "
            "maps to the masks' resolution first (concept_heatmaps(..., size=(H, W)))."
        )


def peak_locations(maps: Tensor | np.ndarray) -> np.ndarray:
    """``(row, col)`` of each map's maximum (first in row-major order on ties), as a ``B x 2`` float array.

    Example:
        >>> peak_locations(np.array([[[0, 1], [3, 2]]]))
        array([[1., 0.]])
    """
    m = _as_tensor(maps, "maps", torch.float64)
    flat = m.flatten(1).argmax(dim=1)
    w = m.shape[2]
    return torch.stack([flat // w, flat % w], dim=1).to(torch.float64).numpy()


def mask_centroids(masks: Tensor | np.ndarray) -> np.ndarray:
    """Mean ``(row, col)`` of each mask's pixels as ``B x 2`` (``nan`` for an empty mask).

    Example:
        >>> mask_centroids(np.array([[[1, 1], [0, 0]]], bool))
        array([[0. , 0.5]])
    """
    m = _as_tensor(masks, "masks", torch.float64)
    _, h, w = m.shape
    area = m.sum(dim=(1, 2))
    rows = torch.arange(h, dtype=torch.float64)
    cols = torch.arange(w, dtype=torch.float64)
    r = (m.sum(dim=2) * rows).sum(dim=1) / area
    c = (m.sum(dim=1) * cols).sum(dim=1) / area
    out = torch.stack([r, c], dim=1).numpy()
    out[area.numpy() == 0] = np.nan
    return out


def iou_at_threshold(
    maps: Tensor | np.ndarray, masks: Tensor | np.ndarray, threshold: float = 0.5
) -> np.ndarray:
    """IoU of ``maps > threshold`` with the masks, per sample (``nan`` when both are empty; :func:`loce.fit.mask_iou`).

    Example:
        >>> iou_at_threshold(np.array([[[0.9, 0.8, 0.1]]]), np.array([[[1, 0, 0]]], bool))
        array([0.5])
    """
    m = _as_tensor(maps, "maps", torch.float32)
    t = _as_tensor(masks, "masks", torch.bool)
    _check_pair(m, t)
    return mask_iou(m > threshold, t)


def pointing_game(
    maps: Tensor | np.ndarray,
    masks: Tensor | np.ndarray,
    tolerance: float = 0.0,
    peaks: np.ndarray | None = None,
) -> np.ndarray:
    """1.0 where the map's peak lies on the mask or within ``tolerance`` pixels of it, else 0.0 (per sample).

    Args:
        maps: ``B x H x W`` heat maps (higher = more concept).
        masks: ``B x H x W`` boolean masks.
        tolerance: allowed distance in pixels from the peak to the nearest mask pixel (0: exactly on the mask).
        peaks: precomputed ``B x 2`` peaks (default: :func:`peak_locations` of ``maps``).

    Example:
        >>> maps = np.array([[[0, 0, 1]]]); masks = np.array([[[1, 0, 0]]], bool)
        >>> pointing_game(maps, masks), pointing_game(maps, masks, tolerance=2)
        (array([0.]), array([1.]))
    """
    m = _as_tensor(maps, "maps", torch.float32)
    t = _as_tensor(masks, "masks", torch.bool)
    _check_pair(m, t)
    p = torch.as_tensor(peak_locations(m) if peaks is None else peaks, dtype=torch.float64)
    _, h, w = t.shape
    rows = torch.arange(h, dtype=torch.float64).view(1, h, 1)
    cols = torch.arange(w, dtype=torch.float64).view(1, 1, w)
    d2 = (rows - p[:, 0].view(-1, 1, 1)) ** 2 + (cols - p[:, 1].view(-1, 1, 1)) ** 2
    hit = (t & (d2 <= float(tolerance) ** 2 + 1e-9)).flatten(1).any(dim=1)
    return hit.to(torch.float64).numpy()


def alignment_error(
    peaks: np.ndarray,
    image_size: tuple[int, int],
    masks: Tensor | np.ndarray | None = None,
    reference_points: Sequence[np.ndarray] | None = None,
) -> np.ndarray:
    """Distance from each peak to its reference point, divided by the image diagonal ``sqrt(H^2 + W^2)``.

    Args:
        peaks: ``B x 2`` ``(row, col)`` peaks (:func:`peak_locations`).
        image_size: ``(H, W)`` of the maps the peaks were found on.
        masks: ``B x H x W`` masks whose centroids are the reference points (used when ``reference_points`` is
            not given).
        reference_points: per sample, an ``n_i x 2`` array of ``(row, col)`` points (e.g. the centroids of the
            concept's instances); the nearest one counts. An empty array gives ``nan``.

    Example:
        >>> alignment_error(np.array([[0.0, 0.0]]), (3, 4), reference_points=[np.array([[3.0, 4.0], [0, 2]])])
        array([0.4])
    """
    peaks = np.asarray(peaks, dtype=np.float64).reshape(-1, 2)
    diagonal = float(np.hypot(*image_size))
    if reference_points is None:
        if masks is None:
            raise InputError("alignment_error needs masks or reference_points to measure the peaks against.")
        centres = mask_centroids(masks)
        return np.hypot(*(peaks - centres).T) / diagonal
    if len(reference_points) != len(peaks):
        raise InputError(
            f"{len(reference_points)} sets of reference points for {len(peaks)} peaks; pass one each."
        )
    out = np.full(len(peaks), np.nan)
    for i, points in enumerate(reference_points):
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        points = points[np.isfinite(points).all(axis=1)]
        if len(points):
            out[i] = np.hypot(*(points - peaks[i]).T).min() / diagonal
    return out


def activation_l1(maps: Tensor | np.ndarray) -> np.ndarray:
    """Spread of each map: ``sum |a| / (H * W * max |a|)`` in ``(0, 1]`` (``nan`` for an all-zero map).

    Example:
        >>> activation_l1(np.array([[[1.0, 0.5], [0.0, 0.5]]]))
        array([0.5])
    """
    m = _as_tensor(maps, "maps", torch.float64).abs()
    _, h, w = m.shape
    peak = m.flatten(1).max(dim=1).values
    spread = (m.flatten(1).sum(dim=1) / (h * w * peak.clamp_min(1e-300))).numpy()
    spread[peak.numpy() == 0] = np.nan
    return spread


@dataclass
class LocalizationScores:
    """Per-sample localisation metrics of a batch of heat maps (see the module docstring for definitions).

    Attributes:
        iou: IoU of ``map > threshold`` with the mask.
        pointing: pointing-game hits (1.0 / 0.0).
        alignment_error: peak-to-reference distance over the image diagonal.
        activation_l1: normalised L1 spread of the map.
        peaks: ``B x 2`` ``(row, col)`` peaks.
    """

    iou: np.ndarray
    pointing: np.ndarray
    alignment_error: np.ndarray
    activation_l1: np.ndarray
    peaks: np.ndarray

    def to_frame(self) -> pd.DataFrame:
        """One row per sample with the columns of :data:`METRIC_COLUMNS` plus ``peak_row`` and ``peak_col``."""
        return pd.DataFrame(
            {
                "iou": self.iou,
                "pointing_game": self.pointing,
                "alignment_error": self.alignment_error,
                "activation_l1": self.activation_l1,
                "peak_row": self.peaks[:, 0],
                "peak_col": self.peaks[:, 1],
            }
        )


def localization_scores(
    maps: Tensor | np.ndarray,
    masks: Tensor | np.ndarray,
    *,
    threshold: float = 0.5,
    tolerance: float = 0.0,
    peak_maps: Tensor | np.ndarray | None = None,
    reference_points: Sequence[np.ndarray] | None = None,
) -> LocalizationScores:
    """Every metric for a batch of maps against masks of the same resolution.

    Args:
        maps: ``B x H x W`` non-negative heat maps (sigmoid projections, ReLU concept maps).
        masks: ``B x H x W`` boolean ground-truth masks.
        threshold: IoU threshold on ``maps``.
        tolerance: pointing-game tolerance in pixels.
        peak_maps: maps to find the peaks on (e.g. the logits of sigmoid ``maps``, free of saturation ties);
            default ``maps``.
        reference_points: per sample, points the alignment error is measured to (nearest counts); default the
            mask centroids.

    Returns:
        :class:`LocalizationScores`.
    """
    m = _as_tensor(maps, "maps", torch.float32)
    t = _as_tensor(masks, "masks", torch.bool)
    _check_pair(m, t)
    source = m if peak_maps is None else _as_tensor(peak_maps, "peak_maps", torch.float32)
    _check_pair(source, t)
    peaks = peak_locations(source)
    return LocalizationScores(
        iou=iou_at_threshold(m, t, threshold),
        pointing=pointing_game(m, t, tolerance, peaks=peaks),
        alignment_error=alignment_error(
            peaks, tuple(t.shape[1:]), masks=t, reference_points=reference_points
        ),
        activation_l1=activation_l1(m),
        peaks=peaks,
    )


def summarize_scores(frame: pd.DataFrame, by: Sequence[str] = ("concept", "layer", "kind")) -> pd.DataFrame:
    """Mean of each metric per group, with the number of maps ``n`` and the median alignment error.

    Args:
        frame: per-map rows with the grouping columns and the :data:`METRIC_COLUMNS`.
        by: grouping columns (those missing from ``frame`` are ignored).

    Returns:
        One row per group: ``*by, n, iou, pointing_game, alignment_error, median_alignment_error, activation_l1``.

    Example:
        >>> rows = pd.DataFrame({"concept": ["a", "a"], "iou": [0.2, 0.4], "pointing_game": [1.0, 0.0],
        ...                      "alignment_error": [0.1, 0.3], "activation_l1": [0.5, 0.5]})
        >>> row = summarize_scores(rows, by=["concept"]).iloc[0]
        >>> int(row["n"]), round(float(row["iou"]), 3), float(row["pointing_game"])
        (2, 0.3, 0.5)
    """
    keys = [k for k in by if k in frame.columns]
    if frame.empty:
        return pd.DataFrame(
            columns=[*keys, "n", *METRIC_COLUMNS[:3], "median_alignment_error", METRIC_COLUMNS[3]]
        )
    grouped = frame.groupby(keys, sort=True, dropna=False) if keys else frame.groupby(lambda _: 0)
    out = grouped.agg(
        n=("alignment_error", "size"),
        iou=("iou", "mean"),
        pointing_game=("pointing_game", "mean"),
        alignment_error=("alignment_error", "mean"),
        median_alignment_error=("alignment_error", "median"),
        activation_l1=("activation_l1", "mean"),
    )
    return out.reset_index(drop=not keys)
