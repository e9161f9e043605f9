"""Shared plumbing of the figure functions: lazy matplotlib, a house style, new figures and ``save_figure``.

Figures are created as :class:`matplotlib.figure.Figure` objects without pyplot, so no global state is touched,
nothing needs a display, and PNG files are rendered by the Agg backend. In a notebook the returned figure
displays itself.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

F = TypeVar("F", bound=Callable[..., Any])

STYLE: dict[str, Any] = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": "#555555",
    "axes.grid": False,
    "grid.color": "#e5e5e5",
    "grid.linewidth": 0.6,
    "legend.frameon": False,
    "legend.fontsize": 8,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "svg.fonttype": "none",
}


def short_label(text: object, max_chars: int = 24) -> str:
    """Shorten a tick or row label to ``max_chars`` with an ellipsis (full names belong in tables).

    Example:
        >>> short_label("a very long concept name indeed", 12)
        'a very long…'
    """
    text = str(text)
    return text if len(text) <= max_chars else text[: max_chars - 1].rstrip() + "…"


def require_matplotlib() -> Any:
    """Import matplotlib or raise an ImportError that names the extra to install."""
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - matplotlib is installed in dev
        raise ImportError('loce.figures needs matplotlib: pip install "loce[viz]"') from exc
    return matplotlib


def styled(func: F) -> F:
    """Run a figure function inside the house style (an ``rc_context``, so global settings stay untouched)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        matplotlib = require_matplotlib()
        with matplotlib.rc_context(STYLE):
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def new_figure(figsize: tuple[float, float]) -> Figure:
    """A new pyplot-free figure with constrained layout."""
    require_matplotlib()
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def figure_and_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    """Use the caller's axes, or make a figure with one axes."""
    if ax is not None:
        return ax.figure, ax  # type: ignore[return-value]
    fig = new_figure(figsize)
    return fig, fig.add_subplot()


PHOTO_FORMATS = ("jpg",)
JPEG_QUALITY = 88


def save_figure(
    fig: Figure, path_stem: str | Path, formats: Sequence[str] = ("png", "svg"), dpi: int = 150
) -> list[Path]:
    """Write ``fig`` once per format as ``<path_stem>.<format>`` and return the paths written.

    The stem may contain dots (``out/sep_blocks.5``): the format is appended, never substituted.

    Args:
        fig: the figure.
        path_stem: file path without extension; parent folders are created.
        formats: any format matplotlib writes (``png``, ``svg``, ``pdf``, ``jpg``...). Use :data:`PHOTO_FORMATS`
            (JPEG) for galleries of photos: an order of magnitude smaller than PNG.
        dpi: resolution of raster formats.

    Example:
        >>> paths = save_figure(fig, "out/separation_layer3")  # doctest: +SKIP
        [PosixPath('out/separation_layer3.png'), PosixPath('out/separation_layer3.svg')]
    """
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        fmt = fmt.lower().lstrip(".")
        path = stem.parent / f"{stem.name}.{fmt}"
        extra = {"pil_kwargs": {"quality": JPEG_QUALITY}} if fmt in ("jpg", "jpeg") else {}
        with require_matplotlib().rc_context(STYLE):
            fig.savefig(path, format=fmt, dpi=dpi, facecolor="white", **extra)
        written.append(path)
    return written
