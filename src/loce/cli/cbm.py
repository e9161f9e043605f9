"""``loce cbm train`` / ``loce cbm eval``: concept bottlenecks with a concept locator on the scene world."""

from __future__ import annotations

import argparse

from loce.cli.common import (
    HelpFormatter,
    add_activation_cache_options,
    add_option,
    add_renamed,
    cache_options_from_args,
    default_of,
    print_note,
    split_list,
)

EXAMPLES = """
  loce cbm train --scenes scenes --out RUN/cbm/plain --no-locator --cache RUN/cache/activations
  loce cbm train --scenes scenes --out RUN/cbm/loc --locator --cache RUN/cache/activations
  loce cbm eval RUN/cbm/plain RUN/cbm/loc --loce-run RUN      # writes RUN/cbm/comparison/
"""

TRAIN_EXAMPLES = """examples:
  loce cbm train --scenes scenes --out RUN/cbm/loc --locator --epochs 60 --seed 0
  loce cbm train --scenes scenes --out RUN/cbm/plain --no-locator --layer _blocks.14 --pooling max
"""

EVAL_EXAMPLES = """examples:
  loce cbm eval RUN/cbm/plain RUN/cbm/loc --loce-run RUN
  loce cbm eval RUN/cbm/plain RUN/cbm/loc --out comparison --examples 8
"""


