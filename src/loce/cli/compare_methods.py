"""``loce compare-methods RUN``: LoCEs and the object-embedding baselines scored side by side."""

from __future__ import annotations

import argparse
from pathlib import Path

from loce.cli.common import add_option, add_renamed, default_of, print_note, split_list

NAME = "compare-methods"
HELP = "compare LoCEs with the baselines: retrieval, purity, separation, IoU"
DESCRIPTION = (
    "Score every (model, method, layer) set of vectors in a run with the same analyses: leave-one-out "
    "precision@k (the LoCE paper's 'mAP@k') and true mean average precision, purity of the adaptive "
    "hierarchical clustering, mean one-vs-one separation; for global vectors the mean IoU of their "
    "projections. Writes one table, one figure and k-nearest-neighbour grids of object crops."
)
EXAMPLES = """
  loce compare-methods RUN                                   # every method and layer in the run
  loce compare-methods RUN --layers _blocks.10,_blocks.14 --ks 1,5,10,20
  loce compare-methods RUN --methods loce,window --metric euclidean --no-figures
Writes RUN/analysis/methods/ (comparison.csv/.parquet, figures, k-NN grids); `loce report RUN` shows them.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``loce compare-methods``; defaults are :func:`~loce.baselines.compare_methods`'s."""
    from loce.baselines import compare_methods, write_method_comparison

    parser.add_argument(
        "run", type=Path, metavar="RUN", help="run directory (`loce fit RUN` / `loce embed RUN`)"
    )
    parser.add_argument("--layers", help="comma-separated layers (default: all)")
    parser.add_argument("--methods", help="comma-separated methods (default: all in the run)")
    add_renamed(parser, "--models", "--model", help="only this model spec (default: all)")
    add_renamed(
        parser,
        "--ks",
        "--k",
        default=",".join(map(str, default_of(compare_methods, "ks"))),
        help="comma-separated k values of precision@k",
    )
    add_option(parser, "--metric", compare_methods, choices=("cosine", "euclidean"), help="retrieval metric")
    add_option(
        parser,
        "--knn",
        write_method_comparison,
        "knn_k",
        type=int,
        metavar="K",
        help="neighbours per row of the k-NN grids",
    )
    parser.add_argument("--no-figures", action="store_true", help="write the table only")
    add_option(
        parser, "--seed", compare_methods, type=int, help="seed of the k-NN queries and purity subsample"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Compute, write and print the comparison."""
    from loce.baselines import compare_methods, write_method_comparison
    from loce.errors import InputError

    try:
        ks = [int(k) for k in split_list(args.ks) or []]
    except ValueError:
        raise InputError(f"--ks must be comma-separated integers, got {args.ks!r}") from None
    models = split_list(args.models) or [None]
    if len(models) > 1:
        raise InputError(
            f"compare-methods scores one model at a time; --models {args.models!r} names {len(models)}"
        )
    comparison = compare_methods(
        args.run,
        layers=split_list(args.layers),
        methods=split_list(args.methods),
        model=models[0],
        ks=ks or default_of(compare_methods, "ks"),
        metric=args.metric,
        seed=args.seed,
        progress=not args.no_progress,
    )
    written = write_method_comparison(
        args.run, comparison, figures=not args.no_figures, knn_k=args.knn, seed=args.seed
    )
    shown = comparison.table.drop(columns=["note", "purity_samples", "n_clusters"], errors="ignore")
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}", na_rep="-"))
    headline = comparison.headline()
    if headline:
        print("\n" + headline)
    notes = comparison.table[comparison.table["note"].astype(bool)]
    for row in notes.itertuples():
        print_note(f"{row.method} {row.layer}: {row.note}")
    print(f"\nwrote {len(written)} files to {written[0].parent}")
    return 0
