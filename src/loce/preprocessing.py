"""How images are fed to a model: stretch to a fixed size, scale to [0, 1], normalise per channel.

The resize is a plain stretch of the whole image (no crop, no letterbox), so a concept mask drawn on the original
image stays aligned with the whole activation grid of every layer: pixel (y, x) of an H x W image lands at
(y * h / H, x * w / W) of an h x w grid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from loce.errors import InputError

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

_RESIZE = "bilinear-stretch"


@dataclass(frozen=True)
class Preprocessing:
    """Input size and normalisation a model expects.

    Attributes:
        size: ``(height, width)`` every image is stretched to.
        mean: per-channel mean (RGB) subtracted after scaling pixels to [0, 1].
        std: per-channel standard deviation (RGB) divided by after subtracting ``mean``.

    Example:
        >>> import numpy as np
        >>> prep = Preprocessing(size=(32, 48))
        >>> prep([np.zeros((10, 20, 3), dtype=np.uint8)]).shape
        torch.Size([1, 3, 32, 48])
    """

    size: tuple[int, int] = (224, 224)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        size = tuple(int(v) for v in self.size)
        mean = tuple(float(v) for v in self.mean)
        std = tuple(float(v) for v in self.std)
        if len(size) != 2 or min(size) < 1:
            raise ValueError(
                f"Preprocessing size must be (height, width) with positive values, got {self.size!r}"
            )
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(
                f"Preprocessing mean and std need one value per RGB channel, got {mean!r}, {std!r}"
            )
        if min(std) <= 0:
            raise ValueError(f"Preprocessing std must be positive, got {std!r}")
        object.__setattr__(self, "size", size)
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    def __call__(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Turn H x W x 3 uint8 RGB images (any sizes) into one N x 3 x H' x W' float32 batch.

        Raises:
            InputError: an image is not an H x W x 3 uint8 array.
        """
        if len(images) == 0:
            raise InputError(
                "Preprocessing got an empty list of images; pass at least one H x W x 3 uint8 image."
            )
        mean = torch.tensor(self.mean, dtype=torch.float32).view(3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(3, 1, 1)
        batch = []
        for index, image in enumerate(images):
            array = np.asarray(image)
            if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
                raise InputError(
                    f"image {index} has shape {array.shape} and dtype {array.dtype}; Preprocessing expects "
                    "H x W x 3 uint8 RGB arrays (load images with loce.data, which converts them)."
                )
            if not array.flags.writeable or not array.flags.c_contiguous:
                array = np.array(array, order="C")  # torch refuses read-only memory (e.g. decoded by PIL)
            pixels = torch.from_numpy(array).permute(2, 0, 1).float().div_(255.0)
            if tuple(pixels.shape[1:]) != self.size:
                pixels = F.interpolate(
                    pixels[None], size=self.size, mode="bilinear", align_corners=False, antialias=True
                )[0].clamp_(0.0, 1.0)
            batch.append((pixels - mean) / std)
        return torch.stack(batch)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description for the run manifest (inverse of :meth:`from_dict`)."""
        return {"size": list(self.size), "mean": list(self.mean), "std": list(self.std), "resize": _RESIZE}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preprocessing:
        """Rebuild a :class:`Preprocessing` from :meth:`to_dict` output.

        Raises:
            InputError: the dictionary lacks a key or describes another resize method.
        """
        resize = data.get("resize", _RESIZE)
        if resize != _RESIZE:
            raise InputError(
                f"preprocessing resize method {resize!r} is unknown; this loce supports {_RESIZE!r}."
            )
        try:
            return cls(size=tuple(data["size"]), mean=tuple(data["mean"]), std=tuple(data["std"]))
        except KeyError as exc:
            raise InputError(f"preprocessing description {dict(data)!r} lacks the key {exc}.") from None
