"""A plain folder format: images, and one binary mask PNG per (image, concept).

Layout::

    ROOT/images/<name>.<ext>               any image Pillow reads (.jpg .jpeg .png .bmp .gif .tif .tiff .webp);
                                           <name> may contain sub-folders: images/street/0001.jpg
    ROOT/masks/<name>/<concept>.png        a binary mask (rule below), same height x width as the image
    ROOT/categories.txt                    optional: one concept name per line, fixes the category order
                                           (without it: the sorted names of all mask files)

Example: ``images/0001.jpg`` with ``masks/0001/cat.png`` and ``masks/0001/sofa.png`` is one sample with the
concepts ``cat`` and ``sofa``; ``images/street/0001.jpg`` with ``masks/street/0001/car.png`` is another. The
sample id is the image path relative to ``images/`` without its extension (``0001``, ``street/0001``).

Which pixels of a mask file are the concept (decided per file while loading, from its values):

- one nonzero value (0/1, 0/255, 1-bit, a palette index): every nonzero pixel;
- an 8-bit mask (grayscale or palette) with exactly two nonzero values, one of them 255: the other value is the
  concept and 255 is void (Pascal VOC's uncertain borders), in no mask;
- more nonzero values in a grayscale or 16-bit mask (grey levels: anti-aliased or resized edges): the pixels at
  or above half of full scale (128 of 255, 32768 of 65535), recorded in ``dataset.repairs`` as
  ``mask_thresholded``;
- more nonzero values in a palette mask: refused (``unsupported_mask``): they are labels, not levels, and a
  folder mask holds one concept.

Masks are read once while loading (they are this format's annotations: emptiness and size are checked there);
images are read lazily. Skips: ``missing_image`` (masks without an image), ``duplicate_image`` (``a.jpg`` and
``a.png``), ``corrupt_mask``, ``empty_mask``, ``mask_size_mismatch`` (a mask of another size than the image's
other masks), ``unknown_category`` (a mask name not listed in ``categories.txt``), ``unsupported_mask`` (a mask
that is not a PNG: JPEG masks are lossy and change values around every edge; several palette labels),
``oversized_mask`` (more pixels than ``max_pixels``). Hidden files are ignored.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from loce.data.dataset import ConceptDataset, check_category_names
from loce.data.images import (
    DEFAULT_MAX_PIXELS,
    ImageRef,
    PathResolver,
    input_error,
    read_mask_png,
    read_mask_values,
    skip_reason,
)
from loce.data.sample import ConceptAnnotation, Sample
from loce.data.skips import SkipLog
from loce.errors import InputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
VOID_VALUE = 255


def _visible_files(folder: Path) -> list[Path]:
    """Files under ``folder`` (recursive, sorted, hidden files and folders left out).

    Linked folders are followed (each real folder once, so link cycles end); where links lead is checked by
    :func:`~loce.data.images.resolve_under` afterwards.
    """
    out: list[Path] = []
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out.extend(Path(dirpath) / f for f in sorted(filenames) if not f.startswith("."))
    return out


def _read_categories_file(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"Category file {path} cannot be read: {exc}") from None
    names = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputError(f"Category file {path} lists {', '.join(dupes)} more than once.")
    return names


@dataclass(frozen=True)
class Foreground:
    """The concept's pixels of a mask file: values in ``[low, high]`` (see the module docstring's rule).

    Example:
        >>> Foreground(1, 1)(np.array([0, 1, 255]))
        array([False,  True, False])
    """

    low: int
    high: int

    def __call__(self, values: np.ndarray) -> np.ndarray:
        return (values >= self.low) & (values <= self.high)


def foreground_rule(values: np.ndarray, mode: str, path: Path) -> tuple[Foreground, str | None]:
    """Which values of a folder mask are the concept, and a sentence when grey levels were thresholded.

    Raises:
        InputError: a palette mask with several labels (``unsupported_mask``).

    Example:
        >>> foreground_rule(np.array([0, 1, 255], dtype=np.uint8), "L", Path("m.png"))  # 255: void, ignored
        (Foreground(low=1, high=1), None)
    """
    levels = np.unique(values)
    levels = levels[levels != 0]
    if levels.size <= 1:
        return Foreground(int(levels[0]) if levels.size else 1, int(levels[0]) if levels.size else 1), None
    eight_bit = values.dtype == np.uint8
    if eight_bit and levels.size == 2 and levels[-1] == VOID_VALUE:
        return Foreground(int(levels[0]), int(levels[0])), None
    if mode == "P":
        raise input_error(
            f"Mask {path} is a palette PNG holding the labels {', '.join(str(v) for v in levels[:8])}; a folder "
            "mask holds one concept (0 background, one label, optionally 255 void): split it into one file per "
            "concept.",
            "unsupported_mask",
        )
    half = 128 if eight_bit else 32768
    note = (
        f"Mask {path} has {levels.size} grey levels (anti-aliased or resized edges?); pixels >= {half} are taken "
        "as the concept."
    )
    return Foreground(half, int(np.iinfo(values.dtype).max)), note


def _binary_mask(ref: ImageRef, path: Path, foreground: Foreground) -> np.ndarray:
    ref.check_size()
    values = read_mask_png(path, ref.max_pixels)
    if ref.expected_size is not None and values.shape != tuple(ref.expected_size):
        raise input_error(
            f"Mask {path} changed size since the dataset was loaded; reload it.", "mask_size_mismatch"
        )
    return foreground(values)


def load_folder(
    root: str | os.PathLike,
    *,
    categories: Iterable[str] | None = None,
    strict: bool = False,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> ConceptDataset:
    """Read the plain folder format (see the module docstring) as a :class:`ConceptDataset`.

    Args:
        root: the folder holding ``images/`` and ``masks/`` (and optionally ``categories.txt``).
        categories: concept names to keep (default all); unknown names raise :class:`InputError`.
        strict: raise :class:`InputError` on the first bad entry instead of recording a skip.
        max_pixels: masks and images of more pixels are refused before decoding (``oversized_mask`` /
            ``oversized_image``); ``None``: no cap.

    Returns:
        The dataset; ``dataset.skips`` lists what was left out and why.

    Raises:
        InputError: missing ``images/`` or ``masks/``, unknown category names, or (``strict``) any skip.
        UnsafePathError: a file or folder is a symbolic link leading out of ``root``.

    Example:
        >>> ds = load_folder("my_concepts", categories=["cat"])  # doctest: +SKIP
        >>> ds[0].sample_id, ds[0].mask("cat").dtype  # doctest: +SKIP
        ('0001', dtype('bool'))
    """
    root = Path(root)
    image_root, mask_root = root / "images", root / "masks"
    for folder in (image_root, mask_root):
        if not folder.is_dir():
            raise InputError(
                f"Folder dataset {root} has no {folder.name}/ folder; expected images/<name>.<ext> and "
                "masks/<name>/<concept>.png (see loce.data.folder)."
            )
    root = root.resolve()
    image_root, mask_root = (root / "images").resolve(), (root / "masks").resolve()
    resolve_image, resolve_mask = PathResolver(image_root), PathResolver(mask_root)
    skips = SkipLog(strict=strict)
    repairs = SkipLog()

    images: dict[str, tuple[Path, str]] = {}
    for path in _visible_files(image_root):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        rel = path.relative_to(image_root).as_posix()
        resolved = resolve_image(rel)
        sample_id = rel[: -len(path.suffix)]
        if sample_id in images:
            skips.add(
                "annotation",
                "duplicate_image",
                f"Images {images[sample_id][0]} and {resolved} share the name {sample_id!r}; using the first. "
                "Rename one of them.",
                sample_id=sample_id,
            )
            continue
        images[sample_id] = (resolved, rel)

    masks: dict[str, dict[str, Path]] = {}
    for path in _visible_files(mask_root):
        suffix = path.suffix.lower()
        if suffix != ".png" and suffix not in IMAGE_SUFFIXES:
            continue
        rel = path.relative_to(mask_root)
        if len(rel.parts) < 2:
            continue  # a file directly in masks/ belongs to no image
        sample_id = rel.parent.as_posix()
        if suffix != ".png":
            lossy = suffix in (".jpg", ".jpeg")
            skips.add(
                "annotation",
                "unsupported_mask",
                f"Mask {path} is a {suffix[1:].upper()} file; masks must be PNGs"
                + (" (JPEG is lossy: it changes mask values around every edge)" if lossy else "")
                + ". Save it as a PNG.",
                sample_id=sample_id,
                concept=path.stem,
            )
            continue
        masks.setdefault(sample_id, {})[path.stem] = resolve_mask(rel.as_posix())

    categories_file = root / "categories.txt"
    if categories_file.is_file():
        all_names = _read_categories_file(categories_file)
    else:
        all_names = sorted({name for by_concept in masks.values() for name in by_concept})
    selected = all_names if categories is None else check_category_names(categories, all_names, str(root))
    order = {name: i for i, name in enumerate(selected)}
    known = set(all_names)

    samples: list[Sample] = []
    for sample_id in sorted(masks):
        if sample_id not in images:
            skips.add(
                "annotation",
                "missing_image",
                f"Masks in {mask_root / sample_id} have no image images/{sample_id}.<ext>.",
                sample_id=sample_id,
            )
    for sample_id, (image_path, rel_path) in images.items():
        by_concept = masks.get(sample_id, {})
        for name in sorted(set(by_concept) - known):
            skips.add(
                "annotation",
                "unknown_category",
                f"Mask {by_concept[name]} is for {name!r}, which {categories_file} does not list.",
                sample_id=sample_id,
                concept=name,
            )
        wanted = sorted((n for n in by_concept if n in order), key=order.__getitem__)
        wanted_masks = {n: by_concept[n] for n in wanted}
        sample = _build_sample(sample_id, image_path, rel_path, wanted_masks, skips, repairs, max_pixels)
        if sample is not None:
            samples.append(sample)
    return ConceptDataset(
        samples,
        selected,
        image_root,
        skips=skips,
        format="folder",
        source={
            "root": str(root),
            "categories_file": str(categories_file) if categories_file.is_file() else None,
        },
        options={
            "categories": None if categories is None else selected,
            "strict": strict,
            "max_pixels": max_pixels,
        },
        repairs=repairs,
    )


def _build_sample(
    sample_id: str,
    image_path: Path,
    rel_path: str,
    mask_paths: dict[str, Path],
    skips: SkipLog,
    repairs: SkipLog,
    max_pixels: int | None,
) -> Sample | None:
    size: tuple[int, int] | None = None
    good: dict[str, tuple[Path, Foreground]] = {}
    for concept, path in mask_paths.items():
        where = {"sample_id": sample_id, "concept": concept}
        try:
            values, mode = read_mask_values(path, max_pixels)
            foreground, note = foreground_rule(values, mode, path)
        except InputError as exc:
            skips.add("annotation", skip_reason(exc, "corrupt_mask"), str(exc), **where)
            continue
        shape = (int(values.shape[0]), int(values.shape[1]))
        if size is not None and shape != size:
            skips.add(
                "annotation",
                "mask_size_mismatch",
                f"Mask {path} is {shape[0]} x {shape[1]} but the other masks of {sample_id!r} are {size[0]} x {size[1]}.",
                **where,
            )
            continue
        if not foreground(values).any():
            what = "no nonzero pixels" if note is None else f"no pixels >= {foreground.low}"
            skips.add("annotation", "empty_mask", f"Mask {path} has {what}.", **where)
            continue
        if note is not None:
            repairs.add("annotation", "mask_thresholded", note, **where)
        size = shape
        good[concept] = (path, foreground)
    if not good:
        return None
    mask_dir = next(iter(good.values()))[0].parent
    ref = ImageRef(image_path, size, f"its masks in {mask_dir}", max_pixels)
    return Sample(
        sample_id=sample_id,
        image_path=image_path,
        rel_path=rel_path,
        concepts={
            c: ConceptAnnotation(concept=c, load_mask=partial(_binary_mask, ref, p, rule))
            for c, (p, rule) in good.items()
        },
        load_image=ref.load,
        size=size,
        metadata={},
    )
