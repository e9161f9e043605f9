"""The libraries' own intermediate-feature contracts: which layers a model's library vouches for, and how.

Contracts, in the order they are tried for a layer name:

- ``timm``: ``model.forward_intermediates(x, intermediates_only=True, output_fmt="NCHW")`` (prefix tokens
  removed by timm, token grids reshaped by timm), for timm models that have it.
- ``hf``: ``model(x, output_hidden_states=True)`` of a Hugging Face model: ``reshaped_hidden_states`` (N x C x h x w,
  Swin-like models) when the model returns them, else ``hidden_states`` / ``encoder_hidden_states`` (4-D maps as
  N x C x h x w, 3-D token sequences).
- ``torchvision-fx``: graph nodes of a torchvision model that are not modules (``layer1.0.add``, the second call
  of a module ``layer1.0.relu_1``), listed by ``get_graph_node_names`` and computed with
  ``create_feature_extractor``.
- ``hook``: a forward hook on the named module, its layout read off the output shape (:mod:`loce.layouts`).

Layer names are module names (``blocks.6``, ``layers.2``, ``encoder.layers.0``) for the first two contracts too:
on one probe image (seeded noise at the input size) the library's intermediates are computed and compared with the
output of each module under a plain forward pass. A module whose output, read as NCHW, as NHWC or as tokens with P
leading prefix tokens, equals an intermediate is offered by the contract with that layout
(:func:`match_layout`). Capture then hooks that module and applies that layout, so its activations equal the
library's own output while the forward pass still stops after the last requested layer; a layer no intermediate
matches keeps the hook contract. Names of runs written before the contracts existed therefore keep working.

Example:
    >>> import torch
    >>> raw = torch.arange(5 * 3.0).reshape(1, 5, 3)  # 1 prefix token + a 2 x 2 grid, 3 channels
    >>> grid = raw[:, 1:].reshape(1, 2, 2, 3).permute(0, 3, 1, 2)
    >>> match_layout(raw, [grid])
    Layout(kind='tokens', prefix=1, grid=(2, 2))
"""

from __future__ import annotations

import inspect
import re
import sys
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from loce.layouts import Layout, first_tensor

__all__ = [
    "CONTRACTS",
    "UNRESOLVED_TOKENS",
    "FxFeatures",
    "LayerSource",
    "fx_node_names",
    "graph_node_order",
    "is_repeat_call",
    "library_intermediates",
    "library_of",
    "match_layout",
    "matched_layouts",
    "probe_input",
]

CONTRACTS = ("timm", "hf", "torchvision-fx", "hook")
"""The contract names, in the order they are preferred."""

UNRESOLVED_TOKENS = Layout("tokens", -1, None)
"""The layout of a module whose output equals a token sequence the library returns (prefix and grid still open)."""

PROBE_SEED = 0
# A module output equals an intermediate on an accelerator (kernels need not be bitwise reproducible).
_RTOL, _ATOL = 1e-4, 1e-5


@dataclass(frozen=True)
class LayerSource:
    """Where a layer's activations come from: the ``contract`` and the layout the contract vouches for.

    ``layout`` is ``None`` when nothing vouches for it (the hook contract: the layout is read off the shape).
    """

    contract: str
    layout: Layout | None = None


def library_of(module: nn.Module) -> str | None:
    """``"timm"``, ``"hf"`` or ``"torchvision"``: the library whose contract applies to ``module``, else ``None``.

    Example:
        >>> library_of(torch.nn.Conv2d(3, 4, 1)) is None
        True
    """
    owner = type(module).__module__.split(".")[0]
    if owner == "timm" and callable(getattr(module, "forward_intermediates", None)):
        return "timm"
    transformers = sys.modules.get("transformers")  # an HF model means transformers is imported already
    if transformers is not None and isinstance(module, getattr(transformers, "PreTrainedModel", ())):
        return "hf"
    if owner == "torchvision":
        return "torchvision"
    return None


def probe_input(size: Sequence[int], device: torch.device | str = "cpu") -> torch.Tensor:
    """The probe image the contracts are matched on: seeded standard normal noise, 1 x 3 x H x W, on ``device``.

    Noise (not zeros) so that no two different features are equal by accident.

    Example:
        >>> torch.equal(probe_input((4, 6)), probe_input((4, 6))), tuple(probe_input((4, 6)).shape)
        (True, (1, 3, 4, 6))
    """
    generator = torch.Generator().manual_seed(PROBE_SEED)
    return torch.randn(1, 3, int(size[0]), int(size[1]), generator=generator).to(device)


