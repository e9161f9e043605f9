"""Pascal VOC segmentation, read directly from its palette PNGs (no conversion step).

Layout (``VOCdevkit/VOC2012`` or anything laid out like it)::

    ROOT/JPEGImages/<id>.jpg                   the photos (.jpeg / .png also accepted)
    ROOT/SegmentationClass/<id>.png            palette PNG: class index per pixel, 0 background, 255 void
    ROOT/SegmentationObject/<id>.png           palette PNG: instance index per pixel, 0 background, 255 void
    ROOT/ImageSets/Segmentation/<split>.txt    one id per line (train, val, trainval)

A sample per image id with at least one selected class; its mask for class ``k`` is ``labels == k``, so void
pixels (255, the uncertain object borders) belong to no mask. Sample ids are the image stems. When
``SegmentationObject`` is present, each instance becomes an :class:`~loce.data.sample.Instance` with its mask
and its box (from the mask's extent, exclusive right/bottom edge); its class is the majority class of its pixels.

The class PNGs are decoded once while loading (they are VOC's annotation files: they say which classes each image
holds); masks are decoded again, lazily, when asked for. Skips: ``missing_mask``, ``missing_image``,
``corrupt_mask``, ``bad_annotation`` (label values that are no VOC class; a class PNG that is a 0/255 binary
image rather than class indices: it names no class, and read as indices all of it would be void),
``mask_size_mismatch`` (object PNG of another size than the class PNG; the class masks are still used),
``oversized_mask`` (more pixels than ``max_pixels``). Grayscale index PNGs (class indices as grey values, as in
SBD-style conversions) are read like palette PNGs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from functools import partial
from pathlib import Path

import numpy as np

from loce.data.dataset import ConceptDataset, check_category_names
from loce.data.images import (
    DEFAULT_MAX_PIXELS,
    ImageRef,
    input_error,
    read_mask_png,
    read_mask_values,
    resolve_under,
    skip_reason,
)
from loce.data.sample import ConceptAnnotation, Instance, Sample
from loce.data.skips import SkipLog
from loce.errors import InputError

VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
    "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
"""The 20 VOC classes; class ``VOC_CLASSES[k - 1]`` has label ``k`` (0 is background, 255 void)."""

VOID_LABEL = 255
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def _split_ids(root: Path, split: str | os.PathLike | None) -> tuple[list[str], str]:
    """The image ids of ``split`` and a description of where they came from."""
    if split is None:
        class_dir = root / "SegmentationClass"
        if not class_dir.is_dir():
            raise InputError(
                f"VOC root {root} has no SegmentationClass/ folder; is it the VOC2012 directory?"
            )
        return sorted(p.stem for p in class_dir.glob("*.png") if not p.name.startswith(".")), "all"
    is_path = isinstance(split, os.PathLike) or str(split).endswith(".txt") or os.sep in str(split)
    path = Path(split) if is_path else root / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not path.is_file():
        available = sorted(p.stem for p in (root / "ImageSets" / "Segmentation").glob("*.txt"))
        raise InputError(
            f"VOC split file {path} does not exist; available splits: {', '.join(available) or 'none'} "
            "(or pass split=None for every image with a SegmentationClass PNG)."
        )
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"VOC split file {path} cannot be read: {exc}") from None
    ids = [line.split()[0] for line in lines if line.strip()]
    return list(dict.fromkeys(ids)), str(path)


def _find_image(image_dir: Path, image_id: str) -> tuple[Path, str] | None:
    """The resolved image path and its name under ``JPEGImages/`` (first of .jpg, .jpeg, .png that exists)."""
    for suffix in _IMAGE_SUFFIXES:
        path = resolve_under(image_dir, image_id + suffix)
        if path.is_file():
            return path, image_id + suffix
    return None


def _class_mask(ref: ImageRef, class_png: Path, label: int) -> np.ndarray:
    ref.check_size()
    labels = read_mask_png(class_png, ref.max_pixels)
    _check_stated(labels, ref, class_png)
    return labels == label


def _instance_mask(ref: ImageRef, object_png: Path, index: int) -> np.ndarray:
    ref.check_size()
    objects = read_mask_png(object_png, ref.max_pixels)
    _check_stated(objects, ref, object_png)
    return objects == index


def _check_stated(values: np.ndarray, ref: ImageRef, png: Path) -> None:
    if ref.expected_size is not None and values.shape != tuple(ref.expected_size):
        raise input_error(
            f"Mask {png} changed size since the dataset was loaded; reload it.", "mask_size_mismatch"
        )


def _instances(
    objects: np.ndarray, labels: np.ndarray, object_png: Path, ref: ImageRef
) -> dict[int, list[Instance]]:
    """Instances per class label from an instance-index map (majority class of each instance's pixels).

    One pass over the image: boxes from ``scipy.ndimage.find_objects``, classes from a joint histogram of
    (instance index, class label) over the pixels that are neither background nor void in both maps.
    """
    from scipy import ndimage

    index_map = np.where(objects == VOID_LABEL, 0, objects)
    n_indices, n_labels = int(index_map.max()) + 1, int(labels.max()) + 1
    joint = np.bincount(
        (index_map.astype(np.int64) * n_labels + labels).ravel(), minlength=n_indices * n_labels
    ).reshape(n_indices, n_labels)
    joint[:, 0] = 0  # background and void pixels do not vote for an instance's class
    if n_labels > VOID_LABEL:
        joint[:, VOID_LABEL] = 0
    out: dict[int, list[Instance]] = {}
    for index, found in enumerate(ndimage.find_objects(index_map), start=1):
        if found is None or not joint[index].any():
            continue
        label = int(joint[index].argmax())
        rows, cols = found
        box = (float(cols.start), float(rows.start), float(cols.stop), float(rows.stop))
        load = partial(_instance_mask, ref, object_png, index)
        out.setdefault(label, []).append(
            Instance(box=box, load_mask=load, attributes={"instance_index": index})
        )
    return out


def load_voc(
    root: str | os.PathLike,
    *,
    split: str | os.PathLike | None = "val",
    categories: Iterable[str] | None = None,
    use_instances: bool = True,
    strict: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> ConceptDataset:
    """Read a Pascal VOC segmentation set as a :class:`ConceptDataset`.

    Args:
        root: the ``VOC2012``-style directory (``JPEGImages/``, ``SegmentationClass/``, ...).
        split: a split name under ``ImageSets/Segmentation/`` (``"train"``, ``"val"``, ``"trainval"``), a path to
            a text file of ids, or ``None`` for every image that has a ``SegmentationClass`` PNG.
        categories: VOC class names to keep (default all 20); unknown names raise :class:`InputError`.
        use_instances: read ``SegmentationObject`` PNGs (when present) for instance masks and boxes.
        strict: raise :class:`InputError` on the first bad entry instead of recording a skip.
        max_pixels: masks and images of more pixels are refused before decoding (``oversized_mask`` /
            ``oversized_image``); ``None``: no cap.

    Returns:
        The dataset; ``dataset.skips`` lists what was left out and why.

    Raises:
        InputError: no such split, unknown class names, or (``strict``) any skip.
        UnsafePathError: an id in the split file escapes the dataset folders.

    Example:
        >>> ds = load_voc("VOCdevkit/VOC2012", split="val", categories=["cat", "dog"])  # doctest: +SKIP
        >>> ds[0].sample_id, sorted(ds[0].concepts)  # doctest: +SKIP
        ('2007_000528', ['cat'])
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"VOC root {root} is not a directory.")
    root = root.resolve()
    selected = (
        list(VOC_CLASSES) if categories is None else check_category_names(categories, VOC_CLASSES, "VOC")
    )
    label_of = {name: VOC_CLASSES.index(name) + 1 for name in selected}
    # Resolved once: the three folders may be symbolic links to shared storage (the root itself is trusted).
    image_dir, class_dir, object_dir = (
        (root / name).resolve() for name in ("JPEGImages", "SegmentationClass", "SegmentationObject")
    )
    ids, split_source = _split_ids(root, split)
    skips = SkipLog(strict=strict)
    samples: list[Sample] = []
    for image_id in ids:
        sample = _build_sample(
            image_id,
            image_dir,
            class_dir,
            object_dir,
            label_of,
            skips,
            use_instances=use_instances,
            max_pixels=max_pixels,
        )
        if sample is not None:
            samples.append(sample)
    return ConceptDataset(
        samples,
        selected,
        image_dir,
        skips=skips,
        format="voc",
        source={"root": str(root), "split": split_source},
        options={
            "split": None if split is None else str(split),
            "categories": None if categories is None else selected,
            "use_instances": use_instances,
            "strict": strict,
            "max_pixels": max_pixels,
        },
    )


