"""COCO-format loading (loce.data.coco) against the masks the fixture drew."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from fixtures_data import make_coco_dataset, rect_mask, rle_compressed, truncate_file, write_coco_json
from loce.data import load_coco, skip_reason
from loce.errors import InputError, UnsafePathError


@pytest.fixture
def coco(tmp_path):
    return make_coco_dataset(tmp_path)


def variant(fx, tmp_path, edit):
    """Write an edited copy of the fixture's JSON; returns its path."""
    data = copy.deepcopy(fx.data)
    edit(data)
    return write_coco_json(tmp_path / "variant.json", data)


def ann_of(data, image_id, category_id):
    return next(
        a for a in data["annotations"] if a["image_id"] == image_id and a["category_id"] == category_id
    )


def test_masks_equal_the_drawn_unions_pixel_for_pixel(coco):
    ds = load_coco(coco.annotations, coco.images)
    assert ds.categories == ["cat", "dog", "person", "bird", "car"]  # category id order
    assert [s.sample_id for s in ds] == ["1", "7"]
    for sample in ds:
        assert set(sample.concepts) == set(coco.truth[sample.sample_id])
        for concept, truth in coco.truth[sample.sample_id].items():
            mask = sample.mask(concept)
            assert mask.dtype == bool and mask.shape == truth.shape
            np.testing.assert_array_equal(mask, truth, err_msg=f"{sample.sample_id}/{concept}")
    assert ds.by_id("1").mask("cat").sum() == 475  # 210 + 305 - 40 overlapping pixels


def test_instances_have_masks_boxes_and_attributes(coco):
    ds = load_coco(coco.annotations, coco.images)
    for sample in ds:
        for concept, ann in sample.concepts.items():
            expected = [i for i in coco.instances[sample.sample_id][concept] if not i[2]]
            assert len(ann.instances) == len(expected)
            for inst, (box, mask, _) in zip(ann.instances, expected):
                assert inst.box == box
                np.testing.assert_array_equal(inst.load_mask(), mask)
                assert inst.iscrowd is False
    assert ds.by_id("7").concepts["dog"].instances[0].attributes == {"pose": "sitting", "scale": 0.5}
    assert ds.by_id("1").concepts["cat"].box == (5.0, 4.0, 50.0, 38.0)


def test_images_load_as_rgb_and_metadata_holds_extra_image_keys(coco):
    ds = load_coco(coco.annotations, coco.images)
    s1, s7 = ds.by_id("1"), ds.by_id("7")
    np.testing.assert_array_equal(s1.load_image(), coco.rgb["1"])
    assert np.abs(s7.load_image().astype(int) - coco.rgb["7"]).mean() < 3  # JPEG
    assert s7.rel_path == "sub/img_007.jpg" and s7.image_path == (coco.images / "sub/img_007.jpg").resolve()
    assert s7.size == (32, 48) and s7.metadata == {"scene": {"layout": "two"}, "license": 3}
    assert s1.metadata == {}


def test_crowd_regions_are_excluded_by_default_and_included_on_request(coco):
    ds = load_coco(coco.annotations, coco.images)
    assert ds.describe()["exclusions"]["crowd_annotations"] == 2
    assert "9" not in [s.sample_id for s in ds]  # its only annotation is a crowd
    with_crowd = load_coco(coco.annotations, coco.images, include_crowd=True)
    assert [s.sample_id for s in with_crowd] == ["1", "7", "9"]
    for sid, concepts in coco.truth_with_crowd.items():
        for concept, truth in concepts.items():
            np.testing.assert_array_equal(with_crowd.by_id(sid).mask(concept), truth)
    person = with_crowd.by_id("1").concepts["person"]
    assert [i.iscrowd for i in person.instances] == [False, True]


