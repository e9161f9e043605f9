"""Activations of named layers in one forward pass, normalised to N x C x h x w; the list of a model's layers.

The libraries' own feature contracts come first (:mod:`loce.feature_contracts`): a layer that timm's
``forward_intermediates`` or a Hugging Face model's ``output_hidden_states`` offers is laid out as the library lays it
out (prefix tokens removed, NCHW); a torchvision graph node that is not a module (``layer1.0.add``) is computed with
``create_feature_extractor``. Every other module output goes through :func:`loce.layouts.to_nchw`, which reads the
layout off the shape (NCHW maps as they are, NHWC maps permuted, token sequences without CLS / register /
distillation tokens reshaped to the patch grid, the first tensor of tuple or ``ModelOutput`` results). A module
called several times in one forward pass (e.g. torchvision ResNet's shared ``relu``) contributes its LAST call.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from loce.devices import module_device
from loce.errors import LayerError, LoceError
from loce.feature_contracts import (
    UNRESOLVED_TOKENS,
    FxFeatures,
    LayerSource,
    fx_node_names,
    graph_node_order,
    library_intermediates,
    library_of,
    match_layout,
    matched_layouts,
    probe_input,
)
from loce.layouts import (
    GUESSED,
    Layout,
    TokenHints,
    first_tensor,
    resolve_layout,
    resolve_layout_basis,
    to_nchw,
    token_hints,
)

__all__ = [
    "LayerCapture",
    "LayerInfo",
    "LayerSource",
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

    Which contract serves each layer (:mod:`loce.feature_contracts`) is decided on the first call per input shape;
    :meth:`sources` says it.

    Args:
        module: the network (its parameters' device is where inputs are moved).
        layers: names from ``module.named_modules()``, or for torchvision models graph nodes that are not modules
            (``layer1.0.add``; `loce layers MODEL` lists both).
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
        unknown = [name for name in layers if name not in named]
        nodes = fx_node_names(module) if unknown else ()
        for name in unknown:
            if name not in nodes:
                raise _unknown_layer_error(name, [*named, *nodes])
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
        self._targets = {name: named[name] for name in self.layers if name in named}
        fx_layers = [name for name in self.layers if name not in named]
        self._fx = FxFeatures(module, fx_layers) if fx_layers else None
        self._hints = token_hints(module)
        self._handles: list[Any] = []
        self._entered = False
        self._expected_calls: dict[tuple[int, ...], dict[str, int]] = {}
        self._contract_layouts: dict[tuple[int, ...], dict[str, LayerSource]] = {}
        self._run: _Run | None = None

    def sources(self, input_size: tuple[int, int]) -> dict[str, LayerSource]:
        """``{layer: LayerSource}``: the contract (``timm``, ``hf``, ``torchvision-fx``, ``hook``) of each layer.

        Example:
            >>> LayerCapture(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1)), ["0"]).sources((8, 8))
            {'0': LayerSource(contract='hook', layout=None)}
        """
        matched = self._matched((3, int(input_size[0]), int(input_size[1])))
        fx = set(self._fx.nodes) if self._fx is not None else set()
        return {
            name: LayerSource("torchvision-fx") if name in fx else matched.get(name, LayerSource("hook"))
            for name in self.layers
        }

    def _matched(self, key: tuple[int, ...]) -> dict[str, LayerSource]:
        """The contract layouts of the hooked layers for inputs of shape ``key`` (C, H, W), found once per shape."""
        if key not in self._contract_layouts:
            self._contract_layouts[key] = matched_layouts(
                self.module, list(self._targets), key[-2:], module_device(self.module)
            )
        return self._contract_layouts[key]

    def __enter__(self) -> LayerCapture:
        if not self._entered:
            for name, target in self._targets.items():
                self._handles.append(target.register_forward_hook(self._hook_for(name)))
            self._entered = True
        return self

    def __exit__(self, *exc_info: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._entered = False
        self._run = None

    def __call__(self, inputs: torch.Tensor, **forward_kwargs: Any) -> dict[str, torch.Tensor]:
        """Run ``module(inputs, **forward_kwargs)`` under ``torch.no_grad()``; return ``{layer: N x C x h x w}``."""
        if not self._entered:
            with self:
                return self(inputs, **forward_kwargs)
        inputs = inputs.to(module_device(self.module))
        size = self.input_size or (int(inputs.shape[-2]), int(inputs.shape[-1]))
        key = tuple(inputs.shape[1:])
        outputs = self._fx_outputs(inputs, size, forward_kwargs) if self._fx is not None else {}
        if self._targets:
            outputs.update(self._hooked_outputs(inputs, size, key, forward_kwargs))
        return {name: outputs[name] for name in self.layers}

    def _fx_outputs(
        self, inputs: torch.Tensor, size: tuple[int, int], kwargs: dict
    ) -> dict[str, torch.Tensor]:
        outputs = {}
        for name, output in self._fx(inputs, **kwargs).items():
            tensor = first_tensor(output)
            if tensor is not None and tensor.ndim and tensor.shape[0] != inputs.shape[0]:
                raise batch_mismatch_error(name, int(tensor.shape[0]), int(inputs.shape[0]))
            outputs[name] = to_nchw(output, size, self.layouts.get(name), hints=self._hints, layer=name)
        return outputs

    def _hooked_outputs(
        self, inputs: torch.Tensor, size: tuple[int, int], key: tuple[int, ...], forward_kwargs: dict
    ) -> dict[str, torch.Tensor]:
        contract = {name: source.layout for name, source in self._matched(key).items()}
        layouts = {**contract, **self.layouts}
        if self.stop_after_last and key not in self._expected_calls:
            batch = inputs.shape[0]
            probe_kwargs = {
                k: v[:1] if isinstance(v, torch.Tensor) and v.ndim and v.shape[0] == batch else v
                for k, v in forward_kwargs.items()
            }
            probe = self._forward(inputs[:1], size, None, probe_kwargs, layouts)
            self._expected_calls[key] = dict(probe.calls)
        expected = self._expected_calls.get(key) if self.stop_after_last else None
        return self._forward(inputs, size, expected, forward_kwargs, layouts).outputs

    def _forward(
        self,
        inputs: torch.Tensor,
        size: tuple[int, int],
        expected: dict[str, int] | None,
        kwargs: dict,
        layouts: dict[str, Layout],
    ) -> _Run:
        calls = {name: 0 for name in self._targets}
        self._run = _Run(size, expected, calls, {}, int(inputs.shape[0]), layouts)
        try:
            with torch.no_grad():
                self.module(inputs, **kwargs)
        except _StopForward:
            pass
        finally:
            run, self._run = self._run, None
        missing = [name for name in self._targets if run.calls[name] == 0]
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
                layout = run.layouts.get(name)
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
    layouts: dict[str, Layout] = field(default_factory=dict)


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
    """One layer: its type, its normalised output shape (C, h, w) or raw shape without batch, the layout.

    ``shape`` is ``None`` and ``layout`` ``"not run"`` for modules the forward pass does not call; ``layout`` is
    ``"raw"`` when the output cannot be read as a map (e.g. logits), then ``shape`` is the raw shape.
    ``contract`` is what serves the layer (``timm``, ``hf``, ``torchvision-fx``, ``hook``;
    :mod:`loce.feature_contracts`); ``guessed`` is true when loce read the layout off the output shape alone.
    """

    name: str
    type: str
    shape: tuple[int, ...] | None
    layout: str
    calls: int = 1
    contract: str = "hook"
    guessed: bool = False


WINDOW_BATCH = "not per image"
"""The layout shown for a layer whose output batch is not the image batch (refused by capture and fit)."""

GRAPH_NODE = "graph node"
"""The type shown for a torchvision graph node that is not a module (``layer1.0.add``)."""


def list_layers(
    model: Any,
    input_size: tuple[int, int] | None = None,
    *,
    leaf_only: bool = False,
    layouts: Mapping[str, str] | None = None,
) -> list[LayerInfo]:
    """Every named module (and torchvision graph node) with its output shape and contract, from one probe image.

    The probe is seeded noise of 1 x 3 x H x W (:func:`loce.feature_contracts.probe_input`). For timm and
    Hugging Face models the library's own intermediates are computed on it too, and each module whose output
    equals one of them is listed with that library as its contract (:func:`loce.feature_contracts.match_layout`).

    Args:
        model: a :class:`loce.models.LoadedModel` or an ``nn.Module``.
        input_size: (H, W); default: the ``LoadedModel``'s preprocessing size, else 224 x 224.
        leaf_only: list only modules without children (graph nodes are listed either way).
        layouts: per-layer layout overrides, as for :class:`LayerCapture`.

    Raises:
        LayerError: the probe forward pass fails (usually: the model needs another input size).

    Example:
        >>> [(i.name, i.shape, i.contract) for i in list_layers(torch.nn.Conv2d(3, 8, 3, stride=2), (32, 32))]
        []
        >>> info = list_layers(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=2)), (32, 32))[0]
        >>> info.name, info.shape, info.layout, info.contract, info.guessed
        ('0', (8, 15, 15), 'nchw', 'hook', True)
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
    dummy = probe_input(input_size, module_device(module))
    library = library_of(module)
    intermediates = library_intermediates(module, dummy)
    calls = dict.fromkeys(targets, 0)
    shapes: dict[str, tuple[int, ...] | None] = {}
    rows: dict[str, int] = {}
    matches: dict[str, Layout | None] = {}

    def hook_for(name: str):
        def hook(_module: nn.Module, _args: Any, output: Any) -> None:
            calls[name] += 1
            tensor = first_tensor(output)
            shapes[name] = None if tensor is None else tuple(tensor.shape)
            if tensor is not None and tensor.ndim:
                rows[name] = int(tensor.shape[0])
            matches[name] = (
                None if tensor is None or not intermediates else match_layout(tensor, intermediates)
            )

        return hook

    handles = [m.register_forward_hook(hook_for(n)) for n, m in targets.items()]
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
        kind, shape = type(target).__name__, shapes.get(name)
        if calls[name] == 0 or shape is None:
            layout = "not run" if not calls[name] else "no tensor"
            infos.append(LayerInfo(name, kind, None, layout, calls[name]))
            continue
        if rows.get(name, 1) != 1:  # e.g. Swin window attention: one row per window, not per image
            layout = f"{WINDOW_BATCH}: {rows[name]} rows per image"
            infos.append(LayerInfo(name, kind, shape[1:], layout, calls[name]))
            continue
        matched = matches.get(name)
        source = LayerSource(library, matched) if matched is not None else LayerSource("hook")
        infos.append(
            _layer_info(name, kind, shape, calls[name], source, layouts.get(name), input_size, hints)
        )
    nodes = []
    for name, output in _graph_node_outputs(module, dummy).items():
        tensor = first_tensor(output)
        shape = None if tensor is None else tuple(tensor.shape)
        if shape is None:
            nodes.append(LayerInfo(name, GRAPH_NODE, None, "no tensor", 1, "torchvision-fx"))
            continue
        source = LayerSource("torchvision-fx")
        nodes.append(_layer_info(name, GRAPH_NODE, shape, 1, source, layouts.get(name), input_size, hints))
    return _in_graph_order(infos, nodes, graph_node_order(module)) if nodes else infos


