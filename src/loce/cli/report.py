"""``loce report RUN [RUN ...] --out DIR``: a self-contained HTML report of one or more runs."""

from __future__ import annotations

import argparse
from pathlib import Path

EXAMPLES = """\
  loce report runs/scenes --out report                 # then open report/index.html
  loce report runs/lite0 runs/lite1 --out compare      # two runs (e.g. two models) in one report
  loce report runs/scenes --out report --examples 0    # no example images
"""


NAME = "report"
HELP = "write a self-contained HTML report of one or more runs"
DESCRIPTION = (
    "Read the runs' stores and write DIR/index.html with its figures in DIR/img: an overview (models, "
    "layers, images, concepts, counts, skips, IoU), the LoCE quality per concept and layer, and example "
    "images with their masks. The page opens offline from disk; nav-bar filters select a model, layer or "
    "concept."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``loce report``."""
    parser.add_argument(
        "runs", nargs="+", metavar="RUN", type=Path, help="run directory written by `loce fit`"
    )
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="report folder (created)")
    parser.add_argument("--title", default=None, help="page title (default: names the runs)")
    parser.add_argument("--examples", type=int, default=6, metavar="N", help="example images per concept")
    parser.add_argument("--seed", type=int, default=0, help="seed of the choice of example images")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--profile", action="store_true", help="print the time of each part of the build to stderr"
    )


def run(args: argparse.Namespace) -> int:
    """Write the report and print the path of its ``index.html``."""
    import sys

    from loce.report.collect import build_report
    from loce.report.profile import SectionTimer

    timer = SectionTimer()
    index = build_report(
        args.runs,
        args.out,
        title=args.title,
        examples_per_concept=args.examples,
        seed=args.seed,
        progress=not args.no_progress,
        timer=timer,
    )
    if args.profile:
        print("report build time per part:", file=sys.stderr)
        for line in timer.lines():
            print("  " + line, file=sys.stderr)
    print(index.resolve())
    return 0
