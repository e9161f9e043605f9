"""``loce check``: verify a run directory (manifest, shards, checksums, duplicate rows); ``--repair`` moves bad
shards aside into ``RUN/quarantine/`` (nothing is ever deleted)."""

from __future__ import annotations

import argparse

from loce.cli.common import print_note

EXAMPLES = """
  loce check RUN               # report problems, change nothing (exit 1 when there are any)
  loce check RUN --repair      # say what will move, then move bad or duplicate shards to RUN/quarantine/
After --repair, run the same `loce fit` command again to recompute the images of the shards moved aside.
"""


NAME = "check"
HELP = "verify a run directory (and move damaged shards aside)"
DESCRIPTION = (
    "Verify a run: the manifest (readable, known format version), every file in loces/ (a shard of a "
    "registered job, readable, Parquet page checksums intact, the store's columns), every row's job and "
    "settings id, and that no (sample, concept, layer, method) is stored twice in a job. Jobs that hold "
    "the same LoCEs are reported too (read them with `loce --jobs NAME ...`)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``loce check``."""
    parser.add_argument("run", help="run directory written by `loce fit` / `loce embed`")
    parser.add_argument(
        "--repair",
        action="store_true",
        help="move damaged, foreign and duplicate shards to RUN/quarantine/ (never deletes)",
    )


def _print_report(run, report) -> None:
    print(f"checked {run}: {report.shards} readable shards, {report.rows} rows (page checksums verified)")
    for problem in report.problems:
        print(f"problem ({problem.kind}): {problem.message}")
    for overlap in report.overlaps:
        print_note(
            f"{overlap.describe()}; readers refuse to mix them, choose one with `loce --jobs "
            f"{overlap.jobs[0]} COMMAND ...`"
        )


def run(args: argparse.Namespace) -> int:
    from loce.run_layout import RunLayout
    from loce.store.repair import check_store, move_aside, planned_moves

    report = check_store(args.run)
    _print_report(args.run, report)
    if report.ok:
        print("no problems")
        return 0
    if not args.repair:
        print(
            f"{len(report.problems)} problem(s); `loce check {args.run} --repair` moves the files concerned to "
            f"{RunLayout(args.run).quarantine}/ (nothing is deleted)"
        )
        return 1
    moves = planned_moves(args.run, report)
    print(f"repair: moving {len(moves)} file(s) aside (nothing is deleted):")
    for source, target, kind in moves:
        print(f"  {source} -> {target} ({kind})")
    move_aside(args.run, moves)
    after = check_store(args.run)
    if after.ok:
        print(
            f"the store reads again ({after.shards} shards, {after.rows} rows); run the same `loce fit` / "
            "`loce embed` command to recompute the images of the moved shards"
        )
        return 0
    for problem in after.problems:
        print(f"still a problem ({problem.kind}): {problem.message}")
    return 1
