"""The plain folder format (loce.data.folder) against the masks the fixture drew."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from fixtures_data import make_folder_dataset, noise_image, truncate_file, write_image, write_png
from loce.data import load_folder, skip_reason
from loce.errors import InputError, UnsafePathError


@pytest.fixture
def folder(tmp_path):
    return make_folder_dataset(tmp_path / "data")


def test_masks_equal_the_drawn_ones_and_ids_are_relative_paths(folder):
    ds = load_folder(folder.root)
    assert ds.categories == ["cat", "dog"]  # sorted mask names
    assert [s.sample_id for s in ds] == ["a", "sub/b"]  # c.png has no masks
    for sample in ds:
        assert set(sample.concepts) == set(folder.truth[sample.sample_id])
        for concept, truth in folder.truth[sample.sample_id].items():
            mask = sample.mask(concept)
            assert mask.dtype == bool
            np.testing.assert_array_equal(mask, truth, err_msg=f"{sample.sample_id}/{concept}")
    a, b = ds.by_id("a"), ds.by_id("sub/b")
    np.testing.assert_array_equal(a.load_image(), folder.rgb["a"])
    assert np.abs(b.load_image().astype(int) - folder.rgb["sub/b"]).mean() < 3
    assert (a.rel_path, b.rel_path) == ("a.png", "sub/b.jpg") and (a.size, b.size) == ((20, 30), (16, 16))
    assert ds.skips.counts() == {}


def test_categories_file_fixes_order_and_flags_unlisted_masks(folder):
    (folder.root / "categories.txt").write_text("# concepts\ndog\ncat\n")
    assert load_folder(folder.root).categories == ["dog", "cat"]
    (folder.root / "categories.txt").write_text("cat\n")
    ds = load_folder(folder.root)
    assert ds.categories == ["cat"] and ds.skips.counts() == {"unknown_category": 1}
    assert (ds.skips.records[0].sample_id, ds.skips.records[0].concept) == ("a", "dog")


def test_category_subset_and_unknown_names(folder):
    ds = load_folder(folder.root, categories=["dog"])
    assert [(s.sample_id, list(s.concepts)) for s in ds] == [("a", ["dog"])]
    with pytest.raises(InputError, match="'horse'.*available: cat, dog"):
        load_folder(folder.root, categories=["horse"])


def test_empty_mismatched_and_corrupt_masks_are_skipped(folder):
    write_png(folder.root / "masks" / "a" / "empty.png", np.zeros((20, 30)), mode="L")
    write_png(folder.root / "masks" / "a" / "small.png", np.ones((10, 30)), mode="L")
    truncate_file(
        write_png(folder.root / "masks" / "sub" / "b" / "dog.png", noise_image(16, 16, 0)[..., 0]), 0.3
    )
    ds = load_folder(folder.root)
    reasons = {(r.sample_id, r.concept): r.reason for r in ds.skips}
    assert reasons == {
        ("a", "empty"): "empty_mask",
        ("a", "small"): "mask_size_mismatch",
        ("sub/b", "dog"): "truncated_mask",
    }
    assert sorted(ds.by_id("a").concepts) == ["cat", "dog"]
    with pytest.raises(InputError):
        load_folder(folder.root, strict=True)


def test_masks_without_image_and_duplicate_names_are_skipped(folder):
    write_png(folder.root / "masks" / "ghost" / "cat.png", np.ones((4, 4)), mode="L")
    write_image(folder.root / "images" / "a.jpg", noise_image(20, 30, seed=1))
    ds = load_folder(folder.root)
    assert ds.skips.counts() == {"duplicate_image": 1, "missing_image": 1}
    assert ds.by_id("a").rel_path == "a.jpg"  # sorted listing: a.jpg comes before a.png
    with pytest.raises(InputError, match="share the name 'a'"):
        load_folder(folder.root, strict=True)


@pytest.mark.parametrize(
    ("mode", "make"),
    [
        ("L", lambda rgb: Image.fromarray(rgb[..., 0])),
        ("RGBA", lambda rgb: Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]))),
        ("P", lambda rgb: Image.fromarray(rgb).convert("P")),
        ("I;16", lambda rgb: Image.fromarray(rgb[..., 0].astype(np.uint16) * 257)),
    ],
)
def test_any_image_mode_loads_as_rgb_uint8(folder, mode, make):
    rgb = noise_image(20, 30, seed=2)
    image = make(rgb)
    assert image.mode == mode
    image.save(folder.root / "images" / "a.png")
    out = load_folder(folder.root).by_id("a").load_image()
    assert out.shape == (20, 30, 3) and out.dtype == np.uint8
    if mode in ("L", "I;16"):
        np.testing.assert_array_equal(out, np.repeat(rgb[..., :1], 3, axis=2))
    elif mode == "RGBA":
        np.testing.assert_array_equal(out, rgb)


def test_image_of_another_size_than_its_masks_fails_on_load_with_its_name(folder):
    write_image(folder.root / "images" / "a.png", noise_image(21, 30, seed=3))
    sample = load_folder(folder.root).by_id("a")
    with pytest.raises(InputError, match=r"a.png is 21 x 30 .* state 20 x 30") as info:
        sample.load_image()
    assert skip_reason(info.value) == "image_size_mismatch"


def test_symlinks_out_of_the_root_are_refused(folder, tmp_path):
    outside = write_image(tmp_path / "outside" / "x.png", noise_image(4, 4, seed=4))
    os.symlink(outside, folder.root / "images" / "x.png")
    with pytest.raises(UnsafePathError, match="x.png"):
        load_folder(folder.root)


def test_symlink_cycles_end(folder):
    os.symlink(folder.root / "images", folder.root / "images" / "loop")
    assert [s.sample_id for s in load_folder(folder.root)] == ["a", "sub/b"]


def test_missing_layout_is_an_input_error(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(InputError, match="no masks/ folder"):
        load_folder(tmp_path)


def test_void_255_beside_a_label_is_in_no_mask(folder):
    truth = folder.truth["a"]["cat"]
    values = truth.astype(np.uint8)  # 1 = the concept
    ring = np.zeros_like(truth)
    ring[1, :] = ring[:, 1] = True
    ring &= ~truth
    values[ring] = 255  # VOC-style void border
    write_png(folder.root / "masks" / "a" / "cat.png", values, mode="L")
    mask = load_folder(folder.root).by_id("a").mask("cat")
    np.testing.assert_array_equal(mask, truth)


def test_grey_levels_are_thresholded_at_half_scale_and_the_repair_recorded(folder):
    truth = folder.truth["a"]["cat"]
    values = truth.astype(np.uint8) * 255
    rows, cols = np.nonzero(truth)
    values[rows.min() - 1, cols.min() : cols.max() + 1] = 64  # anti-aliased edge outside the object
    values[rows.min(), cols.min() : cols.max() + 1] = 200  # and inside it
    values[rows.max() + 1, cols.min()] = 127
    write_png(folder.root / "masks" / "a" / "cat.png", values, mode="L")
    ds = load_folder(folder.root)
    np.testing.assert_array_equal(ds.by_id("a").mask("cat"), truth)
    (repair,) = ds.repairs.records
    assert repair.reason == "mask_thresholded" and "cat.png has 4 grey levels" in repair.detail
    assert ds.describe()["repairs"] == {"mask_thresholded": 1} and len(ds.skips) == 0


def test_sixteen_bit_grey_levels_are_thresholded_at_half_scale(folder):
    truth = folder.truth["a"]["cat"]
    values = np.where(truth, 65535, 0).astype(np.uint16)
    values[0, :3] = [100, 32767, 32768]  # only the last is at or above half scale
    write_png(folder.root / "masks" / "a" / "cat.png", values, mode="I;16")
    expected = truth.copy()
    expected[0, 2] = True
    np.testing.assert_array_equal(load_folder(folder.root).by_id("a").mask("cat"), expected)


def test_palette_mask_with_several_labels_is_refused(folder):
    values = np.zeros((16, 16), dtype=np.uint8)
    values[2:6, 2:6], values[8:12, 8:12] = 1, 2
    write_png(folder.root / "masks" / "sub" / "b" / "cat.png", values, mode="P", palette=[0, 0, 0] * 256)
    ds = load_folder(folder.root)
    (skip,) = ds.skips.records
    assert skip.reason == "unsupported_mask" and "holding the labels 1, 2" in skip.detail


@pytest.mark.parametrize("suffix", [".jpg", ".jpeg", ".bmp"])
def test_masks_that_are_not_png_are_refused_with_a_message(folder, suffix):
    mask = (folder.truth["a"]["cat"].astype(np.uint8) * 255)[..., None].repeat(3, axis=2)
    write_image(folder.root / "masks" / "a" / f"sofa{suffix}", mask)
    ds = load_folder(folder.root)
    (skip,) = ds.skips.records
    assert skip.reason == "unsupported_mask" and (skip.sample_id, skip.concept) == ("a", "sofa")
    assert f"sofa{suffix}" in skip.detail and "must be PNGs" in skip.detail
    assert ("lossy" in skip.detail) == (suffix != ".bmp")
    assert set(ds.by_id("a").concepts) == {"cat", "dog"}
    with pytest.raises(InputError, match=f"sofa{suffix}"):
        load_folder(folder.root, strict=True)
