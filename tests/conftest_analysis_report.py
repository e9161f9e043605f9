"""A small run with images on disk and planted LoCE structure, for the figure-data and report tests.

Imported explicitly (not a pytest conftest). Three concepts, each a coloured shape on a noisy background; the
LoCEs of each concept scatter around a concept direction, and ``ball`` is planted as two sub-concepts (two
directions; the first half of its samples are ``near``, the second half ``far``); the last ``CONFUSED_CUBES``
``cube`` LoCEs lie among the ``mug`` LoCEs (a planted confusion). The job's model spec is not
loadable, so galleries are drawn without heat maps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from conftest_report import synthetic_image
from loce.store import JobSpec, LoCEStore, rle_from_mask

CONCEPTS = ["ball", "cube", "mug"]
LAYERS = ["l1", "l2"]
PER_CONCEPT = 20
DIM = 16
MODEL = "toy-model"
CONFUSED_CUBES = 4


def planted_vectors(rng: np.random.Generator, noise: float) -> tuple[np.ndarray, list[str], np.ndarray]:
    """``(X, labels, near)``: concept directions plus noise; ``ball`` has a near and a far sub-direction."""
    directions = rng.normal(size=(len(CONCEPTS), DIM)) * 3
    ball_far = directions[0] + rng.normal(size=DIM) * 3
    rows, labels, near = [], [], []
    for c, concept in enumerate(CONCEPTS):
        for i in range(PER_CONCEPT):
            is_near = i < PER_CONCEPT // 2
            centre = directions[c] if (concept != "ball" or is_near) else ball_far
            if concept == "cube" and i >= PER_CONCEPT - CONFUSED_CUBES:
                centre = directions[CONCEPTS.index("mug")]  # a planted confusion: these cubes look like mugs
            rows.append(centre + rng.normal(scale=noise, size=DIM))
            labels.append(concept)
            near.append(is_near)
    return np.asarray(rows, np.float32), labels, np.asarray(near)


def make_run(root: Path, seed: int = 0) -> tuple[Path, dict[str, np.ndarray], list[str]]:
    """Write images and a two-layer store under ``root``; returns ``(run, {layer: X}, labels)``."""
    rng = np.random.default_rng(seed)
    images = root / "images"
    images.mkdir(parents=True)
    vectors, labels = {}, None
    for layer, noise in zip(LAYERS, (0.4, 0.8)):
        vectors[layer], labels, near = planted_vectors(np.random.default_rng(seed + 1), noise)
    rows = []
    for n, concept in enumerate(labels):
        c = CONCEPTS.index(concept)
        sample_id = f"{concept}{n:03d}"
        image, mask = synthetic_image(rng, n, c)
        Image.fromarray(image).save(images / f"{sample_id}.png")
        for layer in LAYERS:
            rows.append(
                {
                    "sample_id": sample_id,
                    "image": f"{sample_id}.png",
                    "concept": concept,
                    "layer": layer,
                    "status": "ok",
                    "vector": vectors[layer][n],
                    "iou": float(rng.uniform(0.3, 0.9)),
                    "mask_rle": rle_from_mask(mask),
                    "mask_height": mask.shape[0],
                    "mask_width": mask.shape[1],
                    "attributes": [
                        {"near_far": ("near" if near[n] else "far") if concept == "ball" else None}
                    ],
                }
            )
    run = root / "run"
    with LoCEStore.create(run, image_root=images) as store:
        store.register_job(JobSpec("toy", model=MODEL, layers=LAYERS))
        store.append("toy", rows)
    return run, vectors, labels


def brute_force_top_k(X: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-out cosine top-k by a full sort (ties by lower index): ``(indices, similarities)``."""
    unit = X / np.linalg.norm(X, axis=1, keepdims=True)
    sims = unit.astype(np.float64) @ unit.T.astype(np.float64)
    np.fill_diagonal(sims, -np.inf)
    order = np.stack([np.lexsort((np.arange(len(X)), -row))[:k] for row in sims])
    return order, np.take_along_axis(sims, order, axis=1)
