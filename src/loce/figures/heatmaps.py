"""K x K concept matrices (separation, overlap, confusion) side by side on one shared colour scale."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from loce.figures._base import new_figure, short_label, styled

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure


@styled
def matrix_heatmaps(
    matrices: Mapping[str, np.ndarray] | Sequence[np.ndarray],
    names: Sequence[str],
    *,
    titles: Sequence[str] | None = None,
    label: str = "",
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    annotate: bool | None = None,
    suptitle: str | None = None,
    fig: Figure | None = None,
) -> Figure:
    """Draw several K x K matrices (one per layer or model) as heat maps on a shared colour scale.

    Args:
        matrices: ``{panel title: K x K array}`` or a list of arrays (then give ``titles``); NaN cells are blank.
        names: the K concept names, the row and column order of every matrix.
        titles: panel titles when ``matrices`` is a list.
        label: colour-bar label (``"separation"``, ``"overlap"``).
        cmap: matplotlib colour map name.
        vmin, vmax: the shared colour range; default the finite minimum and maximum over all matrices.
        annotate: write values into the cells; default when K <= 12.
        suptitle: figure title.
        fig: draw into this (empty) figure.

    Returns:
        The figure: one axes per matrix, then one colour bar shared by all.

    Example:
        >>> fig = matrix_heatmaps({"blocks.5": S5, "blocks.11": S11}, names, label="separation")  # doctest: +SKIP
    """
    if isinstance(matrices, Mapping):
        titles = [str(t) for t in matrices]
        mats = [np.asarray(m, dtype=float) for m in matrices.values()]
    else:
        mats = [np.asarray(m, dtype=float) for m in matrices]
        titles = [str(t) for t in titles] if titles is not None else [""] * len(mats)
    names = [str(n) for n in names]
    k = len(names)
    if not mats:
        raise ValueError("matrix_heatmaps needs at least one matrix")
    for title, m in zip(titles, mats):
        if m.shape != (k, k):
            raise ValueError(
                f"matrix {title!r} has shape {m.shape}, expected ({k}, {k}) for {k} concept names"
            )
    finite = np.concatenate([m[np.isfinite(m)] for m in mats])
    lo = vmin if vmin is not None else (float(finite.min()) if finite.size else 0.0)
    hi = vmax if vmax is not None else (float(finite.max()) if finite.size else 1.0)
    if hi <= lo:
        hi = lo + 1e-9
    if annotate is None:
        annotate = k <= 12

    side = max(2.6, 0.32 * k + 1.2)
    if fig is None:
        fig = new_figure((side * len(mats) + 1.0, side + 0.4))
    axes = fig.subplots(1, len(mats), squeeze=False)[0]
    image = None
    from matplotlib.colors import Normalize

    norm = Normalize(vmin=lo, vmax=hi)
    for ax, title, m in zip(axes, titles, mats):
        image = ax.imshow(np.ma.masked_invalid(m), cmap=cmap, norm=norm, interpolation="nearest")
        ticks = [short_label(n) for n in names]
        ax.set_xticks(range(k), ticks, rotation=60, ha="right", rotation_mode="anchor")
        ax.set_yticks(range(k), ticks if ax is axes[0] else [""] * k)
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        if title:
            ax.set_title(title)
        if annotate:
            cm = image.get_cmap()
            for i in range(k):
                for j in range(k):
                    if np.isfinite(m[i, j]):
                        r, g, b, _ = cm(norm(m[i, j]))
                        dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
                        ax.text(
                            j,
                            i,
                            f"{m[i, j]:.2f}",
                            ha="center",
                            va="center",
                            fontsize=6.5,
                            color="white" if dark else "#222222",
                        )
    fig.colorbar(image, ax=list(axes), label=label, shrink=0.85, aspect=30)
    if suptitle:
        fig.suptitle(suptitle, fontweight="bold")
    return fig
