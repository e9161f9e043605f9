"""``loce fit``: fit LoCEs of a model's layers for a dataset and store them in a run directory."""

from __future__ import annotations

import argparse

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
from loce.pipeline import fit_run

NAME = "fit"
HELP = "fit LoCEs for every (image, concept) and store them"
DESCRIPTION = (
    "Fit one Local Concept Embedding per (image, concept) at each layer: the vector whose 1x1 projection "
    "of the layer's activations reconstructs the concept's mask. Results go to a resumable Parquet store."
)
EXAMPLES = """
  loce fit RUN --model efficientnet-lite0 --layers _blocks.10,_blocks.14 \\
           --coco scenes/annotations.json --images scenes/images
  loce fit RUN_VIT --model timm:vit_small_patch16_224 --layers blocks.6 --voc VOCdevkit/VOC2012
  loce fit RUN2 --model torchvision:resnet50 --layers layer3 --folder my_data --preset fast --device cuda
  loce fit RUN --model efficientnet-lite0 --layers _blocks.10 --coco ann.json --images imgs \\
           --engine ray --ray-address auto --gpus-per-worker 1     # one model per GPU of a Ray cluster
Running the same command again resumes an interrupted run; images already stored are not recomputed.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``loce fit``."""
    add_run_argument(parser, "run directory (created, or resumed if it exists)")
    add_model_options(parser)
    add_data_options(parser)
    add_option(
        parser,
        "--preset",
        fit_run,
        "settings",
        choices=sorted(PRESETS),
        help="fit settings preset ('paper': the publication's)",
    )
    add_run_options(parser, "loce.<model>")
    add_activation_cache_options(parser)
    add_engine_options(parser)


def run(args: argparse.Namespace) -> int:
    """Fit, store and print what was written."""
    out = run_argument(args)

    dataset = load_dataset_from_args(args)
    model = load_model_from_args(args)
    summary = engine_runner(args, fit_run, "ray_fit_run")(
        dataset,
        model,
        split_list(args.layers),
        out,
        settings=args.preset,
        options=run_options_from_args(args),
    )
    print_run_summary(summary, dataset)
    check_something_embedded(summary)
    return 0
