"""Deterministic rows for the store tests (imported explicitly by tests/test_store_*.py)."""

from __future__ import annotations

import numpy as np

LAYER_DIMS = {"l1": 8, "l2": 16}
CONCEPTS = ("cat", "dog")


def sample_rows(index: int, layer_dims: dict[str, int] = LAYER_DIMS, concepts=CONCEPTS) -> list[dict]:
    """Every row of sample ``index``: a pure function of ``index``.

    Samples with ``index % 7 == 3`` are unreadable images (one image-level skip row); for ``index % 5 == 1`` the
    concept ``dog`` has an empty mask (skip rows per layer); the other rows are ok LoCEs with random vectors.
    """
    rng = np.random.default_rng(index)
    sample_id = f"s{index:04d}"
    image = f"images/{sample_id}.png"
    if index % 7 == 3:
        return [
            {
                "sample_id": sample_id,
                "image": image,
                "status": "unreadable_image",
                "detail": f"{image} cannot be decoded",
            }
        ]
    rows = []
    for concept in concepts:
        mask = rng.random((6, 8)) < 0.4
        for layer, dim in layer_dims.items():
            row = {
                "sample_id": sample_id,
                "image": image,
                "concept": concept,
                "layer": layer,
                "box": [1.0, 2.0, 7.0, 5.0],
                "attributes": [{"color": "red", "index": index}],
            }
            if concept == "dog" and index % 5 == 1:
                row.update(status="empty_mask", detail="the mask is empty", mask=np.zeros((6, 8), bool))
            else:
                row.update(
                    status="ok",
                    vector=rng.standard_normal(dim).astype(np.float32),
                    iou=float(rng.integers(0, 11)) / 10,
                    loss=float(-rng.random()),
                    steps=50,
                    mask=mask,
                )
            rows.append(row)
    return rows


def rows_for(indices) -> list[dict]:
    """The rows of several samples, in order."""
    return [row for i in indices for row in sample_rows(i)]
