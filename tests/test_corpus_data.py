"""The bad-input corpus, data part: every case is generated here and states its expected outcome.

Each case edits a freshly written fixture dataset (``fixtures_data``: COCO, VOC or folder, with hand-drawn ground
truth) and expects exactly one of:

- ``Raises(error, text)``: loading (or decoding the batch) raises ``error`` with ``text`` (naming the file) in a
  one-line message;
- ``Skipped(status, text)``: a recorded skip of that status whose detail names the file, at annotation time
  (``dataset.skips``) or when the batch is decoded (skip rows); with ``strict=True`` the same input raises;
- ``Repaired(check)``: loading succeeds and ``check`` compares the result with the ground truth.

Whatever the outcome, every (image, concept) pair that does load must equal the fixture's ground truth: no case
may produce a silently wrong mask. A few cases run the CLI (``loce fit``) and check its exit code and that stderr
is one line without a traceback. ``docs/RELIABILITY.md`` lists these cases.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from fixtures_data import (
    make_coco_dataset,
    make_folder_dataset,
    make_voc_dataset,
    noise_image,
    rect_mask,
    rect_polygon,
    rle_compressed,
    truncate_file,
    voc_palette,
    write_coco_json,
    write_garbage,
    write_image,
    write_png,
    write_sparse_png,
    write_voc_split,
)
from loce.batches import LoadedBatch, load_batch
from loce.cli.main import main
from loce.data import ConceptDataset, load_coco, load_folder, load_voc
from loce.errors import InputError, UnsafePathError
from planted_data import write_planted_coco

# ------------------------------------------------------------------------------------------------ outcomes


@dataclass(frozen=True)
class Raises:
    error: type[Exception]
    text: str


@dataclass(frozen=True)
class Skipped:
    status: str
    text: str
    strict_text: str | None = (
        None  # what strict loading raises, when an earlier check of the file fires first
    )


@dataclass(frozen=True)
class Repaired:
    check: Callable[[ConceptDataset, LoadedBatch, Any], None]


@dataclass(frozen=True)
class Case:
    id: str
    fmt: str  # "coco", "voc" or "folder"
    edit: Callable[[Any], None]
    expect: Raises | Skipped | Repaired


def make_clean_coco(root: Path):
    """The COCO fixture without its one deliberate problem (image 12's two-point polygon, an ``empty_mask``), so
    that strict loading of a case fails on the case's own problem."""
    fx = make_coco_dataset(root)
    fx.data["annotations"] = [a for a in fx.data["annotations"] if a["image_id"] != 12]
    write_coco_json(fx.annotations, fx.data)
    return fx


BUILD = {"coco": make_clean_coco, "voc": make_voc_dataset, "folder": make_folder_dataset}


def load(fmt: str, fx: Any, strict: bool = False) -> ConceptDataset:
    if fmt == "coco":
        return load_coco(fx.annotations, fx.images, strict=strict)
    if fmt == "voc":
        return load_voc(fx.root, strict=strict)
    return load_folder(fx.root, strict=strict)


def load_all(fmt: str, fx: Any, strict: bool = False) -> tuple[ConceptDataset, LoadedBatch]:
    ds = load(fmt, fx, strict)
    return ds, load_batch(list(ds), strict=strict)


# ------------------------------------------------------------------------------------------------ COCO edits


def coco_edit(change: Callable[[dict], None]) -> Callable[[Any], None]:
    """An edit of a copy of the fixture's JSON (rewritten afterwards; the fixture shares its category dicts)."""

    def edit(fx):
        fx.data = copy.deepcopy(fx.data)
        change(fx.data)
        write_coco_json(fx.annotations, fx.data)

    return edit


def ann(data: dict, image_id: int, category_id: int) -> dict:
    return next(
        a for a in data["annotations"] if a["image_id"] == image_id and a["category_id"] == category_id
    )


def image_entry(data: dict, image_id: int) -> dict:
    return next(e for e in data["images"] if e["id"] == image_id)


def set_segm(image_id: int, category_id: int, segm: Any) -> Callable[[Any], None]:
    return coco_edit(lambda d: ann(d, image_id, category_id).update(segmentation=segm))


def set_ann(image_id: int, cid: int, /, **fields: Any) -> Callable[[Any], None]:
    return coco_edit(lambda d: ann(d, image_id, cid).update(fields))


def set_image(image_id: int, **fields: Any) -> Callable[[Any], None]:
    return coco_edit(lambda d: image_entry(d, image_id).update(fields))


def drop_image_key(image_id: int, key: str) -> Callable[[Any], None]:
    return coco_edit(lambda d: image_entry(d, image_id).pop(key))


def write_file(name: str, content: bytes) -> Callable[[Any], None]:
    def edit(fx):
        fx.annotations.write_bytes(content)

    edit.__name__ = name
    return edit


def replace_image(make: Callable[[Path], None]) -> Callable[[Any], None]:
    """Overwrite COCO image 1 (``img_001.png``, 40 x 60) with what ``make(path)`` writes."""

    def edit(fx):
        make(fx.images / "img_001.png")

    return edit


def exact_image(expected: Callable[[np.ndarray], np.ndarray], write: Callable[[Path, np.ndarray], None]):
    """Image 1 rewritten by ``write(path, rgb)``; it must load as ``expected(rgb)``."""

    def edit(fx):
        rgb = fx.rgb["1"]
        write(fx.images / "img_001.png", rgb)
        fx.rgb["1"] = expected(rgb)

    return edit


def check_image_1(ds: ConceptDataset, batch: LoadedBatch, fx) -> None:
    index = [s.sample_id for s in batch.image_samples].index("1")
    np.testing.assert_array_equal(batch.images[index], fx.rgb["1"])
    assert not batch.skip_rows and not ds.skips


def check_truth(ds: ConceptDataset, batch: LoadedBatch, fx) -> None:
    """Every pair of the fixture's truth loaded (the runner checks their pixels)."""
    loaded = {(p.sample_id, p.concept) for p in batch.pairs}
    assert loaded == {(sid, c) for sid, concepts in fx.truth.items() for c in concepts}


def check_repairs(reason: str, count: int) -> Callable[[ConceptDataset, LoadedBatch, Any], None]:
    def check(ds, batch, fx):
        check_truth(ds, batch, fx)
        assert ds.repairs.counts() == {reason: count}
        assert all(re.search(r"\.(png|jpg)\b", r.detail) and r.sample_id for r in ds.repairs)

    return check


def check_box(sample_id: str, concept: str, index: int, box: tuple[float, ...]):
    def check(ds, batch, fx):
        check_truth(ds, batch, fx)
        assert ds.by_id(sample_id).concepts[concept].instances[index].box == box
        assert ds.repairs.counts() == {"bbox_repaired": 1}

    return check


def coco_symlink_out(fx) -> None:
    fx.data = copy.deepcopy(fx.data)
    outside = write_image(fx.images.parent.parent / "outside" / "secret.png", noise_image(40, 60, 0))
    (fx.images / "link.png").symlink_to(outside)
    image_entry(fx.data, 1)["file_name"] = "link.png"
    write_coco_json(fx.annotations, fx.data)


def coco_symlink_in(fx) -> None:
    fx.data = copy.deepcopy(fx.data)
    (fx.images / "alias.png").symlink_to(fx.images / "img_001.png")
    image_entry(fx.data, 1)["file_name"] = "alias.png"
    write_coco_json(fx.annotations, fx.data)


def coco_two_ids_one_file(data: dict) -> None:
    data["images"].append({**image_entry(data, 1), "id": 70})
    data["annotations"].append({**ann(data, 1, 2), "id": 7000, "image_id": 70})


def coco_text_ids(data: dict) -> None:
    for entry in data["images"]:
        entry["id"] = str(entry["id"])
    for a in data["annotations"]:
        a["image_id"] = str(a["image_id"])


def coco_area(value: Any) -> Callable[[Any], None]:
    def change(data):
        for a in data["annotations"]:
            a["area"] = value

    return coco_edit(change)


def coco_degenerate_part(data: dict) -> None:
    a = ann(data, 7, 1)  # cat: one 20 x 20 rectangle; add a two-point "polygon" beside it
    a["segmentation"] = [rect_polygon(26, 5, 46, 25), [1, 1, 5, 5]]


def exif_rotated(stated_displayed: bool) -> Callable[[Any], None]:
    def edit(fx):
        stored = np.ascontiguousarray(np.rot90(fx.rgb["1"], 1))  # 60 x 40; displayed (orientation 6): 40 x 60
        exif = Image.Exif()
        exif[0x0112] = 6
        write_image(fx.images / "img_001.png", stored, exif=exif.tobytes())
        if not stated_displayed:
            fx.data = copy.deepcopy(fx.data)
            image_entry(fx.data, 1).update(height=60, width=40)
            write_coco_json(fx.annotations, fx.data)

    return edit


def animated_gif(path: Path, rgb: np.ndarray) -> None:
    palette = voc_palette()
    indices = (rgb[..., 0] // 64).astype(np.uint8)
    frames = []
    for k in range(2):
        frame = Image.fromarray((indices + 4 * k).astype(np.uint8), mode="L").convert("P")
        frame = Image.frombytes("P", frame.size, frame.tobytes())
        frame.putpalette(palette)
        frames.append(frame)
    frames[0].save(path, format="GIF", save_all=True, append_images=frames[1:], optimize=False, loop=0)


def animated_gif_expected(rgb: np.ndarray) -> np.ndarray:
    table = np.asarray(voc_palette(), dtype=np.uint8).reshape(256, 3)
    return table[(rgb[..., 0] // 64)]


# ------------------------------------------------------------------------------------------------ VOC edits


def voc_class_png(
    image_id: str, make: Callable[[np.ndarray], tuple[np.ndarray, str]]
) -> Callable[[Any], None]:
    """Rewrite a class PNG: ``make(class_map)`` returns the values and the mode to save them in."""

    def edit(fx):
        path = fx.root / "SegmentationClass" / f"{image_id}.png"
        with Image.open(path) as img:
            labels = np.asarray(img)
        values, mode = make(labels)
        write_png(path, values, mode=mode, palette=voc_palette() if mode == "P" else None)

    return edit


def voc_binary(labels: np.ndarray) -> tuple[np.ndarray, str]:
    return np.where((labels > 0) & (labels < 255), 255, 0).astype(np.uint8), "L"


def voc_shrink_pngs(image_id: str) -> Callable[[Any], None]:
    """Cut the class and object PNGs of an image to 20 rows (the photo keeps its 24)."""

    def edit(fx):
        for sub in ("SegmentationClass", "SegmentationObject"):
            path = fx.root / sub / f"{image_id}.png"
            with Image.open(path) as img:
                img.crop((0, 0, img.width, 20)).save(path)

    return edit


def voc_unlink(sub: str, name: str) -> Callable[[Any], None]:
    def edit(fx):
        (fx.root / sub / name).unlink()

    return edit


def voc_file(sub: str, name: str, make: Callable[[Path], Any]) -> Callable[[Any], None]:
    def edit(fx):
        make(fx.root / sub / name)

    return edit


def voc_split(ids: list[str]) -> Callable[[Any], None]:
    def edit(fx):
        write_voc_split(fx.root, "val", ids)

    return edit


def voc_png_image(fx) -> None:
    jpg = fx.root / "JPEGImages" / "2008_000002.jpg"
    with Image.open(jpg) as img:
        img.save(jpg.with_suffix(".png"))
    jpg.unlink()


def voc_no_split_file(fx) -> None:
    (fx.root / "ImageSets" / "Segmentation" / "val.txt").unlink()


# ------------------------------------------------------------------------------------------------ folder edits


def folder_mask(sample: str, concept: str, make: Callable[[Any], tuple[np.ndarray, str]], *, truth=None):
    """Rewrite a folder mask from the truth; ``truth(fx)`` (optional) is the mask expected afterwards."""

    def edit(fx):
        values, mode = make(fx.truth[sample][concept])
        write_png(fx.root / "masks" / sample / f"{concept}.png", values, mode=mode, palette=[0, 0, 0] * 256)
        if truth is not None:
            fx.truth[sample][concept] = truth(fx.truth[sample][concept])

    return edit


def grey_edges(truth: np.ndarray) -> tuple[np.ndarray, str]:
    values = truth.astype(np.uint8) * 230
    rows, cols = np.nonzero(truth)
    values[rows.min() - 1, cols.min() : cols.max() + 1] = 90  # outside the object, below half scale
    values[rows.min(), cols.min() : cols.max() + 1] = 160  # inside, above
    return values, "L"


def void_ring(truth: np.ndarray) -> tuple[np.ndarray, str]:
    values = truth.astype(np.uint8)
    grown = np.zeros_like(truth)
    grown[1:-1, 1:-1] = truth[:-2, 1:-1] | truth[2:, 1:-1] | truth[1:-1, :-2] | truth[1:-1, 2:]
    values[grown & ~truth] = 255
    return values, "L"


def folder_file(rel: str, make: Callable[[Path], Any]) -> Callable[[Any], None]:
    def edit(fx):
        make(fx.root / rel)

    return edit


def folder_jpg_mask(fx) -> None:
    mask = (fx.truth["a"]["cat"].astype(np.uint8) * 255)[..., None].repeat(3, axis=2)
    write_image(fx.root / "masks" / "a" / "sofa.jpg", mask)


def folder_symlink_out(fx) -> None:
    outside = write_png(fx.root.parent / "outside" / "cat.png", np.ones((20, 30), dtype=np.uint8))
    (fx.root / "masks" / "a" / "horse.png").symlink_to(outside)


def folder_unlisted_category(fx) -> None:
    (fx.root / "categories.txt").write_text("cat\n", encoding="utf-8")
    del fx.truth["a"]["dog"]


def folder_no_masks_dir(fx) -> None:
    import shutil

    shutil.rmtree(fx.root / "masks")


def unlink(path_of: Callable[[Any], Path]) -> Callable[[Any], None]:
    def edit(fx):
        path_of(fx).unlink()

    return edit


def bomb(path: Path) -> None:
    write_sparse_png(path, 8000, 8000)


def text_file(path: Path) -> None:
    write_garbage(path, b"P6 this is a text file named like an image\n")


def zero_bytes(path: Path) -> None:
    path.write_bytes(b"")


def truncated(path: Path) -> None:
    truncate_file(path, keep=0.4)


def directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


# ------------------------------------------------------------------------------------------------ the cases

IMG1 = "img_001.png"
J = "annotations.json"
C: list[Case] = [
    # COCO: the annotation file itself
    Case("coco-json-truncated", "coco", write_file("t", b'{"images": [{"id": 1, "file_na'), Raises(InputError, J)),
    Case("coco-json-zero-bytes", "coco", write_file("z", b""), Raises(InputError, "not valid JSON")),
    Case("coco-json-array", "coco", write_file("a", b"[1, 2]"), Raises(InputError, "must hold a JSON object")),
    Case("coco-json-not-utf8", "coco", write_file("u", b"\xff\xfe{\x00"), Raises(InputError, J)),
    Case("coco-json-no-annotations", "coco", coco_edit(lambda d: d.pop("annotations")),
         Raises(InputError, "no 'annotations' list")),
    Case("coco-json-no-categories", "coco", coco_edit(lambda d: d.pop("categories")),
         Raises(InputError, "no 'categories' list")),
    Case("coco-json-images-not-a-list", "coco", coco_edit(lambda d: d.update(images={"1": {}})),
         Raises(InputError, "no 'images' list")),
    Case("coco-category-without-name", "coco", coco_edit(lambda d: d["categories"][0].pop("name")),
         Raises(InputError, "needs an integer id and a name")),
    Case("coco-category-id-bool", "coco", coco_edit(lambda d: d["categories"][0].update(id=True)),
         Raises(InputError, "needs an integer id and a name")),
    Case("coco-duplicate-category-name", "coco", coco_edit(lambda d: d["categories"].append({"id": 9, "name": "cat"})),
         Raises(InputError, "duplicate category name")),
    Case("coco-duplicate-image-id", "coco", coco_edit(lambda d: d["images"].append({**d["images"][2], "id": 1})),
         Raises(InputError, "duplicate image id: 1 and 1")),
    Case("coco-image-ids-1-and-text-1", "coco",
         coco_edit(lambda d: d["images"].append({**d["images"][2], "id": "1"})),
         Raises(InputError, "1 and '1' (both become the sample id '1')")),
    Case("coco-path-dotdot", "coco", set_image(1, file_name="../outside.png"), Raises(UnsafePathError, "outside.png")),
    Case("coco-path-absolute", "coco", set_image(1, file_name="/etc/hostname"), Raises(UnsafePathError, "/etc/hostname")),
    Case("coco-path-nul", "coco", set_image(1, file_name="img\x00.png"), Raises(UnsafePathError, "NUL")),
    Case("coco-symlink-out-of-root", "coco", coco_symlink_out, Raises(UnsafePathError, "link.png")),
    # COCO: annotations that cannot be used
    Case("coco-unknown-category", "coco", set_ann(1, 2, category_id=99), Skipped("bad_annotation", "category_id 99")),
    Case("coco-category-id-true", "coco", set_ann(7, 1, category_id=True),
         Skipped("bad_annotation", "category_id True, which is not an integer")),
    Case("coco-category-id-text", "coco", set_ann(7, 1, category_id="1"), Skipped("bad_annotation", "category_id '1'")),
    Case("coco-unknown-image-id", "coco", set_ann(1, 2, image_id=404), Skipped("bad_annotation", "image_id 404")),
    Case("coco-image-id-null", "coco", set_ann(1, 2, image_id=None), Skipped("bad_annotation", "image_id None")),
    Case("coco-annotation-not-object", "coco", coco_edit(lambda d: d["annotations"].append(42)),
         Skipped("bad_annotation", "42 is not an object")),
    Case("coco-image-entry-without-id", "coco", coco_edit(lambda d: d["images"].append({"file_name": "x.png"})),
         Skipped("bad_annotation", "image entry without an integer or text id")),
    Case("coco-image-id-bool", "coco", coco_edit(lambda d: d["images"].append({"id": True, "file_name": "x.png"})),
         Skipped("bad_annotation", "image entry without an integer or text id")),
    Case("coco-image-no-height", "coco", drop_image_key(7, "height"), Skipped("bad_annotation", "img_007.jpg")),
    Case("coco-image-height-zero", "coco", set_image(7, height=0), Skipped("bad_annotation", "height=0")),
    Case("coco-image-height-true", "coco", set_image(7, height=True), Skipped("bad_annotation", "height=True")),
    Case("coco-image-height-text", "coco", set_image(7, height="32"), Skipped("bad_annotation", "height='32'")),
    Case("coco-image-no-file-name", "coco", drop_image_key(7, "file_name"), Skipped("bad_annotation", "file_name=None")),
    Case("coco-polygon-odd-coordinates", "coco", set_segm(7, 5, [[40, 2, 42, 2, 42]]),
         Skipped("bad_annotation", "not a flat list of x, y numbers")),
    Case("coco-polygon-nan", "coco", set_segm(7, 5, [[40, 2, float("nan"), 2, 42, 4, 40, 4]]),
         Skipped("bad_annotation", "img_007.jpg: a polygon")),
    Case("coco-polygon-infinite", "coco", set_segm(7, 5, [[40, 2, float("inf"), 2, 42, 4, 40, 4]]),
         Skipped("bad_annotation", "a polygon is not")),
    Case("coco-polygon-text-coordinates", "coco", set_segm(7, 5, [["40", 2, 42, 2, 42, 4]]),
         Skipped("bad_annotation", "a polygon is not")),
    Case("coco-polygon-bool-coordinates", "coco", set_segm(7, 5, [[True, 2, 42, 2, 42, 4]]),
         Skipped("bad_annotation", "a polygon is not")),
    Case("coco-polygon-fewer-than-3-points", "coco", set_segm(7, 5, [[40, 2, 42, 4]]),
         Skipped("empty_mask", "'car' in image sub/img_007.jpg has no pixels")),
    Case("coco-segmentation-text", "coco", set_segm(7, 5, "oops"), Skipped("bad_annotation", "of type str")),
    Case("coco-segmentation-missing", "coco", set_segm(7, 5, None), Skipped("bad_annotation", "of type NoneType")),
    Case("coco-rle-runs-short-0:5", "coco", set_segm(1, 2, {"size": [40, 60], "counts": "0:5"}),
         Skipped("bad_annotation", "img_001.png: compressed RLE runs cover 15 pixels, not 40 x 60")),
    Case("coco-rle-empty-counts", "coco", set_segm(1, 2, {"size": [40, 60], "counts": ""}),
         Skipped("bad_annotation", "cover 0 pixels")),
    Case("coco-rle-too-many-runs", "coco", set_segm(1, 2, {"size": [40, 60], "counts": "0P[20P[2"}),
         Skipped("bad_annotation", "cover 7200 pixels")),
    Case("coco-rle-ends-mid-run", "coco", set_segm(1, 2, {"size": [40, 60], "counts": "0P["}),
         Skipped("bad_annotation", "end in the middle of a run")),
    Case("coco-rle-bad-characters", "coco", set_segm(1, 2, {"size": [40, 60], "counts": "0 ~5"}),
         Skipped("bad_annotation", "outside the RLE alphabet")),
    Case("coco-rle-uncompressed-short", "coco", set_segm(1, 2, {"size": [40, 60], "counts": [0, 5]}),
         Skipped("bad_annotation", "uncompressed RLE runs cover 5 pixels")),
    Case("coco-rle-uncompressed-negative", "coco", set_segm(1, 2, {"size": [40, 60], "counts": [2405, -5]}),
         Skipped("bad_annotation", "not all non-negative integers")),
    Case("coco-rle-uncompressed-floats", "coco", set_segm(1, 2, {"size": [40, 60], "counts": [2000.0, 400.0]}),
         Skipped("bad_annotation", "not all non-negative integers")),
    Case("coco-rle-size-differs", "coco", set_segm(7, 2, rle_compressed(rect_mask(10, 10, 2, 2, 5, 5))),
         Skipped("mask_size_mismatch", "RLE size 10 x 10 differs from the image's stated 32 x 48")),
    Case("coco-rle-size-not-a-pair", "coco", set_segm(1, 2, {"size": [40], "counts": "0P[2"}),
         Skipped("bad_annotation", "RLE size [40] is not [height, width]")),
    Case("coco-one-file-two-ids", "coco", coco_edit(coco_two_ids_one_file),
         Skipped("duplicate_image", "img_001.png is listed under the image ids 1, 70")),
    Case("coco-image-missing", "coco", unlink(lambda fx: fx.images / "sub" / "img_007.jpg"),
         Skipped("missing_image", "img_007.jpg")),
    Case("coco-image-is-a-directory", "coco", replace_image(directory), Skipped("missing_image", IMG1)),
    # COCO: image files (read when the batch is decoded)
    Case("coco-image-corrupt", "coco", replace_image(write_garbage), Skipped("corrupt_image", IMG1)),
    Case("coco-image-truncated", "coco", replace_image(truncated), Skipped("truncated_image", IMG1)),
    Case("coco-image-zero-bytes", "coco", replace_image(zero_bytes), Skipped("corrupt_image", IMG1)),
    Case("coco-image-wrong-format", "coco", replace_image(text_file), Skipped("corrupt_image", IMG1)),
    Case("coco-image-size-mismatch", "coco", set_image(1, height=41),
         Skipped("image_size_mismatch", "img_001.png is 40 x 60 (height x width) but", strict_text="img_001.png")),
    Case("coco-image-exif-rotated-stated-stored-size", "coco", exif_rotated(stated_displayed=False),
         Skipped("image_size_mismatch", "img_001.png is 40 x 60", strict_text="img_001.png")),
    Case("coco-image-oversized", "coco", replace_image(bomb),
         Skipped("oversized_image", "img_001.png is 8000 x 8000 pixels (64.0 Mpx)")),
    Case("coco-image-stated-oversized", "coco", set_image(7, height=13000, width=13000),
         Skipped("oversized_image", "img_007.jpg (image 7 in")),
    # COCO: accepted and normalised, checked against the truth
    Case("coco-image-cmyk", "coco", exact_image(lambda rgb: rgb, lambda p, rgb: Image.fromarray(rgb).convert("CMYK")
                                                .save(p, format="TIFF")), Repaired(check_image_1)),
    Case("coco-image-16-bit", "coco",
         exact_image(lambda rgb: rgb[..., :1].repeat(3, axis=2),
                     lambda p, rgb: write_png(p, rgb[..., 0].astype(np.uint16) * 257, mode="I;16")),
         Repaired(check_image_1)),
    Case("coco-image-grey", "coco",
         exact_image(lambda rgb: rgb[..., :1].repeat(3, axis=2), lambda p, rgb: write_png(p, rgb[..., 0], mode="L")),
         Repaired(check_image_1)),
    Case("coco-image-rgba", "coco",
         exact_image(lambda rgb: np.where(np.arange(60)[None, :, None] < 30, rgb, 0).astype(np.uint8),
                     lambda p, rgb: Image.fromarray(np.dstack([rgb, np.where(np.arange(60) < 30, 255, 0)[None, :]
                                                               .repeat(40, axis=0).astype(np.uint8)])).save(p)),
         Repaired(check_image_1)),
    Case("coco-image-animated-gif-first-frame", "coco", exact_image(animated_gif_expected, animated_gif),
         Repaired(check_image_1)),
    Case("coco-image-exif-rotated", "coco", exif_rotated(stated_displayed=True), Repaired(check_image_1)),
    Case("coco-image-symlink-inside-root", "coco", coco_symlink_in, Repaired(check_image_1)),
    Case("coco-text-image-ids", "coco", coco_edit(coco_text_ids), Repaired(check_truth)),
    Case("coco-area-zero", "coco", coco_area(0), Repaired(check_repairs("area_recomputed", 7))),
    Case("coco-area-negative", "coco", coco_area(-3), Repaired(check_repairs("area_recomputed", 7))),
    Case("coco-area-missing", "coco", coco_edit(lambda d: [a.pop("area", None) for a in d["annotations"]]),
         Repaired(check_truth)),
    Case("coco-polygon-with-degenerate-part", "coco", coco_edit(coco_degenerate_part), Repaired(check_truth)),
    Case("coco-bbox-negative", "coco", set_ann(7, 1, bbox=[-26, -5, 20, 20]), Repaired(check_box("7", "cat", 0, (26.0, 5.0, 46.0, 25.0)))),
    Case("coco-bbox-inverted", "coco", set_ann(7, 1, bbox=[46, 25, -20, -20]), Repaired(check_box("7", "cat", 0, (26.0, 5.0, 46.0, 25.0)))),
    Case("coco-bbox-outside-image", "coco", set_ann(7, 1, bbox=[26, 5, 200, 20]), Repaired(check_box("7", "cat", 0, (26.0, 5.0, 46.0, 25.0)))),
    Case("coco-bbox-not-numbers", "coco", set_ann(7, 1, bbox=["a", 5, 20, 20]), Repaired(check_box("7", "cat", 0, (26.0, 5.0, 46.0, 25.0)))),
    # VOC
    Case("voc-palette", "voc", lambda fx: None, Repaired(check_truth)),
    Case("voc-0-255-binary-png", "voc", voc_class_png("2008_000001", voc_binary),
         Skipped("bad_annotation", "2008_000001.png is a 0/255 binary image (mode L)")),
    Case("voc-grey-index-png", "voc", voc_class_png("2008_000002", lambda lab: (lab, "L")), Repaired(check_truth)),
    Case("voc-colour-png", "voc", voc_file("SegmentationClass", "2008_000001.png",
                                           lambda p: write_image(p, noise_image(30, 40, 5))),
         Skipped("unsupported_mask", "2008_000001.png is a colour image")),
    Case("voc-labels-not-voc-classes", "voc", voc_class_png("2008_000001", lambda lab: (np.where(lab == 8, 100, lab), "P")),
         Skipped("bad_annotation", "label values [100]")),
    Case("voc-class-png-wrong-size", "voc", voc_shrink_pngs("2008_000002"),
         Skipped("image_size_mismatch", "2008_000002.jpg is 24 x 36")),
    Case("voc-class-png-missing", "voc", voc_unlink("SegmentationClass", "2008_000001.png"),
         Skipped("missing_mask", "2008_000001.png does not exist")),
    Case("voc-image-missing", "voc", voc_unlink("JPEGImages", "2008_000001.jpg"),
         Skipped("missing_image", "2008_000001.jpg does not exist")),
    Case("voc-class-png-truncated", "voc", voc_file("SegmentationClass", "2008_000001.png", truncated),
         Skipped("truncated_mask", "2008_000001.png")),
    Case("voc-class-png-zero-bytes", "voc", voc_file("SegmentationClass", "2008_000001.png", zero_bytes),
         Skipped("corrupt_mask", "2008_000001.png")),
    Case("voc-class-png-oversized", "voc", voc_file("SegmentationClass", "2008_000001.png", bomb),
         Skipped("oversized_mask", "2008_000001.png is 8000 x 8000 pixels")),
    Case("voc-object-png-wrong-size", "voc", voc_file("SegmentationObject", "2008_000001.png",
                                                      lambda p: write_png(p, np.zeros((5, 5)), mode="P")),
         Skipped("mask_size_mismatch", "2008_000001.png is 5 x 5")),
    Case("voc-image-corrupt", "voc", voc_file("JPEGImages", "2008_000002.jpg", write_garbage),
         Skipped("corrupt_image", "2008_000002.jpg")),
    Case("voc-image-png-instead-of-jpg", "voc", voc_png_image, Repaired(check_truth)),
    Case("voc-split-missing", "voc", voc_no_split_file, Raises(InputError, "val.txt does not exist")),
    Case("voc-split-id-escapes", "voc", voc_split(["../../etc/passwd"]), Raises(UnsafePathError, "passwd")),
    # folder
    Case("folder-plain", "folder", lambda fx: None, Repaired(check_truth)),
    Case("folder-grey-levels", "folder", folder_mask("a", "cat", grey_edges),
         Repaired(check_repairs("mask_thresholded", 1))),
    Case("folder-void-255", "folder", folder_mask("a", "cat", void_ring), Repaired(check_truth)),
    Case("folder-16-bit-mask", "folder", folder_mask("a", "cat", lambda t: (t.astype(np.uint16) * 65535, "I;16")),
         Repaired(check_truth)),
    Case("folder-rgb-grey-mask", "folder",
         folder_file("masks/a/cat.png", lambda p: Image.fromarray(np.zeros((20, 30, 3), np.uint8)).save(p)),
         Skipped("empty_mask", "masks/a/cat.png has no nonzero pixels")),
    Case("folder-jpg-mask", "folder", folder_jpg_mask, Skipped("unsupported_mask", "sofa.jpg is a JPG file")),
    Case("folder-empty-mask", "folder", folder_mask("a", "dog", lambda t: (np.zeros_like(t, np.uint8), "L")),
         Skipped("empty_mask", "a/dog.png has no nonzero pixels")),
    Case("folder-mask-size-differs-from-other-masks", "folder",
         folder_file("masks/a/dog.png", lambda p: write_png(p, np.ones((5, 5)), mode="L")),
         Skipped("mask_size_mismatch", "a/dog.png is 5 x 5")),
    Case("folder-mask-size-differs-from-image", "folder",
         folder_file("masks/c/cat.png", lambda p: write_png(p, np.ones((9, 9)), mode="L")),
         Skipped("image_size_mismatch", "c.png is 8 x 8")),
    Case("folder-mask-without-image", "folder",
         folder_file("masks/zzz/cat.png", lambda p: write_png(p, np.ones((4, 4)), mode="L")),
         Skipped("missing_image", "zzz")),
    Case("folder-image-name-twice", "folder",
         folder_file("images/a.jpg", lambda p: write_image(p, noise_image(20, 30, 3))),
         Skipped("duplicate_image", "share the name 'a'")),
    Case("folder-palette-several-labels", "folder",
         folder_mask("sub/b", "cat", lambda t: (t.astype(np.uint8) + np.eye(16, dtype=np.uint8) * 2, "P")),
         Skipped("unsupported_mask", "holding the labels 1, 2")),
    Case("folder-mask-corrupt", "folder", folder_file("masks/a/dog.png", write_garbage),
         Skipped("corrupt_mask", "a/dog.png")),
    Case("folder-mask-cut-in-its-header", "folder", folder_file("masks/a/cat.png", truncated),
         Skipped("corrupt_mask", "a/cat.png is not an image Pillow can read")),
    Case("folder-mask-colour", "folder",
         folder_file("masks/a/cat.png", lambda p: write_image(p, noise_image(20, 30, 4))),
         Skipped("unsupported_mask", "a/cat.png is a colour image")),
    Case("folder-mask-oversized", "folder", folder_file("masks/a/cat.png", bomb),
         Skipped("oversized_mask", "a/cat.png is 8000 x 8000 pixels")),
    Case("folder-unlisted-category", "folder", folder_unlisted_category, Skipped("unknown_category", "a/dog.png")),
    Case("folder-image-truncated", "folder", folder_file("images/a.png", truncated), Skipped("truncated_image", "a.png")),
    Case("folder-symlink-out-of-root", "folder", folder_symlink_out, Raises(UnsafePathError, "horse.png")),
    Case("folder-no-masks-folder", "folder", folder_no_masks_dir, Raises(InputError, "has no masks/ folder")),
]  # fmt: skip

CASES = C


def _records(ds: ConceptDataset, batch: LoadedBatch) -> list[tuple[str, str]]:
    return [(r.reason, r.detail) for r in ds.skips] + [(r["status"], r["detail"]) for r in batch.skip_rows]


def _pairs_match_truth(batch: LoadedBatch, fx: Any) -> None:
    for pair in batch.pairs:
        truth = fx.truth.get(pair.sample_id, {}).get(pair.concept)
        assert truth is not None, f"{pair.sample_id}/{pair.concept} loaded but is in no ground truth"
        np.testing.assert_array_equal(pair.mask, truth, err_msg=f"{pair.sample_id}/{pair.concept}")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_has_its_stated_outcome(case: Case, tmp_path):
    fx = BUILD[case.fmt](tmp_path / "data")
    case.edit(fx)
    expect = case.expect
    if isinstance(expect, Raises):
        with pytest.raises(expect.error) as info:
            load_all(case.fmt, fx)
        message = str(info.value)
        assert expect.text in message and "\n" not in message, message
        return
    ds, batch = load_all(case.fmt, fx)
    _pairs_match_truth(batch, fx)  # nothing that loads may be silently wrong
    if isinstance(expect, Skipped):
        records = _records(ds, batch)
        assert any(s == expect.status and expect.text in d for s, d in records), records
        with pytest.raises(InputError, match=re.escape(expect.strict_text or expect.text)):
            load_all(case.fmt, fx, strict=True)
    else:
        expect.check(ds, batch, fx)


def test_the_corpus_is_large_and_covers_every_outcome():
    kinds = {k: sum(isinstance(c.expect, k) for c in CASES) for k in (Raises, Skipped, Repaired)}
    assert len(CASES) >= 70 and all(n >= 10 for n in kinds.values()), kinds
    assert len({c.id for c in CASES}) == len(CASES)


# ------------------------------------------------------------------------------------------------ the CLI


def _one_line_error(capsys) -> str:
    """The one ``loce: error:`` line on stderr (other lines may only be ``loce: warning:`` lines)."""
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    errors = [line for line in lines if line.startswith("loce: error: ")]
    assert len(errors) == 1 and "Traceback" not in err, err
    assert all(line in errors or line.startswith("loce: warning: ") for line in lines), err
    return errors[0]


FIT = [
    "fit",
    "--model",
    "torchvision:resnet18",
    "--layers",
    "layer3",
    "--input-size",
    "64",
    "64",
    "--no-progress",
]


def test_cli_empty_folder_dataset_exits_1_with_one_line(tmp_path, capsys):
    fx = make_folder_dataset(tmp_path / "data")
    for png in (fx.root / "masks").rglob("*.png"):
        Image.open(png).convert("RGB").save(png.with_suffix(".jpg"))
        png.unlink()
    assert main([*FIT, "--folder", str(fx.root), "--out", str(tmp_path / "run")]) == 1
    err = _one_line_error(capsys)
    assert "no usable (image, concept) pair" in err and "unsupported_mask: 3" in err
    assert not (tmp_path / "run").exists()  # refused before anything was registered


def test_cli_voc_of_0_255_pngs_exits_1(tmp_path, capsys):
    fx = make_voc_dataset(tmp_path / "VOC")
    for image_id in ("2008_000001", "2008_000002"):
        voc_class_png(image_id, voc_binary)(fx)
    assert main([*FIT, "--voc", str(fx.root), "--out", str(tmp_path / "run")]) == 1
    assert "bad_annotation: 2" in _one_line_error(capsys)


def test_cli_pixel_cap_exits_1_when_every_image_is_over_it(tmp_path, capsys):
    ann, images = write_planted_coco(tmp_path / "data", n=3)  # 64 x 64 images
    code = main([*FIT, "--coco", str(ann), "--images", str(images), "--out", str(tmp_path / "run"),
                 "--max-pixels", "4095"])  # fmt: skip
    assert code == 1 and "oversized_image: 3" in _one_line_error(capsys)


def test_cli_malformed_json_and_unsafe_path_exit_1_naming_the_file(tmp_path, capsys):
    ann, images = write_planted_coco(tmp_path / "data", n=2)
    text = ann.read_text()
    ann.write_text(text[: len(text) // 2])
    assert main([*FIT, "--coco", str(ann), "--images", str(images), "--out", str(tmp_path / "run")]) == 1
    assert ann.name in _one_line_error(capsys)
    ann.write_text(text.replace('"img_001.png"', '"../../escape.png"'))
    assert main([*FIT, "--coco", str(ann), "--images", str(images), "--out", str(tmp_path / "run")]) == 1
    assert "escape.png" in _one_line_error(capsys)


def test_cli_every_image_unreadable_exits_1_after_recording_the_skips(tmp_path, capsys):
    ann, images = write_planted_coco(tmp_path / "data", n=3)
    for png in images.glob("*.png"):
        write_garbage(png)
    out = tmp_path / "run"
    assert main([*FIT, "--coco", str(ann), "--images", str(images), "--out", str(out)]) == 1
    err = _one_line_error(capsys)
    assert "nothing could be embedded: all 3 images were skipped (corrupt_image: 3)" in err
    from loce.store import LoCEStore

    assert sorted(LoCEStore.open(out).skips()["status"]) == ["corrupt_image"] * 3  # the skips were recorded


def test_reliability_doc_lists_every_data_case():
    text = (Path(__file__).parents[1] / "docs" / "RELIABILITY.md").read_text(encoding="utf-8")
    section = text.split("## Data inputs", 1)[1].split("\n## ", 1)[0]
    missing = [c.id for c in CASES if f"| `{c.id}` |" not in section]
    assert not missing, f"docs/RELIABILITY.md lacks the data cases {missing}"
