"""``loce layers MODEL``: the model's layer names with their output shapes, normalised to C x h x w."""

from __future__ import annotations

import argparse

from torch import nn

from loce.capture import GRAPH_NODE, WINDOW_BATCH, LayerInfo, list_layers
from loce.cli.common import add_weights_options, load_model_from_args
from loce.feature_contracts import is_repeat_call
from loce.models import KNOWN_SPECS

EXAMPLES = """\
  loce layers efficientnet-lite0                     # real ImageNet weights, 224 x 224
  loce layers timm:vit_small_patch16_224             # blocks.N from timm's forward_intermediates, 384 x 14 x 14
  loce layers timm:swin_tiny_patch4_window7_224      # NHWC stages shown as C x h x w
  loce layers torchvision:resnet50 --input-size 320 480   # modules and graph nodes such as layer1.0.add
  loce layers hf:./my-detr-checkpoint --all          # every module, also those without a feature map
"""


NAME = "layers"
HELP = "list a model's layers with their output shapes"
DESCRIPTION = (
    "Run one probe image through MODEL and list its layers with output shapes normalised to "
    "C x h x w (NHWC maps permuted, token sequences without CLS/register tokens reshaped to the patch "
    "grid) and the contract that serves each: timm (forward_intermediates), hf (output_hidden_states), "
    "torchvision-fx (graph nodes that are not modules) or hook (layout read off the shape; 'guessed' "
    "marks layouts nothing but the shape decided). By default only blocks (modules with two or more "
    "sub-modules, and top-level modules) and graph nodes that produce a feature map are shown; --all "
    "shows every module and node. MODEL is one of: " + ", ".join(KNOWN_SPECS) + "."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``loce layers``."""
    parser.add_argument("model", metavar="MODEL", help="model spec, e.g. efficientnet-lite0 or timm:NAME")
    parser.add_argument(
        "--input-size",
        nargs=2,
        type=int,
        metavar=("H", "W"),
        default=None,
        help="input height and width (default: the model's own input size)",
    )
    parser.add_argument(
        "--all", action="store_true", help="list every module, also leaves and non-map outputs"
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or mps")
    add_weights_options(parser)


def run(args: argparse.Namespace) -> int:
    """List the layers of ``args.model``."""
    loaded = load_model_from_args(args)
    size = tuple(args.input_size) if args.input_size else loaded.preprocessing.size
    infos = list_layers(loaded, size)
    if not args.all:
        flagged = [info for info in infos if info.layout.startswith(WINDOW_BATCH)]
        infos = [info for info in infos if _is_shown(info, infos, loaded.module) and _is_map(info)]
    prep = loaded.preprocessing
    print(f"{loaded.spec}: input {size[0]} x {size[1]}, mean {prep.mean}, std {prep.std}")
    print(format_table(infos))
    if not args.all and flagged:
        names = ", ".join(info.name for info in flagged[:3]) + (", ..." if len(flagged) > 3 else "")
        print(
            f"\n{len(flagged)} layers output one row per window, not per image ({names}); they are not "
            "listed and `loce fit` refuses them (--all shows them)."
        )
    return 0


_NOT_A_MAP = ("raw", "not run", "no tensor")


def _is_map(info: LayerInfo) -> bool:
    return info.layout not in _NOT_A_MAP and not info.layout.startswith(WINDOW_BATCH)


def _is_shown(info: LayerInfo, infos: list[LayerInfo], module: nn.Module) -> bool:
    """Blocks, and graph nodes that are not an earlier call of a module (``layer1.0.add``, not ``relu_1``)."""
    if info.type == GRAPH_NODE:
        return not is_repeat_call(info.name, module)
    return _is_block(info, infos)


def _is_block(info: LayerInfo, infos: list[LayerInfo]) -> bool:
    """Top-level modules and modules with at least two direct children (blocks, not their inner convs)."""
    if "." not in info.name:
        return True
    prefix = info.name + "."
    children = sum(
        1 for other in infos if other.name.startswith(prefix) and "." not in other.name[len(prefix) :]
    )
    return children >= 2


def format_table(infos: list[LayerInfo]) -> str:
    """A fixed-width table: layer name, module type, output shape, contract, layout (``guessed`` when the shape chose it)."""
    rows = [("layer", "type", "output (C x h x w)", "contract", "layout")]
    for info in infos:
        shape = "-" if info.shape is None else " x ".join(str(v) for v in info.shape)
        layout = f"{info.layout}, guessed" if info.guessed else info.layout
        if info.calls > 1:
            layout += f", called {info.calls}x (last call kept)"
        rows.append((info.name, info.type, shape, info.contract, layout))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join(
        ("  ".join(f"{cell:<{width}}" for cell, width in zip(row[:4], widths)) + "  " + row[4]).rstrip()
        for row in rows
    )
