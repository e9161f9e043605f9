"""Write a report: place its files beside ``index.html`` and write the page."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from urllib.parse import quote

from loce.errors import InputError
from loce.report.data import ReportData
from loce.report.render import render_report


class FilePlacer:
    """Turns file paths into URLs relative to the report folder, copying files from outside into ``img/files``.

    Example:
        >>> url_of = FilePlacer(Path("report"))  # doctest: +SKIP
        >>> url_of(Path("report/img/thumbs/a.jpg"))  # doctest: +SKIP
        'img/thumbs/a.jpg'
    """

    def __init__(self, out: Path):
        self.out = Path(out).resolve()
        self._urls: dict[Path, str] = {}
        self._folders: dict[Path, Path] = {}  # folder -> resolved folder (thousands of thumbnails share one)

    def _resolve(self, path: Path) -> Path:
        path = Path(path)
        if path.name in ("", ".", ".."):
            return path.resolve()
        folder = self._folders.get(path.parent)
        if folder is None:
            folder = self._folders[path.parent] = path.parent.resolve()
        source = folder / path.name
        return source.resolve() if source.is_symlink() else source

    def __call__(self, path: Path) -> str:
        source = self._resolve(path)
        if source in self._urls:
            return self._urls[source]
        if not source.is_file():
            raise InputError(
                f"the report refers to {source}, which does not exist; write the figure or thumbnail first "
                "(or drop it from the report data)"
            )
        try:
            relative = source.relative_to(self.out)
        except ValueError:
            digest = hashlib.sha1(str(source).encode()).hexdigest()[:8]
            target = self.out / "img" / "files" / f"{source.stem[:60]}-{digest}{source.suffix.lower()}"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
            relative = target.relative_to(self.out)
        url = "/".join(quote(part) for part in relative.parts)
        self._urls[source] = url
        return url


def write_report(data: ReportData, out: Path) -> Path:
    """Write ``out/index.html`` for ``data``; files outside ``out`` are copied into ``out/img/files``.

    The page embeds its CSS, script and data, refers to images by relative paths and loads nothing from the
    internet, so the folder opens offline and can be zipped or moved as a whole.

    Args:
        data: what to show.
        out: the report folder (created if needed).

    Returns:
        The path of ``index.html``.

    Example:
        >>> write_report(ReportData("LoCEs of lite0", overview={"LoCEs": 1200}), Path("report"))  # doctest: +SKIP
        PosixPath('report/index.html')
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    page = render_report(data, FilePlacer(out))
    index = out / "index.html"
    tmp = index.with_name(".index.html.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(index)
    return index
