"""The self-contained HTML report of one or more runs.

Built around a small structure of results (:class:`ReportData`: overview facts, sections with figures and
tables, interactive map points) that :func:`write_report` lays out as ``index.html`` with its images beside it.
The page opens offline from disk; every string from data is escaped.

Example:
    >>> from pathlib import Path
    >>> data = ReportData("LoCEs of lite0", overview={"model": "lite0", "LoCEs": 1200})
    >>> write_report(data, Path("report"))  # doctest: +SKIP
    PosixPath('report/index.html')
"""

from loce.report.data import FigureRef, LoceMap, MapEllipse, MapPoint, ReportData, Section, Table, Tags
from loce.report.thumbnails import thumbnail_path, write_thumbnail
from loce.report.write import write_report

__all__ = [
    "FigureRef",
    "LoceMap",
    "MapEllipse",
    "MapPoint",
    "ReportData",
    "Section",
    "Table",
    "Tags",
    "thumbnail_path",
    "write_report",
    "write_thumbnail",
]
