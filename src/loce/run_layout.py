"""The run folder as a written contract: every artefact of a run is named here, and only here.

Every step writes and reads its files through :class:`RunLayout` (and the file sets it hands out), so a reader
never has to know a writer's file names. The layout of a run::

    RUN/
      manifest.json                        jobs, dataset, image root, run id (loce.store.manifest)
      .lock                                the write lock of the store
      loces/<job>-NNNNNN.parquet           store shards (<job>-000000: the job's annotation-time skips)
      quarantine/                          shards moved aside by `loce check --repair`
      cache/activations/                   the activation cache (safe to delete)
      analysis/                            `loce analyze`: summary.json lists the tables and the figure data
        summary.json, <table>.csv|parquet
        layers/<model>__<layer>/           figure data of one (model, layer)
        comparison.csv                     headline comparison across runs (`loce analyze RUN1 RUN2 ...`)
        methods/                           `loce compare-methods`: index.json lists the table and the figures
          location/                        `loce location`: index.json lists the table and the figures
      analysis_paper/                      `loce analyze --protocol paper` (same files as analysis/)
      localization/<name>/                 `loce localize --name NAME`: summary.csv marks a finished output
      cbm/<model>/                         `loce cbm train --out RUN/cbm/<model>`: model.pt, cbm.json, history.csv
      cbm/features/                        the feature cache the demo's CBMs share
      cbm/comparison/                      `loce cbm eval --loce-run RUN`: comparison.csv marks a finished output

Each step's output is a :class:`StepFiles` subclass: its folder, the file that marks it finished (``marker``)
and the names of its files. :meth:`RunLayout.outputs` is how the report asks what a run holds.

Example:
    >>> layout = RunLayout("runs/scenes")
    >>> layout.manifest.as_posix(), layout.shard("lite0", 3).name
    ('runs/scenes/manifest.json', 'lite0-000003.parquet')
    >>> layout.analysis("paper").summary.as_posix()
    'runs/scenes/analysis_paper/summary.json'
    >>> layout.methods.location.index.as_posix()
    'runs/scenes/analysis/methods/location/index.json'
    >>> layout.localization("mug+duck").directory.as_posix()
    'runs/scenes/localization/mug+duck'
    >>> layout.activation_cache.as_posix()
    'runs/scenes/cache/activations'
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

MANIFEST_FILE = "manifest.json"
LOCK_FILE = ".lock"
SHARD_DIR = "loces"
QUARANTINE_DIR = "quarantine"
CACHE_DIR = "cache"
ACTIVATIONS_DIR = "activations"
PROTOCOL_DIRS = {"default": "analysis", "paper": "analysis_paper"}
LOCALIZATION_DIR = "localization"
CBM_DIR = "cbm"
FIGURES_DIR = "figures"


def safe_name(text: str) -> str:
    """``text`` as one file-name component: runs of other characters than ``A-Za-z0-9_.@=+-`` become ``_``.

    Example:
        >>> safe_name("traffic light@_blocks.10")
        'traffic_light@_blocks.10'
    """
    return re.sub(r"[^A-Za-z0-9_.@=+-]+", "_", str(text)).strip("_") or "x"


def shard_file_name(job: str, number: int) -> str:
    """The file name of shard ``number`` of ``job`` (the job name is checked by :mod:`loce.store.shards`).

    Example:
        >>> shard_file_name("lite0", 7)
        'lite0-000007.parquet'
    """
    return f"{job}-{number:06d}.parquet"


def table_files(directory: Path, name: str) -> tuple[Path, Path]:
    """``(name.csv, name.parquet)`` in ``directory``: a table written in both formats."""
    return directory / f"{name}.csv", directory / f"{name}.parquet"


@dataclass(frozen=True)
class StepFiles:
    """The folder of one step's output; ``marker`` is the file whose presence says the output is finished."""

    directory: Path
    step = ""
    marker_name = ""

    @property
    def name(self) -> str:
        """The folder's own name (e.g. the ``--name`` of a localisation)."""
        return self.directory.name

    @property
    def marker(self) -> Path:
        return self.directory / self.marker_name

    def exists(self) -> bool:
        """Whether the step finished writing here (its marker file exists)."""
        return self.marker.is_file()

    def figure(self, stem: str) -> Path:
        """``figures/<stem>`` (without suffix: :func:`loce.figures.save_figure` adds the formats)."""
        return self.directory / FIGURES_DIR / stem


