"""``loce location``: one object pasted at a grid of positions, embedded by each method; how much is position."""

from __future__ import annotations

import argparse

from loce.baselines import EmbedOptions
from loce.baselines.location import LOCATION_METHODS, location_analysis, paste_grid, scene_object
from loce.cli.common import (
    add_model_options,
    add_option,
    add_renamed,
    add_run_argument,
    default_of,
    load_model_from_args,
    run_argument,
    split_list,
)
from loce.fit.settings import PRESETS

NAME = "location"
HELP = "how much of each embedding is the object's position (one object at a grid of positions)"
DESCRIPTION = (
    "Render one scene-world object, paste it at a grid of exact positions on a fixed scene-world "
    "background, embed every image with each method (loce, crop, window, masked-pool) and report the "
    "cross-validated R^2 of a ridge regression of the object's (x, y) from the embedding (1: position "
    "is linearly readable; 0: not at all), with PCA and t-SNE maps coloured by x and y."
)
EXAMPLES = """
  loce location RUN --model efficientnet-lite0 --layers _blocks.10,_blocks.14
  loce location RUN --model efficientnet-lite0 --layers _blocks.14 --object mug --grid 10 10
  loce location RUN --model efficientnet-lite0 --layers _blocks.14 --methods loce,window
Writes RUN/analysis/methods/location/ (R^2 table, PCA / t-SNE maps); `loce report RUN` shows them.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``loce location``."""
    add_run_argument(parser, "run directory; results go to its analysis/methods/location")
    add_model_options(parser)
    add_renamed(
        parser,
        "--object",
        "--category",
        default=default_of(scene_object, "category"),
        help="scene-world object to place",
    )
    add_option(
        parser,
        "--object-size",
        scene_object,
        "size",
        type=int,
        metavar="PX",
        help="rendered object size (pixels)",
    )
    add_option(parser, "--grid", paste_grid, type=int, nargs=2, metavar=("ROWS", "COLS"), help="positions")
    parser.add_argument(
        "--background",
        default="scene",
        choices=("scene", "plain"),
        help="scene: the floor and wall of a scene-world scene; plain: uniform grey (position without context)",
    )
    parser.add_argument(
        "--background-index", type=int, default=0, help="scene whose floor and wall are the background"
    )
    parser.add_argument("--methods", default=",".join(LOCATION_METHODS), help="comma-separated methods")
    add_option(parser, "--window-size", EmbedOptions, type=int, metavar="K", help="window: cells per side")
    add_option(
        parser, "--preset", location_analysis, "settings", choices=sorted(PRESETS), help="loce: fit settings"
    )
    add_option(parser, "--folds", location_analysis, type=int, help="cross-validation folds of the R^2")
    parser.add_argument("--no-figures", action="store_true", help="write the tables only")


def run(args: argparse.Namespace) -> int:
    """Run the location analysis, write it, print the R^2 table."""
    import numpy as np

    from loce.baselines import scene_background
    from loce.baselines.outputs import write_location
    from loce.run_layout import RunLayout

    run_dir = run_argument(args)
    model = load_model_from_args(args)
    size = int(model.preprocessing.size[0])
    image, mask = scene_object(args.object, size=args.object_size)
    if args.background == "plain":
        background = np.full((size, size, 3), 128, dtype=np.uint8)
    else:
        background = scene_background(size, seed=args.seed, index=args.background_index)
    positioned = paste_grid(image, mask, background, grid=tuple(args.grid))
    result = location_analysis(
        model,
        positioned,
        split_list(args.layers),
        split_list(args.methods),
        options=EmbedOptions(window_size=args.window_size),
        settings=args.preset,
        folds=args.folds,
        device=args.device,
        seed=args.seed,
    )
    description = {
        "object": args.object,
        "object_size": args.object_size,
        "grid": list(args.grid),
        "image_size": list(result.image_size),
        "background": args.background if args.background == "plain" else f"scene {args.background_index}",
        "model": model.spec,
        "folds": args.folds,
    }
    out = RunLayout(run_dir).location.directory
    written = write_location(
        result, out, images=positioned.images, description=description, figures=not args.no_figures
    )
    print(result.scores.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"\nwrote {len(written)} files to {out}")
    return 0
