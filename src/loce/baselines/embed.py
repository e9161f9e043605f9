"""One group of decoded images -> per-sample baseline embeddings of every layer (``crop``, ``window``,
``masked-pool``).

:func:`embed_pairs` is the shared core of the embedding run (:mod:`loce.baselines.run`) and of the location
analysis (:mod:`loce.baselines.location`): it takes the decoded images, one :class:`~loce.batches.Pair` per
(image, concept), the model's preprocessing and a capture callable, and returns per layer the vectors plus a
status and a JSON ``detail`` per pair. Pairs that cannot be embedded (an empty mask, non-finite activations) get
a zero vector and a skip status; they must not be stored as embeddings.

An "object" is what a store row describes: one concept in one image, i.e. the union of the concept's instances.
Its box (window centre, crop) is the tight box of that union mask, so a concept with two far-apart instances is
cropped and windowed as one object spanning both; split instances into separate concepts to avoid that.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from loce.baselines.crop import crop_canvas, pooled
from loce.baselines.masked_pool import cell_coverage, masked_pool
from loce.baselines.window import center_cell, window_vectors
from loce.batches import Pair
from loce.errors import InputError
from loce.preprocessing import Preprocessing

PER_SAMPLE_METHODS = ("crop", "window", "masked-pool")
"""Baselines that give one vector per (image, concept); ``global`` gives one per concept."""

Capture = Callable[[torch.Tensor], dict[str, torch.Tensor]]


@dataclass
class EmbedOptions:
    """Settings of the per-sample baselines (recorded in the run manifest; changing them needs a new job).

    Attributes:
        window_size: side ``k`` of the window (cells) of ``window`` embeddings.
        crop_margin: black border around the crop on the canvas, as a fraction of its longer side (``crop``).
        crop_chunk: canvases per forward pass (``crop`` feeds one canvas per object).
    """

    window_size: int = 3
    crop_margin: float = 0.0
    crop_chunk: int = 32

    def settings(self, method: str) -> dict[str, object]:
        """The options that change ``method``'s vectors (the job's ``fit_settings``)."""
        if method == "window":
            return {"method": method, "window_size": int(self.window_size)}
        if method == "crop":
            return {"method": method, "crop_margin": float(self.crop_margin), "canvas": "black, model aspect"}
        if method == "masked-pool":
            return {"method": method, "weights": "area"}
        raise InputError(
            f"unknown per-sample method {method!r}; choose one of {', '.join(PER_SAMPLE_METHODS)}"
        )


@dataclass
class LayerVectors:
    """One layer's embeddings of a group of pairs (rows in pair order)."""

    vectors: np.ndarray
    status: list[str] = field(default_factory=list)
    detail: list[str | None] = field(default_factory=list)

    @property
    def ok(self) -> np.ndarray:
        """Which rows carry an embedding."""
        return np.array([s == "ok" for s in self.status], dtype=bool)


def _empty_mask_detail(pair: Pair) -> str:
    return f"{pair.image}: the mask of {pair.concept!r} has no foreground pixel; there is no object to embed"


def _mark_nonfinite(result: LayerVectors, layer: str, pairs: Sequence[Pair]) -> None:
    bad = ~np.isfinite(result.vectors).all(axis=1)
    for i in np.flatnonzero(bad):
        if result.status[i] == "ok":
            result.status[i] = "nonfinite_activations"
            result.detail[i] = (
                f"{pairs[i].image}: the activations of layer {layer!r} hold NaN or infinite values under "
                f"{pairs[i].concept!r}; check the model and layer (e.g. an fp16 overflow)"
            )
    result.vectors[bad] = 0.0


def _mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _grid_methods(
    method: str,
    activations: dict[str, torch.Tensor],
    images: Sequence[np.ndarray],
    pairs: Sequence[Pair],
    options: EmbedOptions,
) -> dict[str, LayerVectors]:
    boxes = [_mask_box(p.mask) for p in pairs]
    usable = [i for i, box in enumerate(boxes) if box is not None]
    index = torch.as_tensor([pairs[i].image_index for i in usable], dtype=torch.long)
    out: dict[str, LayerVectors] = {}
    for layer, acts in activations.items():
        _, c, h, w = acts.shape
        k = int(options.window_size)
        dim = c * k * k if method == "window" else c
        result = LayerVectors(np.zeros((len(pairs), dim), np.float32))
        result.status = ["ok" if b is not None else "empty_mask" for b in boxes]
        result.detail = [None if b is not None else _empty_mask_detail(p) for b, p in zip(boxes, pairs)]
        if usable:
            selected = acts.index_select(0, index.to(acts.device))
            if method == "window":
                # the mask's own frame: the image's, or the model input's when masks were moved there
                cells = [center_cell(boxes[i], pairs[i].mask.shape[:2], (h, w)) for i in usable]
                vectors, padding = window_vectors(selected, cells, k)
                for j, i in enumerate(usable):
                    result.detail[i] = json.dumps(
                        {
                            "center_cell": list(cells[j]),
                            "grid": [h, w],
                            "k": k,
                            "padded_cells": int(padding[j]),
                            "box_used": list(boxes[i]),
                        }
                    )
            else:
                weights = np.stack([cell_coverage(pairs[i].mask, (h, w)) for i in usable])
                vectors = masked_pool(selected, weights)
                for j, i in enumerate(usable):
                    result.detail[i] = json.dumps(
                        {"grid": [h, w], "cells_covered": int((weights[j] > 0).sum())}
                    )
            result.vectors[usable] = vectors
        _mark_nonfinite(result, layer, pairs)
        out[layer] = result
    return out


