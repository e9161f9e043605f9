"""``loce demo``: the whole pipeline on the built-in scene world, as the sequence of commands a user would type.

Each step is an ordinary ``loce`` subcommand, printed before it runs, so the demo doubles as a recipe. Every step
resumes or skips work already done, so running the demo again after an interruption continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from loce.run_layout import RunLayout

EXAMPLES = """
  loce demo --out demo-output                 # about 6-7 minutes on 2 CPU cores (380 s measured)
  loce demo --out /tmp/small --n 40           # a fast smoke run
"""

MODEL = "efficientnet-lite0"
LAYERS = "_blocks.10,_blocks.14"
LOCALIZED_CONCEPTS = "soccer_ball,mug,cup,table,duck,teddy_bear"


NAME = "demo"
HELP = "run the whole pipeline on the built-in scene world and write the report"
DESCRIPTION = (
    "Render the scene world, fit LoCEs of EfficientNet-Lite0 (real ImageNet weights, offline), embed the "
    "objects with the baselines, analyse the distributions, localise concepts, train the concept "
    "bottleneck and write the HTML report. Prints every command it runs."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``loce demo``."""
    parser.add_argument("--out", default="demo-output", type=Path, help="folder for scenes, run and report")
    parser.add_argument("--n", type=int, default=200, help="number of scenes to render")
    parser.add_argument("--seed", type=int, default=0, help="seed of the scenes and of every random step")


def demo_commands(out: Path, n: int, seed: int) -> list[tuple[str, list[str]]]:
    """The demo's steps: ``(title, loce arguments)`` in order.

    LoCEs and baselines are fitted on ``out/scenes``; localisation and the concept bottleneck are evaluated on a
    second, independently rendered set ``out/scenes_test`` so that no concept vector has seen its test images.
    """
    scenes, test_scenes, run, report = out / "scenes", out / "scenes_test", out / "run", out / "report"
    data = ["--coco", str(scenes / "annotations.json"), "--images", str(scenes / "images")]
    test_data = ["--coco", str(test_scenes / "annotations.json"), "--images", str(test_scenes / "images")]
    model = ["--model", MODEL, "--seed", str(seed)]
    layout = RunLayout(run)
    plain, loc, activations = (
        layout.cbm_model("plain").directory,
        layout.cbm_model("loc").directory,
        layout.activation_cache,  # localize fills it for the held-out scenes; the CBMs reuse it
    )
    steps: list[tuple[str, list[str]]] = [
        ("render the scene world", ["scenes", "--out", str(scenes), "--n", str(n), "--seed", str(seed)]),
        ("fit LoCEs", ["fit", str(run), *model, "--layers", LAYERS, *data]),
    ]
    for method, layers in (
        ("crop", LAYERS + ",_avg_pooling"),
        ("window", LAYERS),
        ("masked-pool", LAYERS),
        ("global", LAYERS),
    ):
        steps.append(
            (
                f"embed objects with the {method} baseline",
                ["embed", str(run), "--method", method, *model, "--layers", layers, *data],
            )  # fmt: skip
        )
    test_n = max(60, n)  # the concept bottlenecks train on 3/4 of it and are scored on the rest
    steps += [
        ("analyse the LoCE distributions", ["analyze", str(run)]),
        ("analyse them with the publication's protocol (10 seeds, UMAP mixtures on 1)",
         ["analyze", str(run), "--protocol", "paper", "--seeds", "10", "--map-seeds", "1"]),
        ("compare LoCE with the baselines", ["compare-methods", str(run)]),
        ("position in the embeddings", ["location", str(run), *model, "--layers", LAYERS]),
        ("render held-out scenes for localisation",
         ["scenes", "--out", str(test_scenes), "--n", str(test_n), "--seed", str(seed + 1)]),
        ("localise concepts on the held-out scenes",
         ["localize", str(run), "--concepts", LOCALIZED_CONCEPTS, "--layers", LAYERS, "--kinds", "mean,loce,global",
          *test_data, "--name", "held-out"]),
        ("train a plain concept bottleneck",
         ["cbm", "train", "--scenes", str(test_scenes), "--out", str(plain), "--no-locator",
          "--cache", str(activations), "--seed", str(seed)]),
        ("train a Loc-CBM-style concept bottleneck",
         ["cbm", "train", "--scenes", str(test_scenes), "--out", str(loc), "--locator",
          "--cache", str(activations), "--seed", str(seed)]),
        ("compare CBM, Loc-CBM and LoCE localisation",
         ["cbm", "eval", str(plain), str(loc), "--loce-run", str(run)]),
        ("write the report", ["report", str(run), "--out", str(report)]),
    ]  # fmt: skip
    return steps


def _scenes_done(scenes: Path, n: int, seed: int) -> bool:
    annotations = scenes / "annotations.json"
    if not annotations.exists():
        return False
    try:
        info = json.loads(annotations.read_text(encoding="utf-8")).get("info", {})
    except (OSError, ValueError):
        return False
    return info.get("n_images") == n and info.get("seed") == seed


def run(args: argparse.Namespace) -> int:
    from loce.cli.main import main

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    steps = demo_commands(out, args.n, args.seed)
    start = time.perf_counter()
    for number, (title, argv) in enumerate(steps, 1):
        print(f"\n[{number}/{len(steps)}] {title}\n$ loce {shlex.join(argv)}", flush=True)
        if argv[0] == "scenes" and _scenes_done(Path(argv[2]), int(argv[4]), int(argv[6])):
            print("already rendered; skipping")
            continue
        t0 = time.perf_counter()
        code = main(argv)
        if code:
            print(f"loce demo: step {number} ({title}) failed with exit code {code}", file=sys.stderr)
            return code
        print(f"({time.perf_counter() - t0:.0f} s)", flush=True)
    report = out / "report" / "index.html"
    print(f"\ndemo finished in {time.perf_counter() - start:.0f} s; open the report: {report.resolve()}")
    return 0