def _in_graph_order(
    modules: list[LayerInfo], nodes: list[LayerInfo], order: Sequence[str]
) -> list[LayerInfo]:
    """Module rows with each graph node row inserted after the module that precedes it in the graph."""
    after: dict[str | None, list[LayerInfo]] = {}
    by_name = {info.name: info for info in nodes}
    listed = {info.name for info in modules}
    previous = None
    for name in order:
        if name in by_name:
            after.setdefault(previous, []).append(by_name[name])
        elif name in listed:
            previous = name
    rows = list(after.get(None, []))
    for info in modules:
        rows.append(info)
        rows.extend(after.get(info.name, []))
    return rows


def _layer_info(
    name: str,
    kind: str,
    shape: tuple[int, ...],
    calls: int,
    source: LayerSource,
    override: Layout | None,
    input_size: tuple[int, int],
    hints: TokenHints,
) -> LayerInfo:
    """A listed layer whose output is one row per image: its layout from the override, the contract or the shape."""
    wanted = override or source.layout
    try:
        layout, basis = resolve_layout_basis(shape, input_size, wanted, hints=hints, layer=name)
    except LayerError:
        return LayerInfo(name, kind, shape[1:], "raw", calls, source.contract)
    vouched = override is None and source.layout is not None and source.layout != UNRESOLVED_TOKENS
    guessed = basis == GUESSED and not vouched
    return LayerInfo(
        name, kind, _normalised_shape(shape, layout), str(layout), calls, source.contract, guessed
    )


def _graph_node_outputs(module: nn.Module, dummy: torch.Tensor) -> dict[str, Any]:
    """Outputs of the torchvision graph nodes that are not modules for the probe (``{}`` for other models)."""
    nodes = fx_node_names(module)
    if not nodes:
        return {}
    try:
        return FxFeatures(module, nodes)(dummy)
    except Exception:  # a graph that traces but does not run on the probe: its nodes are not offered
        return {}


def _normalised_shape(shape: tuple[int, ...], layout: Layout) -> tuple[int, int, int]:
    if layout.kind == "nchw":
        return (shape[1], shape[2], shape[3])
    if layout.kind == "nhwc":
        return (shape[3], shape[1], shape[2])
    return (shape[2], layout.grid[0], layout.grid[1])
