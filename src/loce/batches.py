"""Loading groups of whole samples (images + concept masks) for a run, with skips recorded, one group ahead.

A run processes images in groups ("batches"); each group becomes one atomic shard of the store. This module turns
a sequence of :class:`~loce.data.Sample` into :class:`LoadedBatch` values: decoded images, one :class:`Pair` per
usable (image, concept), and skip rows for what could not be used (an unreadable image, a mask of the wrong
size, an empty mask). The next group is loaded in a background thread while the caller computes on the current
one, so decoding overlaps the model's forward pass.

A group holds at most ``batch_size`` samples and, beyond its first sample, only as many as keep its decoded size
(:func:`decoded_bytes`: the RGB image and one boolean mask per concept) within ``max_bytes``: a group of large
images is cut short instead of exhausting memory (two groups are in memory at once, the current and the next).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from loce.data.images import image_size, skip_reason
from loce.data.sample import Sample
from loce.errors import InputError


@dataclass
class Pair:
    """One usable (image, concept): the index of its image in the batch, its mask and annotation data."""

    image_index: int
    sample_id: str
    image: str
    concept: str
    mask: np.ndarray
    box: tuple[float, float, float, float] | None
    attributes: str | None


@dataclass
class LoadedBatch:
    """A group of whole samples, decoded: images that loaded, usable pairs, and skip rows for the rest."""

    samples: list[Sample]
    images: list[np.ndarray] = field(default_factory=list)
    image_samples: list[Sample] = field(default_factory=list)
    pairs: list[Pair] = field(default_factory=list)
    skip_rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def sample_ids(self) -> list[str]:
        """Ids of every sample of the group (loaded or skipped)."""
        return [s.sample_id for s in self.samples]


def _attributes_json(sample: Sample, concept: str) -> str | None:
    instances = sample.concepts[concept].instances
    attrs = [inst.attributes for inst in instances]
    if not any(attrs):
        return None
    return json.dumps(attrs, sort_keys=True, default=str)


def load_batch(
    samples: Sequence[Sample], strict: bool = False, keep_unannotated: bool = False
) -> LoadedBatch:
    """Decode the images and masks of ``samples``; unusable inputs become skip rows (or raise when ``strict``).

    Args:
        samples: the group's samples, in order.
        strict: raise :class:`InputError` on the first problem instead of recording a skip row.
        keep_unannotated: an image without any annotated concept stays in ``image_samples`` (for projections onto
            new images) instead of becoming a ``no_concepts`` skip row.

    Returns:
        The :class:`LoadedBatch`. Every sample appears either in ``image_samples`` or in an image-level skip row
        (``concept`` and ``layer`` null), so the store can mark every sample of the group as done.

    Example:
        >>> batch = load_batch(dataset[:8])  # doctest: +SKIP
        >>> len(batch.pairs), [r["status"] for r in batch.skip_rows]  # doctest: +SKIP
    """
    batch = LoadedBatch(samples=list(samples))
    for sample in samples:
        where = {"sample_id": sample.sample_id, "image": sample.rel_path}
        try:
            image = sample.load_image()
        except InputError as exc:
            if strict:
                raise
            batch.skip_rows.append(
                {
                    **where,
                    "concept": None,
                    "layer": None,
                    "status": skip_reason(exc, "unreadable_image"),
                    "detail": str(exc),
                }
            )
            continue
        index = len(batch.images)
        usable = 0
        pending_skips: list[dict[str, Any]] = []
        for concept, annotation in sample.concepts.items():
            row = {**where, "concept": concept, "layer": None}
            try:
                mask = np.asarray(annotation.load_mask(), dtype=bool)
            except InputError as exc:
                if strict:
                    raise
                pending_skips.append({**row, "status": skip_reason(exc, "bad_mask"), "detail": str(exc)})
                continue
            if mask.shape != image.shape[:2]:
                detail = (
                    f"{sample.image_path}: the mask of {concept!r} is {mask.shape[0]} x {mask.shape[1]} but the image "
                    f"is {image.shape[0]} x {image.shape[1]}; fix the annotation's height/width"
                )
                if strict:
                    raise InputError(detail)
                pending_skips.append({**row, "status": "mask_size_mismatch", "detail": detail})
                continue
            usable += 1
            batch.pairs.append(
                Pair(
                    image_index=index,
                    sample_id=sample.sample_id,
                    image=sample.rel_path,
                    concept=concept,
                    mask=mask,
                    box=annotation.box,
                    attributes=_attributes_json(sample, concept),
                )
            )
        batch.skip_rows.extend(pending_skips)
        if usable or (keep_unannotated and not sample.concepts):
            batch.images.append(image)
            batch.image_samples.append(sample)
        elif not pending_skips:
            batch.skip_rows.append(
                {
                    **where,
                    "concept": None,
                    "layer": None,
                    "status": "no_concepts",
                    "detail": f"{sample.image_path}: the image has no annotated concept to embed",
                }
            )
    return batch


DEFAULT_MAX_BATCH_BYTES = 1 << 30
"""Default memory budget of one group's decoded images and masks (1 GiB)."""


