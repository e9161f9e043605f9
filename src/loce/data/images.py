"""Safe reading of images and mask PNGs, and resolution of file names from annotation files.

Every function here either returns a well-formed array or raises :class:`loce.errors.InputError` with a sentence
naming the file and the problem; no Pillow exception escapes without that context.

Image conventions (what :func:`read_image` returns, whatever the file holds):

- ``H x W x 3`` ``uint8`` RGB. Grayscale (``L``, ``1``) is repeated over the three channels; palette (``P``) is
  expanded through its palette; ``CMYK`` and ``YCbCr`` go through Pillow's conversion to RGB.
- Alpha (``RGBA``, ``LA``, ``PA``, palettes with a transparent entry) is composited on black:
  ``rgb * alpha / 255``. Fully transparent pixels become black instead of showing whatever colour the encoder left
  under them, the same convention as the object-crop baselines (object pixels on a black canvas).
- 16-bit images (``I;16`` and its byte orders, and ``I``, which Pillow uses for 16-bit and 32-bit integer
  files) are read as 16-bit intensities: values are clipped to ``[0, 65535]`` and scaled by ``255 / 65535`` with
  rounding, so full-range 16-bit white stays white.
- EXIF orientation is applied (the image is rotated / flipped the way viewers display it), because annotation
  tools draw masks on the displayed image; :func:`image_size` reports the displayed size for the same reason.
  The orientation is read from the file header (JPEG, TIFF, WebP; for PNG an ``eXIf`` chunk before the image
  data), identically in :func:`read_image`, :func:`image_size` and :func:`read_mask_png`, so sizes always agree.
- Truncated files are errors: Pillow's ``ImageFile.LOAD_TRUNCATED_IMAGES`` is never changed by ``loce`` and
  every image is fully decoded (``.load()``) before use.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from loce.errors import InputError, UnsafePathError

_ORIENTATION_TAG = 0x0112
_TRANSPOSE_FOR_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")

DEFAULT_MAX_PIXELS = 50_000_000
"""Images and masks with more pixels than this are refused before decoding (``oversized_image`` /
``oversized_mask``): a 20 KB PNG can state 13000 x 13000 pixels and decode to gigabytes. ``None``: no cap."""


def input_error(message: str, reason: str) -> InputError:
    """An :class:`InputError` carrying a machine-readable skip ``reason`` (read it back with :func:`skip_reason`)."""
    exc = InputError(message)
    exc.reason = reason  # type: ignore[attr-defined]
    return exc


def skip_reason(exc: BaseException, default: str = "bad_input") -> str:
    """The skip reason tag of an error raised while reading data (e.g. ``"truncated_image"``).

    Example:
        >>> try:
        ...     read_image("does/not/exist.jpg")
        ... except InputError as exc:
        ...     print(skip_reason(exc))
        missing_image
    """
    return getattr(exc, "reason", default)


def check_pixels(
    height: int, width: int, max_pixels: int | None, what: str, where: str | os.PathLike
) -> None:
    """Raise an ``oversized_*`` :class:`InputError` when ``height x width`` exceeds ``max_pixels``.

    Example:
        >>> check_pixels(13000, 13000, 50_000_000, "Image", "big.png")
        Traceback (most recent call last):
        loce.errors.InputError: Image big.png is 13000 x 13000 pixels (169.0 Mpx), more than the limit of 50,000,000 ...
    """
    if max_pixels is not None and height * width > max_pixels:
        raise input_error(
            f"{what} {where} is {height} x {width} pixels ({height * width / 1e6:.1f} Mpx), more than the limit "
            f"of {max_pixels:,} pixels; it is not decoded (raise the limit with --max-pixels / max_pixels, or "
            "downscale the file).",
            f"oversized_{what.lower()}",
        )


def _open(path: Path, what: str, max_pixels: int | None = None) -> Image.Image:
    """Open ``path`` with Pillow (header only), turning every failure into an :class:`InputError`.

    With ``max_pixels`` the size in the header is checked before anything is decoded (:func:`check_pixels`).
    """
    _warn_if_truncated_loading_enabled()
    kind = what.lower()
    try:
        img = Image.open(path)
    except FileNotFoundError:
        raise input_error(
            f"{what} {path} does not exist; check the path or the dataset root.", f"missing_{kind}"
        ) from None
    except IsADirectoryError:
        raise input_error(f"{what} {path} is a directory, not an image file.", f"unreadable_{kind}") from None
    except PermissionError:
        raise input_error(
            f"{what} {path} cannot be read (permission denied).", f"unreadable_{kind}"
        ) from None
    except UnidentifiedImageError:
        raise input_error(
            f"{what} {path} is not an image Pillow can read (corrupt, empty or an unsupported format); "
            "re-export it or remove it from the dataset.",
            f"corrupt_{kind}",
        ) from None
    except Image.DecompressionBombError as exc:
        raise input_error(
            f"{what} {path} is too large to decode safely: {exc}", f"oversized_{kind}"
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        truncated = "truncated" in str(exc).lower()
        raise input_error(
            f"{what} {path} {'is truncated' if truncated else 'cannot be opened'}: {exc}. Re-export it or remove it.",
            f"truncated_{kind}" if truncated else f"corrupt_{kind}",
        ) from None
    try:
        width, height = img.size
        check_pixels(height, width, max_pixels, what, path)
    except BaseException:
        img.close()
        raise
    return img


def _decode(img: Image.Image, path: Path, what: str) -> None:
    """Fully decode ``img`` so truncation and corrupt data are detected now, with a message naming ``path``."""
    kind = what.lower()
    try:
        img.load()
    except Image.DecompressionBombError as exc:
        raise input_error(
            f"{what} {path} is too large to decode safely: {exc}", f"oversized_{kind}"
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        truncated = "truncated" in str(exc)
        raise input_error(
            f"{what} {path} {'is truncated' if truncated else 'is corrupt'} ({exc}); re-download or re-export it, "
            "or remove it from the dataset.",
            f"truncated_{kind}" if truncated else f"corrupt_{kind}",
        ) from None


def _warn_if_truncated_loading_enabled() -> None:
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        warnings.warn(
            "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True (set by another library or script): truncated image "
            "files will be read with grey filler instead of being reported. Set it back to False.",
            RuntimeWarning,
            stacklevel=3,
        )


def _orientation(img: Image.Image) -> int:
    """The EXIF orientation (1-8) found in the file header, 1 when absent or unreadable."""
    try:
        if img.format == "PNG":
            raw = img.info.get("exif")
            if not raw:
                return 1
            exif = Image.Exif()
            exif.load(raw)
        else:
            exif = img.getexif()
        value = int(exif.get(_ORIENTATION_TAG, 1))
    except Exception:  # a broken EXIF block must not make the pixels unreadable
        return 1
    return value if value in _TRANSPOSE_FOR_ORIENTATION else 1


def _displayed(img: Image.Image, orientation: int) -> Image.Image:
    method = _TRANSPOSE_FOR_ORIENTATION.get(orientation)
    return img if method is None else img.transpose(method)


def _composite_on_black(rgba: np.ndarray) -> np.ndarray:
    rgb = rgba[..., :3].astype(np.uint32)
    alpha = rgba[..., 3:4].astype(np.uint32)
    return ((rgb * alpha + 127) // 255).astype(np.uint8)


def _sixteen_bit_to_uint8(values: np.ndarray) -> np.ndarray:
    wide = np.clip(values.astype(np.int64), 0, 65535)
    return ((wide * 255 + 32767) // 65535).astype(np.uint8)


def _to_rgb(img: Image.Image) -> np.ndarray:
    """Convert a decoded Pillow image of any mode to ``H x W x 3`` uint8 RGB (see the module docstring)."""
    mode = img.mode
    if mode == "RGB":
        return np.asarray(img, dtype=np.uint8)
    if mode in _SIXTEEN_BIT_MODES:
        gray = _sixteen_bit_to_uint8(np.asarray(img))
        return np.repeat(gray[..., None], 3, axis=2)
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info)
    if has_alpha:
        return _composite_on_black(np.asarray(img.convert("RGBA"), dtype=np.uint8))
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def read_image(path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file as an ``H x W x 3`` ``uint8`` RGB array, whatever its mode.

    Grayscale, palette, alpha, 16-bit, CMYK and EXIF-rotated files are normalised as described in the module
    docstring. The whole file is decoded, so truncation is detected here and not later.

    Args:
        path: the image file.
        max_pixels: refuse (``oversized_image``) a file whose header states more pixels, before decoding it.

    Returns:
        The image as a C-contiguous ``uint8`` array of shape ``(H, W, 3)`` (``H x W`` as displayed).

    Raises:
        InputError: the file is missing, unreadable, truncated, corrupt, too large or in a mode that cannot become
            RGB; the message names the file and the problem.

    Example:
        >>> from loce.data.images import read_image
        >>> read_image("images/cat.jpg").shape  # doctest: +SKIP
        (375, 500, 3)
    """
    path = Path(path)
    with _open(path, "Image", max_pixels) as img:
        orientation = _orientation(img)
        _decode(img, path, "Image")
        try:
            rgb = _to_rgb(_displayed(img, orientation))
        except (OSError, ValueError) as exc:
            raise input_error(
                f"Image {path} has pixel mode {img.mode!r}, which cannot be converted to RGB ({exc}); "
                "re-export it as 8-bit RGB.",
                "unsupported_image",
            ) from None
    return np.ascontiguousarray(rgb)


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """The displayed ``(height, width)`` of an image, read from its header without decoding the pixels.

    EXIF orientations that swap the axes (5-8) swap height and width, matching :func:`read_image`.

    Raises:
        InputError: the file is missing or not an image.

    Example:
        >>> image_size("images/cat.jpg")  # doctest: +SKIP
        (375, 500)
    """
    path = Path(path)
    with _open(path, "Image") as img:
        width, height = img.size
        if _orientation(img) >= 5:
            width, height = height, width
    return int(height), int(width)


