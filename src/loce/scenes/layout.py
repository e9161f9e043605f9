"""Sampling one scene: which objects, where, in which pose and colour, seen by which camera under which light.

Everything is drawn from ``numpy.random.default_rng([seed, index])``, so scene ``index`` of a dataset is the
same whichever process renders it and however many scenes are generated. A scene is a plain, frozen
:class:`SceneSpec`; :mod:`loce.scenes.render` turns it into pixels.

How a scene is laid out:

- the camera looks at a point above the origin from a random azimuth, elevation (15-40 degrees) and distance
  (1.6-2.4 m); a textured floor and a textured wall behind the scene fill the background;
- a theme (dining, sports, playroom, mixed) decides which categories are likely; a table, if any, stands near
  the centre and carries some of the small objects;
- categories with ``near_far`` (soccer ball, race car) are placed either near the camera (10-45 % of the way
  from the scene centre towards it, wholly in view) or far behind the centre (70-100 % of the camera distance),
  never in between: their distance to the camera is bimodal (about 1.1-2.3 m against 2.6-4.7 m), so "near"
  and "far" are real sub-concepts;
- other floor objects stand within 0.8 m of the centre, half of them right beside an object already placed
  (footprints never intersect), so objects hide each other in part;
- with probability ``outlier_rate`` an instance is an outlier: upside down or in an unusual colour.

Example:
    >>> spec = sample_scene(seed=0, index=3)
    >>> spec.index, len(spec.objects) >= 1
    (3, True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from loce.scenes.catalog import (
    CATEGORIES,
    OUTLIER_COLOURS,
    Category,
    body_extent,
    footprint_radius,
    get_category,
    upright_quaternion,
)
from loce.scenes.geometry import box_corners, camera_eye, project, quaternion_from_euler, quaternion_multiply

#: Floor textures and the range of their tile size (metres per texture repeat / 2).
FLOOR_TEXTURES: dict[str, tuple[float, float]] = {
    "wood": (0.5, 1.0),
    "grass": (0.5, 1.0),
    "checker": (1.0, 2.0),
    "blue_tiles": (0.6, 1.2),
}
#: Wall textures and their tile size.
WALL_TEXTURES: dict[str, float] = {"wood": 0.6, "metal": 0.6, "crate": 0.5, "checker": 1.5, "blue_tiles": 1.0}
THEMES: dict[str, float] = {"dining": 0.3, "sports": 0.25, "playroom": 0.25, "mixed": 0.2}

FOV_DEG = 50.0
TARGET_HEIGHT = 0.2
ELEVATION_RANGE = (15.0, 40.0)
DISTANCE_RANGE = (1.6, 2.4)
MIDDLE_RADIUS = 0.8
NEAR_FRACTION = (0.1, 0.45)  # of the horizontal camera-target distance, towards the camera
FAR_FRACTION = (0.7, 1.0)  # of the camera distance, behind the target
WALL_BEHIND = 1.0  # wall distance behind the target: WALL_BEHIND * camera distance + 1 m
GAP = 0.02  # minimum free space between two footprints (m)
BESIDE_PROBABILITY = 0.5  # a middle floor object stands right beside another one


@dataclass(frozen=True)
class Camera:
    """A pinhole camera looking at ``target`` (square image, vertical = horizontal field of view)."""

    target: tuple[float, float, float]
    azimuth: float
    elevation: float
    distance: float
    fov: float = FOV_DEG

    @property
    def eye(self) -> np.ndarray:
        """The camera position in world coordinates."""
        return camera_eye(np.asarray(self.target), self.distance, self.azimuth, self.elevation)


@dataclass(frozen=True)
class Lighting:
    """The TinyRenderer light: direction towards the light, colour and the shading coefficients."""

    direction: tuple[float, float, float]
    colour: tuple[float, float, float]
    distance: float
    ambient: float
    diffuse: float
    specular: float
    shadow: bool


@dataclass(frozen=True)
class PlacedObject:
    """One object instance of a scene with everything needed to draw it and to describe it.

    Attributes:
        category: catalog name.
        position: world position of the body frame (pybullet base position).
        orientation: world orientation of the body frame, quaternion ``(x, y, z, w)``.
        scale: instance size factor (on top of the category's ``mesh_scale``).
        colour: colour name (normal or outlier colour).
        texture: texture name (``"original"`` = the source's own).
        yaw: rotation about +z in degrees.
        pose: ``"upright"`` or ``"upside_down"``.
        support: ``"floor"`` or ``"table"``.
        support_index: index (in the scene's objects) of the table it stands on, if any.
        near_far: ``"near"`` / ``"far"`` for categories with planted distance modes, else ``None``.
        outlier_kind: ``"upside_down"``, ``"recolored"`` or ``None``.
        lo, hi: exact world-space bounds of the object's geometry.
    """

    category: str
    position: tuple[float, float, float]
    orientation: tuple[float, float, float, float]
    scale: float
    colour: str
    texture: str
    yaw: float
    pose: str
    support: str
    support_index: int | None
    near_far: str | None
    outlier_kind: str | None
    lo: tuple[float, float, float]
    hi: tuple[float, float, float]

    @property
    def centre(self) -> np.ndarray:
        """Centre of the object's world bounds."""
        return (np.asarray(self.lo) + np.asarray(self.hi)) / 2


@dataclass(frozen=True)
class SceneSpec:
    """Everything that decides one scene's pixels."""

    index: int
    seed: int
    size: int
    theme: str
    camera: Camera
    lighting: Lighting
    floor_texture: str | None
    floor_tile: float
    wall_texture: str | None
    wall_tile: float
    wall_distance: float
    objects: tuple[PlacedObject, ...]


def scene_rng(seed: int, index: int) -> np.random.Generator:
    """The random generator of scene ``index`` of a dataset generated with ``seed``."""
    return np.random.default_rng([int(seed), int(index)])


def _pick(rng: np.random.Generator, options, weights=None):
    options = list(options)
    if weights is not None:
        w = np.asarray(weights, dtype=float)
        return options[int(rng.choice(len(options), p=w / w.sum()))]
    return options[int(rng.integers(len(options)))]


def _theme_categories(rng: np.random.Generator, theme: str) -> list[str]:
    """The categories of a scene of ``theme`` (tables first; the order is the placement order)."""
    names = [c.name for c in CATEGORIES]
    small = [n for n in names if n != "table"]
    toys = [c.name for c in CATEGORIES if c.toy]
    chosen: list[str] = []
    if theme == "dining":
        chosen.append("table")
        kitchen = ["mug", "cup", "tray", "duck"]
        chosen += [_pick(rng, kitchen, [3, 3, 2, 0.5]) for _ in range(int(rng.integers(1, 4)))]
        chosen += [_pick(rng, small) for _ in range(int(rng.integers(0, 3)))]
    elif theme == "sports":
        chosen += ["soccer_ball"] * int(rng.integers(1, 3))
        chosen += ["racecar"] * int(rng.integers(0, 3))
        chosen += [_pick(rng, small) for _ in range(int(rng.integers(1, 3)))]
    elif theme == "playroom":
        if rng.random() < 0.25:
            chosen.append("table")
        chosen += [_pick(rng, toys) for _ in range(int(rng.integers(2, 5)))]
        chosen += [_pick(rng, small) for _ in range(int(rng.integers(0, 3)))]
    else:
        if rng.random() < 0.3:
            chosen.append("table")
        chosen += [_pick(rng, small) for _ in range(int(rng.integers(3, 6)))]
    return sorted(chosen, key=lambda n: n != "table")


def _look(rng: np.random.Generator, cat: Category, outlier_rate: float) -> tuple[str, str, str | None]:
    """Colour, texture and outlier kind of one instance."""
    colour = _pick(rng, cat.colours)
    texture = _pick(rng, cat.textures)
    outlier = _pick(rng, cat.outlier_kinds) if rng.random() < outlier_rate else None
    if outlier == "recolored":
        colour = _pick(rng, sorted(OUTLIER_COLOURS))
    return colour, texture, outlier


def _orientation(cat: Category, yaw_deg: float, upside_down: bool) -> np.ndarray:
    flip = quaternion_from_euler(np.pi if upside_down else 0.0, 0.0, 0.0)
    yaw = quaternion_from_euler(0.0, 0.0, np.radians(yaw_deg))
    return quaternion_multiply(yaw, quaternion_multiply(flip, upright_quaternion(cat.name)))


def _in_view(camera: Camera, lo: np.ndarray, hi: np.ndarray, margin: float = 0.97) -> bool:
    """Whether the whole box ``[lo, hi]`` projects inside the image (with a small margin)."""
    xy = project(camera.eye, np.asarray(camera.target), camera.fov, box_corners(lo, hi))
    return bool(np.all(np.isfinite(xy)) and np.all(np.abs(xy) <= margin))


def _centre_in_view(camera: Camera, lo: np.ndarray, hi: np.ndarray, margin: float = 0.85) -> bool:
    """Whether the box's centre projects well inside the image (the box itself may be cut by the border)."""
    xy = project(camera.eye, np.asarray(camera.target), camera.fov, ((lo + hi) / 2)[None])
    return bool(np.all(np.isfinite(xy)) and np.all(np.abs(xy) <= margin))


def sample_scene(seed: int, index: int, size: int = 224, outlier_rate: float = 0.03) -> SceneSpec:
    """Draw scene ``index`` of the dataset generated with ``seed`` (see the module docstring for the rules).

    Args:
        seed: the dataset's seed.
        index: the scene's index within the dataset (0-based).
        size: image width and height in pixels.
        outlier_rate: probability that an instance is drawn as an outlier.

    Returns:
        The frozen scene description.

    Example:
        >>> sample_scene(0, 0) == sample_scene(0, 0)
        True
    """
    rng = scene_rng(seed, index)
    camera = Camera(
        target=(0.0, 0.0, TARGET_HEIGHT),
        azimuth=float(rng.uniform(0.0, 360.0)),
        elevation=float(rng.uniform(*ELEVATION_RANGE)),
        distance=float(rng.uniform(*DISTANCE_RANGE)),
    )
    light_az, light_el = np.radians(rng.uniform(0.0, 360.0)), np.radians(rng.uniform(35.0, 80.0))
    tint = rng.uniform(-0.08, 0.08)
    lighting = Lighting(
        direction=(
            float(np.cos(light_el) * np.cos(light_az)),
            float(np.cos(light_el) * np.sin(light_az)),
            float(np.sin(light_el)),
        ),
        colour=(float(1.0 + tint), 1.0, float(1.0 - tint)),
        distance=float(rng.uniform(4.0, 8.0)),
        ambient=float(rng.uniform(0.45, 0.7)),
        diffuse=float(rng.uniform(0.35, 0.6)),
        specular=float(rng.uniform(0.05, 0.3)),
        shadow=bool(rng.random() < 0.7),
    )
    floor_texture = _pick(rng, FLOOR_TEXTURES)
    floor_tile = float(rng.uniform(*FLOOR_TEXTURES[floor_texture]))
    wall_texture = _pick(rng, WALL_TEXTURES)
    wall_tile = WALL_TEXTURES[wall_texture]
    wall_distance = WALL_BEHIND * camera.distance + 1.0
    theme = _pick(rng, THEMES, list(THEMES.values()))

    placed: list[PlacedObject] = []
    for name in _theme_categories(rng, theme):
        obj = _place(rng, get_category(name), camera, placed, outlier_rate)
        if obj is not None:
            placed.append(obj)
    return SceneSpec(
        index=int(index),
        seed=int(seed),
        size=int(size),
        theme=theme,
        camera=camera,
        lighting=lighting,
        floor_texture=floor_texture,
        floor_tile=floor_tile,
        wall_texture=wall_texture,
        wall_tile=wall_tile,
        wall_distance=float(wall_distance),
        objects=tuple(placed),
    )


def _footprints_free(centre_xy: np.ndarray, radius: float, others: list[tuple[np.ndarray, float]]) -> bool:
    return all(np.linalg.norm(centre_xy - c) >= radius + r + GAP for c, r in others)


def _place(
    rng: np.random.Generator, cat: Category, camera: Camera, placed: list[PlacedObject], outlier_rate: float
) -> PlacedObject | None:
    """Place one instance of ``cat`` (up to 40 attempts); ``None`` when it does not fit."""
    colour, texture, outlier = _look(rng, cat, outlier_rate)
    scale = float(rng.uniform(*cat.scale_range))
    yaw = float(rng.uniform(0.0, 360.0))
    upside_down = outlier == "upside_down"
    orientation = _orientation(cat, yaw, upside_down)
    lo0, hi0 = body_extent(cat.name, orientation, scale)
    radius = footprint_radius(lo0, hi0)
    centre0 = (lo0 + hi0) / 2

    tables = [i for i, o in enumerate(placed) if o.category == "table" and o.pose == "upright"]
    anchors = [i for i, o in enumerate(placed) if o.support == "floor" and o.near_far is None]
    on_table = cat.on_table and not cat.near_far and bool(tables) and rng.random() < 0.6
    near_far = _pick(rng, ["near", "far"]) if cat.near_far else None

    eye = camera.eye
    forward = np.asarray(camera.target[:2]) - eye[:2]
    forward /= np.linalg.norm(forward)
    right = np.array([forward[1], -forward[0]])
    horizontal = float(np.linalg.norm(eye[:2] - np.asarray(camera.target[:2])))

    for _ in range(40):
        support, support_index, base_z = "floor", None, 0.0
        if on_table:
            support_index = _pick(rng, tables)
            table = placed[support_index]
            free = _table_half_extent(table) - radius - 0.03
            if np.any(free <= 0):
                on_table = False
                continue
            # sample on the top in the table's own (yawed) frame; the table's mesh is centred on its base
            c, s = np.cos(np.radians(table.yaw)), np.sin(np.radians(table.yaw))
            local = rng.uniform(-1, 1, size=2) * free
            xy = np.asarray(table.position[:2]) + np.array(
                [c * local[0] - s * local[1], s * local[0] + c * local[1]]
            )
            support, base_z = "table", float(table.hi[2])
        elif near_far == "near":
            t = rng.uniform(*NEAR_FRACTION)
            lateral = rng.uniform(-0.35, 0.35) * (1 - t) * horizontal * np.tan(np.radians(camera.fov / 2))
            xy = -forward * t * horizontal + right * lateral
        elif near_far == "far":
            b = rng.uniform(*FAR_FRACTION) * camera.distance
            lateral = rng.uniform(-0.5, 0.5) * (horizontal + b) * np.tan(np.radians(camera.fov / 2))
            xy = forward * b + right * lateral
        elif anchors and rng.random() < BESIDE_PROBABILITY:
            # right beside an object already on the floor (footprints almost touching)
            anchor = placed[_pick(rng, anchors)]
            a_lo, a_hi = np.asarray(anchor.lo), np.asarray(anchor.hi)
            gap = radius + footprint_radius(a_lo, a_hi) + GAP + rng.uniform(0.0, 0.1)
            phi = rng.uniform(0, 2 * np.pi)
            xy = (a_lo[:2] + a_hi[:2]) / 2 + gap * np.array([np.cos(phi), np.sin(phi)])
        else:
            r, phi = MIDDLE_RADIUS * np.sqrt(rng.random()), rng.uniform(0, 2 * np.pi)
            xy = np.array([r * np.cos(phi), r * np.sin(phi)])
        position = np.array([xy[0] - centre0[0], xy[1] - centre0[1], base_z - lo0[2]])
        lo, hi = lo0 + position, hi0 + position
        others = [
            (
                (np.asarray(o.lo[:2]) + np.asarray(o.hi[:2])) / 2,
                footprint_radius(np.asarray(o.lo), np.asarray(o.hi)),
            )
            for o in placed
            if o.support == support and (support == "floor" or o.support_index == support_index)
        ]
        if not _footprints_free(xy, radius, others):
            continue
        visible_enough = _in_view(camera, lo, hi) if near_far == "near" else _centre_in_view(camera, lo, hi)
        if not visible_enough:
            continue
        return PlacedObject(
            category=cat.name,
            position=tuple(float(v) for v in position),
            orientation=tuple(float(v) for v in orientation),
            scale=scale,
            colour=colour,
            texture=texture,
            yaw=yaw,
            pose="upside_down" if upside_down else "upright",
            support=support,
            support_index=support_index,
            near_far=near_far,
            outlier_kind=outlier,
            lo=tuple(float(v) for v in lo),
            hi=tuple(float(v) for v in hi),
        )
    return None


def _table_half_extent(table: PlacedObject) -> np.ndarray:
    """Half length and half width of a table's top in its own (yawed) frame."""
    lo, hi = body_extent("table", upright_quaternion("table"), table.scale)
    return (hi[:2] - lo[:2]) / 2
