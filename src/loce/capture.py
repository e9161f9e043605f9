"""Activations of named layers in one forward pass, normalised to N x C x h x w; the list of a model's layers.

Every output goes through :func:`loce.layouts.to_nchw` (NCHW maps as they are, NHWC maps permuted, token
sequences without CLS / register / distillation tokens reshaped to the patch grid, the first tensor of tuple or
``ModelOutput`` results). A module called several times in one forward pass (e.g. torchvision ResNet's shared
``relu``) contributes its LAST call.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from loce.devices import module_device
from loce.errors import LayerError, LoceError
from loce.layouts import Layout, TokenHints, first_tensor, resolve_layout, to_nchw, token_hints

__all__ = [
    "LayerCapture",
    "LayerInfo",
    "Layout",
    "TokenHints",
    "batch_mismatch_error",
    "capture_activations",
    "check_layers",
    "first_tensor",
    "list_layers",
    "resolve_layout",
    "to_nchw",
    "token_hints",
]


class _StopForward(BaseException):
    """Raised by a hook once every requested layer has produced its output; caught by :class:`LayerCapture`.

    A BaseException, so that ``except Exception`` blocks inside a model's forward let it pass.
    """


def _named_layers(module: nn.Module) -> dict[str, nn.Module]:
    return {name: sub for name, sub in module.named_modules() if name}


def _unknown_layer_error(name: str, known: Iterable[str]) -> LayerError:
    close = difflib.get_close_matches(name, list(known), n=5, cutoff=0.5)
    hint = f" Close names: {', '.join(close)}." if close else ""
    return LayerError(f"the model has no layer {name!r}.{hint} `loce layers MODEL` lists every layer.")


class LayerCapture:
    """Capture the outputs of named layers, normalised to N x C x h x w float32, in one forward pass.

    Hooks are registered on ``__enter__`` and always removed on ``__exit__`` (also after an exception); calling
    the object outside a ``with`` block registers them for that one call.

    Args:
        module: the network (its parameters' device is where inputs are moved).
        layers: names from ``module.named_modules()``.
        stop_after_last: abort the forward pass once every requested layer has produced its output, so later
            layers cost nothing. The first call per input shape runs one image through the whole model to learn
            how often each layer is called (modules can be called several times; the last call counts).
        layouts: per-layer overrides, ``{"layer": "nhwc" | "nchw" | "tokens" | "tokens:P" | "tokens:P:HxW"}``.
        input_size: (H, W) used to recognise spatial axes; default: the last two dimensions of the input.

    Example:
        >>> with LayerCapture(model, ["layer3", "layer4"]) as capture:  # doctest: +SKIP
        ...     activations = capture(batch)  # {"layer3": N x 256 x 14 x 14, "layer4": N x 512 x 7 x 7}
    """

    def __init__(
        self,
        module: nn.Module,
        layers: Sequence[str],
        *,
        stop_after_last: bool = True,
        layouts: Mapping[str, str] | None = None,
        input_size: tuple[int, int] | None = None,
    ) -> None:
        if isinstance(layers, str):
            layers = [layers]
        if not layers:
            raise LayerError(
                "no layers requested; pass at least one layer name (`loce layers MODEL` lists them)."
            )
        named = _named_layers(module)
        for name in layers:
            if name not in named:
                raise _unknown_layer_error(name, named)
        for name in layouts or {}:
            if name not in layers:
                raise LayerError(
                    f"layouts names layer {name!r}, which is not among the requested layers {list(layers)}."
                )
        self.module = module
        self.layers = list(dict.fromkeys(layers))
        self.stop_after_last = stop_after_last
        self.layouts = {name: Layout.parse(text) for name, text in (layouts or {}).items()}
        self.input_size = None if input_size is None else (int(input_size[0]), int(input_size[1]))
        self._targets = {name: named[name] for name in self.layers}
        self._hints = token_hints(module)
        self._handles: list[Any] = []
        self._expected_calls: dict[tuple[int, ...], dict[str, int]] = {}
        self._run: _Run | None = None

    def __enter__(self) -> LayerCapture:
        if not self._handles:
            for name, target in self._targets.items():
                self._handles.append(target.register_forward_hook(self._hook_for(name)))
        return self

    def __exit__(self, *exc_info: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._run = None

    def __call__(self, inputs: torch.Tensor, **forward_kwargs: Any) -> dict[str, torch.Tensor]:
        """Run ``module(inputs, **forward_kwargs)`` under ``torch.no_grad()``; return ``{layer: N x C x h x w}``."""
        if not self._handles:
            with self:
                return self(inputs, **forward_kwargs)
        inputs = inputs.to(module_device(self.module))
        size = self.input_size or (int(inputs.shape[-2]), int(inputs.shape[-1]))
        key = tuple(inputs.shape[1:])
        if self.stop_after_last and key not in self._expected_calls:
            batch = inputs.shape[0]
            probe_kwargs = {
                k: v[:1] if isinstance(v, torch.Tensor) and v.ndim and v.shape[0] == batch else v
                for k, v in forward_kwargs.items()
            }
            probe = self._forward(inputs[:1], size, None, probe_kwargs)
            self._expected_calls[key] = dict(probe.calls)
        expected = self._expected_calls.get(key) if self.stop_after_last else None
        run = self._forward(inputs, size, expected, forward_kwargs)
        return {name: run.outputs[name] for name in self.layers}

    def _forward(
        self, inputs: torch.Tensor, size: tuple[int, int], expected: dict[str, int] | None, kwargs: dict
    ) -> _Run:
        self._run = _Run(size, expected, {name: 0 for name in self.layers}, {}, int(inputs.shape[0]))
        try:
            with torch.no_grad():
                self.module(inputs, **kwargs)
        except _StopForward:
            pass
        finally:
            run, self._run = self._run, None
        missing = [name for name in self.layers if run.calls[name] == 0]
        if missing:
            raise LayerError(
                f"layers {missing} did not run during the forward pass (defined in the model but not used by its "
                "forward); choose layers that `loce layers MODEL` shows with an output shape."
            )
        return run

    def _hook_for(self, name: str):
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            run = self._run
            if run is None:  # the module ran outside a capture call (e.g. user code inside the with block)
                return
            run.calls[name] += 1
            if run.expected is None or run.calls[name] == run.expected[name]:
                layout = self.layouts.get(name)
                tensor = first_tensor(output)
                if tensor is not None and tensor.ndim and tensor.shape[0] != run.batch:
                    raise batch_mismatch_error(name, int(tensor.shape[0]), run.batch)
                run.outputs[name] = to_nchw(output, run.input_size, layout, hints=self._hints, layer=name)
            if run.expected is not None and all(run.calls[n] >= run.expected[n] for n in run.calls):
                raise _StopForward

        return hook


@dataclass
class _Run:
    input_size: tuple[int, int]
    expected: dict[str, int] | None
    calls: dict[str, int]
    outputs: dict[str, torch.Tensor]
    batch: int = 1


def batch_mismatch_error(layer: str, rows: int, images: int) -> LayerError:
    """The refusal of a layer whose output batch is not the image batch (window attention: rows are windows)."""
    return LayerError(
        f"layer {layer!r} outputs {rows} rows for {images} images: its batch is not the images (e.g. Swin "
        "window attention, whose rows are windows), so its maps cannot be aligned with the masks; choose the "
        "block or stage output instead (`loce layers MODEL` flags such layers)."
    )


def check_layers(model: Any, layers: Sequence[str], *, layouts: Mapping[str, str] | None = None) -> None:
    """Validate ``layers`` with one blank image at the model's input size, before anything is written.

    Raises:
        LayerError: an unknown layer (with close names), a layer the forward pass does not run, an output that
            is not a map or token grid, or an output whose batch is not the image batch.
        ModelSpecError: the model does not accept its input size.

    Example:
        >>> check_layers(load_model("torchvision:resnet18"), ["layer3"])  # doctest: +SKIP
    """
    module = getattr(model, "module", model)
    preprocessing = getattr(model, "preprocessing", None)
    size = tuple(preprocessing.size) if preprocessing is not None else (224, 224)
    capture = LayerCapture(module, layers, stop_after_last=False, layouts=layouts)
    dummy = torch.zeros(1, 3, *size, device=module_device(module))
    try:
        capture(dummy)
    except LoceError:
        raise
    except (
        Exception
    ) as exc:  # a third-party forward pass failing on the input size: one line, not a traceback
        raise forward_error(module, size, exc) from None


def forward_error(module: nn.Module, size: Sequence[int], exc: Exception) -> LayerError:
    """The one-line error of a forward pass that failed on a 1 x 3 x H x W input."""
    detail = (str(exc).splitlines() or [""])[0][:200]
    return LayerError(
        f"a forward pass of {type(module).__name__} on a 1 x 3 x {size[0]} x {size[1]} input failed "
        f"({type(exc).__name__}: {detail}); pass the input size the model expects (--input-size H W)."
    )


def capture_activations(
    model: Any,
    images: torch.Tensor | Sequence[np.ndarray],
    layers: Sequence[str],
    *,
    batch_size: int = 32,
    device: str | None = None,
    stop_after_last: bool = True,
    layouts: Mapping[str, str] | None = None,
    output_device: str | None = "cpu",
) -> dict[str, torch.Tensor]:
    """Activations of ``layers`` for a whole set of images, computed in batches.

    Args:
        model: a :class:`loce.models.LoadedModel` or an ``nn.Module``.
        images: an N x 3 x H x W tensor already preprocessed, or H x W x 3 uint8 arrays (then the
            ``LoadedModel``'s preprocessing is applied batch by batch).
        layers: layer names.
        batch_size: images per forward pass.
        device: move the model there first (``"cpu"``, ``"cuda"``, ``"mps"``); ``None`` keeps its device.
        stop_after_last, layouts: see :class:`LayerCapture`.
        output_device: where the returned tensors live (``None``: the model's device).

    Returns:
        ``{layer: N x C x h x w float32 tensor}``.

    Example:
        >>> acts = capture_activations(load_model("efficientnet-lite0"), [image], ["_blocks.15"])  # doctest: +SKIP
        >>> acts["_blocks.15"].shape  # doctest: +SKIP
        torch.Size([1, 320, 7, 7])
    """
    module = getattr(model, "module", model)
    preprocessing = getattr(model, "preprocessing", None)
    if device is not None:
        module.to(device)
    if not isinstance(images, torch.Tensor) and preprocessing is None:
        raise LayerError(
            "images given as arrays need a LoadedModel (with its preprocessing) or a preprocessed tensor."
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    collected: dict[str, list[torch.Tensor]] = {name: [] for name in dict.fromkeys(layers)}
    with LayerCapture(module, layers, stop_after_last=stop_after_last, layouts=layouts) as capture:
        for start in range(0, len(images), batch_size):
            chunk = images[start : start + batch_size]
            batch = chunk if isinstance(chunk, torch.Tensor) else preprocessing(chunk)
            for name, tensor in capture(batch).items():
                collected[name].append(tensor if output_device is None else tensor.to(output_device))
    return {name: torch.cat(parts) for name, parts in collected.items()}


# ------------------------------------------------------------------------------------------------- listing
@dataclass(frozen=True)
class LayerInfo:
    """One named module: its type, its normalised output shape (C, h, w) or raw shape without batch, the layout.

    ``shape`` is ``None`` and ``layout`` ``"not run"`` for modules the forward pass does not call; ``layout`` is
    ``"raw"`` when the output cannot be read as a map (e.g. logits), then ``shape`` is the raw shape.
    """

    name: str
    type: str
    shape: tuple[int, ...] | None
    layout: str
    calls: int = 1


WINDOW_BATCH = "not per image"
"""The layout shown for a layer whose output batch is not the image batch (refused by capture and fit)."""


def list_layers(
    model: Any,
    input_size: tuple[int, int] | None = None,
    *,
    leaf_only: bool = False,
    layouts: Mapping[str, str] | None = None,
) -> list[LayerInfo]:
    """Every named module with its output shape, from one forward pass of a 1 x 3 x H x W dummy input.

    Args:
        model: a :class:`loce.models.LoadedModel` or an ``nn.Module``.
        input_size: (H, W); default: the ``LoadedModel``'s preprocessing size, else 224 x 224.
        leaf_only: list only modules without children.
        layouts: per-layer layout overrides, as for :class:`LayerCapture`.

    Raises:
        LayerError: the dummy forward pass fails (usually: the model needs another input size).

    Example:
        >>> [(i.name, i.shape) for i in list_layers(torch.nn.Conv2d(3, 8, 3, stride=2), (32, 32))]  # doctest: +SKIP
    """
    module = getattr(model, "module", model)
    if input_size is None:
        preprocessing = getattr(model, "preprocessing", None)
        input_size = tuple(preprocessing.size) if preprocessing is not None else (224, 224)
    input_size = (int(input_size[0]), int(input_size[1]))
    hints = token_hints(module)
    layouts = {name: Layout.parse(text) for name, text in (layouts or {}).items()}
    targets = {
        n: m for n, m in _named_layers(module).items() if not leaf_only or not any(True for _ in m.children())
    }
    calls = dict.fromkeys(targets, 0)
    shapes: dict[str, tuple[int, ...] | None] = {}
    rows: dict[str, int] = {}

    def hook_for(name: str):
        def hook(_module: nn.Module, _args: Any, output: Any) -> None:
            calls[name] += 1
            tensor = first_tensor(output)
            shapes[name] = None if tensor is None else tuple(tensor.shape)
            if tensor is not None and tensor.ndim:
                rows[name] = int(tensor.shape[0])

        return hook

    handles = [m.register_forward_hook(hook_for(n)) for n, m in targets.items()]
    dummy = torch.zeros(1, 3, *input_size, device=module_device(module))
    try:
        with torch.no_grad():
            module(dummy)
    except Exception as exc:
        raise forward_error(module, input_size, exc) from exc
    finally:
        for handle in handles:
            handle.remove()
    infos = []
    for name, target in targets.items():
        shape = shapes.get(name)
        if calls[name] == 0 or shape is None:
            infos.append(
                LayerInfo(
                    name,
                    type(target).__name__,
                    None,
                    "not run" if not calls[name] else "no tensor",
                    calls[name],
                )
            )
            continue
        if rows.get(name, 1) != 1:  # e.g. Swin window attention: one row per window, not per image
            layout = f"{WINDOW_BATCH}: {rows[name]} rows per image"
            infos.append(LayerInfo(name, type(target).__name__, shape[1:], layout, calls[name]))
            continue
        try:
            layout = resolve_layout(shape, input_size, layouts.get(name), hints=hints, layer=name)
            normalised = _normalised_shape(shape, layout)
            infos.append(LayerInfo(name, type(target).__name__, normalised, str(layout), calls[name]))
        except LayerError:
            infos.append(LayerInfo(name, type(target).__name__, shape[1:], "raw", calls[name]))
    return infos


def _normalised_shape(shape: tuple[int, ...], layout: Layout) -> tuple[int, int, int]:
    if layout.kind == "nchw":
        return (shape[1], shape[2], shape[3])
    if layout.kind == "nhwc":
        return (shape[3], shape[1], shape[2])
    return (shape[2], layout.grid[0], layout.grid[1])