@dataclass(frozen=True)
class AnalysisFiles(StepFiles):
    """``RUN/analysis/`` (or ``RUN/analysis_paper/``): what ``loce analyze`` writes.

    ``summary.json`` lists the tables and figure-data folders of the latest analysis; nothing else counts.
    """

    step = "analysis"
    marker_name = "summary.json"
    FIGURE_DATA_DIR = "layers"
    # Sub-folders other steps own inside analysis/: kept when a new analysis replaces the folder.
    FOREIGN = ("methods",)

    @property
    def summary(self) -> Path:
        return self.marker

    def table(self, name: str, suffix: str = ".parquet") -> Path:
        """``<name>.parquet`` (or another ``suffix``) of the analysis."""
        return self.directory / f"{name}{suffix}"

    def tables(self, name: str) -> tuple[Path, Path]:
        """``(<name>.csv, <name>.parquet)``."""
        return table_files(self.directory, name)

    @property
    def figure_data_root(self) -> Path:
        """``layers/``: one sub-folder per (model, layer)."""
        return self.directory / self.FIGURE_DATA_DIR

    def figure_data(self, relative: str) -> Path:
        """A figure-data folder as ``summary.json`` lists it (``layers/<dir>``)."""
        return self.directory / relative

    def figure_data_entry(self, directory: Path) -> str:
        """How ``summary.json`` lists a figure-data folder: relative to the analysis folder."""
        return f"{self.FIGURE_DATA_DIR}/{Path(directory).name}"

    @property
    def comparison(self) -> Path:
        """``comparison.csv``: the headline comparison of several runs analysed together."""
        return self.directory / "comparison.csv"

    @property
    def methods(self) -> MethodsFiles:
        return MethodsFiles(self.directory / "methods")


@dataclass(frozen=True)
class FigureDataFiles:
    """One figure-data folder ``analysis/layers/<model>__<layer>/`` (format: :mod:`loce.analysis.figure_files`)."""

    directory: Path
    INFO = "figure_data.json"
    TABLES = {
        "loces": "loces.parquet",
        "neighbours": "neighbours.parquet",
        "map_mixtures": "map_mixtures.parquet",
        "queries": "precision_per_query.parquet",
        "outliers": "outliers_ranked.parquet",
        "mixed_clusters": "mixed_clusters.parquet",
    }
    ARRAYS = {"linkage": "dendrogram_linkage.npy", "leaf_labels": "dendrogram_labels.npy"}

    @property
    def info(self) -> Path:
        return self.directory / self.INFO

    def file(self, name: str) -> Path:
        return self.directory / name


@dataclass(frozen=True)
class IndexedTableFiles(StepFiles):
    """A step folder whose ``index.json`` lists one table (``TABLE``, as CSV and Parquet) and the figures."""

    marker_name = "index.json"
    TABLE = ""

    @property
    def index(self) -> Path:
        return self.marker

    @property
    def tables(self) -> tuple[Path, Path]:
        """``(TABLE.csv, TABLE.parquet)``."""
        return table_files(self.directory, self.TABLE)


@dataclass(frozen=True)
class MethodsFiles(IndexedTableFiles):
    """``RUN/analysis/methods/``: ``loce compare-methods`` (``comparison.csv`` / ``.parquet`` and figures)."""

    step = "methods"
    TABLE = "comparison"

    @property
    def location(self) -> LocationFiles:
        return LocationFiles(self.directory / "location")


@dataclass(frozen=True)
class LocationFiles(IndexedTableFiles):
    """``RUN/analysis/methods/location/``: ``loce location`` (``scores.csv`` / ``.parquet``, coordinates, figures)."""

    step = "location"
    TABLE = "scores"

    @property
    def coords(self) -> Path:
        return self.directory / "coords.parquet"


