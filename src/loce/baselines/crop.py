"""Crop embeddings (seed paper ``003``, section III): the object alone on a black canvas, fed to the model, pooled.

For one (image, concept): take the tight box of the concept's mask, keep the image's pixels under the mask and
set every other pixel of the box to black, then paste that crop centred on a black canvas whose aspect ratio is
the model's input aspect (a square for 224 x 224 models), so the object keeps its shape. The model's own
preprocessing then stretches the canvas to its input size (bilinear, anti-aliased; small objects are enlarged,
large ones shrunk), and the chosen layer's activations are averaged over space (global average pooling).

By default the layer is the model's penultimate feature vector (the input of its classifier), a per-model choice
listed in :data:`PENULTIMATE_LAYERS`; any other layer can be chosen (its map is averaged over the canvas, black
border included).

Example:
    >>> import numpy as np
    >>> image = np.full((8, 8, 3), 200, np.uint8)
    >>> mask = np.zeros((8, 8), bool); mask[2:4, 1:7] = True
    >>> canvas = crop_canvas(image, mask)
    >>> canvas.image.shape, canvas.offset
    ((6, 6, 3), (0, 2))
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass

import numpy as np
import torch

from loce.errors import InputError, LayerError

PENULTIMATE_LAYERS: tuple[tuple[str, str, str], ...] = (
    (
        "efficientnet-lite*",
        "_avg_pooling",
        "the classifier's input: _conv_head -> batch norm -> ReLU6 -> global average pool (1280 values)",
    ),
    ("torchvision:resnet*", "avgpool", "the global average pool before the fc layer"),
    ("torchvision:resnext*", "avgpool", "the global average pool before the fc layer"),
    ("torchvision:wide_resnet*", "avgpool", "the global average pool before the fc layer"),
    ("torchvision:regnet*", "avgpool", "the global average pool before the fc layer"),
    ("torchvision:efficientnet*", "avgpool", "the global average pool before the classifier"),
    ("torchvision:mobilenet*", "avgpool", "the global average pool before the classifier"),
)
"""``(model spec pattern, layer, what it is)``: the default layer of crop embeddings per model family.

The patterns are ``fnmatch`` patterns of the spec string (``@weights`` suffixes are ignored). Models not listed
need an explicit layer (``loce embed --method crop --layers NAME``; ``loce layers MODEL`` lists them).
"""


def default_crop_layer(spec: str) -> str:
    """The penultimate-feature layer of a model spec, from :data:`PENULTIMATE_LAYERS`.

    Raises:
        LayerError: the model family has no recorded default; the message says to pass a layer.

    Example:
        >>> default_crop_layer("efficientnet-lite0")
        '_avg_pooling'
    """
    base = spec.split("@", 1)[0]
    for pattern, layer, _ in PENULTIMATE_LAYERS:
        if fnmatch.fnmatchcase(base, pattern):
            return layer
    raise LayerError(
        f"no default crop-embedding layer is recorded for model {spec!r}; pass the layer whose pooled output "
        "is the penultimate feature vector (`loce embed --method crop --layers NAME`, `loce layers MODEL` "
        "lists them)"
    )


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """The tight box ``(x0, y0, x1, y1)`` of a boolean mask's pixels (right/bottom exclusive).

    Raises:
        InputError: the mask is empty.

    Example:
        >>> m = np.zeros((5, 6), bool); m[1:3, 2:5] = True
        >>> mask_box(m)
        (2, 1, 5, 3)
    """
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        raise InputError("the mask has no foreground pixel; there is no object to crop")
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


@dataclass(frozen=True)
class CropCanvas:
    """A crop embedding's model input.

    Attributes:
        image: ``H x W x 3`` uint8 canvas: the mask's pixels, black everywhere else.
        box: the cropped box ``(x0, y0, x1, y1)`` in the source image (the mask's tight box).
        offset: ``(x, y)`` of the crop's top-left corner on the canvas.
    """

    image: np.ndarray
    box: tuple[int, int, int, int]
    offset: tuple[int, int]

    def describe(self) -> dict[str, list[int]]:
        """A JSON-able record of how the canvas was made (stored in the row's ``detail``)."""
        return {
            "crop_box": list(self.box),
            "canvas": [int(self.image.shape[0]), int(self.image.shape[1])],
            "offset": list(self.offset),
        }


def crop_canvas(
    image: np.ndarray, mask: np.ndarray, *, aspect: float = 1.0, margin: float = 0.0
) -> CropCanvas:
    """The object's mask-cropped pixels centred on a black canvas of the given aspect ratio.

    Args:
        image: ``H x W x 3`` uint8 RGB image.
        mask: ``H x W`` boolean mask of the object (the union of the concept's instances).
        aspect: canvas width / height (use the model input's, so its stretch does not distort the object).
        margin: black border added on every side, as a fraction of the crop's longer side.

    Returns:
        The :class:`CropCanvas`; it is at least as large as the crop in both directions.

    Raises:
        InputError: the mask is empty or does not match the image's size.
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != image.shape[:2]:
        raise InputError(f"the mask is {mask.shape} but the image is {image.shape[:2]}; they must match")
    if not aspect > 0 or not margin >= 0:
        raise InputError(f"aspect must be > 0 and margin >= 0, got {aspect} and {margin}")
    x0, y0, x1, y1 = mask_box(mask)
    crop = np.where(mask[y0:y1, x0:x1, None], image[y0:y1, x0:x1], 0).astype(np.uint8)
    h, w = crop.shape[:2]
    pad = int(round(margin * max(h, w)))
    inner_h, inner_w = h + 2 * pad, w + 2 * pad
    canvas_h = max(inner_h, math.ceil(inner_w / aspect - 1e-9))
    canvas_w = max(inner_w, math.ceil(inner_h * aspect - 1e-9))
    canvas = np.zeros((canvas_h, canvas_w, 3), dtype=np.uint8)
    top, left = (canvas_h - h) // 2, (canvas_w - w) // 2
    canvas[top : top + h, left : left + w] = crop
    return CropCanvas(canvas, (x0, y0, x1, y1), (left, top))


def pooled(activations: torch.Tensor) -> np.ndarray:
    """Global average over space: ``N x C x h x w`` -> ``N x C`` float32.

    Example:
        >>> pooled(torch.arange(8.0).view(1, 2, 2, 2)).tolist()
        [[1.5, 5.5]]
    """
    return activations.float().mean(dim=(2, 3)).cpu().numpy().astype(np.float32)
