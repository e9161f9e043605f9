"""Evaluating a trained CBM: recognition (class and concept accuracy) and localisation of its concept maps.

Localisation uses the metrics of :mod:`loce.localize.metrics` at the ground-truth masks' resolution: each concept
logit map (``h x w``) is resized bilinearly to the mask's size and passed through the sigmoid, the same operator
as a LoCE projection, so CBM maps and LoCE maps are scored identically (IoU of ``sigmoid > 0.5``).

Example:
    >>> preds = predict(model, test_features)  # doctest: +SKIP
    >>> per_map = localize_maps(preds.maps, items)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from loce.cbm.model import ConceptBottleneck
from loce.errors import InputError
from loce.fit.projection import projection_maps, resize_maps
from loce.localize.metrics import localization_scores, mask_centroids


@dataclass
class CBMPredictions:
    """Outputs of a CBM on a set of features: logit maps ``N x K x h x w``, concept and class probabilities."""

    logit_maps: np.ndarray
    concept_probs: np.ndarray
    class_probs: np.ndarray


@dataclass
class MapItem:
    """One concept map to score: row ``index`` of the predictions, concept column ``concept``, its mask.

    ``reference_points`` (``n x 2`` ``(row, col)`` at the mask's resolution, e.g. instance centroids) replace the
    mask's centroid for the alignment error when given.
    """

    index: int
    concept: int
    mask: np.ndarray
    reference_points: np.ndarray | None = None


def predict(
    model: ConceptBottleneck, features: np.ndarray | torch.Tensor, batch_size: int = 256
) -> CBMPredictions:
    """Run the model over ``N x C x h x w`` features in batches (no gradients)."""
    x = torch.as_tensor(np.asarray(features, dtype=np.float32))
    maps, concepts, classes = [], [], []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            out = model(x[start : start + batch_size])
            maps.append(out.logit_maps)
            concepts.append(torch.sigmoid(out.concept_logits))
            classes.append(torch.softmax(out.class_logits, dim=1))
    if not maps:
        raise InputError("no features to evaluate the CBM on")
    return CBMPredictions(torch.cat(maps).numpy(), torch.cat(concepts).numpy(), torch.cat(classes).numpy())


def localize_maps(
    logit_maps: np.ndarray | torch.Tensor,
    items: Sequence[MapItem],
    *,
    threshold: float = 0.5,
    tolerance: float = 0.0,
    chunk: int = 64,
) -> pd.DataFrame:
    """Localisation metrics of selected maps against their masks, batched per mask size.

    Each chosen logit map is resized bilinearly to its mask's size and passed through a sigmoid, exactly like a
    LoCE projection (:func:`loce.localize.heatmaps.concept_heatmaps`); peaks are found on the resized logits.

    Args:
        logit_maps: ``N x K x h x w`` logit maps (CBM concept logits ``z``, or LoCE logits ``v . A``).
        items: which maps to score, with their masks.
        threshold: IoU threshold on the sigmoid maps.
        tolerance: pointing-game tolerance in pixels.
        chunk: maps resized at once.

    Returns:
        One row per item: ``index, concept, iou, pointing_game, alignment_error, activation_l1, peak_row,
        peak_col``.
    """
    z = torch.as_tensor(np.asarray(logit_maps, dtype=np.float32))
    groups: dict[tuple[int, int], list[int]] = {}
    for j, item in enumerate(items):
        groups.setdefault(tuple(np.asarray(item.mask).shape), []).append(j)
    frames = []
    for shape, members in groups.items():
        for start in range(0, len(members), chunk):
            part = members[start : start + chunk]
            chosen = torch.stack([z[items[j].index, items[j].concept] for j in part])
            resized = resize_maps(chosen, shape)
            masks = np.stack([np.asarray(items[j].mask, dtype=bool) for j in part])
            centres = mask_centroids(masks)
            refs = [
                centres[i : i + 1] if items[j].reference_points is None else items[j].reference_points
                for i, j in enumerate(part)
            ]
            scores = localization_scores(
                projection_maps(resized),
                masks,
                threshold=threshold,
                tolerance=tolerance,
                peak_maps=resized,
                reference_points=refs,
            )
            frame = scores.to_frame()
            frame.insert(0, "concept", [items[j].concept for j in part])
            frame.insert(0, "index", [items[j].index for j in part])
            frame.insert(0, "_order", part)
            frames.append(frame)
    if not frames:
        return pd.DataFrame(
            columns=[
                "index",
                "concept",
                "iou",
                "pointing_game",
                "alignment_error",
                "activation_l1",
                "peak_row",
                "peak_col",
            ]
        )
    return pd.concat(frames).sort_values("_order").drop(columns="_order").reset_index(drop=True)


def recognition(predictions: CBMPredictions, presence: np.ndarray, classes: np.ndarray) -> dict[str, float]:
    """Class accuracy, concept accuracy (probability > 0.5 vs presence) and the mean per-concept ROC AUC."""
    from sklearn.metrics import roc_auc_score

    presence = np.asarray(presence) > 0.5
    accuracy = float((predictions.class_probs.argmax(axis=1) == np.asarray(classes)).mean())
    concept_accuracy = float(((predictions.concept_probs > 0.5) == presence).mean())
    aucs = [
        roc_auc_score(presence[:, k], predictions.concept_probs[:, k])
        for k in range(presence.shape[1])
        if 0 < presence[:, k].sum() < len(presence)
    ]
    return {
        "accuracy": accuracy,
        "concept_accuracy": concept_accuracy,
        "concept_auc": float(np.mean(aucs)) if aucs else float("nan"),
    }
