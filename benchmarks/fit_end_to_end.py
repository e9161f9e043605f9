"""End-to-end `loce fit` of EfficientNet-Lite0 on the scene world: where the time goes, and peak memory.

Issue 4's target: less than 25% of the run's time is spent outside the model's forward pass (data loading, LoCE
fitting, writing), i.e. the fitting engine is not the bottleneck. Prints one table; timings are measured in one run.

    .venv/bin/python benchmarks/fit_end_to_end.py [--n 200] [--layers _blocks.10,_blocks.14] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from loce.data import load_coco
from loce.models import load_model
from loce.pipeline import fit_run
from loce.scenes import generate_scenes


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=200, help="scenes to render and fit")
    parser.add_argument("--layers", default="_blocks.10,_blocks.14")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        scenes = Path(tmp) / "scenes"
        t0 = time.perf_counter()
        generate_scenes(scenes, args.n, seed=0, progress=False)
        render = time.perf_counter() - t0
        dataset = load_coco(scenes / "annotations.json", scenes / "images")
        model = load_model("efficientnet-lite0")
        summary = fit_run(
            dataset,
            model,
            args.layers.split(","),
            Path(tmp) / "run",
            batch_size=args.batch_size,
            progress=False,
        )
    t = summary.timings
    rows = [
        ("scenes rendered (not part of the fit)", f"{render:.1f} s"),
        ("images / LoCEs", f"{summary.images_processed} / {summary.vectors}"),
        ("total fit run", f"{t.total:.2f} s"),
        ("  model forward passes", f"{t.forward:.2f} s"),
        ("  LoCE fitting (all layers)", f"{t.fit:.2f} s"),
        ("  store writes", f"{t.write:.2f} s"),
        ("  waiting for image decoding", f"{t.wait:.2f} s"),
        ("share outside the forward pass", f"{t.outside_forward_share:.1%}  (target < 25%)"),
        ("LoCEs per second", f"{summary.vectors / t.total:.1f}"),
        ("fit time per LoCE", f"{1000 * t.fit / max(summary.vectors, 1):.2f} ms"),
        ("peak resident memory", f"{summary.peak_memory_mb:.0f} MB"),
    ]
    width = max(len(name) for name, _ in rows)
    print(
        f"end-to-end loce fit: efficientnet-lite0, layers {args.layers}, {args.n} scenes, batch {args.batch_size}"
    )
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
