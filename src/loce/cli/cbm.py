"""``loce cbm train`` / ``loce cbm eval``: concept bottlenecks with a concept locator on the scene world."""

from __future__ import annotations

import argparse

from loce.cli.common import HelpFormatter, add_activation_cache_options, add_command, cache_options_from_args

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


def register(subparsers) -> None:
    from loce.cbm.experiment import DEFAULT_LAYER
    from loce.cbm.locator import NORMALIZATIONS
    from loce.cbm.train import CBMConfig

    defaults = CBMConfig()
    parser = add_command(
        subparsers,
        "cbm",
        help="train and compare concept bottlenecks with a concept locator (Loc-CBM style)",
        description=(
            "Concept bottleneck models on a frozen backbone's feature map: one activation map per concept, pooled "
            "into concept scores (supervised by the scene annotations), a linear class head on them, and "
            "optionally the concept locator (Gaussian masks at each map's peak whose radius shrinks during "
            "training, with an alignment loss between masked and raw maps)."
        ),
        examples=EXAMPLES,
    )
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
    train.add_argument("--model", default="efficientnet-lite0", help="frozen backbone model spec")
    train.add_argument("--layer", default=DEFAULT_LAYER, help="backbone layer whose feature map is used")
    train.add_argument(
        "--pooling", choices=("max", "mean"), default=defaults.pooling, help="spatial pooling of concept maps"
    )
    train.add_argument("--epochs", type=int, default=defaults.epochs, help="training epochs")
    train.add_argument("--lr", type=float, default=defaults.lr, help="learning rate (AdamW)")
    train.add_argument("--weight-decay", type=float, default=defaults.weight_decay, help="AdamW weight decay")
    train.add_argument(
        "--train-batch-size", type=int, default=defaults.batch_size, help="images per training step"
    )
    train.add_argument(
        "--alignment-weight",
        type=float,
        default=defaults.alignment_weight,
        help="weight of the alignment loss",
    )
    train.add_argument(
        "--alignment-normalization",
        choices=NORMALIZATIONS,
        default=defaults.alignment_normalization,
        help="minmax: the alignment loss sees each concept logit map min-max normalised; none: the raw sigmoid map",
    )
    train.add_argument(
        "--concept-weight", type=float, default=defaults.concept_weight, help="weight of the concept BCE"
    )
    train.add_argument(
        "--radius-start", type=float, default=defaults.radius_start, help="r_max (fraction of the map's side)"
    )
    train.add_argument(
        "--radius-end", type=float, default=defaults.radius_end, help="r_min (fraction of the map's side)"
    )
    train.add_argument(
        "--radius-schedule",
        choices=("cosine", "linear", "constant"),
        default=defaults.radius_schedule,
        help="radius schedule",
    )
    train.add_argument("--test-fraction", type=float, default=0.25, help="share of images held out")
    train.add_argument("--split-seed", type=int, default=0, help="seed of the train/test split")
    train.add_argument("--seed", type=int, default=0, help="seed of initialisation and data order")
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
    train.set_defaults(func=run_train)

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
    evaluate.add_argument("--examples", type=int, default=6, help="test images in the heat-map figure")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the choice of example images")
    evaluate.add_argument("--device", default="cpu", help="where the backbone runs")
    evaluate.add_argument("--batch-size", type=int, default=32, help="images per backbone forward pass")
    evaluate.add_argument("--no-progress", action="store_true", help="no progress bars")
    evaluate.set_defaults(func=run_eval)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


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
        layer=args.layer,
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
        print(f"note: {note}")
    print(f"\nwrote {len(result.files)} files to {result.out}")
    return 0
