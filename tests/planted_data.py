"""A tiny planted COCO dataset and a model whose activations make the planted masks exactly recoverable.

Each 64 x 64 image shows a red square and a blue disk on a dark background. The model's layer ``pool`` averages
4 x 4 pixel blocks of the (normalised) RGB image, so a LoCE with a large red weight and negative others
reconstructs the red square: a fitted LoCE must reach a high IoU, and its red component must dominate.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from pycocotools import mask as coco_mask
from torch import nn

from loce.models import LoadedModel
from loce.preprocessing import Preprocessing

SIZE = 64


class PlantedNet(nn.Module):
    """``pool``: 4 x 4 average pooling of the RGB input (3 x 16 x 16 at 64 px); ``head``: a global mean."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = nn.AvgPool2d(4)
        self.head = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(x)).flatten(1)


def planted_model() -> LoadedModel:
    """The planted model with a plain [0, 1] -> [-1, 1] preprocessing at 64 px."""
    module = PlantedNet().eval()
    return LoadedModel(module=module, preprocessing=Preprocessing((SIZE, SIZE), (0.5,) * 3, (0.5,) * 3),
                       spec="planted")  # fmt: skip


def write_planted_coco(root: Path, n: int = 12, seed: int = 0) -> tuple[Path, Path]:
    """Write ``n`` planted images + a COCO file (RLE masks) under ``root``; return (annotations, images dir)."""
    rng = np.random.default_rng(seed)
    images_dir = root / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    for i in range(n):
        rgb = np.full((SIZE, SIZE, 3), 30, np.uint8)
        x0, y0 = rng.integers(2, 26, size=2)
        side = int(rng.integers(16, 24))
        red = np.zeros((SIZE, SIZE), bool)
        red[y0 : y0 + side, x0 : x0 + side] = True
        cx, cy, r = rng.integers(40, 54), rng.integers(40, 54), int(rng.integers(6, 10))
        blue = ((yy - cy) ** 2 + (xx - cx) ** 2 <= r * r) & ~red
        rgb[red] = (220, 20, 20)
        rgb[blue] = (20, 20, 220)
        name = f"img_{i:03d}.png"
        Image.fromarray(rgb).save(images_dir / name)
        images.append({"id": i + 1, "file_name": name, "height": SIZE, "width": SIZE})
        for cid, mask in ((1, red), (2, blue)):
            rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
            ys, xs = np.nonzero(mask)
            anns.append({
                "id": len(anns) + 1, "image_id": i + 1, "category_id": cid, "iscrowd": 0,
                "segmentation": {"size": [SIZE, SIZE], "counts": rle["counts"].decode("ascii")},
                "area": float(mask.sum()),
                "bbox": [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)],
                "attributes": {"index": i, "kind": "square" if cid == 1 else "disk"},
            })  # fmt: skip
    data = {"images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "red"}, {"id": 2, "name": "blue"}]}  # fmt: skip
    annotations = root / "annotations.json"
    annotations.write_text(json.dumps(data), encoding="utf-8")
    return annotations, images_dir
