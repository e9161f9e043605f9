"""Projections of concept vectors onto new images: heat maps at image resolution, thresholds and overlays.

A concept vector ``v`` (a LoCE, a concept mean, a sub-concept centroid, a ``global`` vector) projected onto a
layer's activations ``A`` (``C x h x w``) is ``sigmoid(z)`` with ``z = sum_k v_k A_k`` (METHOD.md section 1).
Many vectors are projected onto many images at once: ``K`` vectors and ``B`` images give ``B x K`` maps from one
``einsum``; only the one-channel logits are resized (bilinear, ``align_corners=False``), which equals resizing
all ``C`` channels first. The maths is :mod:`loce.fit.projection`'s (``concept_logits`` is re-exported here).

Example:
    >>> import torch
    >>> acts = torch.randn(2, 8, 7, 7)
    >>> maps = concept_heatmaps(torch.randn(3, 8), acts, size=(224, 224))
    >>> maps.probabilities.shape
    torch.Size([2, 3, 224, 224])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from loce.errors import InputError
from loce.fit.projection import concept_logits, projection_maps, resize_maps


@dataclass
class ConceptMaps:
    """Heat maps of ``K`` vectors on ``B`` images: ``logits`` and ``probabilities`` (``sigmoid(logits)``).

    Both are ``B x K x H x W`` float32 tensors. Use ``logits`` to find peaks (no saturation ties) and
    ``probabilities`` for thresholds, spread and drawing.
    """

    logits: Tensor

    @property
    def probabilities(self) -> Tensor:
        """``sigmoid(logits)``, values in [0, 1] (:func:`loce.fit.projection.projection_maps`)."""
        return projection_maps(self.logits)


def concept_heatmaps(
    vectors: Tensor | np.ndarray, activations: Tensor, size: tuple[int, int] | None = None
) -> ConceptMaps:
    """Heat maps of every vector on every image, optionally resized to ``size`` (the images' resolution).

    Args:
        vectors: ``K x C`` (or one ``C``) concept vectors of the activations' layer.
        activations: ``B x C x h x w``.
        size: ``(H, W)`` to resize the logits to (bilinear, ``align_corners=False``); ``None``: the layer's grid.

    Returns:
        :class:`ConceptMaps` of shape ``B x K x H x W``.
    """
    z = concept_logits(vectors, activations)
    return ConceptMaps(z if size is None else resize_maps(z, size))


def threshold_maps(maps: Tensor | np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Boolean ``maps > threshold`` (the paper binarises sigmoid projections at 0.5).

    Example:
        >>> threshold_maps(np.array([0.2, 0.5, 0.7]))
        array([False, False,  True])
    """
    return np.asarray(torch.as_tensor(maps).detach().cpu().numpy() > threshold)


def resize_map(heatmap: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinearly resize one ``h x w`` map to ``size`` (``align_corners=False``), e.g. a layer grid to an image.

    Example:
        >>> resize_map(np.array([[0.0, 1.0]]), (1, 4)).round(2).tolist()
        [[0.0, 0.25, 0.75, 1.0]]
    """
    arr = torch.as_tensor(np.asarray(heatmap, dtype=np.float32))
    if arr.ndim != 2:
        raise InputError(f"a heat map must be h x w, got shape {tuple(arr.shape)}.")
    return resize_maps(arr, size).numpy()


def overlay(
    image: np.ndarray,
    heatmap: np.ndarray,
    *,
    alpha: float = 0.65,
    cmap: str = "inferno",
    normalize: bool = False,
) -> np.ndarray:
    """The image with a heat map blended over it, as ``H x W x 3`` uint8 (ready to save as PNG).

    The heat map is stretched to the image (bilinear) and coloured with ``cmap``; its opacity follows its value,
    so cold regions leave the image visible.

    Args:
        image: ``H x W x 3`` uint8 RGB.
        heatmap: values in [0, 1] (or any range with ``normalize=True``), any resolution.
        alpha: opacity where the map is 1.
        cmap: a matplotlib colour map name (``pip install "loce[viz]"``).
        normalize: scale the map by its maximum first (for unbounded maps such as ReLU concept maps).

    Example:
        >>> out = overlay(np.zeros((4, 4, 3), np.uint8), np.ones((2, 2)))  # doctest: +SKIP
    """
    try:
        from matplotlib import colormaps
    except ImportError as exc:  # pragma: no cover - matplotlib is installed in dev
        raise ImportError('overlays need matplotlib: pip install "loce[viz]"') from exc
    picture = np.asarray(image)
    if picture.ndim != 3 or picture.shape[2] != 3:
        raise InputError(f"overlay needs an H x W x 3 RGB image, got shape {picture.shape}.")
    heat = resize_map(heatmap, picture.shape[:2]).astype(np.float64)
    if normalize:
        peak = float(np.abs(heat).max())
        heat = np.abs(heat) / peak if peak > 0 else np.zeros_like(heat)
    heat = np.clip(heat, 0.0, 1.0)
    colours = colormaps[cmap](heat)[..., :3]
    weight = (alpha * heat)[..., None]
    blended = (1 - weight) * (picture.astype(np.float64) / 255.0) + weight * colours
    return np.clip(np.round(blended * 255.0), 0, 255).astype(np.uint8)
