"""Memory limits on inputs: a pixel cap checked from the file header, and a memory budget per batch (issue 13, 14)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fixtures_data import (
    make_coco_dataset,
    make_folder_dataset,
    make_voc_dataset,
    noise_image,
    write_coco_json,
    write_image,
    write_png,
    write_sparse_png,
)
from loce.batches import decoded_bytes, group_samples, iter_batches, load_batch
from loce.data import ConceptDataset, load_coco, load_folder, load_voc, read_image, read_mask_png, skip_reason
from loce.data.sample import ConceptAnnotation, Sample
from loce.errors import InputError

BOMB = (8000, 8000)  # 64 Mpx: above the default cap of 50 Mpx, below Pillow's own warning (89 Mpx)


def test_an_image_above_the_pixel_cap_is_refused_from_its_header(tmp_path):
    path = write_sparse_png(tmp_path / "bomb.png", *BOMB)
    assert path.stat().st_size < 20_000  # a few KB on disk, 64 million pixels decoded
    with pytest.raises(
        InputError,
        match=r"bomb.png is 8000 x 8000 pixels \(64.0 Mpx\), more than the limit of 50,000,000 pixels",
    ) as info:
        read_image(path)
    assert skip_reason(info.value) == "oversized_image"
    with pytest.raises(InputError, match="bomb.png") as info:
        read_mask_png(path)
    assert skip_reason(info.value) == "oversized_mask"
    with pytest.raises(InputError, match="more than the limit of 99 pixels"):
        read_image(write_image(tmp_path / "small.png", noise_image(10, 10, 0)), max_pixels=99)


def test_the_cap_is_configurable_and_none_lifts_it(tmp_path):
    path = write_image(tmp_path / "a.png", noise_image(30, 40, 1))
    assert read_image(path, max_pixels=1200).shape == (30, 40, 3)  # exactly at the cap: allowed
    with pytest.raises(InputError) as info:
        read_image(path, max_pixels=1199)
    assert "30 x 40" in str(info.value) and skip_reason(info.value) == "oversized_image"
    assert read_image(path, max_pixels=None).shape == (30, 40, 3)


def test_folder_image_above_the_cap_becomes_a_skip_row_naming_file_and_size(tmp_path):
    fx = make_folder_dataset(tmp_path)
    write_sparse_png(fx.root / "images" / "c.png", *BOMB)  # its mask is 8 x 8; the image file states 64 Mpx
    write_png(fx.root / "masks" / "c" / "cat.png", np.ones((8, 8), dtype=np.uint8))
    ds = load_folder(fx.root)
    batch = load_batch(list(ds))
    (row,) = [r for r in batch.skip_rows if r["sample_id"] == "c"]
    assert row["status"] == "oversized_image" and "c.png is 8000 x 8000 pixels (64.0 Mpx)" in row["detail"]
    assert [s.sample_id for s in batch.image_samples] == ["a", "sub/b"]
    assert ds.describe()["options"]["max_pixels"] == 50_000_000


def test_folder_masks_above_a_lower_cap_are_skipped_at_load(tmp_path):
    fx = make_folder_dataset(tmp_path)
    ds = load_folder(fx.root, max_pixels=20 * 30 - 1)  # a's masks (20 x 30) are over, b's (16 x 16) are not
    assert [s.sample_id for s in ds] == ["sub/b"]
    assert ds.skips.counts() == {"oversized_mask": 2}


def test_folder_mask_above_the_cap_is_an_oversized_mask_skip(tmp_path):
    fx = make_folder_dataset(tmp_path)
    write_sparse_png(fx.root / "masks" / "c" / "cat.png", *BOMB)  # image c is 8 x 8; its mask is a bomb
    ds = load_folder(fx.root)
    (skip,) = [r for r in ds.skips if r.sample_id == "c"]
    assert skip.reason == "oversized_mask" and "cat.png is 8000 x 8000 pixels" in skip.detail
    with pytest.raises(InputError, match="8000 x 8000"):
        load_folder(fx.root, strict=True)


def test_voc_class_png_above_the_cap_is_an_oversized_mask_skip(tmp_path):
    fx = make_voc_dataset(tmp_path)
    write_sparse_png(fx.root / "SegmentationClass" / "2008_000002.png", *BOMB)
    ds = load_voc(fx.root)
    assert [s.sample_id for s in ds] == ["2008_000001"]
    assert ds.skips.counts() == {"oversized_mask": 1}


def test_coco_image_stating_more_pixels_than_the_cap_is_skipped_before_reading(tmp_path):
    fx = make_coco_dataset(tmp_path)
    fx.data["images"][1].update(height=13000, width=13000)  # image 7: its masks would be decoded at this size
    write_coco_json(fx.annotations, fx.data)
    ds = load_coco(fx.annotations, fx.images)
    assert [s.sample_id for s in ds] == ["1"]
    (skip,) = [r for r in ds.skips if r.reason == "oversized_image"]
    assert skip.sample_id == "7" and "img_007.jpg" in skip.detail and "13000 x 13000" in skip.detail
    assert [s.sample_id for s in load_coco(fx.annotations, fx.images, max_pixels=None)] == ["1", "7"]


def _sample(sample_id: str, height: int, width: int, concepts: int = 1) -> Sample:
    mask = np.zeros((height, width), dtype=bool)
    mask[: height // 2] = True
    return Sample(
        sample_id=sample_id,
        image_path=Path(f"/nowhere/{sample_id}.png"),
        rel_path=f"{sample_id}.png",
        concepts={f"c{k}": ConceptAnnotation(f"c{k}", load_mask=lambda m=mask: m) for k in range(concepts)},
        load_image=lambda: np.zeros((height, width, 3), dtype=np.uint8),
        size=(height, width),
    )


def test_decoded_bytes_counts_the_rgb_image_and_one_bool_mask_per_concept():
    assert decoded_bytes(_sample("a", 480, 640, concepts=2)) == 480 * 640 * (3 + 2)


def test_groups_are_cut_so_decoded_bytes_stay_within_the_budget():
    sizes = [(100, 100), (300, 300), (300, 300), (50, 50), (300, 300), (10, 10), (10, 10)]
    samples = [_sample(str(i), h, w) for i, (h, w) in enumerate(sizes)]
    budget = 2 * 300 * 300 * 4  # two large samples
    groups = group_samples(samples, batch_size=3, max_bytes=budget)
    # costs 40000, 360000, 360000, 10000, 360000, 400, 400 bytes against 720000: cut before 2 and 4
    assert [[s.sample_id for s in g] for g in groups] == [["0", "1"], ["2", "3"], ["4", "5", "6"]]
    assert all(sum(decoded_bytes(s) for s in g) <= budget for g in groups)
    # one sample larger than the budget still gets its own group (the pixel cap bounds it)
    assert [len(g) for g in group_samples(samples, batch_size=8, max_bytes=1)] == [1] * 7
    assert [len(g) for g in group_samples(samples, batch_size=3, max_bytes=None)] == [3, 3, 1]
    with pytest.raises(InputError, match="positive"):
        group_samples(samples, batch_size=3, max_bytes=0)


def test_iter_batches_keeps_every_batch_within_the_budget_and_every_sample_once():
    sizes = [(200, 200), (400, 400), (20, 20), (400, 400), (400, 400), (30, 30)]
    samples = [_sample(str(i), h, w, concepts=2) for i, (h, w) in enumerate(sizes)]
    budget = 400 * 400 * 5 + 20 * 20 * 5
    seen = []
    for batch in iter_batches(samples, batch_size=32, max_bytes=budget):
        decoded = sum(im.nbytes for im in batch.images) + sum(p.mask.nbytes for p in batch.pairs)
        assert decoded <= budget
        seen += batch.sample_ids
    assert seen == [s.sample_id for s in samples]


def test_a_dataset_run_through_iter_batches_with_a_budget_gives_the_same_pairs(tmp_path):
    fx = make_coco_dataset(tmp_path)
    ds: ConceptDataset = load_coco(fx.annotations, fx.images)
    whole = [(p.sample_id, p.concept) for b in iter_batches(list(ds), 32, max_bytes=None) for p in b.pairs]
    cut = [(p.sample_id, p.concept) for b in iter_batches(list(ds), 32, max_bytes=1) for p in b.pairs]
    assert cut == whole and len(whole) == 6


def test_16_bit_masks_respect_the_cap(tmp_path):
    path = write_png(tmp_path / "m16.png", np.full((40, 50), 40000, dtype=np.uint16), mode="I;16")
    assert read_mask_png(path).shape == (40, 50)
    with pytest.raises(InputError, match="40 x 50"):
        read_mask_png(path, max_pixels=1999)
