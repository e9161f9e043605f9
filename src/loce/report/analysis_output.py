"""Read what ``loce analyze`` wrote for one run and protocol: only what its latest ``summary.json`` lists.

A table left behind by an earlier analysis (other analyses, other concepts) is not listed in the latest
``summary.json`` and is never shown; a damaged file is a one-line :class:`AnalysisOutputError` naming it. The
default protocol's output is ``RUN/analysis/``, the publication's protocol (``loce analyze --protocol paper``)
writes ``RUN/analysis_paper/`` (:func:`loce.analysis.analysis_dir` when that exists, the same names otherwise).

Example:
    >>> output = read_analysis(Path("RUN"))  # doctest: +SKIP
    >>> output.tables["headline"][["model", "layer", "precision_at_1"]]  # doctest: +SKIP
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from loce.errors import InputError

PROTOCOLS = ("default", "paper")


class AnalysisOutputError(InputError):
    """A file written by ``loce analyze`` cannot be read (damaged, truncated, not what it should be)."""


def analysis_directory(run: str | Path, protocol: str = "default") -> Path:
    """``RUN/analysis`` (default protocol) or ``RUN/analysis_paper`` (the publication's protocol).

    Example:
        >>> analysis_directory(Path("RUN"), "paper").name
        'analysis_paper'
    """
    try:  # the analysis package owns the name; older versions lack the helper
        from loce.analysis import analysis_dir  # type: ignore[attr-defined]
    except ImportError:
        return Path(run) / ("analysis" if protocol == "default" else f"analysis_{protocol}")
    return Path(analysis_dir(run, protocol))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def read_table(path: Path) -> pd.DataFrame:
    """A Parquet (or CSV) table written by ``loce analyze``; a damaged file raises :class:`AnalysisOutputError`.

    Example:
        >>> read_table(Path("RUN/analysis/headline.parquet"))  # doctest: +SKIP
    """
    try:
        if path.suffix == ".csv":
            return pd.read_csv(path)
        return pd.read_parquet(path)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:  # ArrowInvalid is a ValueError
        raise AnalysisOutputError(
            f"{path}: the table cannot be read ({_first_line(exc)}); run `loce analyze` on the run again"
        ) from None


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object written by ``loce analyze``; a damaged file raises :class:`AnalysisOutputError`."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AnalysisOutputError(
            f"{path}: cannot be read ({_first_line(exc)}); run `loce analyze` on the run again"
        ) from None
    if not isinstance(value, dict):
        raise AnalysisOutputError(f"{path}: expected a JSON object; run `loce analyze` on the run again")
    return value


@dataclass
class AnalysisOutput:
    """The tables of one run's latest analysis under one protocol, each with a ``protocol`` column.

    Attributes:
        run: the run directory.
        directory: ``RUN/analysis`` or ``RUN/analysis_paper``.
        protocol: ``"default"`` or ``"paper"``.
        summary: ``summary.json`` as written.
        tables: table name -> frame, only the tables ``summary.json`` lists.
    """

    run: Path
    directory: Path
    protocol: str
    summary: dict[str, Any]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    @property
    def analysed(self) -> set[tuple[str, str]]:
        """The (model, layer) pairs the latest analysis covered."""
        return {(str(r.get("model")), str(r.get("layer"))) for r in self.summary.get("results", [])}

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.summary.get("settings", {}))


def listed_tables(summary: dict[str, Any]) -> list[str]:
    """Table names (without suffix) that ``summary.json`` lists, Parquet preferred, in listed order.

    Example:
        >>> listed_tables({"tables": ["headline.csv", "headline.parquet", "retrieval.csv"]})
        ['headline', 'retrieval']
    """
    names: dict[str, None] = {}
    for entry in summary.get("tables", []):
        name = Path(str(entry)).name
        for suffix in (".parquet", ".csv"):
            if name.endswith(suffix):
                names.setdefault(name[: -len(suffix)], None)
    return list(names)


def read_analysis(run: str | Path, protocol: str = "default") -> AnalysisOutput | None:
    """The latest analysis of ``run`` under ``protocol``, or ``None`` when that analysis was never run.

    Raises:
        AnalysisOutputError: naming a damaged ``summary.json`` or table.
    """
    run = Path(run)
    directory = analysis_directory(run, protocol)
    summary_path = directory / "summary.json"
    if not summary_path.is_file():
        return None
    summary = read_json(summary_path)
    output = AnalysisOutput(run, directory, protocol, summary)
    for name in listed_tables(summary):
        parquet, csv = directory / f"{name}.parquet", directory / f"{name}.csv"
        path = parquet if parquet.is_file() else csv
        if not path.is_file():
            raise AnalysisOutputError(
                f"{summary_path} lists the table {name!r} but {parquet} is missing; run `loce analyze` again"
            )
        frame = read_table(path)
        if "protocol" not in frame.columns:
            frame["protocol"] = protocol
        output.tables[name] = frame
    return output
