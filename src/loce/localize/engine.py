"""The localisation engine: a model, concept vectors and images in; per-map metrics and example maps out.

Every vector is projected onto every image (one batched ``einsum`` per layer and batch of images); the maps are
brought to each image's own resolution and, for the vectors whose concept the image is annotated with, scored
together (:func:`loce.localize.metrics.localization_scores`): IoU at a threshold, pointing game, alignment error
to the nearest instance centroid when the dataset has instance masks (else the mask centroid), activation L1.
``peak_prob`` (the map's maximum) is recorded for every (image, vector), so the summary also shows how strongly a
vector fires on images without its concept.

Example:
    >>> result = localize_samples(model, vectors, dataset)  # doctest: +SKIP
    >>> result.summary[["concept", "kind", "alignment_error", "pointing_game"]]  # doctest: +SKIP
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from loce.activations import ActivationSource, CacheOptions, iter_activations
from loce.data.dataset import ConceptDataset
from loce.data.images import read_image
from loce.data.sample import Sample
from loce.errors import InputError
from loce.fit.projection import concept_logits, projection_maps, resize_maps
from loce.localize.metrics import localization_scores, mask_centroids, summarize_scores
from loce.localize.vectors import ConceptVector
from loce.models import LoadedModel
from loce.reprs import short_repr

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
SUMMARY_KEYS = ("concept", "layer", "kind", "label")


@dataclass
class ExampleImage:
    """One example image with the heat maps of the vectors of its concept (for figures and overlays)."""

    sample_id: str
    label: str
    image: np.ndarray
    mask: np.ndarray | None
    heatmaps: dict[str, np.ndarray] = field(default_factory=dict)
    peaks: dict[str, tuple[float, float]] = field(default_factory=dict)


@dataclass
class LocalizationResult:
    """What :func:`localize_samples` measured.

    Attributes:
        per_map: one row per (image, vector).
        summary: :func:`~loce.localize.metrics.summarize_scores` over the rows with the concept present, plus
            ``peak_prob_with`` / ``peak_prob_without`` (mean map maximum on images with / without the concept).
        vectors: the projected vectors.
        examples: per concept, example images with their maps.
        notes: what was left out and why (unreadable images, missing vector kinds).
        out: the directory written by :func:`loce.localize.run.write_localization` (``None`` before).
        files: the files written there.
    """

    __repr__ = short_repr

    per_map: pd.DataFrame
    summary: pd.DataFrame
    vectors: list[ConceptVector]
    examples: dict[str, list[ExampleImage]]
    notes: list[str] = field(default_factory=list)
    out: Path | None = None
    files: list[Path] = field(default_factory=list)


def image_folder_samples(folder: str | Path) -> ConceptDataset:
    """Every image file under ``folder`` (recursive, sorted) as a sample without annotations.

    Example:
        >>> samples = image_folder_samples("new_images")  # doctest: +SKIP
    """
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"image folder {root} does not exist; pass a directory of image files")
    files = sorted(
        p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )
    if not files:
        raise InputError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) under {root}")
    samples = [
        Sample(
            sample_id=p.relative_to(root).with_suffix("").as_posix(),
            image_path=p.resolve(),
            rel_path=p.relative_to(root).as_posix(),
            concepts={},
            load_image=lambda p=p: read_image(p),
        )
        for p in files
    ]
    return ConceptDataset(samples, [], root, format="images")


def instance_centroids(sample: Sample, concept: str) -> np.ndarray | None:
    """``(row, col)`` centroids of the concept's instances in the sample, or ``None`` without instance masks."""
    instances = sample.concepts[concept].instances
    if not instances or any(inst.load_mask is None for inst in instances):
        return None
    masks = np.stack([np.asarray(inst.load_mask(), dtype=bool) for inst in instances])
    centres = mask_centroids(masks)
    return centres[np.isfinite(centres).all(axis=1)]


def _skip_note(row: dict[str, Any]) -> str:
    """A note for a skip row: the image (and concept) left out and why."""
    what = row["image"] if row.get("concept") is None else f"{row['concept']!r} on {row['image']}"
    return f"skipped {what}: {row['detail']}"


