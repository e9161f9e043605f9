"""``loce localize``: project a run's concept vectors onto new images; heat maps and localisation metrics."""

from __future__ import annotations

import argparse

from loce.cli.common import (
    DEPRECATED,
    add_activation_cache_options,
    add_data_options,
    add_option,
    add_renamed,
    cache_options_from_args,
    default_of,
    load_dataset_from_args,
    print_note,
    print_warning,
    split_list,
)

NAME = "localize"
HELP = "project concept vectors onto images: heat maps and localisation metrics"
DESCRIPTION = (
    "Project concept vectors of a run (the concept mean of its LoCEs, its most typical LoCE, a 'global' "
    "baseline vector, or vectors from a file such as sub-concept centroids) onto new images. Writes heat "
    "maps at image resolution and, where the images have the concept's masks, IoU at a threshold, "
    "pointing game, peak-to-centroid alignment error and activation spread per concept, layer and kind. "
    "With an annotated dataset only its images of the chosen concepts are read (the others hold no mask "
    "to score)."
)
EXAMPLES = """
  loce localize RUN --concepts mug --coco test/annotations.json --images test/images
  loce localize RUN --concepts mug,duck --layers _blocks.14 --kinds mean,loce --coco test/annotations.json \\
                --images test/images --name toys
  loce localize RUN --concepts mug --images my_photos          # plain images: heat maps only, no metrics
  loce localize RUN --concepts car --layers layer3 --vectors subconcepts.npz --coco a.json --images imgs
Writes RUN/localization/<name>/ (metrics.csv, summary.csv, vectors.json, heatmaps/, figures/); `loce report RUN`
shows it.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``loce localize``; defaults are :func:`~loce.localize.run.localize_run`'s."""
    from loce.localize.run import localize_run

    parser.add_argument("run", metavar="RUN", help="run directory written by `loce fit`")
    add_renamed(parser, "--concepts", "--concept", required=True, help="comma-separated concept names")
    parser.add_argument("--layers", help="comma-separated layers; if omitted: every layer of the run's job")
    parser.add_argument(
        "--kinds",
        default=",".join(default_of(localize_run, "kinds")),
        help="vector kinds from the run: mean, loce, global",
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
    add_option(parser, "--threshold", localize_run, type=float, help="IoU threshold on the sigmoid maps")
    add_option(parser, "--tolerance", localize_run, type=float, help="pointing-game tolerance in pixels")
    add_option(parser, "--examples", localize_run, type=int, help="example images per concept in the figures")
    add_option(parser, "--device", localize_run, help="cpu, cuda, cuda:1 or mps")
    add_option(parser, "--batch-size", localize_run, type=int, help="images per forward pass")
    parser.add_argument("--seed", type=int, default=0, help="seed of --max-per-category")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_data_options(parser, concepts=False)
    parser.add_argument("--categories", help=argparse.SUPPRESS)  # deprecated: --concepts chooses the images
    add_activation_cache_options(parser)


def _samples(args: argparse.Namespace, concepts: list[str]):
    """The images: a plain folder, or the dataset's images of ``concepts`` (``--categories``: of those)."""
    from loce.localize.engine import image_folder_samples

    if args.images and not (args.coco or args.voc or args.folder):
        return image_folder_samples(args.images)
    if args.categories is not None:
        print_warning(
            f"--categories is deprecated for localize; --concepts chooses the images ({DEPRECATED})"
        )
        return load_dataset_from_args(args, split_list(args.categories))
    dataset = load_dataset_from_args(args, None)
    known = [c for c in concepts if c in dataset.categories]
    return dataset.filter(categories=known) if known else dataset


def run(args: argparse.Namespace) -> int:
    from loce.errors import InputError
    from loce.localize.run import localize_run
    from loce.localize.vectors import load_vector_file

    concepts = split_list(args.concepts) or []
    if not concepts:
        raise InputError("--concepts needs at least one concept name")
    layers = split_list(args.layers)
    centroids = load_vector_file(args.vectors) if args.vectors else None
    result = localize_run(
        args.run,
        concepts,
        _samples(args, concepts),
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
        print_note(note)
    print(f"\nwrote {len(result.files)} files to {result.out}")
    return 0
