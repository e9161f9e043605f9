"""What the scene world is made of: object categories, their sources in ``pybullet_data``, sizes, colours,
textures, and the ImageNet classes a classifier should see in them.

Each :class:`Category` names one mesh (``.obj``) or robot description (``.urdf``) shipped with ``pybullet_data``,
a scale that makes it a sensible size in metres (toys are enlarged so that they stay visible at 224 px), the
rotation that stands it upright (z up), per-instance size jitter, the colour / texture variants it is drawn
with, and its ImageNet-1k class where one exists. Planted structure for the analyses:

- near / far sub-concepts: instances of categories with ``near_far=True`` are always placed either close to the
  camera or far behind the scene centre (a bimodal distance distribution; see :mod:`loce.scenes.layout`);
- a confusion pair: ``mug`` and ``cup`` are the same mesh, the cup wider, lower and in paler colours
  (:data:`CONFUSION_PAIRS`);
- outliers: a few instances are drawn upside down or in a colour their category never has
  (:data:`OUTLIER_COLOURS`); which kinds a category allows is in ``outlier_kinds``.

Example:
    >>> [c.name for c in CATEGORIES][:3]
    ['soccer_ball', 'mug', 'cup']
    >>> get_category("mug").imagenet_class
    504
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from loce.errors import InputError
from loce.scenes.geometry import box_corners, quaternion_from_euler, read_mesh_vertices, rotate

#: Named colours (RGBA in [0, 1]); a colour multiplies the object's texture, ``"original"`` keeps it unchanged.
COLOURS: dict[str, tuple[float, float, float, float]] = {
    "original": (1.0, 1.0, 1.0, 1.0),
    "white": (0.95, 0.95, 0.93, 1.0),
    "cream": (0.96, 0.9, 0.76, 1.0),
    "light_blue": (0.66, 0.8, 0.96, 1.0),
    "pale_green": (0.72, 0.9, 0.74, 1.0),
    "red": (0.85, 0.14, 0.12, 1.0),
    "blue": (0.16, 0.32, 0.85, 1.0),
    "yellow": (0.96, 0.8, 0.16, 1.0),
    "green": (0.2, 0.62, 0.26, 1.0),
    "black": (0.16, 0.16, 0.17, 1.0),
    "brown": (0.56, 0.36, 0.2, 1.0),
    "beige": (0.86, 0.74, 0.58, 1.0),
    "pink": (0.95, 0.62, 0.66, 1.0),
    "dark_wood": (0.62, 0.45, 0.32, 1.0),
}

#: Colours no category is normally drawn with: the ``"recolored"`` outliers.
OUTLIER_COLOURS: dict[str, tuple[float, float, float, float]] = {
    "magenta": (1.0, 0.0, 1.0, 1.0),
    "lime": (0.45, 1.0, 0.0, 1.0),
    "cyan": (0.0, 1.0, 1.0, 1.0),
}

#: Texture images in ``pybullet_data`` (for floors, walls and re-textured objects).
TEXTURES: dict[str, str] = {
    "wood": "table/table.png",
    "grass": "roboschool/models_outdoor/stadium/stadium_grass.jpg",
    "checker": "checker_grid.jpg",
    "blue_tiles": "checker_blue.png",
    "metal": "tray/tray.jpg",
    "crate": "jenga/jenga.png",
}

#: Categories planted as visually similar: same mesh, different proportions and colours.
CONFUSION_PAIRS: tuple[tuple[str, str], ...] = (("mug", "cup"),)

OUTLIER_KINDS = ("upside_down", "recolored")

#: Categories whose isolated renders EfficientNet-Lite0 (real ImageNet weights) ranks in the right class's top 5
#: for a clear majority of views (measured: soccer ball 1.00, mug 0.89, cup 1.00, table 0.94 over 12-36 views;
#: the race car, tray and teddy bear have ImageNet classes but are recognised in under 60 % of the views).
RECOGNISABLE: tuple[str, ...] = ("soccer_ball", "mug", "cup", "table")


@dataclass(frozen=True)
class Category:
    """One object category of the scene world.

    Attributes:
        name: the concept name written to the COCO categories.
        supercategory: COCO supercategory.
        source: path of the ``.obj`` mesh or ``.urdf`` file, relative to ``pybullet_data``.
        mesh_scale: scale of the source at instance scale 1 (per axis for meshes; URDFs scale uniformly, so
            the three values must be equal).
        upright_rpy: roll, pitch, yaw (radians) that stand the source upright with +z up.
        scale_range: per-instance size factor, drawn uniformly from this range.
        colours: colour variants (keys of :data:`COLOURS`).
        textures: texture variants (keys of :data:`TEXTURES`, or ``"original"`` for the source's own look).
        imagenet_class: index of the matching ImageNet-1k class, ``None`` when ImageNet has none.
        imagenet_name: that class's name (as in torchvision's ImageNet category list).
        near_far: instances are placed either near the camera or far away (bimodal distance).
        on_table: instances may stand on a table.
        outlier_kinds: the outlier kinds this category can be drawn with (from :data:`OUTLIER_KINDS`).
        toy: counts as a toy for the scene classes (:mod:`loce.scenes.classes`).
    """

    name: str
    supercategory: str
    source: str
    mesh_scale: tuple[float, float, float]
    upright_rpy: tuple[float, float, float] = (0.0, 0.0, 0.0)
    scale_range: tuple[float, float] = (0.9, 1.1)
    colours: tuple[str, ...] = ("original",)
    textures: tuple[str, ...] = ("original",)
    imagenet_class: int | None = None
    imagenet_name: str | None = None
    near_far: bool = False
    on_table: bool = False
    outlier_kinds: tuple[str, ...] = OUTLIER_KINDS
    toy: bool = False

    @property
    def is_urdf(self) -> bool:
        """Whether the source is a robot description loaded with ``loadURDF``."""
        return self.source.endswith(".urdf")


_Y_UP = (np.pi / 2, 0.0, 0.0)  # meshes modelled with +y up

CATEGORIES: tuple[Category, ...] = (
    Category(
        "soccer_ball",
        "sports",
        "soccerball.obj",
        (0.24, 0.24, 0.24),
        scale_range=(0.95, 1.05),
        imagenet_class=805,
        imagenet_name="soccer ball",
        near_far=True,
        outlier_kinds=("recolored",),
    ),
    Category(
        "mug",
        "kitchen",
        "objects/mug.obj",
        (2.0, 2.0, 2.0),
        colours=("red", "blue", "yellow", "green", "black"),
        imagenet_class=504,
        imagenet_name="coffee mug",
        on_table=True,
    ),
    Category(
        "cup",
        "kitchen",
        "objects/mug.obj",
        (2.5, 2.5, 1.4),
        colours=("white", "cream", "light_blue", "pale_green"),
        imagenet_class=968,
        imagenet_name="cup",
        on_table=True,
    ),
    Category(
        "table",
        "furniture",
        "table/table.urdf",
        (0.8, 0.8, 0.8),
        scale_range=(0.9, 1.1),
        colours=("original", "dark_wood", "white"),
        textures=("original", "crate"),
        imagenet_class=532,
        imagenet_name="dining table",
    ),
    Category(
        "racecar",
        "vehicle",
        "racecar/racecar.urdf",
        (1.0, 1.0, 1.0),
        scale_range=(1.0, 1.3),
        imagenet_class=751,
        imagenet_name="racer",
        near_far=True,
    ),
    Category(
        "tray",
        "kitchen",
        "tray/tray_textured2.obj",
        (0.34, 0.34, 0.34),
        colours=("original", "beige"),
        imagenet_class=868,
        imagenet_name="tray",
        on_table=True,
    ),
    Category(
        "duck",
        "toy",
        "duck.obj",
        (0.12, 0.12, 0.12),
        upright_rpy=_Y_UP,
        on_table=True,
        toy=True,
    ),
    Category(
        "teddy_bear",
        "toy",
        "teddy2_VHACD_CHs.obj",
        (0.36, 0.36, 0.36),
        upright_rpy=_Y_UP,
        colours=("brown", "beige", "pink"),
        imagenet_class=850,
        imagenet_name="teddy",
        toy=True,
    ),
    Category(
        "toy_brick",
        "toy",
        "lego/lego.obj",
        (0.6, 0.6, 0.6),
        upright_rpy=_Y_UP,
        colours=("red", "blue", "yellow", "green"),
        on_table=True,
        toy=True,
    ),
    Category(
        "wooden_block",
        "toy",
        "jenga/jenga.obj",
        (0.36, 0.12, 0.075),
        on_table=True,
        toy=True,
    ),
    Category(
        "domino",
        "toy",
        "domino/domino.obj",
        (5.0, 5.0, 5.0),
        on_table=True,
        toy=True,
    ),
)

_BY_NAME = {c.name: c for c in CATEGORIES}


def category_names() -> list[str]:
    """The category names in catalog order (COCO category ids are this order + 1)."""
    return [c.name for c in CATEGORIES]


def get_category(name: str) -> Category:
    """The catalog entry of ``name``; raises :class:`InputError` listing the known names otherwise."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise InputError(
            f"Unknown scene category {name!r}; the scene world has: {', '.join(category_names())}."
        ) from None