def _progress(total: int, enabled: bool, what: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=what, unit="img", disable=not enabled, file=sys.stderr)


def localize_samples(
    model: LoadedModel,
    vectors: Sequence[ConceptVector],
    samples: Sequence[Sample],
    *,
    threshold: float = 0.5,
    tolerance: float = 0.0,
    batch_size: int = 16,
    examples: int = 6,
    use_instances: bool = True,
    annotated: bool | None = None,
    progress: bool = True,
    activation_cache: CacheOptions | None = None,
) -> LocalizationResult:
    """Project every vector onto every sample's image and measure the maps against the concept masks.

    Args:
        model: the model the vectors were computed with (its preprocessing is applied).
        vectors: the concept vectors (:func:`~loce.localize.vectors.concept_vectors`); several layers allowed.
        samples: images, with concept masks for the metrics (without, only peaks and ``peak_prob`` are recorded).
        threshold: IoU threshold on the sigmoid maps.
        tolerance: pointing-game tolerance in pixels.
        batch_size: images per forward pass.
        examples: example images kept per concept (images with the concept, or the first images without masks).
        use_instances: measure the alignment error to the nearest instance centroid when instances have masks.
        annotated: whether an image without a concept's annotation lacks the concept (``has_concept`` False)
            or is unknown (``None``); default: the samples carry any annotation at all.
        progress: progress bar on stderr.
        activation_cache: where the images' activations are cached (:class:`~loce.activations.CacheOptions`
            with a ``directory``; ``None``: no cache).

    Returns:
        A :class:`LocalizationResult` (not yet written; see :func:`loce.localize.run.write_localization`).
    """
    from loce.preprocessing import require_stretch

    require_stretch(getattr(model, "preprocessing", None), "localize")
    if not vectors:
        raise InputError("no concept vectors to project; name a concept the run has LoCEs of")
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}")
    if annotated is None:
        annotated = any(s.concepts for s in samples)
    projector = _Projector(
        vectors,
        threshold=threshold,
        tolerance=tolerance,
        examples=examples,
        use_instances=use_instances,
        annotated=annotated,
    )
    notes: list[str] = []
    bar = _progress(len(samples), progress, "localize")
    source = ActivationSource(model, list(projector.by_layer), device=model.device, cache=activation_cache)
    with source:
        for item in iter_activations(source, samples, batch_size, max_bytes=None, keep_unannotated=True):
            batch = item.batch
            notes += [_skip_note(row) for row in batch.skip_rows if row["status"] != "no_concepts"]
            if batch.image_samples:
                masks: list[dict[str, np.ndarray]] = [{} for _ in batch.image_samples]
                for pair in batch.pairs:
                    masks[pair.image_index][pair.concept] = pair.mask
                projector.add(batch.image_samples, batch.images, item.activations, masks)
            bar.update(len(batch.samples))
    bar.close()
    per_map = pd.DataFrame(projector.rows)
    return LocalizationResult(per_map, summarize_localization(per_map), list(vectors), projector.kept, notes)


