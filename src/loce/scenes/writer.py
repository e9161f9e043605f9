"""Writing the scene world as an ordinary COCO instances dataset: ``images/*.png`` + ``annotations.json``.

Each scene ``index`` is sampled from ``(seed, index)`` alone and rendered in a worker process (one pybullet
connection per worker), so the output does not depend on the number of workers. Masks are exactly the rendered
object-id buffer (``segmentation == body id``), stored as compressed COCO RLE. Instances with fewer than
``min_visible_pixels`` visible pixels are not annotated; they are listed in the image record's
``"skipped_instances"`` and counted in ``info["skipped_instances"]``. The same seed gives the same bytes:
PNGs are encoded deterministically and the JSON has sorted keys, rounded floats and no timestamps.

Example:
    >>> root = generate_scenes("/tmp/scenes", n=8, seed=0, progress=False)  # doctest: +SKIP
    >>> sorted(p.name for p in root.iterdir())  # doctest: +SKIP
    ['annotations.json', 'images']
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pycocotools import mask as coco_mask

from loce import __version__
from loce.errors import InputError
from loce.scenes.catalog import CATEGORIES, CONFUSION_PAIRS
from loce.scenes.classes import SCENE_CLASSES, scene_class
from loce.scenes.layout import PlacedObject, SceneSpec, sample_scene
from loce.scenes.render import RenderedScene, render_scene

GENERATOR_VERSION = "1"
MIN_VISIBLE_PIXELS = 16
OUTLIER_RATE = 0.03
_CATEGORY_IDS = {c.name: i + 1 for i, c in enumerate(CATEGORIES)}


def _r(value: float, digits: int = 6) -> float:
    return round(float(value), digits)


def encode_mask(mask: np.ndarray) -> dict[str, Any]:
    """COCO compressed RLE ``{"size": [h, w], "counts": str}`` of a boolean mask."""
    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def mask_bbox(mask: np.ndarray) -> list[float]:
    """COCO box ``[x, y, width, height]`` of a non-empty boolean mask (whole pixels)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return [float(cols[0]), float(rows[0]), float(cols[-1] - cols[0] + 1), float(rows[-1] - rows[0] + 1)]


