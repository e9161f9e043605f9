"""The one sample type every dataset yields: an image plus its concepts' binary masks.

Images and masks are loaded lazily: building a dataset of 100k samples reads annotation files only. Masks are
``numpy`` boolean arrays of the image's own height and width (the union of all instances of a concept).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

MaskLoader = Callable[[], np.ndarray]


@dataclass
class Instance:
    """One annotated instance of a concept.

    Attributes:
        box: ``(x0, y0, x1, y1)`` in pixels of the original image (exclusive right/bottom edge).
        load_mask: returns the instance's boolean mask (H x W), or ``None`` when the source has no instance masks.
        attributes: extra per-instance data from the source (e.g. the scene world's generation parameters).
        iscrowd: whether the source marks the instance as a crowd region.
    """

    box: tuple[float, float, float, float] | None = None
    load_mask: MaskLoader | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    iscrowd: bool = False


@dataclass
class ConceptAnnotation:
    """All instances of one concept in one image; ``load_mask()`` gives their union as a boolean H x W array."""

    concept: str
    load_mask: MaskLoader
    instances: list[Instance] = field(default_factory=list)

    @property
    def box(self) -> tuple[float, float, float, float] | None:
        """The box enclosing all instance boxes (``None`` when no instance has a box)."""
        boxes = [i.box for i in self.instances if i.box is not None]
        if not boxes:
            return None
        b = np.asarray(boxes, dtype=float)
        return (float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()), float(b[:, 3].max()))


@dataclass
class Sample:
    """An image and the binary masks of the concepts it contains.

    Attributes:
        sample_id: stable unique id within the dataset (used as the key of stored LoCEs and for resuming).
        image_path: absolute path of the image file.
        rel_path: the image path relative to the dataset's image root (what the store records).
        concepts: concept name -> :class:`ConceptAnnotation`.
        size: ``(height, width)`` of the image when the source states it, else ``None``.
        load_image: returns the image as an ``H x W x 3`` ``uint8`` RGB array; raises :class:`loce.errors.InputError`
            with the file name and the problem when it cannot be read.
    """

    sample_id: str
    image_path: Path
    rel_path: str
    concepts: dict[str, ConceptAnnotation]
    load_image: Callable[[], np.ndarray]
    size: tuple[int, int] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def mask(self, concept: str) -> np.ndarray:
        """The boolean union mask of ``concept`` (H x W)."""
        return self.concepts[concept].load_mask()