class _Projector:
    """Projects each layer's vectors onto a batch of images (one einsum per layer) and scores the maps.

    Per image, the maps of all vectors whose concept the image has are scored together at the image's resolution.
    """

    def __init__(self, vectors, *, threshold, tolerance, examples, use_instances, annotated) -> None:
        self.vectors = list(vectors)
        self.by_layer: dict[str, list[int]] = {}
        for i, v in enumerate(self.vectors):
            self.by_layer.setdefault(v.layer, []).append(i)
        self.weights = {
            layer: np.stack([self.vectors[i].vector for i in idx]) for layer, idx in self.by_layer.items()
        }
        self.concepts = list(dict.fromkeys(v.concept for v in self.vectors))
        self.threshold, self.tolerance = threshold, tolerance
        self.examples, self.use_instances, self.annotated = examples, use_instances, annotated
        self.rows: list[dict[str, Any]] = []
        self.kept: dict[str, list[ExampleImage]] = {}

    def add(
        self,
        samples: Sequence[Sample],
        images: Sequence[np.ndarray],
        acts: dict[str, torch.Tensor],
        masks: Sequence[dict[str, np.ndarray]],
    ) -> None:
        """Score the maps of every vector on a batch of loaded images (``acts``: the batch's activations,
        ``masks``: per image its usable concept masks)."""
        logits = {layer: concept_logits(self.weights[layer], acts[layer]) for layer in self.by_layer}
        for b, (sample, image) in enumerate(zip(samples, images)):
            self._image(sample, image, {layer: z[b] for layer, z in logits.items()}, masks[b])

    def _image(
        self,
        sample: Sample,
        image: np.ndarray,
        logits: dict[str, torch.Tensor],
        usable: dict[str, np.ndarray],
    ) -> None:
        size = tuple(image.shape[:2])
        masks = {c: usable[c] for c in self.concepts if c in usable}
        unusable = {
            c for c in self.concepts if c in sample.concepts and c not in usable
        }  # a bad mask: unknown
        refs = {c: instance_centroids(sample, c) if self.use_instances else None for c in masks}
        wanted = [
            c
            for c in self.concepts
            if len(self.kept.get(c, [])) < self.examples
            and (c in masks or (not self.annotated and not sample.concepts))
        ]
        shown = {c: ExampleImage(sample.sample_id, sample.rel_path, image, masks.get(c)) for c in wanted}
        for layer, idx in self.by_layer.items():
            z = logits[layer]
            z = resize_maps(z, size)
            prob = projection_maps(z)
            peak_prob = prob.flatten(1).amax(dim=1).cpu().numpy()
            scored = [j for j, i in enumerate(idx) if self.vectors[i].concept in masks]
            metrics: dict[int, dict[str, float]] = {}
            if scored:
                concepts = [self.vectors[idx[j]].concept for j in scored]
                ref = [
                    refs[c] if refs[c] is not None and len(refs[c]) else mask_centroids(masks[c][None])
                    for c in concepts
                ]
                frame = localization_scores(
                    prob[scored],
                    np.stack([masks[c] for c in concepts]),
                    threshold=self.threshold,
                    tolerance=self.tolerance,
                    peak_maps=z[scored],
                    reference_points=ref,
                ).to_frame()
                metrics = {j: frame.iloc[n].to_dict() for n, j in enumerate(scored)}
            for j, i in enumerate(idx):
                v = self.vectors[i]
                self.rows.append(
                    {
                        "sample_id": sample.sample_id,
                        "image": sample.rel_path,
                        "concept": v.concept,
                        "layer": v.layer,
                        "kind": v.kind,
                        "label": v.label,
                        "has_concept": (v.concept in masks)
                        if self.annotated and v.concept not in unusable
                        else None,
                        "peak_prob": float(peak_prob[j]),
                        **metrics.get(j, {}),
                    }
                )
                if v.concept in shown:
                    key = f"{v.label}@{v.layer}"
                    shown[v.concept].heatmaps[key] = prob[j].cpu().numpy()
                    flat = int(torch.argmax(z[j]))
                    shown[v.concept].peaks[key] = (float(flat // size[1]), float(flat % size[1]))
        for concept, example in shown.items():
            self.kept.setdefault(concept, []).append(example)


def summarize_localization(per_map: pd.DataFrame) -> pd.DataFrame:
    """The summary table of per-map rows: metrics where the concept is present, ``peak_prob`` with / without."""
    if per_map.empty:
        return pd.DataFrame(columns=[*SUMMARY_KEYS, "n"])
    keys = list(SUMMARY_KEYS)
    present = (
        per_map[per_map["has_concept"].fillna(False).astype(bool)] if "alignment_error" in per_map else None
    )
    if present is not None and len(present):
        table = summarize_scores(present, by=keys)
    else:
        table = per_map[keys].drop_duplicates().assign(n=0).reset_index(drop=True)
    with_c = (
        per_map[per_map["has_concept"].eq(True)].groupby(keys)["peak_prob"].mean().rename("peak_prob_with")
    )
    without = (
        per_map[per_map["has_concept"].eq(False)]
        .groupby(keys)["peak_prob"]
        .mean()
        .rename("peak_prob_without")
    )
    return table.merge(with_c.reset_index(), on=keys, how="left").merge(
        without.reset_index(), on=keys, how="left"
    )
