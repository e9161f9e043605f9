"""The concept locator of a Loc-CBM-style bottleneck: peaks -> Gaussian masks with a shrinking radius -> loss.

For every concept map of an image (``h x w``; by default the concept layer's logit map ``z``):

1. the map is min-max normalised, ``n = (z - min z) / (max z - min z)`` (:func:`minmax_normalize`), so it runs
   from 0 to 1 whatever its level and scale;
2. the peak ``p = argmax z`` (no gradient flows through the choice of the peak);
3. a Gaussian mask ``G(u) = exp(-|u - p|^2 / (2 sigma^2))`` over the grid cells ``u``, with ``sigma = radius *
   max(h, w)`` (the radius is a fraction of the map's larger side, so one schedule fits every layer's grid);
4. the alignment loss ``MSE(G * n, n) = mean((1 - G)^2 n^2)``: zero when the map is high only under the mask,
   growing with the map's height away from the peak relative to its range.

Why normalised maps (measured on the scene world, EfficientNet-Lite0 features, 3 scene sets x 3 seeds, see
``loce.cbm.train``): on raw sigmoid maps ``a`` the loss ``mean((1 - G)^2 a^2)`` can be lowered by lowering the
whole map, and with a shared linear concept layer that is what training does: concept recall drops, maps get
sparser (activation L1 -30 %) but the peaks do not move (alignment error unchanged within seed noise). After
min-max normalisation the loss is blind to the map's level and scale: it can only be lowered by making the peak
stand out from the rest of the same image, i.e. by concept evidence that is local. That is the locator's intent
("constrain concept activation in concentrated spatial regions"), and it moves the peaks onto the objects
(alignment error -40 % at ``_blocks.10``) while concept AUC rises. ``normalization="none"`` keeps the loss on the
maps as given (the earlier variant, for comparison).

The radius shrinks during training (:class:`RadiusSchedule`): wide masks first, while the peaks are still
unreliable, narrow masks later. Only maps of concepts present in the image are aligned (an absent concept has
no location; the concept loss drives its map down).

Example:
    >>> schedule = RadiusSchedule(start=0.5, end=0.1, steps=100, kind="linear")
    >>> [round(schedule(t), 3) for t in (0, 50, 100, 150)]
    [0.5, 0.3, 0.1, 0.1]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from loce.errors import InputError

SCHEDULES: tuple[str, ...] = ("cosine", "linear", "constant")
#: How :func:`alignment_loss` normalises each map before masking.
NORMALIZATIONS: tuple[str, ...] = ("minmax", "none")


@dataclass(frozen=True)
class RadiusSchedule:
    """The Gaussian mask radius (a fraction of the map's larger side) as a function of the training step.

    With ``T = steps`` and ``s = min(step, T) / T``:

    - ``"linear"``: ``r = start + (end - start) * s``;
    - ``"cosine"``: ``r = end + (start - end) * (1 + cos(pi * s)) / 2`` (slow at both ends);
    - ``"constant"``: ``r = end`` at every step.

    Both shrinking schedules start at ``start`` (``r_max``), end at ``end`` (``r_min``) at step ``T``, never
    increase, and stay at ``end`` after ``T``.

    Attributes:
        start: ``r_max``, the radius at step 0.
        end: ``r_min``, the radius from step ``steps`` on.
        steps: number of steps over which the radius shrinks (usually all training steps).
        kind: ``"cosine"``, ``"linear"`` or ``"constant"``.
    """

    start: float = 0.5
    end: float = 0.1
    steps: int = 1000
    kind: str = "cosine"

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise InputError(f"unknown radius schedule {self.kind!r}; choose one of {list(SCHEDULES)}")
        if not (0 < self.end <= self.start):
            raise InputError(
                f"the radius must shrink: need 0 < end <= start, got start={self.start}, end={self.end}"
            )
        if self.steps < 0:
            raise InputError(f"steps must be >= 0, got {self.steps}")

    def __call__(self, step: int) -> float:
        """The radius at ``step`` (0-based)."""
        if self.kind == "constant" or self.steps == 0:
            return float(self.end)
        s = min(max(int(step), 0), self.steps) / self.steps
        if self.kind == "linear":
            return float(self.start + (self.end - self.start) * s)
        return float(self.end + (self.start - self.end) * 0.5 * (1.0 + math.cos(math.pi * s)))

    def values(self) -> np.ndarray:
        """The radius at every step ``0 .. steps``."""
        return np.array([self(t) for t in range(self.steps + 1)])


def grid_peaks(maps: Tensor) -> Tensor:
    """``(row, col)`` of each map's maximum: ``B x K x 2`` float from ``B x K x h x w`` (first on ties)."""
    b, k, h, w = maps.shape
    flat = maps.detach().reshape(b, k, h * w).argmax(dim=2)
    return torch.stack([flat // w, flat % w], dim=2).to(maps.dtype)


def gaussian_masks(peaks: Tensor, shape: tuple[int, int], sigma: float) -> Tensor:
    """``exp(-|u - p|^2 / (2 sigma^2))`` on an ``h x w`` grid for every peak: ``B x K x h x w``.

    Args:
        peaks: ``B x K x 2`` ``(row, col)`` in grid cells.
        shape: ``(h, w)``.
        sigma: the Gaussian's standard deviation in grid cells.

    Example:
        >>> m = gaussian_masks(torch.tensor([[[0.0, 0.0]]]), (1, 3), sigma=1.0)
        >>> [round(v, 4) for v in m.flatten().tolist()]
        [1.0, 0.6065, 0.1353]
    """
    h, w = shape
    rows = torch.arange(h, dtype=peaks.dtype, device=peaks.device).view(1, 1, h, 1)
    cols = torch.arange(w, dtype=peaks.dtype, device=peaks.device).view(1, 1, 1, w)
    d2 = (rows - peaks[..., 0, None, None]) ** 2 + (cols - peaks[..., 1, None, None]) ** 2
    return torch.exp(-d2 / (2.0 * float(sigma) ** 2))


def minmax_normalize(maps: Tensor, eps: float = 1e-6) -> Tensor:
    """Each ``h x w`` map of ``B x K x h x w`` rescaled to run from 0 (its minimum) to 1 (its maximum).

    A constant map (range below ``eps``) becomes all zeros. Gradients flow through the minimum and maximum.

    Example:
        >>> minmax_normalize(torch.tensor([[[[2.0, 4.0, 3.0]]]])).flatten().tolist()
        [0.0, 1.0, 0.5]
    """
    low = maps.amin(dim=(2, 3), keepdim=True)
    span = (maps.amax(dim=(2, 3), keepdim=True) - low).clamp_min(eps)
    return (maps - low) / span


def alignment_loss(
    maps: Tensor, radius: float, weights: Tensor | None = None, normalization: str = "minmax"
) -> Tensor:
    """Loc-CBM's alignment loss ``MSE(G * n, n)`` averaged over the (weighted) maps (module docstring).

    Args:
        maps: ``B x K x h x w`` concept maps (the concept logit maps ``z``; any real values).
        radius: the mask radius as a fraction of ``max(h, w)`` (see :class:`RadiusSchedule`).
        weights: ``B x K`` weights of the maps (e.g. concept presence 0/1); default all 1.
        normalization: ``"minmax"`` (``n`` = the min-max normalised map) or ``"none"`` (``n`` = the map as given).

    Returns:
        A scalar tensor (0 when no map has weight).

    Raises:
        InputError: on an unknown ``normalization``.

    Example:
        >>> flat = torch.ones(1, 1, 5, 5); spot = torch.zeros(1, 1, 5, 5); spot[0, 0, 2, 2] = 1
        >>> flat[0, 0, 2, 2] = 2.0  # a peak on a high plateau: normalised, the plateau is at 0
        >>> alignment_loss(spot, 0.1).item() < 1e-6, alignment_loss(spot - 5.0, 0.1).item() < 1e-6
        (True, True)
        >>> alignment_loss(flat, 0.1).item() < 1e-6 < alignment_loss(flat, 0.1, normalization="none").item()
        True
    """
    if normalization not in NORMALIZATIONS:
        raise InputError(
            f"unknown alignment normalization {normalization!r}; choose one of {list(NORMALIZATIONS)}"
        )
    _, _, h, w = maps.shape
    masks = gaussian_masks(grid_peaks(maps), (h, w), radius * max(h, w))
    shaped = minmax_normalize(maps) if normalization == "minmax" else maps
    per_map = ((masks * shaped - shaped) ** 2).mean(dim=(2, 3))
    if weights is None:
        return per_map.mean()
    weights = weights.to(per_map.dtype)
    return (per_map * weights).sum() / weights.sum().clamp_min(1.0)
