"""The built-in scene world: rendered multi-object scenes with exact concept masks, written as COCO data.

Scenes are rendered offline with pybullet's CPU renderer from the textured objects in ``pybullet_data``
(``pip install "loce[scenes]"``), so ``loce`` can be tried without downloading any dataset. The structure the
analyses should find is planted and recorded per instance (distance, pose, occlusion, colour, near / far,
outliers), and every image gets a scene class derived from its concepts.

Modules: :mod:`~loce.scenes.catalog` (categories), :mod:`~loce.scenes.layout` (sampling a scene),
:mod:`~loce.scenes.render` (pixels and object-id buffers), :mod:`~loce.scenes.writer` (COCO output),
:mod:`~loce.scenes.classes` (scene classes).

Example:
    >>> from loce.scenes import generate_scenes
    >>> out = generate_scenes("scenes", n=50, seed=0)  # doctest: +SKIP
    >>> from loce.data import load_coco  # doctest: +SKIP
    >>> dataset = load_coco(out / "annotations.json", out / "images")  # doctest: +SKIP
"""

from loce.scenes.catalog import CATEGORIES, CONFUSION_PAIRS, Category, category_names, get_category
from loce.scenes.classes import SCENE_CLASSES, scene_class
from loce.scenes.layout import SceneSpec, sample_scene
from loce.scenes.render import RenderedScene, SceneRenderer, render_isolated, render_scene
from loce.scenes.writer import GENERATOR_VERSION, generate_scenes

__all__ = [
    "CATEGORIES",
    "CONFUSION_PAIRS",
    "GENERATOR_VERSION",
    "SCENE_CLASSES",
    "Category",
    "RenderedScene",
    "SceneRenderer",
    "SceneSpec",
    "category_names",
    "generate_scenes",
    "get_category",
    "render_isolated",
    "render_scene",
    "sample_scene",
    "scene_class",
]