NAME = "cbm"
HELP = "train and compare concept bottlenecks with a concept locator (Loc-CBM style)"
DESCRIPTION = (
    "Concept bottleneck models on a frozen backbone's feature map: one activation map per concept, pooled "
    "into concept scores (supervised by the scene annotations), a linear class head on them, and "
    "optionally the concept locator (Gaussian masks at each map's peak whose radius shrinks during "
    "training, with an alignment loss between masked and raw maps)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``train`` and ``eval`` subcommands of ``loce cbm``; defaults are the Python functions'."""
    from loce.cbm import compare_models, train_on_scenes
    from loce.cbm.locator import NORMALIZATIONS
    from loce.cbm.train import CBMConfig

    sub = parser.add_subparsers(title="cbm commands", metavar="CBM_COMMAND")
    train = sub.add_parser(
        "train", help="train a CBM on a scene world", epilog=TRAIN_EXAMPLES, formatter_class=HelpFormatter
    )
    train.add_argument("--scenes", required=True, help="scene-world folder (annotations.json + images/)")
    train.add_argument("--out", required=True, help="directory for the trained model")
    train.add_argument(
        "--locator",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="add the concept locator's alignment loss (--no-locator: plain CBM)",
    )
    add_option(train, "--model", train_on_scenes, "backbone", help="frozen backbone model spec")
    add_renamed(
        train,
        "--layers",
        "--layer",
        default=default_of(train_on_scenes, "layer"),
        help="the backbone layer whose feature map is used (one)",
    )
    add_option(train, "--pooling", CBMConfig, choices=("max", "mean"), help="spatial pooling of concept maps")
    add_option(train, "--epochs", CBMConfig, type=int, help="training epochs")
    add_option(train, "--lr", CBMConfig, type=float, help="learning rate (AdamW)")
    add_option(train, "--weight-decay", CBMConfig, type=float, help="AdamW weight decay")
    add_option(
        train, "--train-batch-size", CBMConfig, "batch_size", type=int, help="images per training step"
    )
    add_option(train, "--alignment-weight", CBMConfig, type=float, help="weight of the alignment loss")
    add_option(
        train,
        "--alignment-normalization",
        CBMConfig,
        choices=NORMALIZATIONS,
        help="minmax: the alignment loss sees each concept logit map min-max normalised; none: the raw sigmoid map",
    )
    add_option(train, "--concept-weight", CBMConfig, type=float, help="weight of the concept BCE")
    add_option(train, "--radius-start", CBMConfig, type=float, help="r_max (fraction of the map's side)")
    add_option(train, "--radius-end", CBMConfig, type=float, help="r_min (fraction of the map's side)")
    add_option(
        train,
        "--radius-schedule",
        CBMConfig,
        choices=("cosine", "linear", "constant"),
        help="radius schedule",
    )
    add_option(train, "--test-fraction", train_on_scenes, type=float, help="share of images held out")
    add_option(train, "--split-seed", train_on_scenes, type=int, help="seed of the train/test split")
    add_option(train, "--seed", CBMConfig, type=int, help="seed of initialisation and data order")
    train.add_argument(
        "--cache",
        metavar="DIR",
        help="activation cache directory; if omitted: OUT/features; pass a run's RUN/cache/activations "
        "to share forward passes with `loce localize` on the same images and with the other model",
    )
    add_activation_cache_options(train)
    train.add_argument("--name", help="display name; if omitted: CBM / Loc-CBM")
    train.add_argument("--device", default="cpu", help="where the backbone runs")
    train.add_argument("--batch-size", type=int, default=32, help="images per backbone forward pass")
    train.add_argument("--no-progress", action="store_true", help="no progress bars")
    train.set_defaults(func=run_train, command="cbm train")

    evaluate = sub.add_parser(
        "eval",
        help="compare trained CBMs (and a LoCE run's concept means) on the test split",
        epilog=EVAL_EXAMPLES,
        formatter_class=HelpFormatter,
    )
    evaluate.add_argument(
        "models", nargs="+", metavar="MODEL_DIR", help="directories written by `loce cbm train`"
    )
    evaluate.add_argument(
        "--loce-run", help="LoCE run whose concept-mean LoCEs are localised on the same images"
    )
    evaluate.add_argument("--loce-layer", help="LoCE layer; if omitted: the CBMs' layer if the run has it")
    evaluate.add_argument("--scenes", help="scene folder; if omitted: the one recorded with the models")
    evaluate.add_argument("--out", help="output directory; if omitted: LOCE_RUN/cbm/comparison")
    evaluate.add_argument(
        "--cache", metavar="DIR", help="activation cache directory; if omitted: the first model's"
    )
    add_activation_cache_options(evaluate)
    add_option(evaluate, "--examples", compare_models, type=int, help="test images in the heat-map figure")
    add_option(evaluate, "--seed", compare_models, type=int, help="seed of the choice of example images")
    evaluate.add_argument("--device", default="cpu", help="where the backbone runs")
    evaluate.add_argument("--batch-size", type=int, default=32, help="images per backbone forward pass")
    evaluate.add_argument("--no-progress", action="store_true", help="no progress bars")
    evaluate.set_defaults(func=run_eval, command="cbm eval")
    parser.set_defaults(print_help=parser.print_help)


def run(args: argparse.Namespace) -> int:
    """``loce cbm`` without ``train`` or ``eval``: the help."""
    args.print_help()
    return 2


def one_layer(text: str) -> str:
    """The one layer of ``--layers`` (a CBM reads one feature map)."""
    from loce.errors import InputError

    layers = split_list(text) or []
    if len(layers) != 1:
        raise InputError(f"a concept bottleneck reads one layer; --layers {text!r} names {len(layers)}")
    return layers[0]


def run_train(args: argparse.Namespace) -> int:
    from loce.cbm import CBMConfig, train_on_scenes

    config = CBMConfig(
        locator=args.locator,
        pooling=args.pooling,
        epochs=args.epochs,
        batch_size=args.train_batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        concept_weight=args.concept_weight,
        alignment_weight=args.alignment_weight,
        alignment_normalization=args.alignment_normalization,
        radius_start=args.radius_start,
        radius_end=args.radius_end,
        radius_schedule=args.radius_schedule,
        seed=args.seed,
    )
    summary = train_on_scenes(
        args.scenes,
        args.out,
        config,
        backbone=args.model,
        layer=one_layer(args.layers),
        test_fraction=args.test_fraction,
        split_seed=args.split_seed,
        cache=cache_options_from_args(args, args.cache),
        name=args.name,
        device=args.device,
        batch_size=args.batch_size,
        progress=not args.no_progress,
    )
    rec = summary.test_recognition
    print(
        f"{summary.name}: test accuracy {rec['accuracy']:.3f}, concept accuracy {rec['concept_accuracy']:.3f}, "
        f"concept AUC {rec['concept_auc']:.3f}; trained in {summary.seconds:.1f} s -> {summary.out}"
    )
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from loce.cbm import compare_models

    result = compare_models(
        args.models,
        loce_run=args.loce_run,
        loce_layer=args.loce_layer,
        scenes=args.scenes,
        out=args.out,
        cache=cache_options_from_args(args, args.cache),
        examples=args.examples,
        device=args.device,
        batch_size=args.batch_size,
        seed=args.seed,
        progress=not args.no_progress,
    )
    print(result.table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    for note in result.notes:
        print_note(note)
    print(f"\nwrote {len(result.files)} files to {result.out}")
    return 0
