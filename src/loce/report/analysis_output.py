"""Read what ``loce analyze`` wrote for one run and protocol: only what its latest ``summary.json`` lists.

A table left behind by an earlier analysis (other analyses, other concepts) is not listed in the latest
``summary.json`` and is never shown; a damaged file is a one-line :class:`~loce.analysis.AnalysisError` naming it. The
default protocol's output is ``RUN/analysis/``, the publication's protocol (``loce analyze --protocol paper``)
writes ``RUN/analysis_paper/`` (both named by :func:`loce.analysis.analysis_dir`).

Example:
    >>> output = read_analysis(Path("RUN"))  # doctest: +SKIP
    >>> output.tables["headline"][["model", "layer", "precision_at_1"]]  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from loce.analysis import AnalysisError, read_summary, read_table
from loce.analysis.output import check_protocol
from loce.run_layout import RunLayout


@dataclass
class AnalysisOutput:
    """The tables of one run's latest analysis under one protocol, each with a ``protocol`` column.

    Attributes:
        run: the run directory.
        directory: ``RUN/analysis`` or ``RUN/analysis_paper``.
        label: how the report names the run (distinct for distinct runs, see :func:`loce.run_layout.run_labels`).
        protocol: ``"default"`` or ``"paper"``.
        summary: ``summary.json`` as written.
        tables: table name -> frame, only the tables ``summary.json`` lists.
    """

    run: Path
    directory: Path
    protocol: str
    summary: dict[str, Any]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    label: str = ""

    def __post_init__(self) -> None:
        self.label = self.label or self.run.name

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


def read_analysis(run: str | Path, protocol: str = "default", label: str = "") -> AnalysisOutput | None:
    """The latest analysis of ``run`` under ``protocol``, or ``None`` when that analysis was never run.

    ``label`` names the run in the report (default: its folder name).

    Raises:
        AnalysisError: naming a damaged ``summary.json`` or table.
    """
    run = Path(run)
    files = RunLayout(run).analysis(check_protocol(protocol))
    directory, summary_path = files.directory, files.summary
    if not files.exists():
        return None
    summary = read_summary(directory)
    output = AnalysisOutput(run, directory, protocol, summary, label=label)
    for name in listed_tables(summary):
        csv, parquet = files.tables(name)
        path = parquet if parquet.is_file() else csv
        if not path.is_file():
            raise AnalysisError(
                f"{summary_path} lists the table {name!r} but {parquet} is missing; run `loce analyze` again"
            )
        frame = read_table(path)
        if "protocol" not in frame.columns:
            frame["protocol"] = protocol
        output.tables[name] = frame
    return output
