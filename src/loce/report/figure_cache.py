"""Analysis figures drawn once: each is saved under a name derived from what it is drawn from, and reused.

A figure's key hashes its kind, the files it is drawn from (name, size and modification time of every file of a
figure-data directory or table), the concept colours and the loce version. A second report build over an
unchanged analysis reuses every file instead of drawing it again; ``loce analyze`` rewrites its output, which
changes the key. Figures of the folder that no build used are removed by :meth:`FigureWriter.prune`.

Example:
    >>> save = FigureWriter(Path("report/img/figures"), colors={"cat": "#1f77b4"})  # doctest: +SKIP
    >>> ref = save(lambda: draw_map(data), "map", "the map", Tags(layer="l1"), sources=[layer_dir])  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from loce import __version__
from loce.figures import save_figure
from loce.report.data import FigureRef, Tags
from loce.report.profile import SectionTimer

PREFIX = "analysis_"
WIDE_MAPS = {"map", "gmms"}


def file_stamp(paths: Sequence[Path]) -> list[list[Any]]:
    """``[name, size, mtime_ns]`` of every file under ``paths`` (directories walked), sorted; missing: skipped.

    Example:
        >>> file_stamp([Path("RUN/analysis/layers/lite0___blocks.10")])  # doctest: +SKIP
        [['RUN/analysis/layers/lite0___blocks.10/info.json', 2180, 1733000000000000000], ...]
    """
    stamps = []
    for path in paths:
        path = Path(path)
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            try:
                st = f.stat()
            except OSError:
                continue
            stamps.append([str(f.resolve()), st.st_size, st.st_mtime_ns])
    return sorted(stamps)


class FigureWriter:
    """Draw-or-reuse: saves figures under content keys in ``folder`` and returns their references.

    Every file name starts with ``prefix``; writers of one folder with different prefixes prune only their own.

    Attributes:
        drawn, reused: how many figures were drawn and how many were found already drawn.
    """

    def __init__(
        self,
        folder: Path,
        colors: Mapping[str, str] | None = None,
        timer: SectionTimer | None = None,
        prefix: str = PREFIX,
    ):
        self.folder = Path(folder)
        self.prefix = prefix
        self.timer = timer if timer is not None else SectionTimer()
        self.colors = dict(colors or {})
        self.used: set[Path] = set()
        self.drawn = self.reused = 0

    def key(self, kind: str, sources: Sequence[Path], extra: object = None) -> str:
        text = json.dumps(
            [__version__, kind, file_stamp(sources), self.colors, extra], sort_keys=True, default=str
        )
        return hashlib.sha1(text.encode()).hexdigest()[:16]

    def __call__(
        self,
        draw: Callable[[], Any],
        kind: str,
        caption: str | Callable[[Any], str],
        tags: Tags,
        *,
        sources: Sequence[Path],
        extra: object = None,
        wide: bool = True,
    ) -> FigureRef | None:
        """The figure of ``draw()`` (a ``Figure``, or ``(Figure, detail)``, or ``None``) as a reference.

        ``caption`` is a string or a function of ``detail``; the caption is stored beside the figure so a
        reused figure keeps the caption it was drawn with. Returns ``None`` when ``draw`` returns no figure.
        """
        stem = self.folder / f"{self.prefix}{kind}_{self.key(kind, sources, extra)}"
        image, meta = stem.with_suffix(".png"), stem.with_suffix(".json")
        if meta.is_file():
            try:
                stored = json.loads(meta.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                stored = None
            if isinstance(stored, dict) and stored.get("empty"):
                self.used.add(meta)
                self.reused += 1
                return None
            if isinstance(stored, dict) and "caption" in stored and image.is_file():
                self.used.update({image, meta})
                self.reused += 1
                return FigureRef(image, str(stored["caption"]), tags, wide=wide)
        with self.timer(f"draw {kind}", group=f"draw figures: {kind}"):
            result = draw()
            detail = None
        if isinstance(result, tuple):
            result, detail = result
        self.folder.mkdir(parents=True, exist_ok=True)
        self.drawn += 1
        if result is None:
            meta.write_text(json.dumps({"caption": "", "empty": True}), encoding="utf-8")
            self.used.add(meta)
            return None
        text = caption(detail) if callable(caption) else caption
        with self.timer(f"save {kind}", group="save figures"):
            # the wide 2-D maps keep every point sharp at 110 dpi, at half the pixels (and time) of 150
            path = save_figure(result, stem, formats=("png",), dpi=110 if kind in WIDE_MAPS else 150)[0]
        meta.write_text(json.dumps({"caption": text}), encoding="utf-8")
        self.used.update({path, meta})
        return FigureRef(path, text, tags, wide=wide)

    def prune(self) -> int:
        """Remove this writer's figures (its prefix) of the folder that this build did not use; returns how many."""
        removed = 0
        for path in self.folder.glob(f"{self.prefix}*"):
            if path.is_file() and path not in self.used:
                path.unlink(missing_ok=True)
                removed += 1
        return removed
