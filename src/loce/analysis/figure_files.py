"""Figure data on disk: ``RUN/analysis/layers/<model>__<layer>/`` in open formats (layout: docs/ANALYSIS.md).

Parquet for tables, ``.npy`` of float64 / unicode arrays (read with ``allow_pickle=False``) for the dendrogram,
``figure_data.json`` for settings and facts. ``RUN/analysis/summary.json`` lists the directories under
``"figure_data"``. The file names are :class:`loce.run_layout.FigureDataFiles`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from loce.analysis.errors import AnalysisError
from loce.analysis.figure_data import FigureData
from loce.analysis.output import read_table
from loce.run_layout import AnalysisFiles, FigureDataFiles

FIGURE_DATA_FORMAT = "loce-figure-data"
FIGURE_DATA_VERSION = 1
TABLES = FigureDataFiles.TABLES
ARRAYS = FigureDataFiles.ARRAYS


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-") or "x"


def figure_data_dirname(model: str, layer: str, taken: Sequence[str] = ()) -> str:
    """A readable, filesystem-safe directory name for (model, layer), unique among ``taken``.

    Example:
        >>> figure_data_dirname("timm:vit_small", "blocks.5")
        'timm-vit_small__blocks.5'
    """
    base = f"{_slug(model)}__{_slug(layer)}"
    name, i = base, 2
    while name in taken:
        name, i = f"{base}-{i}", i + 1
    return name


def write_figure_data(data: FigureData, parent: Path, taken: Sequence[str] = ()) -> Path:
    """Write ``data`` to a new directory under ``parent``; returns the directory.

    Example:
        >>> write_figure_data(data, Path("RUN/analysis/layers"))  # doctest: +SKIP
        PosixPath('RUN/analysis/layers/efficientnet-lite0___blocks.10')
    """
    files_of = FigureDataFiles(Path(parent) / figure_data_dirname(data.model, data.layer, taken))
    directory = files_of.directory
    directory.mkdir(parents=True, exist_ok=True)
    files = []
    for attribute, name in TABLES.items():
        frame = getattr(data, attribute)
        if frame is not None:
            frame.to_parquet(files_of.file(name), index=False)
            files.append(name)
    for attribute, name in ARRAYS.items():
        array = getattr(data, attribute)
        if array is not None:
            np.save(files_of.file(name), np.asarray(array), allow_pickle=False)
            files.append(name)
    info = {
        "format": FIGURE_DATA_FORMAT,
        "version": FIGURE_DATA_VERSION,
        **data.info,
        "notes": data.notes,
        "files": files,
    }
    files_of.info.write_text(json.dumps(info, indent=2, default=float) + "\n")
    return directory


def read_figure_data(directory: str | Path) -> FigureData:
    """Read a directory written by :func:`write_figure_data`.

    Raises:
        AnalysisError: when the directory holds no figure data (run ``loce analyze`` again).

    Example:
        >>> data = read_figure_data("RUN/analysis/layers/efficientnet-lite0___blocks.10")  # doctest: +SKIP
    """
    files_of = FigureDataFiles(Path(directory))
    directory = files_of.directory
    try:
        info = json.loads(files_of.info.read_text())
    except (OSError, ValueError) as exc:
        raise AnalysisError(
            f"{files_of.info} cannot be read ({exc}); run `loce analyze` on the run again."
        ) from None
    if info.get("format") != FIGURE_DATA_FORMAT or int(info.get("version", 0)) > FIGURE_DATA_VERSION:
        raise AnalysisError(
            f"{files_of.info} is not figure data this loce reads (format {info.get('format')!r}, "
            f"version {info.get('version')}); run `loce analyze` with this version."
        )
    tables = {
        attribute: read_table(files_of.file(name)) if files_of.file(name).is_file() else None
        for attribute, name in TABLES.items()
    }
    arrays = {
        attribute: _load_array(files_of.file(name)) if files_of.file(name).is_file() else None
        for attribute, name in ARRAYS.items()
    }
    if tables["loces"] is None or tables["neighbours"] is None:
        raise AnalysisError(
            f"{directory} lacks loces.parquet or neighbours.parquet; run `loce analyze` again."
        )
    notes = list(info.pop("notes", []))
    return FigureData(
        model=str(info.get("model", "")),
        layer=str(info.get("layer", "")),
        **tables,
        **arrays,
        info=info,
        notes=notes,
    )


def _load_array(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise AnalysisError(f"{path} is damaged or unreadable ({exc}); run `loce analyze` again.") from None


def list_figure_data(analysis_dir: str | Path) -> list[tuple[str, str, Path]]:
    """``(model, layer, directory)`` of every figure-data directory that ``summary.json`` lists (existing ones).

    Returns an empty list when there is no ``summary.json`` (the run was not analysed).

    Example:
        >>> list_figure_data("RUN/analysis")  # doctest: +SKIP
        [('efficientnet-lite0', '_blocks.10', PosixPath('RUN/analysis/layers/efficientnet-lite0___blocks.10'))]
    """
    files = AnalysisFiles(Path(analysis_dir))
    try:
        summary = json.loads(files.summary.read_text())
    except (OSError, ValueError):
        return []
    found = []
    for entry in summary.get("figure_data", []):
        directory = files.figure_data(entry["dir"])
        if FigureDataFiles(directory).info.is_file():
            found.append((str(entry["model"]), str(entry["layer"]), directory))
    return found