def read_mask_png(path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read a label or binary mask image as a 2-D integer array of per-pixel values.

    Palette PNGs (Pascal VOC's ``SegmentationClass`` / ``SegmentationObject``) give their palette *indices*, not
    colours; ``L`` gives 0-255, ``1`` gives 0/1, 16-bit gives 0-65535. RGB(A) files are accepted only when the
    three colour channels are equal (a grayscale mask saved as RGB); alpha channels of mask files are ignored.
    EXIF orientation is applied as in :func:`read_image`.

    Args:
        path: the mask file (usually PNG).
        max_pixels: refuse (``oversized_mask``) a file whose header states more pixels, before decoding it.

    Returns:
        ``H x W`` array: ``uint8`` for 1-bit, ``L`` and ``P`` files, ``uint16`` for 16-bit files, ``int32`` for
        32-bit integer files.

    Raises:
        InputError: the file is missing, truncated, corrupt, or holds colour (not label) values.

    Example:
        >>> labels = read_mask_png("SegmentationClass/2007_000032.png")  # doctest: +SKIP
        >>> sorted(set(labels.ravel()))  # doctest: +SKIP
        [0, 1, 15, 255]
    """
    return read_mask_values(path, max_pixels)[0]


def read_mask_values(
    path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> tuple[np.ndarray, str]:
    """:func:`read_mask_png` plus the file's Pillow mode (``"P"``: the values are palette indices, not levels).

    Example:
        >>> values, mode = read_mask_values("masks/0001/cat.png")  # doctest: +SKIP
        >>> mode  # doctest: +SKIP
        'L'
    """
    path = Path(path)
    with _open(path, "Mask", max_pixels) as img:
        orientation = _orientation(img)
        _decode(img, path, "Mask")
        img = _displayed(img, orientation)
        mode = img.mode
        if mode in ("P", "L"):
            values = np.asarray(img, dtype=np.uint8)
        elif mode == "1":
            values = np.asarray(img, dtype=bool).astype(np.uint8)
        elif mode.startswith("I;16"):
            values = np.asarray(img).astype(np.uint16)
        elif mode == "I":
            values = np.asarray(img).astype(np.int32)
        elif mode in ("LA", "PA"):
            values = np.asarray(img, dtype=np.uint8)[..., 0]
        elif mode in ("RGB", "RGBA"):
            rgb = np.asarray(img, dtype=np.uint8)[..., :3]
            if not ((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 0] == rgb[..., 2]).all()):
                raise input_error(
                    f"Mask {path} is a colour image; masks must hold labels (save it as a single-channel "
                    "grayscale, binary or palette PNG).",
                    "unsupported_mask",
                )
            values = rgb[..., 0]
        else:
            raise input_error(
                f"Mask {path} has pixel mode {mode!r}; save it as a single-channel grayscale, binary or palette PNG.",
                "unsupported_mask",
            )
    return np.ascontiguousarray(values), mode


def resolve_under(root: str | os.PathLike, name: str) -> Path:
    """Resolve a file name taken from an annotation file under ``root``, refusing any escape.

    Annotation files are data, possibly from elsewhere: a name may only ever point inside the dataset's root.
    Absolute names are refused (annotation files must be portable), and so is any name whose *resolved* path
    (``..`` collapsed, symbolic links followed) lies outside the resolved root. The root itself may be a link.
    Loaders resolving many names use :class:`PathResolver`, which resolves the root once.

    Args:
        root: the image (or mask) root directory.
        name: the relative file name as written in the annotation file (``/`` separators).

    Returns:
        The resolved absolute path (it may not exist; callers check).

    Raises:
        UnsafePathError: ``name`` is absolute, or escapes ``root`` via ``..`` or a symbolic link.
        InputError: ``name`` is empty or not a string.

    Example:
        >>> resolve_under("/data/coco/val2017", "000000000139.jpg")  # doctest: +SKIP
        PosixPath('/data/coco/val2017/000000000139.jpg')
        >>> resolve_under("/data/coco/val2017", "../../etc/passwd")  # doctest: +SKIP
        Traceback (most recent call last):
        loce.errors.UnsafePathError: File name '../../etc/passwd' ... escapes the data root ...
    """
    return PathResolver(root)(name)


class PathResolver:
    """:func:`resolve_under` for one root, resolved once (``PathResolver(root)(name)``).

    Example:
        >>> resolve = PathResolver("/data/coco/val2017")  # doctest: +SKIP
        >>> resolve("000000000139.jpg")  # doctest: +SKIP
        PosixPath('/data/coco/val2017/000000000139.jpg')
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.resolved_root = os.path.realpath(root)
        self._prefix = self.resolved_root.rstrip(os.sep) + os.sep

    def __call__(self, name: str) -> Path:
        root = self.root
        if not isinstance(name, str) or not name.strip():
            raise InputError(f"Empty or non-text file name {name!r} in the annotations (data root {root}).")
        if "\x00" in name:
            raise UnsafePathError(
                f"File name {name!r} contains a NUL character; refusing it (data root {root})."
            )
        if os.path.isabs(name):
            raise UnsafePathError(
                f"File name {name!r} is an absolute path; annotation file names must be relative to the data "
                f"root {root}. Rewrite it relative to the root."
            )
        candidate = os.path.realpath(os.path.join(self.resolved_root, name))
        if not (candidate == self.resolved_root or candidate.startswith(self._prefix)):
            raise UnsafePathError(
                f"File name {name!r} resolves to {candidate}, which escapes the data root {self.resolved_root} "
                "(through '..' or a symbolic link); refusing to read it. Fix the annotation file or the link."
            )
        return Path(candidate)


@dataclass
class ImageRef:
    """A lazily read image file with the size its annotations state, checked whenever it is used.

    The annotation's stated size is what masks are built at; an image whose real (displayed) size differs would
    give misaligned masks, so :meth:`load` and :meth:`check_size` raise :class:`InputError` naming both.

    Attributes:
        path: the image file (already resolved under the data root).
        expected_size: ``(height, width)`` stated by the annotations, or ``None`` when nothing is stated.
        stated_by: where the expected size comes from, for messages (e.g. ``"annotations.json"``).
        max_pixels: images with more pixels are refused before decoding (:data:`DEFAULT_MAX_PIXELS`).

    Example:
        >>> ref = ImageRef(Path("images/a.png"), (48, 64), "the COCO annotations")  # doctest: +SKIP
        >>> ref.load().shape  # doctest: +SKIP
        (48, 64, 3)
    """

    path: Path
    expected_size: tuple[int, int] | None = None
    stated_by: str = "the annotations"
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    _checked_size: tuple[int, int] | None = field(default=None, init=False, repr=False, compare=False)

    def _mismatch(self, actual: tuple[int, int]) -> InputError:
        eh, ew = self.expected_size  # type: ignore[misc]
        return input_error(
            f"Image {self.path} is {actual[0]} x {actual[1]} (height x width) but {self.stated_by} state "
            f"{eh} x {ew}; its masks would not align. Fix the annotation or the image.",
            "image_size_mismatch",
        )

    def size(self) -> tuple[int, int]:
        """The image's displayed ``(height, width)`` from its header (cached after the first call)."""
        if self._checked_size is None:
            self._checked_size = image_size(self.path)
        return self._checked_size

    def check_size(self) -> None:
        """Raise :class:`InputError` when the image's real size differs from the stated one."""
        if self.expected_size is not None and self.size() != tuple(self.expected_size):
            raise self._mismatch(self.size())

    def load(self) -> np.ndarray:
        """Read the image (:func:`read_image`) and check its size against the stated one."""
        rgb = read_image(self.path, self.max_pixels)
        actual = (int(rgb.shape[0]), int(rgb.shape[1]))
        self._checked_size = actual
        if self.expected_size is not None and actual != tuple(self.expected_size):
            raise self._mismatch(actual)
        return rgb
