"""``loce localize``: project a run's concept vectors onto new images; heat maps and localisation metrics."""

from __future__ import annotations

import argparse
import sys

from loce.cli.common import (
    add_activation_cache_options,
    add_command,
    add_data_options,
    cache_options_from_args,
    load_dataset_from_args,
    split_list,
)

EXAMPLES = """
  loce localize RUN --concept mug --coco test/annotations.json --images test/images
  loce localize RUN --concept mug,duck --layers _blocks.14 --kinds mean,loce --coco test/annotations.json \\
                --images test/images --name toys
  loce localize RUN --concept mug --images my_photos          # plain images: heat maps only, no metrics
  loce localize RUN --concept car --layers layer3 --vectors subconcepts.npz --coco a.json --images imgs
Writes RUN/localization/<name>/ (metrics.csv, summary.csv, vectors.json, heatmaps/, figures/); `loce report RUN`
shows it.
"""


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "localize",
        help="project concept vectors onto images: heat maps and localisation metrics",
        description=(
            "Project concept vectors of a run (the concept mean of its LoCEs, its most typical LoCE, a 'global' "
            "baseline vector, or vectors from a file such as sub-concept centroids) onto new images. Writes heat "
            "maps at image resolution and, where the images have the concept's masks, IoU at a threshold, "
            "pointing game, peak-to-centroid alignment error and activation spread per concept, layer and kind."
        ),
        examples=EXAMPLES,
    )
    parser.add_argument("run", metavar="RUN", help="run directory written by `loce fit`")
    parser.add_argument("--concept", required=True, help="comma-separated concept names")
    parser.add_argument("--layers", help="comma-separated layers; if omitted: every layer of the run's job")
    parser.add_argument(
        "--kinds", default="mean,loce,global", help="vector kinds from the run: mean, loce, global"
    )
    parser.add_argument(
        "--sample", help="sample id whose LoCE is the 'loce' kind; if omitted: the most typical"
    )
    parser.add_argument(
        "--vectors",
        metavar="FILE",
        help=".npy / .npz of extra vectors (e.g. sub-concept centroids), one layer",
    )
    parser.add_argument("--job", help="the run's LoCE job when it has several")
    parser.add_argument(
        "--name", help="output sub-directory of RUN/localization; if omitted: the concept names"
    )
    parser.add_argument("--out", help="write here instead of RUN/localization/<name>")
    parser.add_argument("--threshold", type=float, default=0.5, help="IoU threshold on the sigmoid maps")
    parser.add_argument("--tolerance", type=float, default=0.0, help="pointing-game tolerance in pixels")
    parser.add_argument("--examples", type=int, default=6, help="example images per concept in the figures")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 or mps")
    parser.add_argument("--batch-size", type=int, default=16, help="images per forward pass")
    parser.add_argument("--seed", type=int, default=0, help="seed of --max-per-category")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_data_options(parser)
    add_activation_cache_options(parser)
    parser.set_defaults(func=run)


def _samples(args: argparse.Namespace):
    from loce.localize.engine import image_folder_samples

    if args.images and not (args.coco or args.voc or args.folder):
        return image_folder_samples(args.images)
    return load_dataset_from_args(args)


def run(args: argparse.Namespace) -> int:
    from loce.errors import InputError
    from loce.localize.run import localize_run
    from loce.localize.vectors import load_vector_file

    concepts = split_list(args.concept) or []
    if not concepts:
        raise InputError("--concept needs at least one concept name")
    layers = split_list(args.layers)
    centroids = load_vector_file(args.vectors) if args.vectors else None
    result = localize_run(
        args.run,
        concepts,
        _samples(args),
        layers=layers,
        kinds=split_list(args.kinds) or [],
        sample_id=args.sample,
        centroids=centroids,
        job=args.job,
        device=args.device,
        name=args.name,
        out=args.out,
        threshold=args.threshold,
        tolerance=args.tolerance,
        batch_size=args.batch_size,
        examples=args.examples,
        progress=not args.no_progress,
        activation_cache=cache_options_from_args(args),
    )
    summary = result.summary
    if len(summary):
        print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"\nwrote {len(result.files)} files to {result.out}")
    return 0
