"""COCO-format instance annotations (``instances_*.json`` and anything written like it) as a ConceptDataset.

One sample per image that has at least one selected category; its concept mask is the union of that category's
instance masks (polygons, compressed or uncompressed RLE, decoded with ``pycocotools`` only when asked for).
Sample ids are ``str(image["id"])``: ids ``1`` and ``"1"`` in one file are an error (they would be one sample),
and booleans are no ids. Per-annotation ``"attributes"`` dicts become ``Instance.attributes``; image keys other
than ``id``, ``file_name``, ``height`` and ``width`` become ``Sample.metadata``.

Everything is validated before anything is decoded. What is recorded in the skip log (or raised with
``strict=True``): annotations that cannot be used (``bad_annotation``: unknown image or category, a
``category_id`` that is no integer (``true`` is not 1), malformed segmentation (polygons with an odd number of
coordinates or non-finite ones, RLE whose runs do not cover exactly height x width pixels: pycocotools would decode
those into uninitialised memory), missing height/width), images that do not exist (``missing_image``), one file
listed under several image ids (``duplicate_image``, every id: each would hold only part of the annotations), RLE
masks whose size differs from the image's stated size (``mask_size_mismatch``) and concept masks with no pixels
(``empty_mask``; polygons of fewer than three points enclose none). One unusable annotation drops its whole
(image, concept) pair: a union without it would mark part of the object as background. Exclusions the caller
asked for (crowd regions, masks smaller than ``min_area``, the cap per category) are not skips; they are counted
in ``describe()["exclusions"]``. A ``file_name`` escaping the image root is always an error (UnsafePathError).

The annotations' ``area`` and ``bbox`` fields are not trusted: areas are pixel counts of the masks' run-length
encodings (polygons rasterised to RLE, nothing image-sized decoded), and a ``bbox`` that is no box inside the
image (negative, inverted, empty, out of bounds) is replaced by the box of the mask. Both repairs are recorded in
``dataset.repairs`` (``area_recomputed``, ``bbox_repaired``). The union of a concept's instances is at least the
largest and at most the sum of their areas, so only the rare undecided cases of ``min_area`` merge the instances'
encodings.
"""

from __future__ import annotations

import json
import math
import os
import posixpath
import warnings
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as coco_mask

from loce.data.dataset import ConceptDataset, check_category_names
from loce.data.images import DEFAULT_MAX_PIXELS, ImageRef, PathResolver, check_pixels, input_error
from loce.data.sample import ConceptAnnotation, Instance, Sample
from loce.data.skips import SkipLog
from loce.errors import InputError
from loce.store.rle import _decode_counts  # the one decoder of COCO's compressed counts strings

_IMAGE_KEYS = ("id", "file_name", "height", "width")


class _BadAnnotation(Exception):
    """An annotation that cannot be used; the message says why (internal, becomes a skip)."""


class _SizeMismatch(_BadAnnotation):
    """An RLE mask of another size than its image (internal, becomes a ``mask_size_mismatch`` skip)."""


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with path.open("r", encoding="utf-8") as fh:
            data = json.load(fh)
    except FileNotFoundError:
        raise InputError(f"COCO annotation file {path} does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"COCO annotation file {path} cannot be read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"COCO annotation file {path} is not valid JSON ({exc}); is it truncated?") from None
    if not isinstance(data, dict):
        raise InputError(f"COCO annotation file {path} must hold a JSON object, not {type(data).__name__}.")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise InputError(
                f"COCO annotation file {path} has no {key!r} list; loce needs instance annotations "
                "(images, annotations, categories), e.g. instances_val2017.json."
            )
    return data


def _id_text(value: Any) -> str | None:
    """An image id as the sample id it becomes (``1`` and ``"1"`` -> ``"1"``); ``None`` for anything else.

    Booleans are no ids (JSON ``true`` is not the integer 1), nor are floats or empty strings.
    """
    if type(value) is int or (isinstance(value, str) and value.strip()):
        return str(value)
    return None


