"""Report build time of 2 models x 5 layers on the scene world, before and after a change, side by side.

Issue 16's target: once `loce analyze` has run, `loce report` of two runs (EfficientNet-Lite0 and -Lite1, five
layers each, 200 scenes) builds in under 60 s on this machine. The runs are prepared once in ``--work`` (scenes
rendered, LoCEs fitted with the real offline weights, `loce analyze` with this checkout's code and 20 bootstrap
resamples) and reused by later invocations. Then the report is built by two versions of loce in turn, each in its own process and report
folder: ``--before`` (a git revision, default: the merge base of HEAD and main) and this checkout. Each version
builds twice: a first build into an empty folder, and a second over the first (cached figures and thumbnails).
The builds alternate between the versions so that load from other processes falls on both alike; read the
ratio. `--profile` lines of every build are printed.

    .venv/bin/python benchmarks/report_speed.py                       # prepare (once, ~10 min) and measure
    .venv/bin/python benchmarks/report_speed.py --before main --rounds 2
    .venv/bin/python benchmarks/report_speed.py --runs demo-output/run --work /tmp/bench   # an analysed run
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import time
from io import BytesIO
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODELS = {
    "efficientnet-lite0": "_blocks.5,_blocks.8,_blocks.10,_blocks.12,_blocks.14",
    "efficientnet-lite1": "_blocks.6,_blocks.10,_blocks.13,_blocks.16,_blocks.19",
}


def loce(src: Path, *argv: str, capture: bool = False) -> subprocess.CompletedProcess:
    """Run ``python -m loce.cli.main ARGV`` with the package from ``src`` (a folder holding ``loce/``)."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [sys.executable, "-m", "loce.cli.main", *argv],
        env=env,
        check=True,
        text=True,
        stdout=subprocess.PIPE if capture else None,
        stderr=subprocess.PIPE if capture else None,
    )


def prepare(work: Path, n: int) -> list[Path]:
    """Scenes, one fitted and analysed run per model (each step skipped when its output is complete)."""
    src = REPO / "src"
    scenes = work / "scenes"
    if not (scenes / "annotations.json").is_file():
        loce(src, "scenes", "--out", str(scenes), "--n", str(n), "--seed", "0", "--no-progress")
    data = ["--coco", str(scenes / "annotations.json"), "--images", str(scenes / "images")]
    runs = []
    for model, layers in MODELS.items():
        run = work / f"run-{model.removeprefix('efficientnet-')}"
        if not (run / "fitted").is_file():
            loce(src, "fit", str(run), "--model", model, "--layers", layers, *data, "--no-progress")
            (run / "fitted").write_text("ok\n")
        if not (run / "analysis" / "summary.json").is_file():
            # 20 resamples instead of 200: the report reads the intervals, their count does not change its work
            loce(src, "analyze", str(run), "--bootstrap", "20", "--no-progress")
        runs.append(run)
    return runs


def export_revision(revision: str, target: Path) -> Path:
    """The ``src`` folder of ``revision`` written under ``target`` (``git archive``); returns it."""
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", revision], check=True, text=True, capture_output=True
    ).stdout.strip()
    folder = target / commit[:12]
    if not (folder / "src" / "loce").is_dir():
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", "--format=tar", commit, "src"],
            check=True,
            capture_output=True,
        ).stdout
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(folder, filter="data")
    return folder / "src"


def build(src: Path, runs: list[Path], out: Path) -> tuple[float, list[str]]:
    """Wall time of one `loce report` of ``runs`` into ``out``, and its `--profile` lines."""
    start = time.perf_counter()
    done = loce(src, "report", *map(str, runs), "--out", str(out), "--no-progress", "--profile", capture=True)
    seconds = time.perf_counter() - start
    return seconds, [line for line in done.stderr.splitlines() if line.startswith("  ")]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/loce-report-bench"), help="runs and reports")
    parser.add_argument("--n", type=int, default=200, help="scenes to render")
    parser.add_argument("--before", default=None, help="git revision to compare with (default: merge base)")
    parser.add_argument("--rounds", type=int, default=1, help="first + cached build pairs per version")
    parser.add_argument(
        "--runs",
        nargs="+",
        type=Path,
        default=None,
        help="analysed runs to report instead of preparing 2 x 5",
    )
    args = parser.parse_args()
    before = (
        args.before
        or subprocess.run(
            ["git", "-C", str(REPO), "merge-base", "HEAD", "main"], check=True, text=True, capture_output=True
        ).stdout.strip()
    )
    args.work.mkdir(parents=True, exist_ok=True)
    runs = args.runs or prepare(args.work, args.n)
    versions = {"before": export_revision(before, args.work / "revisions"), "after": REPO / "src"}
    times: dict[tuple[str, str], list[float]] = {}
    for round_ in range(args.rounds):
        order = list(versions) if round_ % 2 == 0 else list(versions)[::-1]
        for kind in ("first", "cached"):
            for name in order:
                out = args.work / f"report-{name}"
                if kind == "first":
                    shutil.rmtree(out, ignore_errors=True)
                seconds, profile = build(versions[name], runs, out)
                times.setdefault((name, kind), []).append(seconds)
                print(f"\n{name} ({versions[name]}), {kind} build: {seconds:.1f} s", flush=True)
                print("\n".join(profile), flush=True)
    what = ", ".join(map(str, args.runs)) if args.runs else f"2 models x 5 layers, {args.n} scenes"
    print(f"\n{what}; before = {before[:12]}, after = this checkout")
    print(f"{'build':8} {'before':>9} {'after':>9} {'after / before':>15}")
    for kind in ("first", "cached"):
        b, a = min(times[("before", kind)]), min(times[("after", kind)])
        print(f"{kind:8} {b:8.1f}s {a:8.1f}s {a / b:15.2f}")
    print(f"load average: {', '.join(f'{x:.1f}' for x in os.getloadavg())} (2 cores)")


if __name__ == "__main__":
    main()