def encode_png(image: np.ndarray) -> bytes:
    """Deterministic PNG bytes of an RGB uint8 image (no metadata, fixed compression level)."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(buffer, format="PNG", compress_level=3)
    return buffer.getvalue()


def instance_attributes(
    spec: SceneSpec, obj: PlacedObject, index: int, visible: int, unoccluded: int, truncated: bool
) -> dict[str, Any]:
    """The generation parameters of one instance as written to its annotation's ``"attributes"``.

    ``distance`` is from the camera to the centre of the object's bounds (m); ``azimuth`` is the direction the
    object is seen from, relative to its own front (degrees, 0-360); ``elevation`` the camera's angle above
    the horizontal at the object's centre; ``occlusion = 1 - visible_area / unoccluded_area``, where the
    unoccluded area is the object's pixel count when rendered alone with the same camera.
    """
    eye, centre = spec.camera.eye, obj.centre
    delta = eye - centre
    bearing = np.degrees(np.arctan2(delta[1], delta[0]))
    return {
        "instance_index": index,
        "distance": _r(np.linalg.norm(delta)),
        "azimuth": _r((bearing - obj.yaw) % 360.0, 3),
        "elevation": _r(np.degrees(np.arctan2(delta[2], np.linalg.norm(delta[:2]))), 3),
        "yaw": _r(obj.yaw, 3),
        "pose": obj.pose,
        "scale": _r(obj.scale),
        "colour": obj.colour,
        "texture": obj.texture,
        "support": obj.support,
        "position": [_r(v) for v in centre],
        "near_far": obj.near_far,
        "outlier": obj.outlier_kind is not None,
        "outlier_kind": obj.outlier_kind,
        "visible_area": int(visible),
        "unoccluded_area": int(unoccluded),
        "occlusion": _r(1.0 - visible / unoccluded) if unoccluded else 1.0,
        "truncated": bool(truncated),
    }


def scene_records(
    spec: SceneSpec, rendered: RenderedScene, file_name: str, min_visible_pixels: int = MIN_VISIBLE_PIXELS
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The COCO image record and annotations (without ``"id"``) of one rendered scene."""
    annotations, skipped = [], []
    for i, obj in enumerate(spec.objects):
        mask = rendered.visible_mask(i)
        alone = rendered.unoccluded[i]
        visible, unoccluded = int(mask.sum()), int(alone.sum())
        if visible < max(1, min_visible_pixels):
            skipped.append(
                {
                    "instance_index": i,
                    "category": obj.category,
                    "visible_area": visible,
                    "reason": "no_visible_pixels" if visible == 0 else "too_few_visible_pixels",
                }
            )
            continue
        truncated = bool(alone[0].any() or alone[-1].any() or alone[:, 0].any() or alone[:, -1].any())
        annotations.append(
            {
                "image_id": spec.index + 1,
                "category_id": _CATEGORY_IDS[obj.category],
                "segmentation": encode_mask(mask),
                "area": float(visible),
                "bbox": mask_bbox(mask),
                "iscrowd": 0,
                "attributes": instance_attributes(spec, obj, i, visible, unoccluded, truncated),
            }
        )
    cam, light = spec.camera, spec.lighting
    names = [spec.objects[a["attributes"]["instance_index"]].category for a in annotations]
    image = {
        "id": spec.index + 1,
        "file_name": file_name,
        "height": spec.size,
        "width": spec.size,
        "scene_class": scene_class(names),
        "theme": spec.theme,
        "camera": {
            "azimuth": _r(cam.azimuth, 3),
            "elevation": _r(cam.elevation, 3),
            "distance": _r(cam.distance),
            "fov": _r(cam.fov, 3),
            "target": [_r(v) for v in cam.target],
            "eye": [_r(v) for v in cam.eye],
        },
        "lighting": {
            "direction": [_r(v) for v in light.direction],
            "colour": [_r(v) for v in light.colour],
            "ambient": _r(light.ambient),
            "diffuse": _r(light.diffuse),
            "specular": _r(light.specular),
            "shadow": light.shadow,
        },
        "floor": spec.floor_texture,
        "wall": spec.wall_texture,
        "skipped_instances": skipped,
    }
    return image, annotations


def _make_scene(job: tuple[int, int, int, int, float]) -> tuple[bytes, dict[str, Any], list[dict[str, Any]]]:
    """Sample, render and annotate one scene (runs in a worker process)."""
    seed, index, size, min_visible_pixels, outlier_rate = job
    spec = sample_scene(seed, index, size=size, outlier_rate=outlier_rate)
    rendered = render_scene(spec)
    image, annotations = scene_records(spec, rendered, f"{index:06d}.png", min_visible_pixels)
    return encode_png(rendered.image), image, annotations


def _run(jobs: list[tuple[int, int, int, int, float]], workers: int) -> Iterator[tuple[bytes, dict, list]]:
    if workers <= 1 or len(jobs) <= 1:
        yield from map(_make_scene, jobs)
        return
    import multiprocessing

    # spawn: the workers never inherit a parent's pybullet connection or torch thread pools
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes=workers) as pool:
        yield from pool.imap(_make_scene, jobs, chunksize=4)


def categories_json() -> list[dict[str, Any]]:
    """The COCO ``categories`` list of the scene world (ids in catalog order, from 1)."""
    return [
        {
            "id": _CATEGORY_IDS[c.name],
            "name": c.name,
            "supercategory": c.supercategory,
            "imagenet_class": c.imagenet_class,
            "imagenet_name": c.imagenet_name,
            "near_far": c.near_far,
        }
        for c in CATEGORIES
    ]