def _index_images(entries: list[Any], ann_path: Path, skips: SkipLog) -> dict[str, dict[str, Any]]:
    """Image entries by sample id (the id as text), checked for ids and files that occur twice.

    Two entries whose ids become the same sample id (``1`` and ``"1"``) are an error: their annotations could
    not be told apart. One file under several ids is left out under every id, with a ``duplicate_image`` skip:
    each id would hold only part of the file's annotations, so each sample's masks would miss objects (merge the
    entries into one to use the image).
    """
    by_id: dict[str, dict[str, Any]] = {}
    for entry in entries:
        sample_id = _id_text(entry.get("id")) if isinstance(entry, dict) else None
        if sample_id is None:
            skips.add(
                "annotation",
                "bad_annotation",
                f"{ann_path}: image entry without an integer or text id: {entry!r:.200}",
            )
            continue
        if sample_id in by_id:
            first, second = by_id[sample_id]["id"], entry["id"]
            same = "" if first == second else f" (both become the sample id {sample_id!r})"
            raise InputError(
                f"COCO annotation file {ann_path}: duplicate image id: {first!r} and {second!r}{same}."
            )
        by_id[sample_id] = entry
    ids_of_file: dict[str, list[str]] = {}
    for sample_id, entry in by_id.items():
        name = entry.get("file_name")
        if isinstance(name, str) and name.strip():
            ids_of_file.setdefault(posixpath.normpath(name), []).append(sample_id)
    for name, ids in ids_of_file.items():
        if len(ids) < 2:
            continue
        for sample_id in ids:
            skips.add(
                "annotation",
                "duplicate_image",
                f"{ann_path}: image file {name} is listed under the image ids {', '.join(ids)}; each id would hold "
                "only part of its annotations, so all are left out. Merge them into one image entry.",
                sample_id=sample_id,
            )
            del by_id[sample_id]
    return by_id


def _read_categories(data: dict[str, Any], path: Path) -> list[tuple[int, str]]:
    """``(id, name)`` pairs sorted by id; duplicate ids or names are errors (the subset would be ambiguous)."""
    pairs: list[tuple[int, str]] = []
    for entry in data["categories"]:
        if (
            not isinstance(entry, dict)
            or type(entry.get("id")) is not int
            or not isinstance(entry.get("name"), str)
        ):
            raise InputError(
                f"COCO annotation file {path}: category entry {entry!r} needs an integer id and a name."
            )
        pairs.append((entry["id"], entry["name"]))
    pairs.sort()
    for what, values in (("id", [p[0] for p in pairs]), ("name", [p[1] for p in pairs])):
        dupes = sorted({str(v) for v in values if values.count(v) > 1})
        if dupes:
            raise InputError(f"COCO annotation file {path}: duplicate category {what}(s) {', '.join(dupes)}.")
    return pairs


_NUMBER_TYPES = (int, float)


def _is_number(value: Any) -> bool:
    return type(value) in _NUMBER_TYPES and math.isfinite(value)


def _are_numbers(values: list[Any]) -> bool:
    """All plain finite JSON numbers (fast: millions of polygon coordinates pass through here)."""
    return all(type(v) in _NUMBER_TYPES for v in values) and math.isfinite(sum(values))