@dataclass(frozen=True)
class LocalizationFiles(StepFiles):
    """``RUN/localization/<name>/``: one ``loce localize`` call (``summary.csv`` marks it finished)."""

    step = "localization"
    marker_name = "summary.csv"
    HEATMAP_PREFIX = "heatmaps_"

    @property
    def summary(self) -> Path:
        return self.marker

    @property
    def metrics(self) -> Path:
        return self.directory / "metrics.csv"

    @property
    def vectors(self) -> Path:
        """``vectors.json``: what each projected vector is, notes and settings."""
        return self.directory / "vectors.json"

    def overlay(self, concept: str, key: str, image: str) -> Path:
        """``heatmaps/<concept>/<vector>@<layer>/<image>.png``: one overlay of an example image."""
        return self.directory / "heatmaps" / safe_name(concept) / safe_name(key) / f"{safe_name(image)}.png"

    def heatmap_figure(self, concept: str) -> Path:
        """``figures/heatmaps_<concept>`` (suffix added by the figure writer)."""
        return self.figure(self.HEATMAP_PREFIX + safe_name(concept))

    def heatmap_figures(self) -> list[tuple[str, Path]]:
        """``(concept, file)`` of every heat-map grid written here (JPEG), sorted by file name."""
        found = sorted((self.directory / FIGURES_DIR).glob(f"{self.HEATMAP_PREFIX}*.jpg"))
        return [(path.stem.removeprefix(self.HEATMAP_PREFIX), path) for path in found]


@dataclass(frozen=True)
class CbmModelFiles(StepFiles):
    """A trained concept bottleneck (``loce cbm train --out``; under a run: ``RUN/cbm/<model>/``)."""

    step = "cbm-model"
    marker_name = "cbm.json"

    @property
    def model(self) -> Path:
        """``model.pt``: the state dict (read with ``weights_only=True``)."""
        return self.directory / "model.pt"

    @property
    def info(self) -> Path:
        """``cbm.json``: settings, concepts, classes, backbone, layer, dataset, split."""
        return self.marker

    @property
    def history(self) -> Path:
        return self.directory / "history.csv"

    @property
    def features(self) -> Path:
        """The default feature cache of a model trained without ``--cache``."""
        return self.directory / "features"


@dataclass(frozen=True)
class CbmComparisonFiles(StepFiles):
    """``loce cbm eval`` output (under a run: ``RUN/cbm/comparison/``; ``comparison.csv`` marks it finished)."""

    step = "cbm"
    marker_name = "comparison.csv"
    DEFAULT_NAME = "comparison"

    @classmethod
    def beside(cls, model_dir: str | Path) -> CbmComparisonFiles:
        """``<parent of model_dir>/comparison/``: where ``loce cbm eval`` writes without a LoCE run or ``--out``."""
        return cls(Path(model_dir).parent / cls.DEFAULT_NAME)

    @property
    def table(self) -> Path:
        return self.marker

    @property
    def per_concept(self) -> Path:
        return self.directory / "per_concept.csv"

    @property
    def per_map(self) -> Path:
        return self.directory / "per_map.csv"

    @property
    def record(self) -> Path:
        """``comparison.json``: the models, the LoCE run, the test images and notes."""
        return self.directory / "comparison.json"

    @property
    def heatmaps(self) -> Path:
        """``figures/heatmaps`` (JPEG)."""
        return self.figure("heatmaps")

    @property
    def metrics_figure(self) -> Path:
        """``figures/metrics`` (PNG)."""
        return self.figure("metrics")


STEPS = ("analysis", "analysis_paper", "methods", "location", "localization", "cbm")


