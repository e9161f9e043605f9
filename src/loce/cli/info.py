"""``loce info``: what a run directory holds (jobs, counts, IoU per concept and layer, skips)."""

from __future__ import annotations

import argparse

EXAMPLES = """
  loce info RUN
  loce info RUN --skips          # every skipped input with its reason
"""


NAME = "info"
HELP = "summarise a run directory"
DESCRIPTION = "Print the run (full path, run id), its jobs (model, layers, method, settings), LoCE counts, IoU and skips."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``loce info``."""
    parser.add_argument("run", help="run directory written by `loce fit` / `loce embed`")
    parser.add_argument("--skips", action="store_true", help="list every skipped input with its reason")


def run(args: argparse.Namespace) -> int:
    import pandas as pd

    from loce.model_identity import describe_weights
    from loce.store import LoCEStore

    store = LoCEStore.open(args.run)
    print(f"run {store.path.resolve()} (run id {store.run_id})")
    for job in store.jobs.values():
        print(
            f"job {job.name}: method {job.method}, model {job.model}, layers {', '.join(job.layers)}"
            + (f", settings {job.settings_id}" if job.settings_id else "")
        )
        print(f"  model weights: {describe_weights(job.model_identity)}")
    summary = store.summary()
    with pd.option_context("display.width", 160, "display.max_rows", 500):
        print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        if args.skips:
            skips = store.skips()
            if skips.empty:
                print("\nno skips")
            else:
                print()
                print(skips[["sample_id", "concept", "layer", "status", "detail"]].to_string(index=False))
    return 0