def _check_segmentation(segm: Any, height: int, width: int) -> tuple[Any, float | None]:
    """Validate a segmentation; returns it normalised (degenerate polygons dropped) and its area if known.

    The area is known (0) when every polygon is degenerate, and for uncompressed / compressed RLE via their
    counts; for polygons it is ``None`` (the caller uses the annotation's ``area`` field or rasterises).
    """
    if isinstance(segm, list):
        polygons = []
        for poly in segm:
            if not isinstance(poly, list) or len(poly) % 2 or not _are_numbers(poly):
                raise _BadAnnotation("a polygon is not a flat list of x, y numbers")
            if len(poly) >= 6:  # fewer than three points encloses nothing
                polygons.append(poly)
        return polygons, (0.0 if not polygons else None)
    if isinstance(segm, dict) and "counts" in segm and "size" in segm:
        size = segm["size"]
        if not (isinstance(size, list) and len(size) == 2 and all(type(v) is int for v in size)):
            raise _BadAnnotation(f"RLE size {size!r} is not [height, width]")
        if tuple(size) != (height, width):
            raise _SizeMismatch(
                f"RLE size {size[0]} x {size[1]} differs from the image's stated {height} x {width}"
            )
        counts = segm["counts"]
        if isinstance(counts, list):
            if not all(type(c) is int and c >= 0 for c in counts):
                raise _BadAnnotation("uncompressed RLE counts are not all non-negative integers")
            if sum(counts) != height * width:
                raise _BadAnnotation(
                    f"uncompressed RLE runs cover {sum(counts)} pixels, not {height} x {width} = {height * width}"
                )
            return segm, float(sum(counts[1::2]))
        if isinstance(counts, (str, bytes)):
            raw = counts.encode("utf-8") if isinstance(counts, str) else bytes(counts)
            runs = _compressed_runs(raw, height, width)
            return {"size": size, "counts": raw}, float(sum(runs[1::2]))
    raise _BadAnnotation(f"segmentation of type {type(segm).__name__} is neither polygons nor RLE")


def _compressed_runs(counts: bytes, height: int, width: int) -> list[int]:
    """The run lengths of a compressed RLE ``counts`` string, checked to cover exactly ``height x width`` pixels.

    pycocotools decodes whatever it is given: runs that stop short leave the rest of its output buffer
    uninitialised (a different mask on every decode), so the string is decoded here first (the same LEB128-like
    code) and refused unless every run is non-negative and the runs sum to ``height * width``.

    Example:
        >>> _compressed_runs(b"0:5", 100, 100)
        Traceback (most recent call last):
        loce.data.coco._BadAnnotation: compressed RLE runs cover 15 pixels, not 100 x 100 = 10000
    """
    if any(c < 48 or c > 111 for c in counts):
        raise _BadAnnotation("compressed RLE counts hold characters outside the RLE alphabet ('0'..'o')")
    try:
        runs = _decode_counts(counts)
    except InputError:
        raise _BadAnnotation("compressed RLE counts end in the middle of a run") from None
    if any(r < 0 for r in runs):
        raise _BadAnnotation("compressed RLE counts decode to a negative run length")
    if sum(runs) != height * width:
        raise _BadAnnotation(
            f"compressed RLE runs cover {sum(runs)} pixels, not {height} x {width} = {height * width}"
        )
    return runs


def _to_rles(segm: Any, height: int, width: int) -> list[dict[str, Any]]:
    """Compressed RLEs of a validated segmentation (empty list when it covers nothing)."""
    if isinstance(segm, list):
        return coco_mask.frPyObjects(segm, height, width) if segm else []
    if isinstance(segm.get("counts"), list):
        return [coco_mask.frPyObjects(segm, height, width)]
    return [segm]


def _decode_union(segms: list[Any], height: int, width: int) -> np.ndarray:
    rles = [rle for segm in segms for rle in _to_rles(segm, height, width)]
    if not rles:
        return np.zeros((height, width), dtype=bool)
    merged = coco_mask.merge(rles, intersect=False)
    with warnings.catch_warnings():  # pycocotools' decoder trips numpy 2's copy-keyword deprecation; harmless
        warnings.simplefilter("ignore", DeprecationWarning)
        return coco_mask.decode(merged).astype(bool)


def _load_union_mask(ref: ImageRef, segms: list[Any], height: int, width: int, what: str) -> np.ndarray:
    ref.check_size()
    try:
        return np.ascontiguousarray(_decode_union(segms, height, width))
    except (ValueError, TypeError) as exc:
        raise input_error(f"Mask of {what} cannot be decoded: {exc}", "corrupt_mask") from None


def _union_area(segms: list[Any], height: int, width: int) -> float:
    rles = [rle for segm in segms for rle in _to_rles(segm, height, width)]
    return float(coco_mask.area(coco_mask.merge(rles, intersect=False))) if rles else 0.0