def _build_sample(
    image_id: str,
    image_dir: Path,
    class_dir: Path,
    object_dir: Path,
    label_of: dict[str, int],
    skips: SkipLog,
    *,
    use_instances: bool,
    max_pixels: int | None,
) -> Sample | None:
    where = {"sample_id": image_id}
    class_png = resolve_under(class_dir, image_id + ".png")
    if not class_png.is_file():
        skips.add("annotation", "missing_mask", f"VOC class mask {class_png} does not exist.", **where)
        return None
    found = _find_image(image_dir, image_id)
    if found is None:
        skips.add(
            "annotation", "missing_image", f"VOC image {image_dir / image_id}.jpg does not exist.", **where
        )
        return None
    image_path, image_name = found
    try:
        labels, mode = read_mask_values(class_png, max_pixels)
    except InputError as exc:
        skips.add("annotation", skip_reason(exc, "corrupt_mask"), str(exc), **where)
        return None
    present = np.flatnonzero(np.bincount(labels.ravel()))
    if mode != "P" and set(present.tolist()) == {0, VOID_LABEL}:
        skips.add(
            "annotation",
            "bad_annotation",
            f"VOC class mask {class_png} is a 0/255 binary image (mode {mode}), not class indices: it names no "
            "class, and read as VOC labels all of its foreground would be void (255). Save the class index "
            f"(1-{len(VOC_CLASSES)}) of each pixel, e.g. as a palette PNG like VOC's SegmentationClass.",
            **where,
        )
        return None
    unknown = [int(v) for v in present if v > len(VOC_CLASSES) and v != VOID_LABEL]
    if unknown:
        skips.add(
            "annotation",
            "bad_annotation",
            f"VOC class mask {class_png} holds label values {unknown} that are no VOC class (1-20, 255 void); "
            "is it a colour PNG instead of a palette-index PNG?",
            **where,
        )
        return None
    present_labels = {int(v) for v in present}
    wanted = {name: label for name, label in label_of.items() if label in present_labels}
    if not wanted:
        return None
    ref = ImageRef(
        image_path,
        (int(labels.shape[0]), int(labels.shape[1])),
        f"its class mask {class_png.name}",
        max_pixels,
    )

    instances: dict[int, list[Instance]] = {}
    object_png = resolve_under(object_dir, image_id + ".png")
    if use_instances and object_png.is_file():
        try:
            objects = read_mask_png(object_png, max_pixels)
        except InputError as exc:
            skips.add(
                "annotation",
                skip_reason(exc, "corrupt_mask"),
                f"{exc} (class masks are used without instances)",
                **where,
            )
        else:
            if objects.shape != labels.shape:
                skips.add(
                    "annotation",
                    "mask_size_mismatch",
                    f"VOC object mask {object_png} is {objects.shape[0]} x {objects.shape[1]} but the class mask "
                    f"is {labels.shape[0]} x {labels.shape[1]}; class masks are used without instances.",
                    **where,
                )
            else:
                instances = _instances(objects, labels, object_png, ref)

    concepts = {
        name: ConceptAnnotation(
            concept=name,
            load_mask=partial(_class_mask, ref, class_png, label),
            instances=instances.get(label, []),
        )
        for name, label in wanted.items()
    }
    return Sample(
        sample_id=image_id,
        image_path=image_path,
        rel_path=image_name,
        concepts=concepts,
        load_image=ref.load,
        size=ref.expected_size,
        metadata={},
    )