def data_dir() -> Path:
    """The directory of the installed ``pybullet_data`` package."""
    try:
        import pybullet_data
    except ImportError:  # pragma: no cover - pybullet is an extra
        raise ImportError('The scene world needs pybullet: pip install "loce[scenes]"') from None
    return Path(pybullet_data.getDataPath())


def texture_path(name: str) -> Path:
    """The file of the texture ``name`` (a key of :data:`TEXTURES`)."""
    if name not in TEXTURES:
        raise InputError(f"Unknown scene texture {name!r}; known textures: {', '.join(TEXTURES)}.")
    return data_dir() / TEXTURES[name]


def colour_rgba(name: str) -> tuple[float, float, float, float]:
    """RGBA of a named normal or outlier colour."""
    if name in COLOURS:
        return COLOURS[name]
    if name in OUTLIER_COLOURS:
        return OUTLIER_COLOURS[name]
    raise InputError(
        f"Unknown scene colour {name!r}; known colours: {', '.join([*COLOURS, *OUTLIER_COLOURS])}."
    )


@cache
def _source_points(name: str) -> np.ndarray:
    """Vertices of the category's visual geometry in its source frame at ``mesh_scale``."""
    cat = get_category(name)
    path = data_dir() / cat.source
    if not cat.is_urdf:
        return read_mesh_vertices(path) * np.asarray(cat.mesh_scale)
    from loce.scenes.render import urdf_visual_points  # needs pybullet

    return urdf_visual_points(path, global_scaling=cat.mesh_scale[0])


def upright_quaternion(name: str) -> np.ndarray:
    """The rotation that stands the category's source upright (z up)."""
    return quaternion_from_euler(*get_category(name).upright_rpy)


def body_extent(name: str, orientation: np.ndarray, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Exact axis-aligned bounds ``(lo, hi)`` of the category's geometry (its mesh vertices) when its source
    is turned by ``orientation`` (the full body orientation, upright rotation included) at instance ``scale``.

    Example:
        >>> lo, hi = body_extent("soccer_ball", quaternion_from_euler(0, 0, 0))
        >>> round(float(hi[2] - lo[2]), 2)
        0.24
    """
    points = rotate(orientation, _source_points(name) * scale)
    return points.min(axis=0), points.max(axis=0)


def footprint_radius(lo: np.ndarray, hi: np.ndarray) -> float:
    """Radius of the circle around the box's centre that holds its horizontal footprint."""
    corners = box_corners(lo, hi)[:, :2]
    return float(np.linalg.norm(corners - (lo[:2] + hi[:2]) / 2, axis=1).max())