def generate_scenes(
    out_dir: str | os.PathLike,
    n: int,
    seed: int = 0,
    size: int = 224,
    progress: bool = True,
    workers: int | None = None,
    min_visible_pixels: int = MIN_VISIBLE_PIXELS,
    outlier_rate: float = OUTLIER_RATE,
) -> Path:
    """Render ``n`` scenes and write them as a COCO instances dataset under ``out_dir``.

    Args:
        out_dir: output directory; ``images/NNNNNN.png`` and ``annotations.json`` are written into it
            (existing files of the same names are overwritten; images listed by an earlier scene world written
            there and not part of this one are removed once the new annotations are in place).
        n: number of scenes.
        seed: dataset seed; scene ``i`` depends only on ``(seed, i)``.
        size: image width and height in pixels.
        progress: show a tqdm progress bar on stderr.
        workers: rendering processes (default ``min(4, cpu count)``; 0 or 1 renders in this process). The output
            is the same for every worker count.
        min_visible_pixels: instances with fewer visible pixels are not annotated (listed as skipped).
        outlier_rate: probability that an instance is drawn upside down or in an unusual colour.

    Returns:
        ``out_dir`` as a :class:`~pathlib.Path`.

    Raises:
        InputError: ``n`` < 1, ``size`` < 16 or ``out_dir`` cannot be written.

    Example:
        >>> out = generate_scenes("scenes", n=50, seed=0)  # doctest: +SKIP
        >>> from loce.data import load_coco  # doctest: +SKIP
        >>> ds = load_coco(out / "annotations.json", out / "images")  # doctest: +SKIP
    """
    if int(n) < 1:
        raise InputError(f"generate_scenes: n must be at least 1, got {n}.")
    if int(size) < 16:
        raise InputError(f"generate_scenes: size must be at least 16 pixels, got {size}.")
    root = Path(out_dir)
    image_dir = root / "images"
    try:
        image_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"Cannot create the scene output directory {image_dir}: {exc}") from None
    previous = _previous_scene_images(root / "annotations.json")
    workers = min(4, os.cpu_count() or 1) if workers is None else int(workers)
    jobs = [(int(seed), i, int(size), int(min_visible_pixels), float(outlier_rate)) for i in range(int(n))]

    from tqdm import tqdm

    images, annotations, skipped = [], [], 0
    bar = tqdm(total=len(jobs), desc="rendering scenes", unit="scene", disable=not progress)
    try:
        for png, image, anns in _run(jobs, workers):
            (image_dir / image["file_name"]).write_bytes(png)
            images.append(image)
            for ann in anns:
                ann["id"] = len(annotations) + 1
                annotations.append(ann)
            skipped += len(image["skipped_instances"])
            bar.update(1)
    finally:
        bar.close()
    info = {
        "description": "loce scene world: pybullet TinyRenderer scenes with exact object-id masks",
        "generator": "loce.scenes",
        "generator_version": GENERATOR_VERSION,
        "loce_version": __version__,
        "seed": int(seed),
        "n_images": len(images),
        "size": int(size),
        "min_visible_pixels": int(min_visible_pixels),
        "outlier_rate": float(outlier_rate),
        "skipped_instances": skipped,
        "confusion_pairs": [list(pair) for pair in CONFUSION_PAIRS],
        "near_far_categories": [c.name for c in CATEGORIES if c.near_far],
    }
    document = {
        "info": info,
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": categories_json(),
        "scene_classes": list(SCENE_CLASSES),
    }
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True) + "\n"
    target = root / "annotations.json"
    partial = root / "annotations.json.partial"
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, target)  # readers never see a half-written file
    for name in previous - {image["file_name"] for image in images}:
        (image_dir / name).unlink(missing_ok=True)  # a stale scene of an earlier, larger world
    return root


def _previous_scene_images(annotations: Path) -> set[str]:
    """File names listed by a scene world already written at ``annotations`` (empty for anything else).

    Only a document written by this generator counts, and only plain names of the form ``NNNNNN.png`` (the scene index, at least six digits), so a user's
    own dataset in the same directory is never touched.
    """
    try:
        document = json.loads(annotations.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    if not isinstance(document, dict) or document.get("info", {}).get("generator") != "loce.scenes":
        return set()
    names = {image.get("file_name") for image in document.get("images", []) if isinstance(image, dict)}
    return {name for name in names if isinstance(name, str) and re.fullmatch(r"\d{6,}\.png", name)}