def test_empty_mask_is_skipped_with_reason_and_strict_raises(coco):
    ds = load_coco(coco.annotations, coco.images)
    assert ds.skips.counts() == {"empty_mask": 1}
    (skip,) = ds.skips.records
    assert (skip.sample_id, skip.concept) == ("12", "car") and "img_012.png" in skip.detail
    with pytest.raises(InputError, match="no pixels"):
        load_coco(coco.annotations, coco.images, strict=True)


def test_category_subset_and_unknown_names(coco):
    ds = load_coco(coco.annotations, coco.images, categories=["dog", "cat"])
    assert ds.categories == ["cat", "dog"]
    assert {c for s in ds for c in s.concepts} == {"cat", "dog"}
    with pytest.raises(InputError) as info:
        load_coco(coco.annotations, coco.images, categories=["cat", "unicorn"])
    message = str(info.value)
    assert "'unicorn'" in message and all(n in message for n in ["cat", "dog", "person", "bird", "car"])


def test_min_area_uses_the_union_not_the_sum_of_instance_areas(coco):
    # cat in image 1: instance areas 210 and 305 (sum 515), union 475
    # (the largest instance, 305, would drop it at 475; the sum, 515, would keep it at 476); image 7's cat: 400
    kept = load_coco(coco.annotations, coco.images, categories=["cat"], min_area=475)
    assert [s.sample_id for s in kept] == ["1"] and kept.exclusions["small_mask"] == 1
    dropped = load_coco(coco.annotations, coco.images, categories=["cat"], min_area=476)
    assert len(dropped) == 0 and dropped.describe()["exclusions"]["small_mask"] == 2
    assert len(load_coco(coco.annotations, coco.images, categories=["cat"], min_area=400)) == 2
    small_car = load_coco(coco.annotations, coco.images, categories=["car"], min_area=5)
    assert len(small_car) == 0 and small_car.exclusions["small_mask"] == 1
    assert len(load_coco(coco.annotations, coco.images, categories=["car"], min_area=4)) == 1


def test_min_area_computes_rle_areas_when_the_area_field_is_missing(coco, tmp_path):
    def drop_areas(data):
        for ann in data["annotations"]:
            ann.pop("area", None)

    path = variant(coco, tmp_path, drop_areas)
    for concept in ("dog", "cat"):  # dog: uncompressed and compressed RLE; cat: polygons
        for sid in ("1", "7"):
            area = int(coco.truth[sid][concept].sum())
            for threshold in (area, area + 1):
                ds = load_coco(path, coco.images, categories=[concept], min_area=threshold)
                expected = [i for i in ("1", "7") if coco.truth[i][concept].sum() >= threshold]
                assert [s.sample_id for s in ds] == expected


def test_cap_per_category_is_deterministic_and_independent_of_other_categories(coco):
    picks = set()
    for seed in range(12):
        a = load_coco(coco.annotations, coco.images, max_per_category=1, seed=seed)
        b = load_coco(coco.annotations, coco.images, max_per_category=1, seed=seed)
        only_cat = load_coco(coco.annotations, coco.images, categories=["cat"], max_per_category=1, seed=seed)
        assert all(n <= 1 for n in a.counts().values())
        cat_ids = [s.sample_id for s in a if "cat" in s.concepts]
        assert cat_ids == [s.sample_id for s in b if "cat" in s.concepts]
        assert cat_ids == [s.sample_id for s in only_cat]
        picks.add(cat_ids[0])
        assert a.describe()["options"]["max_per_category"] == 1
        assert a.exclusions["max_per_category"] == 2  # one of two cats, one of two dogs
    assert picks == {"1", "7"}  # the seed decides which image is kept


def test_missing_image_is_skipped_and_strict_raises(coco):
    (coco.images / "sub" / "img_007.jpg").unlink()
    ds = load_coco(coco.annotations, coco.images)
    assert [s.sample_id for s in ds] == ["1"]
    assert ds.skips.counts()["missing_image"] == 1
    with pytest.raises(InputError, match="img_007.jpg"):
        load_coco(coco.annotations, coco.images, strict=True, categories=["dog"])


