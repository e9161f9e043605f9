"""Where ``loce analyze`` writes, how it swaps a finished analysis in, and how loce reads the tables back.

- :func:`analysis_dir` gives the output folder of a protocol (named by :class:`loce.run_layout.RunLayout`):
  ``RUN/analysis/`` for the default protocol, ``RUN/analysis_paper/`` for the publication's (``--protocol paper``).
- :class:`AtomicOutput` writes into a temporary sibling directory and swaps it in only when everything is
  written (old output renamed aside, new renamed in, old deleted): a failure leaves the previous output intact,
  and the folder never mixes tables of two analyses. What other steps keep inside the folder
  (``analysis/methods/`` of ``loce compare-methods``) is moved into the new folder, never deleted.
- :func:`read_table` / :func:`read_summary` read the output back; a damaged file raises an
  :class:`~loce.analysis.errors.AnalysisError` naming it.

The headline table (``headline.csv|parquet``, one row per (model, layer)) carries, for every headline number
``M`` that has an interval, the columns ``M_ci_low`` and ``M_ci_high``, and the columns ``protocol``
(``"default"`` or ``"paper"``) and ``interval`` (what the interval is, e.g. ``"bootstrap over images, 95%"``).
Every other table has a ``protocol`` column too.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import pandas as pd

from loce.analysis.errors import AnalysisError
from loce.run_layout import AnalysisFiles, RunLayout, table_files

PROTOCOLS = ("default", "paper")
ANALYSIS_FORMAT = "loce-analysis"
SUMMARY_FILE = AnalysisFiles.marker_name
_TEMP_PREFIX = ".loce-analysis-"


def check_protocol(protocol: str) -> str:
    """Return ``protocol`` if it is known, else raise a clear error."""
    if protocol not in PROTOCOLS:
        raise AnalysisError(f"unknown analysis protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}.")
    return protocol


def analysis_dir(run: str | Path, protocol: str = "default") -> Path:
    """The folder in which ``loce analyze`` writes the analysis of ``run`` under ``protocol``.

    Example:
        >>> analysis_dir(Path("runs/scenes"), "paper").as_posix()
        'runs/scenes/analysis_paper'
        >>> analysis_dir(Path("runs/scenes"), "default").as_posix()
        'runs/scenes/analysis'
    """
    return RunLayout(run).analysis(check_protocol(protocol)).directory


def is_analysis_output(directory: Path) -> bool:
    """Whether ``directory`` holds a loce analysis (its ``summary.json`` says so)."""
    try:
        return json.loads(AnalysisFiles(directory).summary.read_text()).get("format") == ANALYSIS_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


class AtomicOutput:
    """Context manager: a fresh temporary directory beside ``target``, swapped in on success.

    Inside the ``with`` block write everything into :attr:`path`. On a clean exit the previous ``target`` (if
    any) is renamed aside, the new directory renamed to ``target`` and the old one deleted. On an exception the
    temporary directory is removed and ``target`` is left as it was. A ``target`` that exists but is not a loce
    analysis (a user's own folder) is refused before anything is written, unless it is empty. The sub-folders
    other steps own (:attr:`loce.run_layout.AnalysisFiles.FOREIGN`, e.g. ``methods/``) move from the old folder
    into the new one before the swap.

    Example:
        >>> with AtomicOutput(analysis_dir("RUN")) as out:  # doctest: +SKIP
        ...     (out.path / "summary.json").write_text("{}")
    """

    def __init__(self, target: str | Path) -> None:
        self.target = Path(target)
        self.path = self.target.parent / f"{_TEMP_PREFIX}{self.target.name}-{uuid.uuid4().hex[:8]}.tmp"

    def __enter__(self) -> AtomicOutput:
        target = self.target
        if target.exists() and not target.is_dir():
            raise AnalysisError(f"{target} is a file, not a directory; choose another --out.")
        if target.is_dir() and any(target.iterdir()) and not is_analysis_output(target):
            raise AnalysisError(
                f"{target} exists and is not a loce analysis (no {SUMMARY_FILE} of format {ANALYSIS_FORMAT!r}); "
                "loce replaces its output folder as a whole, so it will not write there. Choose another --out."
            )
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            self.path.mkdir()
        except OSError as exc:
            raise AnalysisError(f"cannot create {self.path}: {exc.strerror or exc}.") from None
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is not None:
            shutil.rmtree(self.path, ignore_errors=True)
            return
        old = None
        try:
            for name in AnalysisFiles.FOREIGN:  # other steps' outputs inside the folder are not ours to drop
                kept = self.target / name
                if kept.is_dir() and not (self.path / name).exists():
                    os.replace(kept, self.path / name)
            if self.target.exists():
                old = self.target.parent / f"{_TEMP_PREFIX}{self.target.name}-{uuid.uuid4().hex[:8]}.old"
                os.replace(self.target, old)
            os.replace(self.path, self.target)
        except OSError as exc:
            if old is not None and not self.target.exists():
                os.replace(old, self.target)  # put the previous output back
            for name in AnalysisFiles.FOREIGN:
                if (self.path / name).is_dir() and self.target.is_dir() and not (self.target / name).exists():
                    os.replace(self.path / name, self.target / name)
            shutil.rmtree(self.path, ignore_errors=True)
            raise AnalysisError(f"cannot move the new analysis into {self.target}: {exc}.") from None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def read_summary(directory: str | Path) -> dict:
    """``summary.json`` of an analysis folder; a missing or damaged file raises :class:`AnalysisError`.

    Example:
        >>> read_summary(analysis_dir("RUN"))["protocol"]  # doctest: +SKIP
        'default'
    """
    path = AnalysisFiles(Path(directory)).summary
    try:
        summary = json.loads(path.read_text())
    except FileNotFoundError:
        raise AnalysisError(f"{path} does not exist; run `loce analyze` first.") from None
    except (OSError, ValueError) as exc:
        raise AnalysisError(f"{path} cannot be read ({exc}); run `loce analyze` again.") from None
    if not isinstance(summary, dict) or summary.get("format") != ANALYSIS_FORMAT:
        raise AnalysisError(f"{path} is not a loce analysis summary; run `loce analyze` again.")
    return summary


def read_table(path: str | Path) -> pd.DataFrame:
    """Read one analysis table (``.parquet`` or ``.csv``); a damaged file raises :class:`AnalysisError`.

    Example:
        >>> read_table(analysis_dir("RUN") / "headline.parquet")  # doctest: +SKIP
    """
    path = Path(path)
    try:
        if path.suffix == ".csv":
            return pd.read_csv(path)
        return pd.read_parquet(path)
    except FileNotFoundError:
        raise AnalysisError(f"{path} does not exist; run `loce analyze` again.") from None
    except Exception as exc:  # pyarrow / pandas raise many types for damaged files
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AnalysisError(
            f"{path} is damaged or unreadable ({reason}); run `loce analyze` again."
        ) from None


def write_table(frame: pd.DataFrame, directory: Path, name: str) -> list[str]:
    """Write ``frame`` as ``name.csv`` and ``name.parquet`` into ``directory``; returns the file names."""
    csv, parquet = table_files(directory, name)
    frame.to_csv(csv, index=False)
    frame.to_parquet(parquet, index=False)
    return [csv.name, parquet.name]