def library_intermediates(module: nn.Module, inputs: torch.Tensor) -> list[torch.Tensor]:
    """The intermediate features the model's library returns for ``inputs`` (``[]`` without a timm / HF contract).

    4-D tensors are N x C x h x w by the library's contract; 3-D tensors are token sequences N x T x C.
    A library call that fails (a model whose ``forward_intermediates`` does not support this input) offers nothing:
    its layers fall back to the hook contract.
    """
    library = library_of(module)
    try:
        with torch.no_grad():
            if library == "timm":
                return _timm_intermediates(module, inputs)
            if library == "hf":
                return _hf_hidden_states(module, inputs)
    except Exception:  # a third-party call that cannot serve this model: no contract, hooks decide
        return []
    return []


def _timm_intermediates(module: nn.Module, inputs: torch.Tensor) -> list[torch.Tensor]:
    accepted = inspect.signature(module.forward_intermediates).parameters
    options = {"intermediates_only": True, "output_fmt": "NCHW"}
    out = module.forward_intermediates(inputs, **{k: v for k, v in options.items() if k in accepted})
    if isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], (list, tuple)):
        out = out[1]  # (final features, intermediates) when intermediates_only is not supported
    return [t for t in out if isinstance(t, torch.Tensor) and t.ndim == 4]


def _hf_hidden_states(module: nn.Module, inputs: torch.Tensor) -> list[torch.Tensor]:
    output = module(inputs, output_hidden_states=True, return_dict=True)
    fields = dict(output.items()) if isinstance(output, Mapping) else {}
    found: list[torch.Tensor] = []
    for name, value in fields.items():
        if not name.endswith("hidden_states") or name.startswith("decoder") or not isinstance(value, tuple):
            continue
        reshaped = name.replace("hidden_states", "reshaped_hidden_states")
        if "reshaped" not in name and reshaped in fields:
            continue  # the reshaped (N x C x h x w) version is the contract; these may be NHWC or tokens
        found.extend(t for t in value if isinstance(t, torch.Tensor) and t.ndim in (3, 4))
    return found


def match_layout(raw: torch.Tensor, intermediates: Sequence[torch.Tensor]) -> Layout | None:
    """The layout under which a module's output ``raw`` equals one of the library's ``intermediates``, else ``None``.

    A 4-D intermediate N x C x h x w is matched by ``raw`` read as NCHW, as NHWC, or as tokens N x (P + h w) x C
    whose first P are prefix tokens (row-major grid). A 3-D intermediate (tokens) is matched by an equal ``raw``;
    its prefix and grid are then still to be resolved (:data:`UNRESOLVED_TOKENS`).

    Example:
        >>> nhwc = torch.randn(1, 4, 6, 8)
        >>> str(match_layout(nhwc, [nhwc.permute(0, 3, 1, 2)]))
        'nhwc'
        >>> match_layout(nhwc, [torch.randn(1, 8, 4, 6)]) is None
        True
    """
    for target in intermediates:
        layout = _layout_if_equal(raw, target)
        if layout is not None:
            return layout
    return None


