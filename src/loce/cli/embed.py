"""``loce embed --method crop|window|masked-pool|global``: object-embedding baselines into a run's store."""

from __future__ import annotations

import argparse

from loce.baselines import EmbedOptions, embed_run
from loce.cli.common import (
    add_activation_cache_options,
    add_data_options,
    add_model_options,
    add_option,
    add_run_argument,
    add_run_options,
    check_something_embedded,
    load_dataset_from_args,
    load_model_from_args,
    print_run_summary,
    run_argument,
    run_options_from_args,
    split_list,
)
from loce.cli.engine_options import add_engine_options, engine_runner
from loce.fit.settings import PRESETS

METHOD_CHOICES = ("crop", "window", "masked-pool", "global")

NAME = "embed"
HELP = "embed every object with a baseline method (crop, window, masked-pool, global)"
DESCRIPTION = (
    "Object embeddings without per-sample fitting, stored beside the LoCEs (column `method`): crop = the "
    "object's mask crop on a black canvas fed to the model and pooled; window = the k x k grid cells "
    "around the box centre, flattened; masked-pool = the activations averaged under the mask; global = one "
    "vector per concept fitted over all its samples with the LoCE objective (Net2Vec)."
)
EXAMPLES = """
  loce embed RUN --method window --model efficientnet-lite0 --layers _blocks.10,_blocks.14 \\
             --coco scenes/annotations.json --images scenes/images
  loce embed RUN --method crop --model efficientnet-lite0 --coco scenes/annotations.json \\
             --images scenes/images          # default layer: the penultimate feature vector (_avg_pooling)
  loce embed RUN --method masked-pool --model efficientnet-lite0 --layers _blocks.10 --voc VOC2012
  loce embed RUN --method global --model efficientnet-lite0 --layers _blocks.10,_blocks.14 \\
             --coco scenes/annotations.json --images scenes/images
Use the RUN of `loce fit` to compare the methods with `loce compare-methods RUN`. Running the same
command again resumes; images (for global: concepts) already stored are not recomputed.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``loce embed``."""
    add_run_argument(parser, "run directory (created if missing; may hold LoCEs and other methods)")
    parser.add_argument("--method", required=True, choices=METHOD_CHOICES, help="the baseline to compute")
    add_model_options(parser, layers_required=False)
    add_data_options(parser)
    add_option(parser, "--window-size", EmbedOptions, type=int, metavar="K", help="window: cells per side")
    add_option(
        parser,
        "--crop-margin",
        EmbedOptions,
        type=float,
        help="crop: black border around the object, as a fraction of its longer side",
    )
    add_option(
        parser,
        "--preset",
        embed_run,
        "settings",
        choices=sorted(PRESETS),
        help="global: fit settings of the shared vector",
    )
    add_run_options(parser, "<method>.<model>")
    add_activation_cache_options(parser)
    add_engine_options(parser)


def run(args: argparse.Namespace) -> int:
    """Run the embedding and print what was stored."""
    out = run_argument(args)
    dataset = load_dataset_from_args(args)
    model = load_model_from_args(args)
    summary = engine_runner(args, embed_run, "ray_embed_run")(
        dataset=dataset,
        model=model,
        layers=split_list(args.layers),
        out=out,
        method=args.method,
        embed_options=EmbedOptions(window_size=args.window_size, crop_margin=args.crop_margin),
        settings=args.preset,
        options=run_options_from_args(args),
    )
    print_run_summary(summary, dataset)
    check_something_embedded(summary)
    return 0
