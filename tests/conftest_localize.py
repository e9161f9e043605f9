"""Planted data for the localisation and CBM tests (imported explicitly, not a pytest conftest).

``planted_features`` builds backbone-like feature maps where each concept has two signals:

- an *object* channel: a sharp blob (one cell wide) at the concept's location, present exactly when the concept
  is present, but faint on its own (amplitude ``object_amplitude``) under channel noise;
- a *context* channel: a broad blob (like the table under a mug) whose centre lies ``context_offset`` cells
  away from the object, present with the concept and also in a share of images without it.

Under the plain CBM's training signal (presence of the pooled score) both channels are useful and the broad one
dominates a spatially pooled score; the locator's alignment loss rewards maps concentrated at one peak, which
only the sharp object channel gives. The ground truth for localisation is the object location.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class PlantedFeatures:
    features: np.ndarray  # N x C x h x w float32
    presence: np.ndarray  # N x K float32
    classes: np.ndarray  # N int
    locations: np.ndarray  # N x K x 2 (row, col) of the objects (NaN where absent)
    masks: np.ndarray  # N x K x H x W bool object masks at image resolution (H = h * scale)
    scale: int


def _blob(h: int, w: int, centre: np.ndarray, sigma: float) -> np.ndarray:
    rows = np.arange(h)[:, None]
    cols = np.arange(w)[None, :]
    return np.exp(-((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2) / (2 * sigma**2))


def planted_features(
    n: int = 192,
    k: int = 3,
    grid: int = 8,
    noise_channels: int = 4,
    object_amplitude: float = 1.0,
    context_amplitude: float = 1.0,
    context_sigma: float = 2.0,
    context_offset: float = 3.5,
    context_false_rate: float = 0.3,
    noise: float = 0.15,
    scale: int = 4,
    seed: int = 0,
) -> PlantedFeatures:
    """``n`` images on a ``grid x grid`` feature map with ``k`` planted concepts (see the module docstring).

    The class of an image is the index of its present concept with the lowest number (``k`` if none), so the
    class depends on the concepts only.
    """
    rng = np.random.default_rng(seed)
    c = 2 * k + noise_channels
    feats = rng.normal(0.0, noise, size=(n, c, grid, grid))
    presence = (rng.random((n, k)) < 0.5).astype(np.float32)
    locations = np.full((n, k, 2), np.nan)
    size = grid * scale
    masks = np.zeros((n, k, size, size), dtype=bool)
    margin = 1.0
    for i in range(n):
        for j in range(k):
            context_on = presence[i, j] or rng.random() < context_false_rate
            obj = rng.uniform(margin, grid - 1 - margin, size=2)
            if presence[i, j]:
                locations[i, j] = obj
                feats[i, 2 * j] += object_amplitude * _blob(grid, grid, obj, 0.5)
                # the object's mask at image resolution: a disc of radius 0.7 cells around its centre
                px = (obj + 0.5) * scale - 0.5
                rr, cc = np.mgrid[0:size, 0:size]
                masks[i, j] = (rr - px[0]) ** 2 + (cc - px[1]) ** 2 <= (0.7 * scale) ** 2
            if context_on:
                angle = rng.uniform(0, 2 * np.pi)
                ctx = obj + context_offset * np.array([np.sin(angle), np.cos(angle)])
                feats[i, 2 * j + 1] += context_amplitude * _blob(grid, grid, ctx, context_sigma)
    present = presence.astype(bool)
    classes = np.where(present.any(axis=1), present.argmax(axis=1), k)
    return PlantedFeatures(
        feats.astype(np.float32), presence, classes.astype(np.int64), locations, masks, scale
    )