def _layout_if_equal(raw: torch.Tensor, target: torch.Tensor) -> Layout | None:
    if raw.shape[0] != target.shape[0]:
        return None
    if target.ndim == 3:
        return UNRESOLVED_TOKENS if _same(raw, target) else None
    batch, channels, height, width = target.shape
    if raw.ndim == 4:
        if _same(raw, target):
            return Layout("nchw")
        if _same(raw.permute(0, 3, 1, 2), target):
            return Layout("nhwc")
        return None
    if raw.ndim == 3 and raw.shape[2] == channels and raw.shape[1] >= height * width:
        prefix = int(raw.shape[1]) - height * width
        grid = raw[:, prefix:].reshape(batch, height, width, channels).permute(0, 3, 1, 2)
        return Layout("tokens", prefix, (height, width)) if _same(grid, target) else None
    return None


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal numbers: exactly on the CPU (the same computation), within a tolerance on accelerators."""
    if a.shape != b.shape:
        return False
    a, b = a.detach(), b.detach().to(device=a.device, dtype=a.dtype)
    if torch.equal(a, b):
        return True
    if a.device.type == "cpu":
        return False
    return bool(torch.allclose(a.float(), b.float(), rtol=_RTOL, atol=_ATOL))


def matched_layouts(
    module: nn.Module, names: Sequence[str], size: Sequence[int], device: torch.device | str = "cpu"
) -> dict[str, LayerSource]:
    """``{name: LayerSource}`` for the modules in ``names`` that the model's library contract offers.

    One probe image (:func:`probe_input`) goes through the library call and through a plain forward pass with hooks
    on ``names``; a module is offered when its last output of the forward pass matches an intermediate
    (:func:`match_layout`). Modules without a match are left out (their contract is the hook).

    Example:
        >>> matched_layouts(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1)), ["0"], (8, 8))
        {}
    """
    library = library_of(module)
    if library not in ("timm", "hf") or not names:
        return {}
    probe = probe_input(size, device)
    intermediates = library_intermediates(module, probe)
    if not intermediates:
        return {}
    named = dict(module.named_modules())
    found: dict[str, Layout | None] = {}

    def hook_for(name: str):
        def hook(_module: nn.Module, _args: Any, output: Any) -> None:
            tensor = first_tensor(output)
            found[name] = None if tensor is None else match_layout(tensor, intermediates)

        return hook

    handles = [named[name].register_forward_hook(hook_for(name)) for name in names if name in named]
    try:
        with torch.no_grad():
            module(probe)
    except Exception:  # a model whose plain forward refuses the probe: the capture itself will say why
        return {}
    finally:
        for handle in handles:
            handle.remove()
    return {name: LayerSource(library, layout) for name, layout in found.items() if layout is not None}


# ------------------------------------------------------------------------------------------ torchvision-fx
_FX_NODES: weakref.WeakKeyDictionary[nn.Module, tuple[str, ...]] = weakref.WeakKeyDictionary()
_REPEAT_CALL = re.compile(r"_\d+$")


def fx_node_names(module: nn.Module) -> tuple[str, ...]:
    """The graph nodes of a torchvision model that are not modules, in graph order (``()`` for other models).

    The input placeholder is left out; so is everything when the model cannot be traced.

    Example:
        >>> import torchvision  # doctest: +SKIP
        >>> fx_node_names(torchvision.models.resnet18())[:2]  # doctest: +SKIP
        ('layer1.0.add', 'layer1.0.relu_1')
    """
    modules = {name for name, _ in module.named_modules()}
    return tuple(node for node in graph_node_order(module) if node not in modules)


def graph_node_order(module: nn.Module) -> tuple[str, ...]:
    """Every node of a torchvision model's eval graph in order, leaf modules included, without the input placeholder.

    ``()`` for other models and for graphs that cannot be traced. Traced once per module.
    """
    if library_of(module) != "torchvision":
        return ()
    if module in _FX_NODES:
        return _FX_NODES[module]
    training = module.training
    try:
        from torchvision.models.feature_extraction import get_graph_node_names

        _, eval_nodes = get_graph_node_names(module)
    except Exception:  # models with data-dependent control flow cannot be traced: no graph nodes offered
        eval_nodes = []
    finally:
        module.train(training)
    placeholders = {"x", "input", "inputs", "images"}
    nodes = tuple(n for n in eval_nodes if n not in placeholders)
    _FX_NODES[module] = nodes
    return nodes


def is_repeat_call(node: str, module: nn.Module) -> bool:
    """Whether an fx node is an earlier call of a module called several times (``layer1.0.relu_1``)."""
    base = _REPEAT_CALL.sub("", node)
    return base != node and base in dict(module.named_modules())


class FxFeatures:
    """Outputs of torchvision graph nodes through ``create_feature_extractor`` (built on first use).

    The extractor shares the model's parameters and computes only what the requested nodes need. Each returned
    node is copied where it is computed, so a later in-place op (ResNet's ``relu(inplace=True)`` after
    ``layer1.0.add``) cannot change it.
    """

    def __init__(self, module: nn.Module, nodes: Sequence[str]) -> None:
        self.module = module
        self.nodes = list(dict.fromkeys(nodes))
        self._extractor: nn.Module | None = None

    def __call__(self, inputs: torch.Tensor, **forward_kwargs: Any) -> dict[str, Any]:
        """``{node: raw output}`` for ``inputs`` (no gradients)."""
        if self._extractor is None:
            from torchvision.models.feature_extraction import create_feature_extractor

            extractor = create_feature_extractor(self.module, return_nodes=self.nodes)
            for graph in (extractor.train_graph, extractor.eval_graph):
                _copy_returned_nodes(graph)
            # assigning the graph recompiles the module's code
            extractor.graph = extractor.train_graph if extractor.training else extractor.eval_graph
            self._extractor = extractor
        self._extractor.train(self.module.training)
        with torch.no_grad():
            return dict(self._extractor(inputs, **forward_kwargs))


def _copy_returned_nodes(graph: Any) -> None:
    """Return a copy of each returned node, taken right after the node is computed (before in-place ops)."""
    output = next(node for node in graph.nodes if node.op == "output")
    copies = {}
    for name, node in dict(output.args[0]).items():
        with graph.inserting_after(node):
            copies[name] = graph.call_function(_copy_tensors, (node,))
    output.args = (copies,)


def _copy_tensors(value: Any) -> Any:
    """A copy of a tensor (or of the tensors of a tuple / list); anything else as it is."""
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, (tuple, list)):
        return type(value)(_copy_tensors(v) for v in value)
    return value