def decoded_bytes(sample: Sample) -> int:
    """Bytes a sample takes once decoded: ``H x W x 3`` uint8 RGB plus one ``H x W`` bool mask per concept.

    The size is the one the annotations state, else the image header's (0 when the header is unreadable: the
    sample will become a skip row without decoding anything).

    Example:
        >>> decoded_bytes(sample_of_480x640_with_two_concepts)  # doctest: +SKIP
        1536000
    """
    size = sample.size
    if size is None:
        try:
            size = image_size(sample.image_path)
        except InputError:
            return 0
    return int(size[0]) * int(size[1]) * (3 + len(sample.concepts))


def group_samples(
    samples: Sequence[Sample], batch_size: int, max_bytes: int | None = DEFAULT_MAX_BATCH_BYTES
) -> list[list[Sample]]:
    """Consecutive groups of at most ``batch_size`` samples whose :func:`decoded_bytes` sum to at most
    ``max_bytes`` (a group always takes its first sample, however large; ``None``: no budget).

    Example:
        >>> [len(g) for g in group_samples(samples_of_400_mb_each, batch_size=32, max_bytes=1 << 30)]  # doctest: +SKIP
        [2, 2, 1]
    """
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}")
    if max_bytes is not None and max_bytes < 1:
        raise InputError(f"the memory budget per batch must be positive, got {max_bytes} bytes")
    groups: list[list[Sample]] = []
    current: list[Sample] = []
    used = 0
    for sample in samples:
        cost = 0 if max_bytes is None else decoded_bytes(sample)
        if current and (len(current) >= batch_size or (max_bytes is not None and used + cost > max_bytes)):
            groups.append(current)
            current, used = [], 0
        current.append(sample)
        used += cost
    if current:
        groups.append(current)
    return groups


def iter_batches(
    samples: Sequence[Sample],
    batch_size: int,
    *,
    strict: bool = False,
    prefetch: bool = True,
    max_bytes: int | None = DEFAULT_MAX_BATCH_BYTES,
    keep_unannotated: bool = False,
) -> Iterator[LoadedBatch]:
    """Yield :class:`LoadedBatch` groups (:func:`group_samples`), loading the next group in the background.

    Args:
        samples: the samples to process, in order.
        batch_size: at most this many samples per group (one store shard each).
        strict: raise on the first bad input instead of recording skips.
        prefetch: decode the next group in a worker thread while the caller works on the current one.
        max_bytes: memory budget of a group's decoded images and masks (``None``: none).
        keep_unannotated: see :func:`load_batch`.
    """
    groups = group_samples(samples, batch_size, max_bytes)
    if not prefetch:
        for group in groups:
            yield load_batch(group, strict, keep_unannotated)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="loce-load") as pool:
        future = pool.submit(load_batch, groups[0], strict, keep_unannotated) if groups else None
        for k in range(len(groups)):
            batch = future.result()
            if k + 1 < len(groups):
                future = pool.submit(load_batch, groups[k + 1], strict, keep_unannotated)
            yield batch
