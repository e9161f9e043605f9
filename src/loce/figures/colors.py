"""One colour per concept, the same in every figure and in the report.

Colours are assigned by sorted concept name, so the same set of concepts always gets the same colours, whatever
order the names arrive in. Up to ten concepts get tab10; more get the glasbey palette (from ``cmap``, made for many
categories: at 80 concepts the closest two colours differ by CIEDE2000 6.0, against 0.8 for the generated hues
used before), without its very dark and very light members. Nothing here imports matplotlib: the report's
JavaScript uses the same hex strings.
"""

from __future__ import annotations

import colorsys
from collections.abc import Iterable
from functools import lru_cache

# Twenty well-separated colours (tab10 followed by darker / lighter companions), then generated hues.
_PALETTE: tuple[str, ...] = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#393b79", "#e6550d", "#31a354", "#ad494a", "#6b6ecf", "#b5cf6b", "#ce6dbd", "#637939", "#fdae6b", "#3182bd",
)  # fmt: skip

# Colours for anonymous groups (GMM components, clusters): muted, so they read as "not a concept".
_GROUP_PALETTE: tuple[str, ...] = (
    "#8dd3c7", "#ffffb3", "#bebada", "#fb8072", "#80b1d3", "#fdb462", "#b3de69", "#fccde5", "#d9d9d9", "#bc80bd",
    "#ccebc5", "#ffed6f",
)  # fmt: skip

_GOLDEN = 0.618033988749895
_TAB10 = 10


@lru_cache(maxsize=1)
def glasbey_palette() -> tuple[str, ...]:
    """The glasbey colours (``cmap``) with CIELAB lightness between 25 and 88, in glasbey's order.

    Empty when ``cmap`` is not installed (``pip install "loce[viz]"``); concept colours then fall back to
    generated hues.

    Example:
        >>> len(glasbey_palette()) > 150
        True
    """
    try:
        import cmap
    except ImportError:
        return ()
    colors = [c.hex.lower() for c in cmap.Colormap("glasbey").iter_colors(256)]
    return tuple(c for c in dict.fromkeys(colors) if 25.0 < _lightness(c) < 88.0)


def _lightness(color: str) -> float:
    """CIELAB L* of a hex colour (D65)."""

    def linear(v: float) -> float:
        return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(v) for v in hex_to_rgb(color))
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return 116.0 * (y ** (1 / 3) if y > 216 / 24389 else (24389 / 27 * y + 16) / 116) - 16.0


def _generated_color(index: int, saturation: float = 0.65, value: float = 0.85) -> str:
    hue = (0.11 + index * _GOLDEN) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, saturation, value if index % 2 == 0 else value - 0.2)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


def concept_colors(names: Iterable[str]) -> dict[str, str]:
    """Map concept names to hex colours, deterministically by sorted (unique) name.

    Args:
        names: concept names, in any order, duplicates allowed.

    Returns:
        ``{name: "#rrggbb"}`` for every unique name, in sorted order.

    Example:
        >>> concept_colors(["dog", "cat", "dog"])
        {'cat': '#1f77b4', 'dog': '#ff7f0e'}
    """
    unique = sorted({str(n) for n in names})
    palette = _PALETTE[:_TAB10] if len(unique) <= _TAB10 else glasbey_palette() or _PALETTE
    colors: dict[str, str] = {}
    for i, name in enumerate(unique):
        colors[name] = palette[i] if i < len(palette) else _generated_color(i - len(palette))
    return colors


def group_colors(groups: Iterable[object]) -> dict[object, str]:
    """Muted colours for anonymous groups (mixture components, clusters), by sorted group key.

    Example:
        >>> group_colors([2, 0, 1])[0]
        '#8dd3c7'
    """
    unique = sorted(set(groups), key=lambda g: (str(type(g)), g))
    colors: dict[object, str] = {}
    for i, g in enumerate(unique):
        colors[g] = (
            _GROUP_PALETTE[i] if i < len(_GROUP_PALETTE) else _generated_color(i, saturation=0.35, value=0.95)
        )
    return colors


def hex_to_rgb(color: str) -> tuple[float, float, float]:
    """``"#rrggbb"`` -> ``(r, g, b)`` floats in [0, 1].

    Example:
        >>> hex_to_rgb("#ff0000")
        (1.0, 0.0, 0.0)
    """
    c = color.lstrip("#")
    if len(c) != 6:
        raise ValueError(f"expected a colour like '#1f77b4', got {color!r}")
    return tuple(int(c[i : i + 2], 16) / 255.0 for i in (0, 2, 4))  # type: ignore[return-value]
