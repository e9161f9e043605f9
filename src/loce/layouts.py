"""Turning one layer's output into N x C x h x w: NCHW maps, NHWC maps and token sequences.

- 4-D NCHW maps (CNNs) stay as they are.
- 4-D NHWC maps (timm Swin stages, the channels-last parts of ConvNeXt blocks) are permuted to NCHW. The layout is
  told apart from NCHW by which reading of the shape has the input's aspect (see :func:`resolve_layout`); when
  both readings fit, NCHW wins. An explicit layout (``"nhwc"``) overrides the guess.
- 3-D token sequences N x T x C (ViT, DETR encoder, HF Swin) lose their prefix tokens (CLS, registers,
  distillation; assumed to come first) and the rest is reshaped row-major to the patch grid, non-square inputs
  too. The grid comes from the model's patch size (``patch_embed.patch_size`` in timm, ``config.patch_size`` in
  transformers) when it fits, else from the model's ``num_prefix_tokens``, else it is inferred from T and the
  input aspect (a sequence that is exactly a grid, as in DETR, is preferred); an ambiguous case raises
  :class:`~loce.errors.LayerError` asking for the layout ``"tokens:P"`` (P prefix tokens) or ``"tokens:P:HxW"``.
- Tuple, list, dict and Hugging Face ``ModelOutput`` results: the first tensor in depth-first order (a
  ``ModelOutput``'s first field that is set, e.g. ``last_hidden_state`` of the DETR encoder).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from loce.errors import LayerError

__all__ = [
    "FROM_MODEL",
    "GIVEN",
    "GUESSED",
    "MAX_PREFIX_TOKENS",
    "Layout",
    "TokenHints",
    "first_tensor",
    "resolve_layout",
    "resolve_layout_basis",
    "to_nchw",
    "token_hints",
]

MAX_PREFIX_TOKENS = 10  # CLS + up to 8 registers + a distillation token
_GRID_TOLERANCE = 2  # cells a 4-D map may differ from the input scaled to it (padding, valid convolutions)


@dataclass(frozen=True)
class Layout:
    """How one layer's output maps to N x C x h x w: ``kind`` is ``"nchw"``, ``"nhwc"`` or ``"tokens"``.

    For tokens, ``prefix`` leading tokens are dropped and the rest reshaped to ``grid`` (h, w).
    """

    kind: str
    prefix: int = 0
    grid: tuple[int, int] | None = None

    def __str__(self) -> str:
        if self.kind != "tokens":
            return self.kind
        grid = "" if self.grid is None else f", grid {self.grid[0]}x{self.grid[1]}"
        return f"tokens ({self.prefix} prefix{grid})"

    @classmethod
    def parse(cls, text: str) -> Layout:
        """Parse ``"nchw"``, ``"nhwc"``, ``"tokens"``, ``"tokens:P"`` or ``"tokens:P:HxW"``."""
        parts = text.strip().lower().split(":")
        try:
            if parts[0] in ("nchw", "nhwc") and len(parts) == 1:
                return cls(parts[0])
            if parts[0] == "tokens" and len(parts) <= 3:
                prefix = int(parts[1]) if len(parts) > 1 else -1
                grid = tuple(int(v) for v in parts[2].split("x")) if len(parts) > 2 else None
                if grid is not None and len(grid) != 2:
                    raise ValueError
                return cls("tokens", prefix, grid)
        except ValueError:
            pass
        raise LayerError(
            f"layout {text!r} is unknown; use 'nchw', 'nhwc', 'tokens', 'tokens:P' or 'tokens:P:HxW'."
        )


@dataclass(frozen=True)
class TokenHints:
    """What a model says about its token grid: patch size (h, w) and number of prefix tokens, when known."""

    patch_size: tuple[int, int] | None = None
    num_prefix_tokens: int | None = None


def token_hints(module: nn.Module) -> TokenHints:
    """Read the patch size and prefix-token count a timm or Hugging Face model declares (``None`` if it does not)."""
    patch = getattr(getattr(module, "patch_embed", None), "patch_size", None)
    if patch is None:
        patch = getattr(getattr(module, "config", None), "patch_size", None)
    if isinstance(patch, int):
        patch = (patch, patch)
    if not (isinstance(patch, (tuple, list)) and len(patch) == 2 and all(isinstance(p, int) for p in patch)):
        patch = None
    prefix = getattr(module, "num_prefix_tokens", None)
    return TokenHints(None if patch is None else tuple(patch), prefix if isinstance(prefix, int) else None)


def first_tensor(output: Any) -> torch.Tensor | None:
    """The first tensor of a module output, depth-first through tuples, lists, dicts and ``ModelOutput`` s."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, Mapping):
        output = list(output.values())
    if isinstance(output, (tuple, list)):
        for item in output:
            found = first_tensor(item)
            if found is not None:
                return found
    return None


