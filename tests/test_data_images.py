"""Safe image / mask reading and path resolution (loce.data.images), against hand-computed pixels."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image, ImageFile

from fixtures_data import noise_image, truncate_file, voc_palette, write_garbage, write_image, write_png
from loce.data.images import ImageRef, image_size, read_image, read_mask_png, resolve_under, skip_reason
from loce.errors import InputError, UnsafePathError

# ------------------------------------------------------------------------------------------ read_image: modes


def test_rgb_png_round_trips_exactly(tmp_path):
    rgb = noise_image(7, 11, seed=0)
    out = read_image(write_image(tmp_path / "a.png", rgb))
    assert out.dtype == np.uint8 and out.shape == (7, 11, 3)
    np.testing.assert_array_equal(out, rgb)


def test_grayscale_is_repeated_over_three_channels(tmp_path):
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    out = read_image(write_png(tmp_path / "g.png", gray, mode="L"))
    np.testing.assert_array_equal(out, np.repeat(gray[..., None], 3, axis=2))


def test_one_bit_image_is_black_and_white(tmp_path):
    bits = np.array([[0, 1, 1], [1, 0, 0]], dtype=bool)
    out = read_image(write_png(tmp_path / "b.png", bits, mode="1"))
    np.testing.assert_array_equal(out[..., 0], bits.astype(np.uint8) * 255)


def test_rgba_is_composited_on_black(tmp_path):
    rgba = np.array([[[200, 100, 50, 128], [10, 20, 30, 255], [255, 255, 255, 0]]], dtype=np.uint8)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    out = read_image(tmp_path / "a.png")
    # round(v * alpha / 255): 200*128/255 = 100.4, 100*128/255 = 50.2, 50*128/255 = 25.1
    np.testing.assert_array_equal(out, [[[100, 50, 25], [10, 20, 30], [0, 0, 0]]])


def test_gray_with_alpha_is_composited_on_black(tmp_path):
    la = np.array([[[200, 255], [200, 51]]], dtype=np.uint8)
    Image.fromarray(la, mode="LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(read_image(tmp_path / "la.png")[..., 0], [[200, 40]])


def test_palette_image_gives_palette_colours_and_transparent_entry_black(tmp_path):
    indices = np.array([[0, 1], [2, 1]], dtype=np.uint8)
    img = Image.frombytes("P", (2, 2), indices.tobytes())
    img.putpalette([10, 20, 30, 200, 0, 0, 0, 0, 250] + [0] * (256 * 3 - 9))
    img.save(tmp_path / "p.png")
    np.testing.assert_array_equal(
        read_image(tmp_path / "p.png"), [[[10, 20, 30], [200, 0, 0]], [[0, 0, 250], [200, 0, 0]]]
    )
    img.save(tmp_path / "pt.png", transparency=1)
    np.testing.assert_array_equal(
        read_image(tmp_path / "pt.png"), [[[10, 20, 30], [0, 0, 0]], [[0, 0, 250], [0, 0, 0]]]
    )


def test_sixteen_bit_png_is_scaled_to_eight_bit(tmp_path):
    values = np.array([[0, 257, 1000, 65535]], dtype=np.uint16)
    path = write_png(tmp_path / "g16.png", values, mode="I;16")
    with Image.open(path) as img:
        assert img.mode.startswith("I")
    # v * 255 / 65535 = v / 257, rounded: 0, 1, 3.89 -> 4, 255
    np.testing.assert_array_equal(read_image(path)[..., 0], [[0, 1, 4, 255]])


def test_thirty_two_bit_integer_image_is_clipped_to_sixteen_bit_range(tmp_path):
    values = np.array([[-5, 514, 70000]], dtype=np.int32)
    Image.fromarray(values).save(tmp_path / "i32.tif")
    with Image.open(tmp_path / "i32.tif") as img:
        assert img.mode == "I"
    np.testing.assert_array_equal(read_image(tmp_path / "i32.tif")[..., 0], [[0, 2, 255]])


def test_cmyk_image_is_converted_to_rgb(tmp_path):
    cmyk = np.array([[[0, 0, 0, 0], [255, 0, 0, 0], [0, 0, 0, 255]]], dtype=np.uint8)
    Image.fromarray(cmyk, mode="CMYK").save(tmp_path / "c.tif")
    np.testing.assert_array_equal(
        read_image(tmp_path / "c.tif"), [[[255, 255, 255], [0, 255, 255], [0, 0, 0]]]
    )


@pytest.mark.parametrize(
    ("orientation", "displayed"),
    [
        (1, lambda a: a),
        (2, np.fliplr),
        (3, lambda a: np.rot90(a, 2)),
        (6, lambda a: np.rot90(a, -1)),  # stored rotated: viewers turn it 90 degrees clockwise
        (8, lambda a: np.rot90(a, 1)),
    ],
)
def test_exif_orientation_is_applied_like_viewers_do(tmp_path, orientation, displayed):
    rgb = noise_image(2, 3, seed=1)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = write_image(tmp_path / "o.png", rgb, exif=exif.tobytes())
    out = read_image(path)
    np.testing.assert_array_equal(out, displayed(rgb))
    assert image_size(path) == out.shape[:2]


def test_exif_orientation_of_jpeg_swaps_reported_size(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6
    path = write_image(tmp_path / "o.jpg", noise_image(16, 24, seed=2), exif=exif.tobytes())
    assert image_size(path) == (24, 16)
    assert read_image(path).shape == (24, 16, 3)


# ------------------------------------------------------------------------------------------ read_image: failures


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_image_is_an_error_naming_the_file(tmp_path, suffix):
    path = truncate_file(write_image(tmp_path / f"t{suffix}", noise_image(64, 64, seed=3)), keep=0.5)
    with pytest.raises(InputError, match="truncated") as info:
        read_image(path)
    assert str(path) in str(info.value)
    assert skip_reason(info.value) == "truncated_image"
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_corrupt_data_inside_a_png_is_an_error(tmp_path):
    path = write_image(tmp_path / "c.png", noise_image(32, 32, seed=4))
    data = bytearray(path.read_bytes())
    data[100:160] = b"x" * 60
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="c.png") as info:
        read_image(path)
    assert skip_reason(info.value) == "corrupt_image"


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: write_garbage(p / "g.jpg"), "corrupt_image"),
        (lambda p: write_garbage(p / "empty.png", b""), "corrupt_image"),
        (lambda p: p / "missing.jpg", "missing_image"),
        (lambda p: p, "unreadable_image"),
    ],
)
def test_unreadable_inputs_raise_input_error_with_reason(tmp_path, make, reason):
    path = make(tmp_path)
    with pytest.raises(InputError) as info:
        read_image(path)
    assert str(path) in str(info.value)
    assert skip_reason(info.value) == reason


def test_truncated_loading_enabled_elsewhere_is_warned_about(tmp_path, monkeypatch):
    path = write_image(tmp_path / "a.png", noise_image(4, 4, seed=5))
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.warns(RuntimeWarning, match="LOAD_TRUNCATED_IMAGES"):
        read_image(path)


# ------------------------------------------------------------------------------------------ read_mask_png


def test_palette_mask_gives_indices_not_colours(tmp_path):
    labels = np.array([[0, 15, 255], [8, 8, 0]], dtype=np.uint8)
    path = write_png(tmp_path / "m.png", labels, mode="P", palette=voc_palette())
    out = read_mask_png(path)
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, labels)


@pytest.mark.parametrize(
    ("values", "mode", "dtype"),
    [
        (np.array([[0, 255], [7, 0]]), "L", np.uint8),
        (np.array([[0, 1], [1, 0]]), "1", np.uint8),
        (np.array([[0, 300], [65535, 1]]), "I;16", np.uint16),
    ],
)
def test_single_channel_masks_keep_their_values(tmp_path, values, mode, dtype):
    out = read_mask_png(write_png(tmp_path / "m.png", values, mode=mode))
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, values)


def test_gray_mask_saved_as_rgb_is_accepted_and_colour_mask_refused(tmp_path):
    gray = np.array([[0, 255], [255, 0]], dtype=np.uint8)
    write_image(tmp_path / "g.png", np.repeat(gray[..., None], 3, axis=2))
    np.testing.assert_array_equal(read_mask_png(tmp_path / "g.png"), gray)
    write_image(tmp_path / "c.png", noise_image(2, 2, seed=6))
    with pytest.raises(InputError, match="colour") as info:
        read_mask_png(tmp_path / "c.png")
    assert skip_reason(info.value) == "unsupported_mask"


def test_missing_and_truncated_masks_are_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist") as info:
        read_mask_png(tmp_path / "none.png")
    assert skip_reason(info.value) == "missing_mask"
    path = truncate_file(write_png(tmp_path / "m.png", noise_image(64, 64, seed=7)[..., 0]), keep=0.4)
    with pytest.raises(InputError, match="m.png") as info:
        read_mask_png(path)
    assert skip_reason(info.value) == "truncated_mask"


# ------------------------------------------------------------------------------------------ resolve_under


def test_resolve_under_accepts_names_inside_the_root(tmp_path):
    (tmp_path / "img" / "sub").mkdir(parents=True)
    root = tmp_path / "img"
    assert resolve_under(root, "sub/a.jpg") == (root / "sub" / "a.jpg").resolve()
    assert resolve_under(root, "sub/../b.jpg") == (root / "b.jpg").resolve()
    assert resolve_under(root, "./c.jpg") == (root / "c.jpg").resolve()


@pytest.mark.parametrize("name", ["../x.png", "sub/../../x.png", "../img2/x.png"])
def test_dot_dot_escaping_the_root_is_refused(tmp_path, name):
    (tmp_path / "img" / "sub").mkdir(parents=True)
    with pytest.raises(UnsafePathError, match="escapes the data root"):
        resolve_under(tmp_path / "img", name)


def test_absolute_path_is_refused_even_inside_the_root(tmp_path):
    for name in ["/etc/passwd", str(tmp_path / "a.png")]:
        with pytest.raises(UnsafePathError, match="absolute"):
            resolve_under(tmp_path, name)


def test_symlinks_leading_out_of_the_root_are_refused(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    write_image(outside / "secret.png", noise_image(2, 2, seed=8))
    os.symlink(outside / "secret.png", root / "link.png")
    os.symlink(outside, root / "linkdir")
    for name in ["link.png", "linkdir/secret.png"]:
        with pytest.raises(UnsafePathError, match="symbolic link"):
            resolve_under(root, name)
    os.symlink(root / "real.png", root / "inside_link.png")  # a link that stays inside is fine
    assert resolve_under(root, "inside_link.png") == (root / "real.png").resolve()


def test_empty_name_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="Empty"):
        resolve_under(tmp_path, "")


# ------------------------------------------------------------------------------------------ ImageRef


def test_image_ref_checks_the_stated_size(tmp_path):
    path = write_image(tmp_path / "a.png", noise_image(5, 8, seed=9))
    assert ImageRef(path, (5, 8)).load().shape == (5, 8, 3)
    ref = ImageRef(path, (6, 8), "annotations.json")
    for call in (ref.load, ref.check_size):
        with pytest.raises(InputError, match=r"5 x 8 .* annotations.json state 6 x 8") as info:
            call()
        assert str(path) in str(info.value)
        assert skip_reason(info.value) == "image_size_mismatch"