_BOX_TOLERANCE = 1.0
"""Pixels a stated box may reach beyond the image (polygon vertices on the border); such a box is clipped."""


def _stated_box(bbox: Any, height: int, width: int) -> tuple[float, float, float, float] | None:
    """A ``bbox`` field ``[x, y, w, h]`` as ``(x0, y0, x1, y1)`` when it is a box inside the image, else ``None``.

    Example:
        >>> _stated_box([-0.5, 2, 10.5, 3], 10, 20), _stated_box([5, 5, -2, 3], 10, 20)
        ((0.0, 2.0, 10.0, 5.0), None)
    """
    if not (isinstance(bbox, list) and len(bbox) == 4 and _are_numbers(bbox)):
        return None
    x, y, w, h = (float(v) for v in bbox)
    tol = _BOX_TOLERANCE
    if w <= 0 or h <= 0 or x < -tol or y < -tol or x + w > width + tol or y + h > height + tol:
        return None
    return (max(x, 0.0), max(y, 0.0), min(x + w, float(width)), min(y + h, float(height)))


def _mask_box(segm: Any, height: int, width: int) -> tuple[float, float, float, float]:
    """The box of a segmentation's pixels (from its run-length encoding, nothing decoded)."""
    rles = _to_rles(segm, height, width)
    if not rles:
        return (0.0, 0.0, 0.0, 0.0)
    x, y, w, h = (float(v) for v in coco_mask.toBbox(coco_mask.merge(rles, intersect=False)))
    return (x, y, x + w, y + h)