def resolve_layout(
    shape: Sequence[int],
    input_size: tuple[int, int] | None,
    layout: Layout | str | None = None,
    *,
    hints: TokenHints = TokenHints(),
    layer: str = "",
) -> Layout:
    """Decide how an output of ``shape`` (with batch dimension) maps to N x C x h x w.

    Args:
        shape: the output tensor's shape, batch first.
        input_size: (H, W) of the model input, used to recognise the spatial axes; ``None`` if unknown.
        layout: an explicit layout (``"nhwc"``, ``"tokens:1"`` ...) to use or complete instead of guessing.
        hints: the model's patch size / prefix count (:func:`token_hints`).
        layer: the layer name, for error messages.

    Raises:
        LayerError: the shape cannot be read as a map or a token grid, or the token grid is ambiguous.

    Example:
        >>> str(resolve_layout((2, 56, 56, 96), (224, 224)))
        'nhwc'
        >>> str(resolve_layout((2, 197, 384), (224, 224)))
        'tokens (1 prefix, grid 14x14)'
    """
    return resolve_layout_basis(shape, input_size, layout, hints=hints, layer=layer)[0]


GIVEN, FROM_MODEL, GUESSED = "given", "model", "guessed"
"""What decided a layout: the caller (``layouts=``), the model's declared patch size / prefix count, or the shape."""


def resolve_layout_basis(
    shape: Sequence[int],
    input_size: tuple[int, int] | None,
    layout: Layout | str | None = None,
    *,
    hints: TokenHints = TokenHints(),
    layer: str = "",
) -> tuple[Layout, str]:
    """:func:`resolve_layout` and what decided it: :data:`GIVEN`, :data:`FROM_MODEL` or :data:`GUESSED`.

    ``"guessed"`` means loce read the layout off the shape alone (which reading has the input's aspect, which
    prefix count leaves a grid).

    Example:
        >>> resolve_layout_basis((2, 197, 384), (224, 224), hints=TokenHints((16, 16), 1))[1]
        'model'
        >>> resolve_layout_basis((2, 197, 384), (224, 224))[1]
        'guessed'
    """
    wanted = Layout.parse(layout) if isinstance(layout, str) else layout
    shape = tuple(int(v) for v in shape)
    if len(shape) == 4:
        if wanted is not None and wanted.kind != "tokens":
            return wanted, GIVEN
        if wanted is not None:
            raise LayerError(
                f"layer {layer!r} outputs a 4-D tensor {shape}; layout 'tokens' needs N x T x C."
            )
        if input_size is None:
            return Layout("nchw"), GUESSED
        nchw_fits = _map_fits(shape[2:], input_size)
        nhwc_fits = _map_fits(shape[1:3], input_size)
        return (Layout("nhwc") if nhwc_fits and not nchw_fits else Layout("nchw")), GUESSED
    if len(shape) == 3:
        if wanted is not None and wanted.kind != "tokens":
            raise LayerError(
                f"layer {layer!r} outputs a 3-D tensor {shape}; layout {wanted.kind!r} needs 4-D."
            )
        prefix = None if wanted is None or wanted.prefix < 0 else wanted.prefix
        grid = None if wanted is None else wanted.grid
        resolved, basis = _token_layout(shape[1], input_size, hints, prefix, grid, layer)
        return resolved, GIVEN if prefix is not None or grid is not None else basis
    raise LayerError(
        f"layer {layer!r} outputs a {len(shape)}-D tensor {shape}, which has no spatial grid to turn into "
        "N x C x h x w; choose a layer with a feature map or token sequence (`loce layers MODEL` lists them)."
    )


def to_nchw(
    output: Any,
    input_size: tuple[int, int] | None,
    layout: Layout | str | None = None,
    *,
    hints: TokenHints = TokenHints(),
    layer: str = "",
) -> torch.Tensor:
    """Normalise a module output to a float32 N x C x h x w tensor (a copy, detached from the graph).

    Example:
        >>> to_nchw(torch.zeros(2, 7, 7, 768), (224, 224)).shape
        torch.Size([2, 768, 7, 7])
    """
    tensor = first_tensor(output)
    if tensor is None:
        raise LayerError(f"layer {layer!r} returned {type(output).__name__} without any tensor in it.")
    resolved = resolve_layout(tensor.shape, input_size, layout, hints=hints, layer=layer)
    tensor = tensor.detach()
    if resolved.kind == "nhwc":
        tensor = tensor.permute(0, 3, 1, 2)
    elif resolved.kind == "tokens":
        height, width = resolved.grid
        tensor = tensor[:, resolved.prefix :].reshape(tensor.shape[0], height, width, tensor.shape[2])
        tensor = tensor.permute(0, 3, 1, 2)
    return tensor.to(dtype=torch.float32, memory_format=torch.contiguous_format, copy=True)


