"""The activation cache on the scene world with EfficientNet-Lite0: forward passes saved, and float16's effect.

Runs, side by side on the same scenes: `fit` + `window` + `masked-pool` + `global` + the CBM features of one
layer, with the cache off, then with it on (one forward pass per image for all five), then `fit` with a float16
cache. Prints per step the time and the images forwarded / served from the cache, the time ratio off / on, and
the cosine between float32 and float16 LoCEs (what the opt-in float16 cache changes).

    .venv/bin/python benchmarks/activation_cache.py [--n 60] [--scenes DIR [--limit N]]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from loce.activations import ActivationSource, CacheOptions, iter_activations
from loce.baselines import embed_run
from loce.data import ConceptDataset, load_coco
from loce.models import load_model
from loce.pipeline import fit_run
from loce.store import LoCEStore

LAYERS = ["_blocks.10", "_blocks.14"]
STEPS = ("fit", "window", "masked-pool", "global", "cbm features")


def cbm_features(dataset, model, run: Path, cache) -> tuple[int, int]:
    """What ``loce cbm train --cache RUN/cache/activations`` reads: ``_blocks.10`` of every image."""
    with ActivationSource(model, [LAYERS[0]], cache=CacheOptions.of(cache).located(run)) as source:
        for item in iter_activations(source, dataset, 32, max_bytes=None):
            assert item.activations[LAYERS[0]].shape[0] == len(item.batch.image_samples)
    return source.counts.forwarded, source.counts.cached


def run_steps(dataset, model, run: Path, cache) -> list[tuple[str, float, int, int]]:
    """``(step, seconds, images forwarded, images from the cache)`` of each step into ``run``."""
    out = []
    for step in STEPS:
        t0 = time.perf_counter()
        if step == "fit":
            summary = fit_run(dataset, model, LAYERS, run, progress=False, activation_cache=cache)
            counts = summary.images_forwarded, summary.images_cached
        elif step == "cbm features":
            counts = cbm_features(dataset, model, run, cache)
        else:
            summary = embed_run(
                dataset, model, LAYERS, run, method=step, progress=False, activation_cache=cache
            )
            counts = summary.images_forwarded, summary.images_cached
        out.append((step, time.perf_counter() - t0, *counts))
    return out


def loce_vectors(run: Path):
    """The run's LoCEs (one array per row; layers differ in length), sorted by (sample, concept, layer), and keys."""
    frame = LoCEStore.open(run).frame(method="loce", columns=["sample_id", "concept", "layer", "vector"])
    frame = frame.sort_values(["sample_id", "concept", "layer"]).reset_index(drop=True)
    return [np.asarray(v, dtype=np.float64) for v in frame["vector"]], frame[
        ["sample_id", "concept", "layer"]
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=60, help="scenes to render (when --scenes is not given)")
    parser.add_argument("--scenes", type=Path, help="an existing scene folder (annotations.json + images/)")
    parser.add_argument("--limit", type=int, help="use only the first N images of --scenes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scenes = args.scenes
        if scenes is None:
            from loce.scenes import generate_scenes

            scenes = generate_scenes(Path(tmp) / "scenes", n=args.n, seed=0, progress=False)
        dataset = load_coco(scenes / "annotations.json", scenes / "images")
        if args.limit:
            dataset = ConceptDataset(
                list(dataset)[: args.limit], dataset.categories, dataset.root, format="coco"
            )
        model = load_model("efficientnet-lite0")
        off = run_steps(dataset, model, Path(tmp) / "off", False)
        on = run_steps(dataset, model, Path(tmp) / "on", True)
        print(f"{len(dataset)} images, layers {', '.join(LAYERS)}")
        print(f"{'step':<12} {'off: s':>8} {'fwd':>5} {'on: s':>8} {'fwd':>5} {'cached':>7} {'off/on':>7}")
        for (step, t_off, f_off, _), (_, t_on, f_on, c_on) in zip(off, on):
            print(f"{step:<12} {t_off:8.1f} {f_off:5d} {t_on:8.1f} {f_on:5d} {c_on:7d} {t_off / t_on:7.2f}")
        total_off, total_on = sum(r[1] for r in off), sum(r[1] for r in on)
        print(f"{'total':<12} {total_off:8.1f} {'':5} {total_on:8.1f} {'':5} {'':7} {total_off / total_on:7.2f}",
              flush=True)  # fmt: skip
        half = Path(tmp) / "half"
        fit_run(dataset, model, LAYERS, half, progress=False, activation_cache=CacheOptions(dtype="float16"))
        X32, meta32 = loce_vectors(Path(tmp) / "on")
        X16, meta16 = loce_vectors(half)
    assert meta32.equals(meta16), "the float16 and float32 runs hold other LoCEs"
    cos = np.array([a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) for a, b in zip(X32, X16)])
    diff = max(float(np.abs(a - b).max()) for a, b in zip(X32, X16))
    print(f"float16 vs float32 LoCEs ({len(cos)}): cosine min {cos.min():.6f}, median {np.median(cos):.6f}; "
          f"max |difference| {diff:.2e}")  # fmt: skip


if __name__ == "__main__":
    main()
