"""``loce analyze RUN [RUN ...]``: distribution analyses of the LoCEs per model and layer, as tables."""

from __future__ import annotations

import argparse
from pathlib import Path

from loce.cli.common import add_option, add_renamed, default_of, print_note, split_list
from loce.cli.engine_options import add_engine_options, analysis_scanner, analysis_spreader

EXAMPLES = """\
  loce analyze runs/scenes                                   # every model and layer, every analysis
  loce analyze runs/scenes --layers _blocks.10 --analyses retrieval,separation,confusion
  loce analyze runs/lite0 runs/lite1 --ks 1,5                # two runs (models) side by side
  loce analyze runs/scenes --map-method pca                  # 2-D map by PCA (no UMAP compilation)
  loce analyze runs/scenes --protocol paper                  # the publication's protocol -> RUN/analysis_paper/
  loce analyze runs/scenes --protocol paper --seeds 10 --map-seeds 2   # fewer seeds, faster
"""


NAME = "analyze"
HELP = "analyse the LoCE distributions of runs (retrieval, separation, confusion, purity, ...)"
DESCRIPTION = (
    "For every (model, layer) of each run: leave-one-out retrieval (precision@k, the paper's 'mAP@k', and "
    "true mean average precision), separation and overlap of concepts, confused concept pairs, purity of "
    "the hierarchical clustering, outliers per concept, Gaussian mixtures and sub-concepts. Writes CSV and "
    "Parquet tables and summary.json to RUN/analysis/ (RUN/analysis_paper/ with --protocol paper) and prints "
    "the headline numbers, each with a 95%% interval (bootstrap over images, or the spread over seeds)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``loce analyze``; every default is :class:`~loce.analysis.run.AnalysisSettings`'s."""
    from loce.analysis.run import AnalysisSettings, analyze_run

    def default(name: str):
        return default_of(AnalysisSettings, name)

    parser.add_argument(
        "runs", nargs="+", metavar="RUN", type=Path, help="run directory written by `loce fit`"
    )
    parser.add_argument("--layers", help="comma-separated layers (none given: every layer)")
    parser.add_argument("--models", help="comma-separated model specs (none given: every model)")
    parser.add_argument("--concepts", help="comma-separated concepts (none given: every concept)")
    parser.add_argument(
        "--analyses",
        default=",".join(default("analyses")),
        help=f"comma-separated, from: {', '.join(default('analyses'))}",
    )
    add_option(
        parser,
        "--metric",
        AnalysisSettings,
        choices=["cosine", "euclidean"],
        help="distance of retrieval and of separation/overlap (unless set apart below)",
    )
    parser.add_argument(
        "--separation-metric",
        choices=["cosine", "euclidean"],
        help="distance of separation and overlap (default: --metric; the paper's protocol: euclidean)",
    )
    parser.add_argument(
        "--retrieval-metric",
        choices=["cosine", "euclidean"],
        help="distance of retrieval (default: --metric; the paper's protocol: cosine)",
    )
    add_option(
        parser,
        "--protocol",
        analyze_run,
        choices=["default", "paper"],
        help="default: loce's analyses with bootstrap intervals, to RUN/analysis/; paper: the publication's protocol (seeded per-concept samples, mean and 95%% spread over seeds; euclidean separation, cosine retrieval, UMAP mixtures), to RUN/analysis_paper/ (docs/PAPER.md)",
    )
    add_option(parser, "--seeds", AnalysisSettings, type=int, help="paper protocol: number of seeded samples")
    add_option(
        parser,
        "--map-seeds",
        AnalysisSettings,
        type=int,
        help="paper protocol: seeds on which the UMAP map and its mixtures are fitted (a few seconds each)",
    )
    add_option(
        parser,
        "--per-concept",
        AnalysisSettings,
        type=int,
        help="paper protocol: LoCEs sampled per concept and seed",
    )
    parser.add_argument(
        "--subconcept-distance",
        type=float,
        help="paper protocol: also cut each concept's dendrogram at this merge distance (sub-concepts)",
    )
    add_option(
        parser,
        "--bootstrap",
        AnalysisSettings,
        type=int,
        help="resamples of the bootstrap over images behind the 95%% intervals (0: no intervals)",
    )
    parser.add_argument("--ks", default=",".join(map(str, default("ks"))), help="k values of precision@k")
    add_renamed(
        parser,
        "--no-average-precision",
        "--no-map",
        action="store_true",
        help="skip the true mean average precision (not the 2-D map: that is --map-method none)",
    )
    add_option(parser, "--min-per-concept", AnalysisSettings, type=int, help="drop concepts with fewer LoCEs")
    add_option(
        parser,
        "--max-samples",
        AnalysisSettings,
        type=int,
        help="purity, GMMs and sub-concepts use at most this many LoCEs (stratified subsample)",
    )
    add_option(
        parser,
        "--subconcept-method",
        AnalysisSettings,
        choices=["gmm", "dendrogram"],
        help="sub-concepts: BIC-selected Gaussian mixture (in a PCA of the concept) or a dendrogram cut chosen by silhouette",
    )
    add_option(
        parser,
        "--subconcept-dims",
        AnalysisSettings,
        type=int,
        help="PCA dimensions of the sub-concept mixtures (gmm)",
    )
    add_option(
        parser,
        "--map-method",
        AnalysisSettings,
        choices=["umap", "pca", "none"],
        help="2-D map of the LoCEs for the figures and the report (umap: the paper's; its first use compiles for ~20 s)",
    )
    add_option(
        parser,
        "--map-points",
        AnalysisSettings,
        type=int,
        help="LoCEs per (model, layer) on the map (stratified subsample)",
    )
    add_option(
        parser,
        "--neighbours",
        AnalysisSettings,
        type=int,
        help="nearest neighbours stored per LoCE (the map's click list)",
    )
    parser.add_argument(
        "--no-figure-data", action="store_true", help="write only the tables (no RUN/analysis/layers/)"
    )
    parser.add_argument("--out", type=Path, help="output directory (default: RUN/analysis; one run only)")
    add_option(parser, "--seed", AnalysisSettings, type=int, help="seed of every random step")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_engine_options(parser)
    parser.add_argument(
        "--approximate",
        action="store_true",
        help="ray: approximate neighbours (faiss HNSW) for very large stores, recall@k measured and reported",
    )


def run(args: argparse.Namespace) -> int:
    """Analyse each run, write its tables and print the headline numbers."""
    import pandas as pd

    from loce.analysis.errors import AnalysisError
    from loce.analysis.run import AnalysisSettings, analyze_run, headline_frame
    from loce.run_layout import RunLayout, unique_paths
    from loce.store import LoCEStore

    if args.out is not None and len(args.runs) > 1:
        raise AnalysisError("--out works with one run; with several, each run's tables go to RUN/analysis/.")
    try:
        ks = tuple(int(k) for k in split_list(args.ks) or ())
    except ValueError as exc:
        raise AnalysisError(f"--ks must be comma-separated integers, got {args.ks!r}.") from exc
    settings = AnalysisSettings(
        analyses=tuple(split_list(args.analyses) or ()),
        metric=args.metric,
        separation_metric=args.separation_metric,
        retrieval_metric=args.retrieval_metric,
        bootstrap=args.bootstrap,
        seeds=args.seeds,
        map_seeds=args.map_seeds,
        per_concept=args.per_concept,
        subconcept_distance=args.subconcept_distance,
        ks=ks,
        average_precision=not args.no_average_precision,
        min_per_concept=args.min_per_concept,
        max_samples=args.max_samples,
        seed=args.seed,
        progress=not args.no_progress,
        subconcept_method=args.subconcept_method,
        subconcept_dims=args.subconcept_dims,
        figure_data=not args.no_figure_data,
        map_method=args.map_method,
        map_points=args.map_points,
        neighbours=args.neighbours,
    )
    frames = []
    runs = unique_paths(args.runs)  # the same folder named twice is analysed once
    for path in runs:
        results, out = analyze_run(
            path,
            layers=split_list(args.layers),
            models=split_list(args.models),
            concepts=split_list(args.concepts),
            settings=settings,
            out_dir=args.out,
            scan_with=analysis_scanner(args),
            spread_with=analysis_spreader(args),
            protocol=args.protocol,
        )
        frame = headline_frame(results, str(path))  # runs are keyed by their path and their run id
        frame.insert(1, "run_id", LoCEStore.open(path).run_id)
        frames.append(frame)
        for result in results:
            for note in result.notes:
                print_note(f"{path} {result.model} {result.layer}: {note}")
        print(f"wrote {out}")
    table = pd.concat(frames, ignore_index=True)
    if len(runs) > 1:
        for path in runs:
            table.to_csv(RunLayout(path).analysis(args.protocol).comparison, index=False)
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.max_rows", 200):
        print(compact_headline(table).to_string(index=False))
    intervals = sorted(set(table["interval"].dropna())) if "interval" in table else []
    for text in intervals:
        print(f"[low, high]: {text}")
    return 0


PRINTED = (
    "precision_at_1",
    "precision_at_5",
    "mean_average_precision",
    "mean_separation",
    "mean_separation_chance",
    "mean_overlap",
    "purity",
    "purity_strict",
    "n_clusters",
    "mean_separation_index",
    "most_confused_pair",
    "most_confused_score",
    "gmm_components",
)


def compact_headline(table):
    """The printed headline: the main numbers as ``value [low, high]``; all columns are in headline.csv."""
    import pandas as pd

    shown = {c: table[c] for c in ("run", "model", "layer", "protocol", "n_loces") if c in table}
    for column in PRINTED:
        if column not in table:
            continue
        if f"{column}_ci_low" in table:
            shown[column] = [
                _with_interval(v, lo, hi)
                for v, lo, hi in zip(table[column], table[f"{column}_ci_low"], table[f"{column}_ci_high"])
            ]
        else:
            shown[column] = [v if isinstance(v, str) else _number(v) for v in table[column]]
    return pd.DataFrame(shown)


def _number(value) -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return str(value)
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    return f"{value:.0f}" if value == int(value) and abs(value) >= 2 else f"{value:.3f}"


def _with_interval(value, low, high) -> str:
    return f"{_number(value)} [{_number(low)}, {_number(high)}]"
