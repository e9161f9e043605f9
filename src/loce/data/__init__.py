"""Images with concept masks: the sample type, safe image reading and the dataset loaders.

Every loader returns a :class:`ConceptDataset` (a sequence of :class:`Sample`); images and masks are read
lazily, when a sample's ``load_image()`` / ``mask(concept)`` is called. Bad input is recorded in the dataset's
``skips`` (or raised with ``strict=True``) with one of these reasons:

``missing_image``, ``corrupt_image``, ``truncated_image``, ``unreadable_image``, ``unsupported_image``,
``oversized_image`` (more pixels than ``max_pixels``, refused from the header), ``image_size_mismatch`` (image
and annotations disagree), ``missing_mask``, ``corrupt_mask``, ``truncated_mask``, ``unsupported_mask``,
``oversized_mask``, ``mask_size_mismatch``, ``empty_mask``, ``bad_annotation``, ``duplicate_image``,
``unknown_category``. Errors raised while loading a sample carry the same tag: :func:`skip_reason`. Annotation
fields that were wrong and replaced by what the mask says are in ``dataset.repairs`` (``area_recomputed``,
``bbox_repaired``, ``mask_thresholded``). docs/RELIABILITY.md lists what is validated, refused and repaired.

Example:
    >>> from loce.data import load_coco
    >>> ds = load_coco("instances_val2017.json", "val2017", categories=["cat", "dog"])  # doctest: +SKIP
    >>> for sample in ds:  # doctest: +SKIP
    ...     image = sample.load_image()  # H x W x 3 uint8 RGB
    ...     masks = {c: sample.mask(c) for c in sample.concepts}  # H x W bool
"""

from loce.data.coco import load_coco
from loce.data.dataset import ConceptDataset
from loce.data.folder import load_folder
from loce.data.images import (
    DEFAULT_MAX_PIXELS,
    ImageRef,
    PathResolver,
    image_size,
    read_image,
    read_mask_png,
    read_mask_values,
    resolve_under,
    skip_reason,
)
from loce.data.sample import ConceptAnnotation, Instance, Sample
from loce.data.skips import Skip, SkipLog
from loce.data.voc import VOC_CLASSES, load_voc

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "VOC_CLASSES",
    "ConceptAnnotation",
    "ConceptDataset",
    "ImageRef",
    "Instance",
    "PathResolver",
    "Sample",
    "Skip",
    "SkipLog",
    "image_size",
    "load_coco",
    "load_folder",
    "load_voc",
    "read_image",
    "read_mask_png",
    "read_mask_values",
    "resolve_under",
    "skip_reason",
]
