"""``loce fit``: fit LoCEs of a model's layers for a dataset and store them in a run directory."""

from __future__ import annotations

import argparse
import sys

from loce.cli.common import (
    add_command,
    add_data_options,
    add_model_options,
    load_dataset_from_args,
    load_model_from_args,
    split_list,
)
from loce.fit.settings import PRESETS

EXAMPLES = """
  loce fit --model efficientnet-lite0 --layers _blocks.10,_blocks.14 \\
           --coco scenes/annotations.json --images scenes/images --out RUN
  loce fit --model timm:vit_small_patch16_224 --layers blocks.6 --voc VOCdevkit/VOC2012 --out RUN_VIT
  loce fit --model torchvision:resnet50 --layers layer3 --folder my_data --preset fast --device cuda --out RUN2
Running the same command again resumes an interrupted run; images already stored are not recomputed.
"""


def register(subparsers) -> None:
    parser = add_command(
        subparsers,
        "fit",
        help="fit LoCEs for every (image, concept) and store them",
        description=(
            "Fit one Local Concept Embedding per (image, concept) at each layer: the vector whose 1x1 projection "
            "of the layer's activations reconstructs the concept's mask. Results go to a resumable Parquet store."
        ),
        examples=EXAMPLES,
    )
    add_model_options(parser)
    add_data_options(parser)
    parser.add_argument("--out", required=True, help="run directory (created, or resumed if it exists)")
    parser.add_argument(
        "--preset",
        default="paper",
        choices=sorted(PRESETS),
        help="fit settings preset ('paper': the publication's)",
    )
    parser.add_argument("--job", help="job name inside the run (default: loce.<model>)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from loce.pipeline import fit_run

    dataset = load_dataset_from_args(args)
    model = load_model_from_args(args)
    summary = fit_run(
        dataset,
        model,
        split_list(args.layers),
        args.out,
        settings=args.preset,
        job=args.job,
        batch_size=args.batch_size,
        device=args.device,
        strict=args.strict,
        seed=args.seed,
        progress=not args.no_progress,
    )
    print_fit_summary(summary, dataset)
    return 0


def print_fit_summary(summary, dataset=None, file=None) -> None:
    """Print the IoU table per concept and layer and the skips of a finished run (to stdout by default)."""
    file = file or sys.stdout
    t = summary.timings
    print(
        f"\n{summary.images_processed} images processed ({summary.images_done_before} already stored), "
        f"{summary.vectors} LoCEs written to {summary.out} (job {summary.job}) in {t.total:.1f} s "
        f"[forward {t.forward:.1f} s, fit {t.fit:.1f} s, write {t.write:.1f} s; "
        f"{t.outside_forward_share:.0%} outside the forward pass; peak memory {summary.peak_memory_mb:.0f} MB]",
        file=file,
    )
    table = summary.table()
    if not table.empty:
        print("\nIoU per concept and layer (whole job):", file=file)
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"), file=file)
    skips = dict(summary.skips)
    if dataset is not None:
        for reason, n in dataset.skips.counts().items():
            skips[f"{reason} (annotations)"] = skips.get(f"{reason} (annotations)", 0) + n
    if skips:
        print("\nskipped: " + ", ".join(f"{k}: {v}" for k, v in sorted(skips.items())), file=file)
        print(f"details: `loce info {summary.out} --skips`", file=file)
