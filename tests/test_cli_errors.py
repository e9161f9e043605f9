"""No traceback without --debug: every subcommand's bad input, a read-only run, a full disk, --out on a file, a
closed pipe, and --debug accepted after the subcommand."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest

import loce.cli.info as info_cli
import loce.store.atomic as atomic
from loce.cli.main import build_parser, main
from loce.store import JobSpec, LoCEStore
from planted_data import write_planted_coco
from store_helpers import rows_for

FIT = [
    "fit",
    "--model",
    "torchvision:resnet18",
    "--layers",
    "layer2",
    "--input-size",
    "64",
    "64",
    "--no-progress",
]


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("loce: warning")]
    assert len(lines) == 1 and lines[0].startswith("loce: error: "), err
    assert "Traceback" not in err
    return lines[0]


def bad_arguments(tmp: Path) -> dict[str, list[str]]:
    """One parseable but bad argument set per subcommand."""
    afile = tmp / "afile"
    afile.write_text("not a directory")
    missing = str(tmp / "missing")
    return {
        "demo": ["demo", "--out", str(afile), "--n", "4"],
        "scenes": ["scenes", "--out", str(afile), "--n", "2"],
        "layers": ["layers", "torchvision:no_such_model"],
        "fit": [*FIT, "--coco", str(tmp / "missing.json"), "--images", str(tmp), "--out", missing],
        "embed": [
            "embed",
            "--method",
            "crop",
            "--model",
            "torchvision:resnet18",
            "--coco",
            str(tmp / "no.json"),
            "--images",
            str(tmp),
            "--out",
            missing,
        ],  # fmt: skip
        "info": ["info", missing],
        "check": ["check", missing],
        "analyze": ["analyze", missing],
        "compare-methods": ["compare-methods", missing],
        "location": ["location", "--model", "torchvision:no_such_model", "--layers", "x", "--out", missing],
        "localize": ["localize", missing, "--concept", "x", "--images", str(tmp)],
        "cbm": ["cbm", "eval", missing, missing + "2"],
        "report": ["report", missing, "--out", str(tmp / "report")],
    }


def test_every_subcommand_reports_bad_input_as_one_line(tmp_path, capsys):
    cases = bad_arguments(tmp_path)
    commands = set(build_parser()._subparsers._group_actions[0].choices)
    assert set(cases) == commands  # a new subcommand needs a case here
    for name, argv in cases.items():
        assert main(argv) == 1, name
        line = one_error_line(capsys)
        names = [
            part for arg in argv[1:] if not arg.startswith("-") for part in arg.replace(":", "/").split("/")
        ]
        assert any(name in line for name in names if len(name) > 4), line  # the line names the bad input


def test_an_unexpected_exception_is_one_line_and_debug_shows_it(tmp_path, capsys, monkeypatch):
    def boom(args):
        raise RuntimeError("something broke\nacross lines")

    monkeypatch.setattr(info_cli, "run", boom)
    parser_argv = ["info", str(tmp_path)]
    assert main(parser_argv) == 1
    assert "unexpected RuntimeError: something broke across lines" in one_error_line(capsys)
    with pytest.raises(RuntimeError):
        main([*parser_argv, "--debug"])  # --debug after the subcommand
    with pytest.raises(RuntimeError):
        main(["--debug", *parser_argv])


def test_debug_after_the_subcommand_is_accepted(tmp_path, capsys):
    run = tmp_path / "RUN"
    with LoCEStore.create(run) as store:
        store.register_job(JobSpec("j", model="m", layers=("l1", "l2")))
        store.append("j", rows_for([0, 1]))
    assert main(["info", str(run), "--debug"]) == 0
    assert "job j" in capsys.readouterr().out


@pytest.fixture
def data(tmp_path):
    return write_planted_coco(tmp_path / "data", n=2)


def fit_argv(data, out) -> list[str]:
    ann, images = data
    return [*FIT, "--coco", str(ann), "--images", str(images), "--out", str(out)]


def test_a_read_only_run_directory_is_one_line(data, tmp_path, capsys, monkeypatch):
    import loce.store.store as store_module

    out = tmp_path / "run"
    out.mkdir()
    real_open = store_module.os.open

    def read_only(path, *args, **kwargs):
        if str(path).startswith(str(out)):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(store_module.os, "open", read_only)
    assert main(fit_argv(data, out)) == 1
    assert f"{out} is not writable (Permission denied)" in one_error_line(capsys)


def test_a_full_disk_is_one_line_and_leaves_no_partial_file(data, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"

    def disk_full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", disk_full)
    assert main(fit_argv(data, out)) == 1
    line = one_error_line(capsys)
    assert "manifest.json (No space left on device)" in line and "run the same command again" in line
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_out_pointing_at_a_file_is_one_line(data, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    assert main(fit_argv(data, afile)) == 1
    assert f"{afile} is a file, not a run directory" in one_error_line(capsys)
    assert afile.read_text() == "keep me"


def test_a_closed_pipe_ends_quietly(tmp_path, capsys, monkeypatch):
    run = tmp_path / "RUN"
    with LoCEStore.create(run) as store:
        store.register_job(JobSpec("j", model="m", layers=("l1", "l2")))
        store.append("j", rows_for([0, 1]))

    class ClosedPipe:
        def write(self, text):
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main(["info", str(run)]) == 141
    assert capsys.readouterr().err == ""


def test_output_piped_into_head_ends_quietly(tmp_path):
    run = tmp_path / "RUN"
    with LoCEStore.create(run) as store:
        store.register_job(JobSpec("j", model="m", layers=("l1", "l2")))
        store.append(
            "j", rows_for([i * 7 + 3 for i in range(3000)])
        )  # 3000 skip rows: more than a pipe holds
    command = f"{sys.executable} -m loce.cli.main info {run} --skips | head -n 2"
    env = {**os.environ, "PYTHONPATH": str(Path(info_cli.__file__).parents[2])}
    result = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=120, env=env)
    assert len(result.stdout.splitlines()) == 2
    assert result.stderr == "", result.stderr