def _crop_method(
    pairs: Sequence[Pair],
    images: Sequence[np.ndarray],
    layers: Sequence[str],
    preprocessing: Preprocessing,
    capture: Capture,
    device: torch.device,
    options: EmbedOptions,
) -> dict[str, LayerVectors]:
    aspect = preprocessing.size[1] / preprocessing.size[0]
    canvases, usable = [], []
    status = ["ok"] * len(pairs)
    detail: list[str | None] = [None] * len(pairs)
    for i, pair in enumerate(pairs):
        if not pair.mask.any():
            status[i], detail[i] = "empty_mask", _empty_mask_detail(pair)
            continue
        canvas = crop_canvas(images[pair.image_index], pair.mask, aspect=aspect, margin=options.crop_margin)
        canvases.append(canvas.image)
        usable.append(i)
        detail[i] = json.dumps(canvas.describe())
    pooled_parts: dict[str, list[np.ndarray]] = {layer: [] for layer in layers}
    step = max(1, int(options.crop_chunk))
    for start in range(0, len(canvases), step):
        activations = capture(preprocessing(canvases[start : start + step]).to(device))
        for layer in layers:
            pooled_parts[layer].append(pooled(activations[layer]))
    out: dict[str, LayerVectors] = {}
    for layer in layers:
        parts = pooled_parts[layer]
        dim = parts[0].shape[1] if parts else 0
        result = LayerVectors(np.zeros((len(pairs), dim), np.float32), list(status), list(detail))
        if usable:
            result.vectors[usable] = np.concatenate(parts)
        _mark_nonfinite(result, layer, pairs)
        out[layer] = result
    return out


def embed_pairs(
    method: str,
    images: Sequence[np.ndarray],
    pairs: Sequence[Pair],
    layers: Sequence[str],
    preprocessing: Preprocessing,
    capture: Capture,
    *,
    device: str | torch.device = "cpu",
    options: EmbedOptions | None = None,
    activations: dict[str, torch.Tensor] | None = None,
) -> dict[str, LayerVectors]:
    """Embed every pair of a group of images with one per-sample baseline.

    Args:
        method: ``"crop"``, ``"window"`` or ``"masked-pool"``.
        images: the group's decoded images (``H x W x 3`` uint8); ``pair.image_index`` points into it.
        pairs: one :class:`~loce.batches.Pair` per (image, concept), with its boolean mask.
        layers: the layers ``capture`` returns.
        preprocessing: the model's preprocessing.
        capture: ``inputs (N x 3 x H x W) -> {layer: N x C x h x w}``, e.g. a
            :class:`~loce.capture.LayerCapture` of the model.
        device: where the model runs.
        options: :class:`EmbedOptions` (window size, crop margin).
        activations: the images' activations when already computed (``window``, ``masked-pool``; e.g. from
            :class:`loce.activations.ActivationSource`); ``capture`` then only serves ``crop``'s canvases.

    Returns:
        ``{layer: LayerVectors}``, rows in pair order; ``window`` vectors are ``C * k * k`` long, the others ``C``.

    Example:
        >>> with LayerCapture(model.module, ["_blocks.10"]) as capture:  # doctest: +SKIP
        ...     out = embed_pairs("window", batch.images, batch.pairs, ["_blocks.10"], model.preprocessing,
        ...                       capture)
    """
    options = options or EmbedOptions()
    options.settings(method)  # validates the method name
    device = torch.device(device)
    if not pairs:
        return {}
    if method == "crop":
        return _crop_method(pairs, images, layers, preprocessing, capture, device, options)
    if activations is None:
        activations = capture(preprocessing(list(images)).to(device))
    return _grid_methods(method, {layer: activations[layer] for layer in layers}, images, pairs, options)
