"""Location analysis (seed paper ``003``, section IV.C): how much of an object embedding encodes its position.

The same object is pasted at a grid of exact positions on one fixed background (:func:`paste_grid`; the scene
world gives a rendered object and background: :func:`scene_object`, :func:`scene_background`), every image is
embedded with each method, and the embeddings are reduced to 2-D by PCA and t-SNE for plots coloured by x and y
(:func:`reduce_2d`). The number that says how much of an embedding is position: :func:`location_score`, the
cross-validated R^2 of a ridge regression of the object's (x, y) from the embedding (1: position is linearly
readable, 0: no better than guessing the mean). Since nothing but the position changes, any variation of the
embeddings is caused by the position (and by what the object hides of the background).

Example:
    >>> rng = np.random.default_rng(0)
    >>> xy = rng.uniform(0, 224, size=(64, 2))
    >>> X = np.column_stack([xy, rng.normal(size=(64, 8))]) @ rng.normal(size=(10, 10))
    >>> round(location_score(X, xy).r2, 2)
    1.0
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from loce.activations import ActivationSource
from loce.baselines.crop import mask_box
from loce.baselines.embed import PER_SAMPLE_METHODS, EmbedOptions, embed_pairs
from loce.batches import Pair
from loce.errors import InputError
from loce.models import LoadedModel
from loce.reprs import short_repr

LOCATION_METHODS = ("loce", *PER_SAMPLE_METHODS)
"""Methods the location analysis embeds with (a ``global`` vector does not depend on the image at all)."""
REDUCERS = ("pca", "tsne")


@dataclass
class PositionedImages:
    """One object pasted at a grid of positions on one background.

    Attributes:
        images: ``n`` ``H x W x 3`` uint8 images.
        masks: ``n`` boolean ``H x W`` masks of the pasted object.
        positions: ``n x 2`` float array: ``(x, y)`` of the centre of the object's box, in pixels.
    """

    images: list[np.ndarray]
    masks: list[np.ndarray]
    positions: np.ndarray

    def __len__(self) -> int:
        return len(self.images)


def paste_grid(
    object_image: np.ndarray,
    object_mask: np.ndarray,
    background: np.ndarray,
    grid: tuple[int, int] = (8, 8),
) -> PositionedImages:
    """Paste the masked object at ``grid`` evenly spaced positions (rows x columns) that keep it inside the image.

    Args:
        object_image: ``h x w x 3`` uint8 image holding the object.
        object_mask: ``h x w`` boolean mask of the object (only these pixels are pasted; its tight box is used).
        background: ``H x W x 3`` uint8 background, larger than the object's box.
        grid: ``(rows, cols)`` of positions; positions run from the top-left to the bottom-right placement.

    Returns:
        :class:`PositionedImages` in row-major order of the grid.

    Example:
        >>> obj = np.full((4, 4, 3), 255, np.uint8); m = np.ones((4, 4), bool)
        >>> out = paste_grid(obj, m, np.zeros((10, 10, 3), np.uint8), grid=(2, 2))
        >>> out.positions.tolist()
        [[2.0, 2.0], [8.0, 2.0], [2.0, 8.0], [8.0, 8.0]]
    """
    object_mask = np.asarray(object_mask, dtype=bool)
    x0, y0, x1, y1 = mask_box(object_mask)
    crop, crop_mask = object_image[y0:y1, x0:x1], object_mask[y0:y1, x0:x1]
    h, w = crop_mask.shape
    height, width = background.shape[:2]
    if h > height or w > width:
        raise InputError(f"the object ({h} x {w}) does not fit on the {height} x {width} background")
    rows, cols = int(grid[0]), int(grid[1])
    if rows < 1 or cols < 1:
        raise InputError(f"the position grid must have at least 1 x 1 positions, got {grid}")
    tops = np.rint(np.linspace(0, height - h, rows)).astype(int)
    lefts = np.rint(np.linspace(0, width - w, cols)).astype(int)
    images, masks, positions = [], [], []
    for top in tops:
        for left in lefts:
            image = background.copy()
            mask = np.zeros((height, width), dtype=bool)
            mask[top : top + h, left : left + w] = crop_mask
            image[mask] = crop[crop_mask]
            images.append(image)
            masks.append(mask)
            positions.append((left + w / 2, top + h / 2))
    return PositionedImages(images, masks, np.asarray(positions, dtype=np.float64))


def scene_object(
    category: str = "soccer_ball", size: int = 64, *, azimuth: float = 30.0, elevation: float = 20.0
) -> tuple[np.ndarray, np.ndarray]:
    """One scene-world object rendered alone (needs ``loce[scenes]``): its image and mask, cropped to its box.

    Example:
        >>> image, mask = scene_object("mug", size=48)  # doctest: +SKIP
    """
    from loce.scenes.render import default_renderer, isolated_spec

    spec = isolated_spec(category, azimuth=azimuth, elevation=elevation, size=int(size), fill=0.9)
    rendered = default_renderer().render(spec, alone=False)
    mask = rendered.visible_mask(0)
    x0, y0, x1, y1 = mask_box(mask)
    return rendered.image[y0:y1, x0:x1].copy(), mask[y0:y1, x0:x1].copy()


def scene_background(size: int = 224, *, seed: int = 0, index: int = 0) -> np.ndarray:
    """The floor and wall of scene-world scene ``index`` without its objects (needs ``loce[scenes]``)."""
    from loce.scenes import render_scene, sample_scene

    spec = dataclasses.replace(sample_scene(seed, index, size=int(size)), objects=())
    return render_scene(spec, alone=False).image


@dataclass(frozen=True)
class LocationScore:
    """Cross-validated R^2 of a ridge regression of the position from the embedding (mean of x and y)."""

    r2: float
    r2_x: float
    r2_y: float


def location_score(
    X: np.ndarray,
    positions: np.ndarray,
    *,
    folds: int = 5,
    seed: int = 0,
    alphas: Sequence[float] | None = None,
) -> LocationScore:
    """How much of the embeddings is position: out-of-fold R^2 of a ridge fit of ``(x, y)`` from ``X``.

    Features are standardised; the ridge penalty is chosen inside each training fold (``RidgeCV`` over
    ``alphas``, default ``10^-3 .. 10^5``); the predictions of the held-out folds (``KFold``, shuffled with
    ``seed``) are scored with R^2 per coordinate. About 1 when the position is a linear function of the
    embedding, about 0 (or below) when the embedding says nothing about it.

    Args:
        X: ``n x D`` embeddings.
        positions: ``n x 2`` object positions.
        folds: cross-validation folds (at most ``n``).
        seed: shuffling seed of the folds.
        alphas: ridge penalties to choose from.
    """
    from sklearn.linear_model import RidgeCV
    from sklearn.metrics import r2_score
    from sklearn.model_selection import KFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = np.asarray(X, dtype=np.float64)
    positions = np.asarray(positions, dtype=np.float64)
    if X.ndim != 2 or positions.shape != (X.shape[0], 2):
        raise InputError(
            f"X of shape {X.shape} and positions of shape {positions.shape}: need n x D and n x 2"
        )
    folds = int(min(folds, X.shape[0]))
    if folds < 2:
        raise InputError(f"the location score needs at least 2 samples, got {X.shape[0]}")
    alphas = np.logspace(-3, 5, 17) if alphas is None else np.asarray(alphas, dtype=np.float64)
    model = make_pipeline(StandardScaler(), RidgeCV(alphas=alphas, alpha_per_target=True))
    predicted = cross_val_predict(model, X, positions, cv=KFold(folds, shuffle=True, random_state=seed))
    r2 = r2_score(positions, predicted, multioutput="raw_values")
    return LocationScore(float(r2.mean()), float(r2[0]), float(r2[1]))


def is_constant(X: np.ndarray) -> bool:
    """Whether all rows of ``X`` are (numerically) the same vector."""
    X = np.asarray(X, dtype=np.float64)
    scale = max(1.0, float(np.abs(X).max())) if X.size else 1.0
    return X.shape[0] < 2 or float(np.ptp(X, axis=0).max()) <= 1e-7 * scale


def reduce_2d(X: np.ndarray, reducer: str = "pca", *, seed: int = 0) -> np.ndarray:
    """2-D coordinates of the embeddings by PCA (:func:`loce.analysis.fit_reducer`) or t-SNE (scikit-learn).

    Identical embeddings (e.g. crops of one object) all map to ``(0, 0)``.
    """
    X = np.asarray(X, dtype=np.float64)
    if reducer not in REDUCERS:
        raise InputError(f"unknown reducer {reducer!r}; use one of {', '.join(REDUCERS)}")
    if is_constant(X):
        return np.zeros((X.shape[0], 2))
    if reducer == "pca":
        from loce.analysis import fit_reducer

        coords = fit_reducer(X, "pca", n_components=2, seed=seed)[1]
        return np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    n = X.shape[0]
    reduced = PCA(n_components=min(50, n, X.shape[1]), random_state=seed).fit_transform(X)
    perplexity = float(min(30.0, max(2.0, (n - 1) / 3)))
    method = "exact" if n <= 500 else "barnes_hut"  # exact is faster and more accurate for few points
    return TSNE(2, perplexity=perplexity, init="pca", random_state=seed, method=method).fit_transform(reduced)


@dataclass
class LocationResult:
    """Embeddings of one object at many positions, their position scores and 2-D maps.

    Attributes:
        positions: ``n x 2`` object positions (box centre, pixels).
        image_size: ``(H, W)`` of the images.
        embeddings: ``{(method, layer): n x D array}``.
        scores: one row per (method, layer): ``method, layer, dim, n, r2, r2_x, r2_y, constant``.
        coords: one row per (method, layer, reducer, sample): ``x, y`` (position) and ``c1, c2`` (2-D map).
    """

    __repr__ = short_repr

    positions: np.ndarray
    image_size: tuple[int, int]
    embeddings: dict[tuple[str, str], np.ndarray] = field(repr=False)
    scores: pd.DataFrame
    coords: pd.DataFrame = field(repr=False)


def embed_positions(
    model: LoadedModel,
    positioned: PositionedImages,
    layers: Sequence[str],
    methods: Sequence[str] = LOCATION_METHODS,
    *,
    options: EmbedOptions | None = None,
    settings: str | object = "paper",
    device: str = "cpu",
    batch_size: int = 32,
) -> dict[tuple[str, str], np.ndarray]:
    """Embed every positioned image with each method at each layer: ``{(method, layer): n x D}``.

    Raises:
        InputError: an unknown method, or an embedding that cannot be made (e.g. an empty mask).
    """
    from loce.fit import LoCEFitter

    unknown = sorted(set(methods) - set(LOCATION_METHODS))
    if unknown:
        raise InputError(f"unknown location methods {unknown}; choose from {', '.join(LOCATION_METHODS)}")
    layers = list(dict.fromkeys(layers))
    torch_device = torch.device(device)
    parts: dict[tuple[str, str], list[np.ndarray]] = {(m, layer): [] for m in methods for layer in layers}
    # The pasted images have no files: nothing to cache, but one forward pass per chunk serves every method
    # that reads whole images (loce, window, masked-pool); crop forwards its canvases.
    with ActivationSource(model, layers, device=torch_device) as source:
        for start in range(0, len(positioned), batch_size):
            images = positioned.images[start : start + batch_size]
            own = positioned.masks[start : start + batch_size]
            masks = source.frame_masks(own)  # in the model input's frame, aligned with the activation grid

            whole = [m for m in methods if m != "crop"]
            activations = source.of_images([None] * len(images), images) if whole else {}
            for method in methods:
                if method == "loce":
                    for layer in layers:
                        fitter = LoCEFitter(settings, device=torch_device).fit(activations[layer], masks)
                        _require_ok(fitter.status_, fitter.detail_, method, layer)
                        parts[(method, layer)].append(fitter.embeddings_)
                    continue
                pairs = _position_pairs(
                    start, own if method == "crop" else masks
                )  # crop cuts the image itself
                out = embed_pairs(
                    method, images, pairs, layers, model.preprocessing, source.forward, device=torch_device,
                    options=options, activations=None if method == "crop" else activations,
                )  # fmt: skip
                for layer in layers:
                    _require_ok(out[layer].status, out[layer].detail, method, layer)
                    parts[(method, layer)].append(out[layer].vectors)
    return {key: np.concatenate(chunks) for key, chunks in parts.items()}


def _position_pairs(start: int, masks: Sequence[np.ndarray]) -> list[Pair]:
    """One :class:`~loce.batches.Pair` per positioned image of a chunk starting at ``start``."""
    return [Pair(i, f"position-{start + i}", f"position-{start + i}", "object", m, None, None)
            for i, m in enumerate(masks)]  # fmt: skip


def _require_ok(status: Sequence[str], detail: Sequence[str | None], method: str, layer: str) -> None:
    bad = [i for i, s in enumerate(status) if s != "ok"]
    if bad:
        raise InputError(
            f"{method} at layer {layer!r} could not embed position {bad[0]} ({status[bad[0]]}: {detail[bad[0]]})"
        )


def location_analysis(
    model: LoadedModel,
    positioned: PositionedImages,
    layers: Sequence[str],
    methods: Sequence[str] = LOCATION_METHODS,
    *,
    options: EmbedOptions | None = None,
    settings: str | object = "paper",
    reducers: Sequence[str] = REDUCERS,
    folds: int = 5,
    device: str = "cpu",
    seed: int = 0,
) -> LocationResult:
    """Embed the positioned images, score how much of each embedding is position, and map them to 2-D.

    Example:
        >>> obj, mask = scene_object("soccer_ball")  # doctest: +SKIP
        >>> positioned = paste_grid(obj, mask, scene_background(), grid=(8, 8))  # doctest: +SKIP
        >>> result = location_analysis(load_model("efficientnet-lite0"), positioned, ["_blocks.10"])  # doctest: +SKIP
        >>> result.scores[["method", "layer", "r2"]]  # doctest: +SKIP
    """
    embeddings = embed_positions(
        model, positioned, layers, methods, options=options, settings=settings, device=device
    )
    score_rows, coord_frames = [], []
    for (method, layer), X in embeddings.items():
        score = location_score(X, positioned.positions, folds=folds, seed=seed)
        constant = is_constant(X)
        score_rows.append(
            {"method": method, "layer": layer, "dim": X.shape[1], "n": X.shape[0], "r2": score.r2,
             "r2_x": score.r2_x, "r2_y": score.r2_y, "constant": constant}
        )  # fmt: skip
        for reducer in reducers:
            coords = reduce_2d(X, reducer, seed=seed)
            coord_frames.append(
                pd.DataFrame(
                    {
                        "method": method,
                        "layer": layer,
                        "reducer": reducer,
                        "index": np.arange(X.shape[0]),
                        "x": positioned.positions[:, 0],
                        "y": positioned.positions[:, 1],
                        "c1": coords[:, 0],
                        "c2": coords[:, 1],
                    }
                )  # fmt: skip
            )
    image_size = tuple(positioned.images[0].shape[:2]) if len(positioned) else (0, 0)
    return LocationResult(
        positions=positioned.positions,
        image_size=image_size,
        embeddings=embeddings,
        scores=pd.DataFrame(score_rows),
        coords=pd.concat(coord_frames, ignore_index=True) if coord_frames else pd.DataFrame(),
    )