def load_coco(
    annotations: str | os.PathLike,
    images: str | os.PathLike,
    *,
    categories: Iterable[str] | None = None,
    include_crowd: bool = False,
    max_per_category: int | None = None,
    min_area: float = 0,
    strict: bool = False,
    seed: int = 0,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> ConceptDataset:
    """Read COCO-format instance annotations as a :class:`ConceptDataset` (masks are decoded lazily).

    Args:
        annotations: the COCO JSON file (``images``, ``annotations``, ``categories``).
        images: the image root; ``file_name`` entries resolve under it and may not escape it.
        categories: category names to keep (default all); unknown names raise :class:`InputError`.
        include_crowd: include ``iscrowd`` regions in the concept masks (as instances with ``iscrowd=True``).
        max_per_category: keep at most this many images per category, chosen deterministically from ``seed``.
        min_area: drop (image, concept) pairs whose union mask has fewer pixels than this.
        strict: raise :class:`InputError` on the first bad entry instead of recording a skip.
        seed: selects which images the cap keeps.
        max_pixels: images (and masks) of more pixels are left out (``oversized_image``) before anything is
            decoded; ``None``: no cap.

    Returns:
        The dataset; ``dataset.skips`` lists what was left out and why.

    Raises:
        InputError: unreadable or malformed annotation file, unknown category names, or (``strict``) any skip.
        UnsafePathError: a ``file_name`` escapes the image root (never skipped silently).

    Example:
        >>> ds = load_coco("instances_val2017.json", "val2017", categories=["cat"], min_area=1024)  # doctest: +SKIP
        >>> ds[0].mask("cat").shape  # doctest: +SKIP
        (480, 640)
    """
    ann_path, image_root = Path(annotations), Path(images)
    if not image_root.is_dir():
        raise InputError(f"COCO image root {image_root} is not a directory.")
    image_root = image_root.resolve()
    data = _read_json(ann_path)
    cat_pairs = _read_categories(data, ann_path)
    all_names = [name for _, name in cat_pairs]
    selected = all_names if categories is None else check_category_names(categories, all_names, str(ann_path))
    name_of = {cid: name for cid, name in cat_pairs if name in set(selected)}
    known_category_ids = {cid for cid, _ in cat_pairs}
    skips = SkipLog(strict=strict)
    repairs = SkipLog()
    exclusions = {"crowd_annotations": 0, "small_mask": 0}

    images_by_id = _index_images(data["images"], ann_path, skips)

    grouped: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for ann in data["annotations"]:
        if not isinstance(ann, dict):
            skips.add("annotation", "bad_annotation", f"{ann_path}: annotation {ann!r:.200} is not an object")
            continue
        cid, raw_image_id = ann.get("category_id"), ann.get("image_id")
        image_id = _id_text(raw_image_id)
        problem = None
        if type(cid) is not int:
            problem = f"has category_id {cid!r}, which is not an integer"
        elif cid not in known_category_ids:
            problem = f"refers to unknown category_id {cid!r}"
        elif image_id is None:
            problem = f"has image_id {raw_image_id!r}, which is neither an integer nor a text id"
        elif image_id not in images_by_id:
            problem = f"refers to unknown image_id {raw_image_id!r}"
        if problem is not None:
            skips.add(
                "annotation",
                "bad_annotation",
                f"{ann_path}: annotation {ann.get('id')!r} {problem}",
                sample_id=image_id,
            )
            continue
        if cid not in name_of:
            continue
        if ann.get("iscrowd", 0) and not include_crowd:
            exclusions["crowd_annotations"] += 1
            continue
        grouped.setdefault(image_id, {}).setdefault(name_of[cid], []).append(ann)

    samples: list[Sample] = []
    order = {name: i for i, name in enumerate(selected)}
    resolve = PathResolver(image_root)
    for image_id, entry in images_by_id.items():
        by_concept = grouped.get(image_id)
        if not by_concept:
            continue
        sample = _build_sample(
            entry,
            by_concept,
            resolve,
            ann_path,
            skips,
            repairs,
            exclusions,
            min_area=min_area,
            order=order,
            max_pixels=max_pixels,
        )
        if sample is not None:
            samples.append(sample)

    options = {
        "categories": None if categories is None else list(selected),
        "include_crowd": include_crowd,
        "max_per_category": max_per_category,
        "min_area": min_area,
        "strict": strict,
        "seed": seed,
        "max_pixels": max_pixels,
    }
    dataset = ConceptDataset(
        samples,
        selected,
        image_root,
        skips=skips,
        format="coco",
        source={"annotations": str(ann_path), "images": str(image_root)},
        options=options,
        exclusions=exclusions,
        repairs=repairs,
    )
    if max_per_category is not None:
        dataset = dataset.filter(max_per_category=max_per_category, seed=seed)
    return dataset


def _build_sample(
    entry: dict[str, Any],
    by_concept: dict[str, list[dict[str, Any]]],
    resolve: PathResolver,
    ann_path: Path,
    skips: SkipLog,
    repairs: SkipLog,
    exclusions: dict[str, int],
    *,
    min_area: float,
    order: dict[str, int],
    max_pixels: int | None,
) -> Sample | None:
    """One image's sample, or ``None`` (with skips recorded) when nothing usable remains."""
    sample_id = str(entry["id"])
    file_name, height, width = entry.get("file_name"), entry.get("height"), entry.get("width")
    if not isinstance(file_name, str) or not all(type(v) is int and v > 0 for v in (height, width)):
        skips.add(
            "annotation",
            "bad_annotation",
            f"{ann_path}: image {sample_id} needs a file_name and positive integer height and width "
            f"(got file_name={file_name!r}, height={height!r}, width={width!r})",
            sample_id=sample_id,
        )
        return None
    path = resolve(file_name)
    try:  # masks are decoded at the stated size: refuse a huge one before any file is read
        check_pixels(height, width, max_pixels, "Image", f"{path} (image {sample_id} in {ann_path})")
    except InputError as exc:
        skips.add("annotation", "oversized_image", str(exc), sample_id=sample_id)
        return None
    if not path.is_file():
        skips.add(
            "annotation",
            "missing_image",
            f"Image {path} (image {sample_id} in {ann_path}) does not exist.",
            sample_id=sample_id,
        )
        return None
    ref = ImageRef(path, (height, width), f"the annotations in {ann_path.name}", max_pixels)

    concepts: dict[str, ConceptAnnotation] = {}
    for concept in sorted(by_concept, key=order.__getitem__):
        annotation = _build_concept(
            concept,
            by_concept[concept],
            ref,
            sample_id,
            file_name,
            skips,
            repairs,
            exclusions,
            min_area=min_area,
        )
        if annotation is not None:
            concepts[concept] = annotation
    if not concepts:
        return None
    metadata = {k: v for k, v in entry.items() if k not in _IMAGE_KEYS}
    return Sample(
        sample_id=sample_id,
        image_path=path,
        rel_path=posixpath.normpath(file_name),
        concepts=concepts,
        load_image=ref.load,
        size=(height, width),
        metadata=metadata,
    )


def _build_concept(
    concept: str,
    anns: list[dict[str, Any]],
    ref: ImageRef,
    sample_id: str,
    file_name: str,
    skips: SkipLog,
    repairs: SkipLog,
    exclusions: dict[str, int],
    *,
    min_area: float,
) -> ConceptAnnotation | None:
    height, width = ref.expected_size  # type: ignore[misc]
    where = {"sample_id": sample_id, "concept": concept}
    segms, areas, instances = [], [], []
    for ann in anns:
        try:
            segm, area = _check_segmentation(ann.get("segmentation"), height, width)
        except _SizeMismatch as exc:
            skips.add(
                "annotation",
                "mask_size_mismatch",
                f"Annotation {ann.get('id')!r} of {concept!r} in image {file_name}: {exc}.",
                **where,
            )
            return None
        except _BadAnnotation as exc:
            skips.add(
                "annotation",
                "bad_annotation",
                f"Annotation {ann.get('id')!r} of {concept!r} in image {file_name}: {exc}.",
                **where,
            )
            return None
        label = f"Annotation {ann.get('id')!r} of {concept!r} in image {file_name}"
        if area is None:  # polygons: the rasterised pixel count, never the annotation's own "area" field
            area = _union_area([segm], height, width)
        stated = ann.get("area")
        if area > 0 and "area" in ann and not (_is_number(stated) and stated > 0):
            repairs.add(
                "annotation",
                "area_recomputed",
                f"{label}: its area field {stated!r} is wrong for a mask of {area:.0f} pixels; the mask's own "
                "pixel count is used.",
                **where,
            )
        box = _stated_box(ann.get("bbox"), height, width)
        if box is None:
            box = _mask_box(segm, height, width)
            if "bbox" in ann and area > 0:
                repairs.add(
                    "annotation",
                    "bbox_repaired",
                    f"{label}: its bbox {ann['bbox']!r:.80} is not an [x, y, width, height] box inside the "
                    f"{width} x {height} image; the box of its mask {box} is used.",
                    **where,
                )
        segms.append(segm)
        areas.append(area)
        attributes = ann.get("attributes")
        what = f"{concept!r} instance {ann.get('id')!r} in {file_name}"
        instances.append(
            Instance(
                box=box,
                load_mask=partial(_load_union_mask, ref, [segm], height, width, what),
                attributes=dict(attributes) if isinstance(attributes, dict) else {},
                iscrowd=bool(ann.get("iscrowd", 0)),
            )
        )
    # The union's area lies between the largest and the sum of the instance areas; merge the RLEs (without
    # decoding) only when these bounds leave the decision open.
    area = sum(areas)
    if area > 0 and min_area <= area and max(areas) < max(min_area, 1):
        area = _union_area(segms, height, width)
    if area == 0:
        skips.add(
            "annotation",
            "empty_mask",
            f"The mask of {concept!r} in image {file_name} has no pixels.",
            **where,
        )
        return None
    if area < min_area:
        exclusions["small_mask"] += 1
        return None
    return ConceptAnnotation(
        concept=concept,
        load_mask=partial(_load_union_mask, ref, segms, height, width, f"{concept!r} in {file_name}"),
        instances=instances,
    )
