"""``loce location``: one object pasted at a grid of positions, embedded by each method; how much is position."""

from __future__ import annotations

import argparse
from pathlib import Path

from loce.cli.common import add_command, add_model_options, load_model_from_args, split_list
from loce.fit.settings import PRESETS

EXAMPLES = """
  loce location --model efficientnet-lite0 --layers _blocks.10,_blocks.14 --out RUN
  loce location --model efficientnet-lite0 --layers _blocks.14 --category mug --grid 10 10 --out RUN
  loce location --model efficientnet-lite0 --layers _blocks.14 --methods loce,window --out RUN
Writes RUN/analysis/methods/location/ (R^2 table, PCA / t-SNE maps); `loce report RUN` shows them.
"""


def register(subparsers) -> None:
    """Add the ``location`` subcommand."""
    parser = add_command(
        subparsers,
        "location",
        help="how much of each embedding is the object's position (one object at a grid of positions)",
        description=(
            "Render one scene-world object, paste it at a grid of exact positions on a fixed scene-world "
            "background, embed every image with each method (loce, crop, window, masked-pool) and report the "
            "cross-validated R^2 of a ridge regression of the object's (x, y) from the embedding (1: position "
            "is linearly readable; 0: not at all), with PCA and t-SNE maps coloured by x and y."
        ),
        examples=EXAMPLES,
    )
    add_model_options(parser)
    parser.add_argument(
        "--out", required=True, type=Path, help="run directory; results go to its analysis/methods/location"
    )
    parser.add_argument("--category", default="soccer_ball", help="scene-world object to place")
    parser.add_argument(
        "--object-size", type=int, default=64, metavar="PX", help="rendered object size (pixels)"
    )
    parser.add_argument(
        "--grid", type=int, nargs=2, default=(8, 8), metavar=("ROWS", "COLS"), help="positions"
    )
    parser.add_argument(
        "--background",
        default="scene",
        choices=("scene", "plain"),
        help="scene: the floor and wall of a scene-world scene; plain: uniform grey (position without context)",
    )
    parser.add_argument(
        "--background-index", type=int, default=0, help="scene whose floor and wall are the background"
    )
    parser.add_argument("--methods", default="loce,crop,window,masked-pool", help="comma-separated methods")
    parser.add_argument("--window-size", type=int, default=3, metavar="K", help="window: cells per side")
    parser.add_argument("--preset", default="paper", choices=sorted(PRESETS), help="loce: fit settings")
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds of the R^2")
    parser.add_argument("--no-figures", action="store_true", help="write the tables only")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the location analysis, write it, print the R^2 table."""
    import numpy as np

    from loce.baselines import EmbedOptions, location_analysis, paste_grid, scene_background, scene_object
    from loce.baselines.outputs import write_location
    from loce.run_layout import RunLayout

    model = load_model_from_args(args)
    size = int(model.preprocessing.size[0])
    image, mask = scene_object(args.category, size=args.object_size)
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
        "object": args.category,
        "object_size": args.object_size,
        "grid": list(args.grid),
        "image_size": list(result.image_size),
        "background": args.background if args.background == "plain" else f"scene {args.background_index}",
        "model": model.spec,
        "folds": args.folds,
    }
    out = RunLayout(args.out).location.directory
    written = write_location(
        result, out, images=positioned.images, description=description, figures=not args.no_figures
    )
    print(result.scores.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"\nwrote {len(written)} files to {out}")
    return 0