def _map_fits(grid: Sequence[int], input_size: tuple[int, int]) -> bool:
    """Whether an h x w grid is the input scaled by one factor, give or take a few cells."""
    (h, w), (height, width) = grid, input_size
    low = max((h - _GRID_TOLERANCE) / height, (w - _GRID_TOLERANCE) / width)
    high = min((h + _GRID_TOLERANCE) / height, (w + _GRID_TOLERANCE) / width)
    return low <= high


def _grid_fits(h: int, w: int, input_size: tuple[int, int]) -> bool:
    """Whether (h, w) == (floor(H/s), floor(W/s)) or (ceil(H/s), ceil(W/s)) for one integer stride s."""
    height, width = input_size
    for rounding in ("floor", "ceil"):
        low, high = _stride_range(h, height, rounding)
        low_w, high_w = _stride_range(w, width, rounding)
        if max(low, low_w) <= min(high, high_w):
            return True
    return False


def _stride_range(cells: int, pixels: int, rounding: str) -> tuple[int, int]:
    """Integer strides s >= 1 with floor(pixels / s) == cells (or ceil), as an inclusive range (empty if lo > hi)."""
    if cells < 1:
        return (1, 0)
    if rounding == "floor":  # cells <= pixels / s < cells + 1
        return (pixels // (cells + 1) + 1, pixels // cells)
    if cells == 1:  # ceil(pixels / s) == 1  <=>  s >= pixels
        return (pixels, 10**9)
    return (math.ceil(pixels / cells), math.ceil(pixels / (cells - 1)) - 1)  # cells - 1 < pixels / s <= cells


def _factor_grids(count: int, input_size: tuple[int, int] | None) -> list[tuple[int, int]]:
    """Grids h x w == count that fit the input aspect (square grids when the input size is unknown)."""
    grids = []
    for h in range(1, count + 1):
        if count % h:
            continue
        w = count // h
        if (input_size is None and h == w) or (input_size is not None and _grid_fits(h, w, input_size)):
            grids.append((h, w))
    return grids


def _token_layout(
    tokens: int,
    input_size: tuple[int, int] | None,
    hints: TokenHints,
    prefix: int | None,
    grid: tuple[int, int] | None,
    layer: str,
) -> tuple[Layout, str]:
    if grid is not None:
        prefix = tokens - grid[0] * grid[1] if prefix is None else prefix
        if prefix < 0 or prefix + grid[0] * grid[1] != tokens:
            raise LayerError(
                f"layer {layer!r} has {tokens} tokens, which is not {prefix} + {grid[0]}x{grid[1]}."
            )
        return Layout("tokens", prefix, grid), GIVEN
    if prefix is None and hints.patch_size is not None and input_size is not None:
        for rounding in (math.floor, math.ceil):
            h = rounding(input_size[0] / hints.patch_size[0])
            w = rounding(input_size[1] / hints.patch_size[1])
            if 0 <= tokens - h * w <= MAX_PREFIX_TOKENS:
                return Layout("tokens", tokens - h * w, (h, w)), FROM_MODEL
    prefixes = [prefix] if prefix is not None else None
    if prefixes is None and hints.num_prefix_tokens is not None:
        candidates = [
            (hints.num_prefix_tokens, g) for g in _factor_grids(tokens - hints.num_prefix_tokens, input_size)
        ]
        if len(candidates) == 1:
            return Layout("tokens", *candidates[0]), FROM_MODEL
    if prefixes is None:
        prefixes = list(range(min(MAX_PREFIX_TOKENS, tokens - 1) + 1))
    candidates = [(p, g) for p in prefixes if tokens - p > 0 for g in _factor_grids(tokens - p, input_size)]
    plain = [c for c in candidates if c[0] == 0]
    if len(plain) == 1:  # a token sequence that is exactly a grid (DETR encoder, HF Swin)
        return Layout("tokens", *plain[0]), GUESSED
    if len(candidates) == 1:
        return Layout("tokens", *candidates[0]), GUESSED
    size = "unknown" if input_size is None else f"{input_size[0]}x{input_size[1]}"
    found = ", ".join(f"{p} prefix + {g[0]}x{g[1]}" for p, g in candidates[:6]) or "none"
    raise LayerError(
        f"cannot tell the token grid of layer {layer!r}: {tokens} tokens for an input of {size} could be {found}. "
        f"Pass layouts={{{layer!r}: 'tokens:P'}} (P prefix tokens) or 'tokens:P:HxW'."
    )