def test_truncated_image_fails_when_loaded_with_its_name(coco):
    truncate_file(coco.images / "img_001.png", keep=0.3)
    ds = load_coco(coco.annotations, coco.images)  # loading the annotations reads no image
    with pytest.raises(InputError, match="img_001.png.*truncated") as info:
        ds.by_id("1").load_image()
    assert skip_reason(info.value) == "truncated_image"
    checked = ds.verify(decode=True)
    assert [s.sample_id for s in checked] == ["7"] and checked.skips.counts()["truncated_image"] == 1


def test_image_size_differing_from_the_annotation_fails_on_load_and_mask(coco, tmp_path):
    def wrong_height(data):
        data["images"][0]["height"] = 41

    ds = load_coco(variant(coco, tmp_path, wrong_height), coco.images)
    sample = ds.by_id("1")
    for call in (
        sample.load_image,
        lambda: sample.mask("cat"),
        sample.concepts["cat"].instances[0].load_mask,
    ):
        with pytest.raises(InputError, match="img_001.png is 40 x 60 .* state 41 x 60") as info:
            call()
        assert skip_reason(info.value) == "image_size_mismatch"
    assert ds.verify().skips.counts()["image_size_mismatch"] == 1


def test_rle_of_another_size_is_a_recorded_skip(coco, tmp_path):
    def shrink_rle(data):
        ann_of(data, 7, 2)["segmentation"] = rle_compressed(rect_mask(10, 10, 2, 2, 5, 5))

    ds = load_coco(variant(coco, tmp_path, shrink_rle), coco.images)
    assert "dog" not in ds.by_id("7").concepts
    assert ds.skips.counts()["mask_size_mismatch"] == 1
    assert "10 x 10" in [r for r in ds.skips if r.reason == "mask_size_mismatch"][0].detail


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda d: ann_of(d, 1, 2).update(category_id=99), "bad_annotation"),
        (lambda d: ann_of(d, 1, 2).update(image_id=404), "bad_annotation"),
        (lambda d: ann_of(d, 7, 5).update(segmentation=[[1, 2, 3, 4, 5]]), "bad_annotation"),
        (lambda d: ann_of(d, 7, 5).update(segmentation="oops"), "bad_annotation"),
        (lambda d: ann_of(d, 7, 2)["segmentation"].update(counts="@@@@corrupt"), "bad_annotation"),
        (lambda d: d["images"][1].pop("height"), "bad_annotation"),
    ],
)
def test_malformed_annotations_are_skipped_with_a_reason(coco, tmp_path, edit, reason):
    ds = load_coco(variant(coco, tmp_path, edit), coco.images)
    bad = [r for r in ds.skips if r.reason == reason]
    assert len(bad) == 1 and bad[0].detail
    with pytest.raises(InputError):
        load_coco(variant(coco, tmp_path, edit), coco.images, strict=True)


@pytest.mark.parametrize("name", ["../outside.png", "sub/../../outside.png", "/tmp/outside.png"])
def test_file_names_escaping_the_image_root_are_refused(coco, tmp_path, name):
    def escape(data):
        data["images"][0]["file_name"] = name

    with pytest.raises(UnsafePathError, match="outside.png"):
        load_coco(variant(coco, tmp_path, escape), coco.images)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        (json.dumps({"images": [], "categories": []}), "'annotations'"),
    ],
)
def test_broken_annotation_files_are_input_errors(tmp_path, content, match):
    (tmp_path / "img").mkdir()
    (tmp_path / "a.json").write_text(content)
    with pytest.raises(InputError, match=match):
        load_coco(tmp_path / "a.json", tmp_path / "img")


