"""Image-level scene classes derived from the concepts present: the labels of a concept-bottleneck experiment.

The class of a scene is a fixed, documented function of the *annotated* object categories in it (those with
at least the minimum number of visible pixels), so a model that knows which concepts are present can predict the
class exactly, and one that does not, cannot. The rules, applied in order, first match wins:

1. ``"dining_room"``: a table together with a mug, a cup or a tray;
2. ``"sports"``: a soccer ball or a race car;
3. ``"playroom"``: at least two toys (duck, teddy bear, toy brick, wooden block, domino; instances count);
4. ``"other"``: everything else (including scenes with no annotated object).

Example:
    >>> scene_class(["table", "mug", "soccer_ball"])
    'dining_room'
    >>> scene_class(["duck", "duck"])
    'playroom'
    >>> scene_class(["duck", "table"])
    'other'
"""

from __future__ import annotations

from collections.abc import Iterable

from loce.scenes.catalog import CATEGORIES

#: All scene classes, in the order of the rules.
SCENE_CLASSES: tuple[str, ...] = ("dining_room", "sports", "playroom", "other")

TABLEWARE = frozenset({"mug", "cup", "tray"})
SPORTS_GEAR = frozenset({"soccer_ball", "racecar"})
TOYS = frozenset(c.name for c in CATEGORIES if c.toy)


def scene_class(category_names: Iterable[str]) -> str:
    """The scene class of an image from the category names of its annotated instances (one per instance).

    Args:
        category_names: category of every annotated instance (repeats count for the toy rule).

    Returns:
        One of :data:`SCENE_CLASSES` (see the module docstring for the rules).
    """
    names = list(category_names)
    present = set(names)
    if "table" in present and present & TABLEWARE:
        return "dining_room"
    if present & SPORTS_GEAR:
        return "sports"
    if sum(name in TOYS for name in names) >= 2:
        return "playroom"
    return "other"
