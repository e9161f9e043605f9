"""95% intervals of the headline numbers: bootstrap over images, or the spread over seeds.

The bootstrap resamples *images* (``sample_id``), not LoCEs: all LoCEs of one image (its concepts) go in or out
together, because they share the image. One resample draws as many images as there are, with replacement; a
LoCE's weight in the resample is how often its image was drawn. Averages over queries (precision@k, average
precision) are recomputed as weighted means of the per-query values grouped by image, which costs
O(resamples x images); analyses with a geometry (separation, overlap, purity) are recomputed on each resample's
distinct LoCEs with the weights as multiplicities (:mod:`loce.analysis.run`).

The interval is the percentile interval (2.5 and 97.5 percentiles of the resampled values). Reproducible: the
same ``seed`` gives the same resamples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from loce.analysis.errors import AnalysisError

LEVEL = 0.95
# The range each headline number can take; a centred interval is clipped to it (an overlap or a purity above 1,
# a separation below 0 cannot happen). Separation is a distance ratio >= 0, a confusion score is a weighted mean
# of components each at most 1 (closeness 1 - S may be negative), a clustering has at least one cluster.
METRIC_RANGES: dict[str, tuple[float, float]] = {
    "mean_separation": (0.0, np.inf),
    "separation": (0.0, np.inf),
    "mean_overlap": (0.0, 1.0),
    "overlap_ij": (0.0, 1.0),
    "purity": (0.0, 1.0),
    "n_clusters": (1.0, np.inf),
    "most_confused_score": (-np.inf, 1.0),
    "score": (-np.inf, 1.0),
}


def percentile_interval(values: object, level: float = LEVEL) -> tuple[float, float]:
    """``(low, high)`` percentiles of the finite ``values`` covering ``level`` (NaN, NaN when none is finite).

    Example:
        >>> [round(v, 9) for v in percentile_interval(np.arange(101.0))]
        [2.5, 97.5]
    """
    arr = np.asarray(values, dtype=np.float64).ravel()
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(arr, [tail, 100 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class ImageBootstrap:
    """Resamples of the images of a set of LoCEs.

    Attributes:
        images: the distinct sample ids (sorted).
        image_of: per LoCE, the index of its image in ``images``.
        counts: resamples x images, how often each image was drawn.
        seed: the seed the resamples were drawn with.
    """

    images: np.ndarray
    image_of: np.ndarray
    counts: np.ndarray
    seed: int

    @classmethod
    def draw(cls, sample_ids: object, n_resamples: int = 200, seed: int = 0) -> ImageBootstrap:
        """Draw ``n_resamples`` resamples of the images of ``sample_ids`` (one id per LoCE).

        Example:
            >>> boot = ImageBootstrap.draw(["a", "a", "b"], n_resamples=3, seed=0)
            >>> boot.counts.sum(axis=1).tolist()  # every resample draws as many images as there are
            [2, 2, 2]
        """
        if n_resamples < 1:
            raise AnalysisError(f"the bootstrap needs at least 1 resample, got {n_resamples}.")
        images, image_of = np.unique(np.asarray(sample_ids).astype(str), return_inverse=True)
        rng = np.random.default_rng(seed)
        draws = rng.integers(0, images.size, size=(n_resamples, images.size))
        counts = np.zeros((n_resamples, images.size), dtype=np.int32)
        np.add.at(counts, (np.repeat(np.arange(n_resamples), images.size), draws.ravel()), 1)
        return cls(images, image_of.astype(np.int64), counts, int(seed))

    @property
    def n_resamples(self) -> int:
        return int(self.counts.shape[0])

    def loce_weights(self, b: int) -> np.ndarray:
        """Per LoCE, its multiplicity in resample ``b`` (0: its image was not drawn)."""
        return self.counts[b, self.image_of]

    def weighted_means(self, values: object) -> np.ndarray:
        """Per resample, the weighted mean of one value per LoCE (NaN values are left out).

        Example:
            >>> boot = ImageBootstrap.draw(["a", "b"], n_resamples=50, seed=1)
            >>> means = boot.weighted_means([0.0, 1.0])
            >>> bool(((means >= 0) & (means <= 1)).all())
            True
        """
        v = np.asarray(values, dtype=np.float64)
        if v.shape != self.image_of.shape:
            raise AnalysisError(f"one value per LoCE is needed ({self.image_of.size}), got shape {v.shape}.")
        valid = np.isfinite(v)
        n_images = self.images.size
        sums = np.bincount(self.image_of[valid], weights=v[valid], minlength=n_images)
        sizes = np.bincount(self.image_of[valid], minlength=n_images).astype(np.float64)
        totals = self.counts @ sizes
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(totals > 0, (self.counts @ sums) / np.where(totals > 0, totals, 1), np.nan)


def centred_interval(
    values: object,
    estimate: float,
    level: float = LEVEL,
    bounds: tuple[float, float] = (-np.inf, np.inf),
) -> tuple[float, float]:
    """The percentile interval of ``values`` shifted so that their median sits on ``estimate``, kept in ``bounds``.

    For statistics built on extremes (separation: a minimum distance; overlap: nearest neighbours), a resample's
    fewer distinct LoCEs bias every resampled value the same way (a minimum over fewer pairs is larger), so the
    plain percentile interval can miss the estimate altogether; its width still measures the spread. The shift
    can carry an end past what the metric can take (a score of at most 1 got [0.80, 1.01]): both ends are clipped
    to ``bounds`` (the metric's range, :data:`METRIC_RANGES`).

    Example:
        >>> centred_interval([1.0, 2.0, 3.0], 0.0, level=0.0)
        (0.0, 0.0)
        >>> centred_interval([0.5, 0.75, 1.0], 0.875, level=1.0, bounds=METRIC_RANGES["score"])
        (0.625, 1.0)
    """
    arr = np.asarray(values, dtype=np.float64).ravel()
    arr = arr[np.isfinite(arr)]
    if arr.size == 0 or not np.isfinite(estimate):
        return float("nan"), float("nan")
    low, high = percentile_interval(arr, level)
    shift = float(estimate) - float(np.median(arr))
    lower, upper = bounds
    return float(np.clip(low + shift, lower, upper)), float(np.clip(high + shift, lower, upper))