def test_missing_files_and_duplicate_categories_are_input_errors(coco, tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_coco(tmp_path / "none.json", coco.images)
    with pytest.raises(InputError, match="not a directory"):
        load_coco(coco.annotations, tmp_path / "none")

    def duplicate(data):
        data["categories"].append({"id": 77, "name": "cat"})

    with pytest.raises(InputError, match="duplicate category name"):
        load_coco(variant(coco, tmp_path, duplicate), coco.images)


def test_describe_is_json_and_names_source_options_and_counts(coco):
    ds = load_coco(coco.annotations, coco.images, categories=["cat", "dog"], min_area=1)
    info = json.loads(json.dumps(ds.describe()))
    assert info["format"] == "coco"
    assert info["source"]["annotations"] == str(coco.annotations)
    assert info["options"]["min_area"] == 1 and info["options"]["categories"] == ["cat", "dog"]
    assert info["pairs_per_category"] == {"cat": 2, "dog": 2} and info["num_samples"] == 2
    assert info["num_pairs"] == 4


# ---------------------------------------------------------------- validation before decoding (issue 13, 1 and 6)


@pytest.mark.parametrize(
    ("counts", "problem"),
    [
        ("0:5", "cover 15 pixels, not 40 x 60"),  # runs stop short: pycocotools decodes uninitialised memory
        ("05", "cover 5 pixels, not 40 x 60"),
        ("", "cover 0 pixels"),
        ("0P[20P[2", "cover 7200 pixels"),  # a full 40 x 60 mask's runs written three times over
        ("0P[", "end in the middle of a run"),
        ("0 5", "outside the RLE alphabet"),
    ],
)
def test_compressed_rle_whose_runs_do_not_cover_the_image_is_a_bad_annotation(
    coco, tmp_path, counts, problem
):
    def corrupt(data):
        ann_of(data, 1, 2)["segmentation"] = {"size": [40, 60], "counts": counts}

    path = variant(coco, tmp_path, corrupt)
    ds = load_coco(path, coco.images, categories=["dog"])
    assert [s.sample_id for s in ds] == ["7"]  # image 1's dog is left out, not decoded into garbage
    (skip,) = ds.skips.records
    ann_id = ann_of(coco.data, 1, 2)["id"]
    assert skip.reason == "bad_annotation" and (skip.sample_id, skip.concept) == ("1", "dog")
    assert f"Annotation {ann_id}" in skip.detail and "img_001.png" in skip.detail and problem in skip.detail
    with pytest.raises(InputError, match=problem):
        load_coco(path, coco.images, categories=["dog"], strict=True)


def test_valid_compressed_rle_still_decodes_to_the_drawn_mask(coco, tmp_path):
    def compress(data):
        ann_of(data, 1, 2)["segmentation"] = rle_compressed(coco.truth["1"]["dog"])

    ds = load_coco(variant(coco, tmp_path, compress), coco.images, categories=["dog"])
    for _ in range(3):  # the same mask every time
        np.testing.assert_array_equal(ds.by_id("1").mask("dog"), coco.truth["1"]["dog"])


def test_image_ids_that_are_equal_as_text_are_an_error_naming_both(coco, tmp_path):
    def twin(data):
        data["images"].append({**data["images"][1], "id": "1", "file_name": "img_009.png"})

    with pytest.raises(InputError, match=r"duplicate image id: 1 and '1' \(both become the sample id '1'\)"):
        load_coco(variant(coco, tmp_path, twin), coco.images)


def test_text_image_ids_are_matched_to_their_annotations(coco, tmp_path):
    def as_text(data):
        for entry in data["images"]:
            entry["id"] = str(entry["id"])

    ds = load_coco(variant(coco, tmp_path, as_text), coco.images)
    assert [s.sample_id for s in ds] == ["1", "7"]
    np.testing.assert_array_equal(ds.by_id("1").mask("cat"), coco.truth["1"]["cat"])


def test_one_file_under_two_image_ids_is_left_out_under_both(coco, tmp_path):
    def second_id(data):
        data["images"].append({**data["images"][0], "id": 70})
        data["annotations"].append({**ann_of(data, 1, 2), "id": 7000, "image_id": 70})

    ds = load_coco(variant(coco, tmp_path, second_id), coco.images)
    assert [s.sample_id for s in ds] == ["7"]
    dupes = [r for r in ds.skips if r.reason == "duplicate_image"]
    assert sorted(r.sample_id for r in dupes) == ["1", "70"]
    assert all("img_001.png" in r.detail and "1, 70" in r.detail for r in dupes)


@pytest.mark.parametrize("value", [True, False, 1.0, "1", None])
def test_category_id_that_is_not_an_integer_is_a_bad_annotation(coco, tmp_path, value):
    def retype(data):
        ann_of(data, 7, 1)["category_id"] = value  # image 7's cat; true == 1 in Python, but is no category id

    ds = load_coco(variant(coco, tmp_path, retype), coco.images, categories=["cat"])
    assert [s.sample_id for s in ds] == ["1"]
    (skip,) = [r for r in ds.skips if r.reason == "bad_annotation"]
    assert f"category_id {value!r}" in skip.detail


@pytest.mark.parametrize("area", [0, 0.0, -5, "big"])
def test_area_field_is_not_trusted_the_mask_decides(coco, tmp_path, area):
    def zero_areas(data):
        for ann in data["annotations"]:
            ann["area"] = area

    ds = load_coco(variant(coco, tmp_path, zero_areas), coco.images)
    assert ds.skips.counts() == {"empty_mask": 1}  # only image 12's degenerate polygon, as with true areas
    for sid, concepts in coco.truth.items():
        for concept, truth in concepts.items():
            np.testing.assert_array_equal(ds.by_id(sid).mask(concept), truth)
    used = sum(not a["iscrowd"] and a["image_id"] != 12 for a in coco.data["annotations"])  # 12: no pixels
    assert (
        ds.repairs.counts() == {"area_recomputed": used} and ds.describe()["repairs"] == ds.repairs.counts()
    )
    # min_area uses the pixel counts: image 7's cat has 400 pixels
    assert [s.sample_id for s in load_coco(variant(coco, tmp_path, zero_areas), coco.images,
                                           categories=["cat"], min_area=400)] == ["1", "7"]  # fmt: skip


@pytest.mark.parametrize(
    "bbox",
    [[30, 25, -15, -14], [-5, -4, 20, 18], [5, 4, 100, 14], [5, 4, 0, 0], "x", [1, 2, 3]],
)
def test_bbox_outside_the_image_or_inverted_is_repaired_from_the_mask(coco, tmp_path, bbox):
    def bad_box(data):
        ann_of(data, 1, 1)["bbox"] = bbox  # cat_a: pixels x 5..19, y 4..17

    ds = load_coco(variant(coco, tmp_path, bad_box), coco.images, categories=["cat"])
    first = ds.by_id("1").concepts["cat"].instances[0]
    assert first.box == (5.0, 4.0, 20.0, 18.0)
    (repair,) = ds.repairs.records
    assert repair.reason == "bbox_repaired" and (repair.sample_id, repair.concept) == ("1", "cat")
    assert "img_001.png" in repair.detail and len(ds.skips) == 0


def test_bool_height_or_width_is_a_bad_annotation(coco, tmp_path):
    def bool_size(data):
        data["images"][1]["height"] = True

    ds = load_coco(variant(coco, tmp_path, bool_size), coco.images)
    assert [s.sample_id for s in ds] == ["1"]
    assert "height=True" in [r for r in ds.skips if r.reason == "bad_annotation"][0].detail


def test_bbox_reaching_less_than_a_pixel_beyond_the_image_is_clipped_not_repaired(coco, tmp_path):
    def border_box(data):
        ann_of(data, 1, 1)["bbox"] = [
            -0.5,
            4,
            20.5,
            36.75,
        ]  # polygon vertices on the border, rounding beyond it

    ds = load_coco(variant(coco, tmp_path, border_box), coco.images, categories=["cat"])
    assert ds.by_id("1").concepts["cat"].instances[0].box == (0.0, 4.0, 20.0, 40.0)
    assert len(ds.repairs) == 0