@dataclass(frozen=True, init=False)
class RunLayout:
    """Every path inside the run folder ``root`` (see the module docstring for the tree).

    Example:
        >>> RunLayout("RUN").loces.as_posix(), RunLayout("RUN").quarantine.as_posix()
        ('RUN/loces', 'RUN/quarantine')
    """

    root: Path

    def __init__(self, root: str | Path) -> None:
        object.__setattr__(self, "root", Path(root))

    # --- the store -------------------------------------------------------------------------------------------
    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST_FILE

    @property
    def lock(self) -> Path:
        return self.root / LOCK_FILE

    @property
    def loces(self) -> Path:
        """``loces/``: the shards."""
        return self.root / SHARD_DIR

    def shard(self, job: str, number: int) -> Path:
        return self.loces / shard_file_name(job, number)

    @property
    def quarantine(self) -> Path:
        return self.root / QUARANTINE_DIR

    @property
    def activation_cache(self) -> Path:
        """``cache/activations/``: cached activations, reused across steps; safe to delete."""
        return self.root / CACHE_DIR / ACTIVATIONS_DIR

    # --- analyses --------------------------------------------------------------------------------------------
    def analysis(self, protocol: str = "default") -> AnalysisFiles:
        """The output of ``loce analyze --protocol PROTOCOL`` (``"default"`` or ``"paper"``).

        Raises:
            KeyError: for an unknown protocol (:func:`loce.analysis.output.analysis_dir` says it in words).
        """
        return AnalysisFiles(self.root / PROTOCOL_DIRS[protocol])

    @property
    def methods(self) -> MethodsFiles:
        """``analysis/methods/``: ``loce compare-methods``."""
        return self.analysis().methods

    @property
    def location(self) -> LocationFiles:
        """``analysis/methods/location/``: ``loce location``."""
        return self.methods.location

    # --- localisation and concept bottlenecks ----------------------------------------------------------------
    @property
    def localization_root(self) -> Path:
        return self.root / LOCALIZATION_DIR

    def localization(self, name: str) -> LocalizationFiles:
        """``localization/<name>/`` (``name`` made file-name safe)."""
        return LocalizationFiles(self.localization_root / safe_name(name))

    @property
    def cbm_root(self) -> Path:
        return self.root / CBM_DIR

    def cbm_model(self, name: str) -> CbmModelFiles:
        """``cbm/<name>/``: a concept bottleneck trained into the run."""
        return CbmModelFiles(self.cbm_root / safe_name(name))

    @property
    def cbm_features(self) -> Path:
        """``cbm/features/``: the feature cache shared by the run's concept bottlenecks."""
        return self.cbm_root / "features"

    def cbm_comparison(self, name: str = CbmComparisonFiles.DEFAULT_NAME) -> CbmComparisonFiles:
        """``cbm/<name>/``: where ``loce cbm eval --loce-run RUN`` writes by default."""
        return CbmComparisonFiles(self.cbm_root / safe_name(name))

    # --- what a run holds ------------------------------------------------------------------------------------
    def outputs(self, step: str) -> list[StepFiles]:
        """The finished outputs of ``step`` in this run (one of :data:`STEPS`), sorted by folder name.

        ``analysis``, ``analysis_paper``, ``methods`` and ``location`` have at most one output; ``localization``
        and ``cbm`` one per sub-folder that holds a finished output.

        Example:
            >>> RunLayout("no/such/run").outputs("localization")
            []
        """
        if step not in STEPS:
            raise ValueError(f"unknown run step {step!r}; one of {', '.join(STEPS)}")
        if step in ("analysis", "analysis_paper"):
            found: list[StepFiles] = [self.analysis("paper" if step == "analysis_paper" else "default")]
        elif step == "methods":
            found = [self.methods]
        elif step == "location":
            found = [self.location]
        else:
            root, kind = (self.localization_root, LocalizationFiles)
            if step == "cbm":
                root, kind = self.cbm_root, CbmComparisonFiles
            found = [kind(p) for p in sorted(root.iterdir())] if root.is_dir() else []
        return [files for files in found if files.exists()]


def run_labels(runs: Sequence[str | Path]) -> dict[Path, str]:
    """A distinct display label per run, keyed by the run's full path: the folder name where it is unique, else as
    many trailing path components as tell the runs apart (``a/RUN`` and ``b/RUN``).

    Runs are told apart by their resolved path; two paths naming the same folder get the same label.

    Example:
        >>> labels = run_labels(["x/a/RUN", "x/b/RUN", "x/c/other"])
        >>> [labels[Path(p)] for p in ("x/a/RUN", "x/b/RUN", "x/c/other")]
        ['a/RUN', 'b/RUN', 'other']
    """
    paths = [Path(r) for r in runs]
    resolved = {p: p.resolve() for p in paths}
    distinct = list(dict.fromkeys(resolved.values()))
    labels: dict[Path, str] = {}
    for path in paths:
        full = resolved[path]
        others = [o for o in distinct if o != full]
        depth = 1
        while depth < len(full.parts) and any(_tail(o, depth) == _tail(full, depth) for o in others):
            depth += 1
        labels[path] = _tail(full, depth) if others else full.name or str(full)
    return labels


def _tail(path: Path, depth: int) -> str:
    return "/".join(path.parts[-depth:])


def unique_paths(paths: Iterable[str | Path]) -> list[Path]:
    """``paths`` without repeats of the same folder (by resolved path), in order."""
    seen: dict[Path, Path] = {}
    for p in paths:
        seen.setdefault(Path(p).resolve(), Path(p))
    return list(seen.values())
