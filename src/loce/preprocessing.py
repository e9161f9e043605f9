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
RESIZE_MODES = ("stretch", "letterbox", "shorter-side-crop")
_RESIZE_NAMES = {"stretch": _RESIZE, "letterbox": "letterbox", "shorter-side-crop": "shorter-side-crop"}


@dataclass(frozen=True)
class Placement:
    """Where an H x W image lands in the model input: resized to ``resized`` (h, w), then put at ``offset``
    (top, left) of the input frame (negative offsets crop). The one geometric transform of images and masks.

    Example:
        >>> Placement.of((100, 200), (50, 50), "letterbox")
        Placement(resized=(25, 50), offset=(12, 0), frame=(50, 50))
    """

    resized: tuple[int, int]
    offset: tuple[int, int]
    frame: tuple[int, int]

    @classmethod
    def of(cls, image_size: tuple[int, int], frame: tuple[int, int], mode: str) -> Placement:
        """The placement of an image of ``image_size`` (H, W) in ``frame`` (H', W') under a resize ``mode``."""
        (height, width), (fh, fw) = image_size, frame
        if mode == "stretch":
            return cls((fh, fw), (0, 0), (fh, fw))
        scale = (min if mode == "letterbox" else max)(fh / height, fw / width)
        rh, rw = max(1, round(height * scale)), max(1, round(width * scale))
        return cls((rh, rw), ((fh - rh) // 2, (fw - rw) // 2), (fh, fw))

    def apply(self, tensor: torch.Tensor, *, mode: str, fill: float = 0.0) -> torch.Tensor:
        """Place a C x H x W tensor: resize with ``mode`` (``"bilinear"`` images, ``"nearest-exact"`` masks),
        pad with ``fill`` or crop to the frame."""
        if tuple(tensor.shape[1:]) != self.resized:
            antialias = mode == "bilinear"
            kwargs = {"align_corners": False, "antialias": True} if antialias else {}
            tensor = F.interpolate(tensor[None], size=self.resized, mode=mode, **kwargs)[0]
        if self.offset == (0, 0) and self.resized == self.frame:
            return tensor
        out = torch.full((tensor.shape[0], *self.frame), fill, dtype=tensor.dtype)
        top, left = self.offset
        src_top, src_left = max(0, -top), max(0, -left)
        dst_top, dst_left = max(0, top), max(0, left)
        h = min(self.resized[0] - src_top, self.frame[0] - dst_top)
        w = min(self.resized[1] - src_left, self.frame[1] - dst_left)
        out[:, dst_top : dst_top + h, dst_left : dst_left + w] = tensor[
            :, src_top : src_top + h, src_left : src_left + w
        ]
        return out


@dataclass(frozen=True)
class Preprocessing:
    """Input size and normalisation a model expects.

    Attributes:
        size: ``(height, width)`` of the model input.
        resize: how an image reaches ``size``: ``"stretch"`` (the whole image, aspect changed), ``"letterbox"``
            (aspect kept, padded with black), ``"shorter-side-crop"`` (aspect kept, shorter side fills, centre
            crop). Masks follow the same :class:`Placement` (:meth:`frame_mask`).
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
    resize: str = "stretch"

    def __post_init__(self) -> None:
        if self.resize not in RESIZE_MODES:
            raise ValueError(
                f"Preprocessing resize must be one of {', '.join(RESIZE_MODES)}, got {self.resize!r}"
            )
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
            if self.resize != "stretch":
                placement = Placement.of(tuple(pixels.shape[1:]), self.size, self.resize)
                pixels = placement.apply(pixels, mode="bilinear").clamp_(0.0, 1.0)
            elif tuple(pixels.shape[1:]) != self.size:
                pixels = F.interpolate(
                    pixels[None], size=self.size, mode="bilinear", align_corners=False, antialias=True
                )[0].clamp_(0.0, 1.0)
            batch.append((pixels - mean) / std)
        return torch.stack(batch)

    def frame_mask(self, mask: np.ndarray) -> np.ndarray:
        """A boolean mask of an image moved into the model's input frame exactly as the image is (the same
        :class:`Placement`); under ``"stretch"`` the mask is returned as it is (it aligns with the whole grid).

        Example:
            >>> Preprocessing(size=(4, 4), resize="letterbox").frame_mask(np.ones((2, 4), bool)).astype(int)[:, 0]
            array([0, 1, 1, 0])
        """
        if self.resize == "stretch":
            return mask
        placement = Placement.of(tuple(mask.shape[:2]), self.size, self.resize)
        tensor = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None]
        return placement.apply(tensor, mode="nearest-exact")[0].numpy() >= 0.5

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description for the run manifest (inverse of :meth:`from_dict`)."""
        resize = _RESIZE_NAMES[self.resize]
        return {"size": list(self.size), "mean": list(self.mean), "std": list(self.std), "resize": resize}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Preprocessing:
        """Rebuild a :class:`Preprocessing` from :meth:`to_dict` output.

        Raises:
            InputError: the dictionary lacks a key or describes another resize method.
        """
        resize = data.get("resize", _RESIZE)
        modes = {name: mode for mode, name in _RESIZE_NAMES.items()}
        if resize not in modes:
            raise InputError(
                f"preprocessing resize method {resize!r} is unknown; this loce supports {', '.join(modes)}."
            )
        try:
            return cls(
                size=tuple(data["size"]),
                mean=tuple(data["mean"]),
                std=tuple(data["std"]),
                resize=modes[resize],
            )
        except KeyError as exc:
            raise InputError(f"preprocessing description {dict(data)!r} lacks the key {exc}.") from None


CALLABLE_RESIZE = "callable"


@dataclass(frozen=True)
class CallablePreprocessing:
    """A user's per-image preprocessing function in place of :class:`Preprocessing`.

    ``function`` takes one H x W x 3 uint8 RGB array and returns a 3 x H' x W' float tensor (the same H' x W' for
    every image). Masks are aligned with the activation grid as if the function maps the whole image onto the
    whole input (a stretch); a function that crops or pads misaligns them.

    Attributes:
        function: the callable; ``size``: its output (H', W'), found by running it on one blank image.

    Example:
        >>> def prep(image):
        ...     x = torch.from_numpy(image).permute(2, 0, 1).float() / 255.0
        ...     return torch.nn.functional.interpolate(x[None], size=(8, 6))[0]
        >>> wrapped = CallablePreprocessing.wrap(prep)
        >>> wrapped.size, wrapped([np.zeros((20, 30, 3), dtype=np.uint8)]).shape
        ((8, 6), torch.Size([1, 3, 8, 6]))
    """

    function: Any
    size: tuple[int, int]

    @classmethod
    def wrap(cls, function: Any) -> CallablePreprocessing:
        """Wrap ``function``, learning its output size from one blank 64 x 64 image.

        Raises:
            InputError: it is not callable, fails on the blank image, or does not return a 3 x H x W tensor.
        """
        if not callable(function):
            raise InputError(
                f"preprocessing must be a Preprocessing or a function of one image, got {type(function).__name__}"
            )
        probe = cls(function, (0, 0))._one(np.zeros((64, 64, 3), dtype=np.uint8), 0)
        return cls(function, (int(probe.shape[1]), int(probe.shape[2])))

    @property
    def name(self) -> str:
        """The function's dotted name (recorded in the run)."""
        function = self.function
        qualname = getattr(function, "__qualname__", type(function).__qualname__)
        return f"{getattr(function, '__module__', None) or type(function).__module__}.{qualname}"

    def _one(self, image: np.ndarray, index: int) -> torch.Tensor:
        try:
            out = self.function(image)
        except Exception as exc:  # the user's function failing: one line naming it
            raise InputError(
                f"the preprocessing function {self.name} failed on image {index} "
                f"({type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:120]})"
            ) from None
        if isinstance(out, np.ndarray):
            out = torch.from_numpy(out)
        if not isinstance(out, torch.Tensor) or out.ndim != 3 or out.shape[0] != 3:
            shape = tuple(out.shape) if hasattr(out, "shape") else type(out).__name__
            raise InputError(
                f"the preprocessing function {self.name} returned {shape}; it must return a 3 x H x W tensor"
            )
        return out.float()

    def __call__(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Apply the function to each image and stack the results (N x 3 x H' x W').

        Raises:
            InputError: empty list, the function failing, or outputs of another size than :attr:`size`.
        """
        if len(images) == 0:
            raise InputError("preprocessing got an empty list of images; pass at least one image.")
        outs = [self._one(np.asarray(image), i) for i, image in enumerate(images)]
        for i, out in enumerate(outs):
            if tuple(out.shape[1:]) != self.size:
                raise InputError(
                    f"the preprocessing function {self.name} returned {tuple(out.shape[1:])} for image {i} but "
                    f"{self.size} before; it must give every image the same size"
                )
        return torch.stack(outs)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description for the run manifest (such a run's model cannot be rebuilt from it)."""
        return {"resize": CALLABLE_RESIZE, "callable": self.name, "size": list(self.size)}


def require_stretch(preprocessing: Any, what: str) -> None:
    """Refuse a resize mode other than ``"stretch"`` for a step that aligns masks with the whole image (only the
    LoCE fit moves masks by the :class:`Placement`).

    Raises:
        InputError: ``preprocessing.resize`` is ``"letterbox"`` or ``"shorter-side-crop"``.
    """
    resize = getattr(preprocessing, "resize", "stretch")
    if resize != "stretch":
        raise InputError(
            f"{what} aligns masks with the whole image and supports only --resize stretch, not {resize!r}; "
            "use --resize stretch (the default) here."
        )
