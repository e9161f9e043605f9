"""The CLI's one convention (issue 14, point 8): the run is positional, one option name per idea (old names are
deprecated aliases), global options after every command, notes on stderr and tables on stdout, and every default
taken from the Python function the command calls."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
from pathlib import Path

import pytest

import loce.cli
from loce.cli.common import run_argument, split_list
from loce.cli.main import build_parser, command_parsers, main
from loce.errors import InputError
from planted_data import write_planted_coco

CLI_DIR = Path(loce.cli.__file__).parent
MODEL = ["--model", "torchvision:resnet18", "--input-size", "64", "64", "--no-progress"]


def parse(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def subcommand(path: str) -> argparse.ArgumentParser:
    """The parser of ``path`` (``"fit"``, ``"cbm train"``)."""
    parser = build_parser()
    for name in path.split():
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


# ------------------------------------------------------------------------------------------ the run, positional
@pytest.mark.parametrize("command", ["fit", "embed", "location"])
def test_the_run_is_positional_and_out_run_is_its_deprecated_spelling(command, tmp_path, capsys):
    extra = ["--method", "crop"] if command == "embed" else []
    new = parse([command, str(tmp_path / "R"), *extra, "--model", "m", "--layers", "l"])
    assert run_argument(new) == tmp_path / "R"
    assert capsys.readouterr().err == ""
    old = parse([command, *extra, "--model", "m", "--layers", "l", "--out", str(tmp_path / "R")])
    assert run_argument(old) == tmp_path / "R"
    assert "loce: warning: --out RUN is deprecated" in capsys.readouterr().err
    same = parse(
        [command, str(tmp_path / "R"), *extra, "--model", "m", "--layers", "l", "--out", str(tmp_path / "R")]
    )
    assert run_argument(same) == tmp_path / "R"
    with pytest.raises(InputError, match="two run directories"):
        run_argument(parse([command, "A", *extra, "--model", "m", "--layers", "l", "--out", "B"]))
    with pytest.raises(InputError, match=f"loce {command} RUN"):
        run_argument(parse([command, *extra, "--model", "m", "--layers", "l"]))


def test_fit_with_a_positional_run_and_with_out_writes_the_same_run(tmp_path, capsys):
    ann, images = write_planted_coco(tmp_path / "data", n=2)
    data = ["--coco", str(ann), "--images", str(images)]
    run = tmp_path / "run"
    assert main(["fit", str(run), *MODEL, "--layers", "layer2", *data]) == 0
    first = capsys.readouterr()
    assert "2 images processed (0 already stored)" in first.out and "deprecated" not in first.err
    assert main(["fit", *MODEL, "--layers", "layer2", *data, "--out", str(run)]) == 0  # resumes the same run
    again = capsys.readouterr()
    assert "0 images processed (2 already stored)" in again.out
    assert "--out RUN is deprecated" in again.err


def test_out_names_an_output_directory_wherever_it_remains():
    """``--out`` is left only where it names an output directory; the run of fit/embed/location is RUN."""
    for parser in command_parsers(build_parser()):
        for action in parser._actions:
            if "--out" in action.option_strings and action.help != argparse.SUPPRESS:
                text = action.help.lower()
                assert "output" in text or "folder" in text or "directory for" in text or "write" in text, (
                    parser.prog,
                    action.help,
                )


# ------------------------------------------------------------------------------------ one name per idea
ALIASES = [  # (argv before the option, new, old, value, dest, argv after)
    (["fit", "R", "--model", "m", "--layers", "l"], "--concepts", "--categories", "a,b", "concepts", []),
    (["embed", "R", "--method", "crop", "--model", "m"], "--concepts", "--categories", "a", "concepts", []),
    (["analyze", "R"], "--no-average-precision", "--no-map", None, "no_average_precision", []),
    (["compare-methods", "R"], "--ks", "--k", "1,2", "ks", []),
    (["compare-methods", "R"], "--models", "--model", "m", "models", []),
    (["localize", "R", "--images", "i"], "--concepts", "--concept", "mug", "concepts", []),
    (["location", "R", "--model", "m", "--layers", "l"], "--object", "--category", "mug", "object", []),
    (["cbm", "train", "--scenes", "s", "--out", "o"], "--layers", "--layer", "_blocks.4", "layers", []),
]


@pytest.mark.parametrize("before, new, old, value, dest, after", ALIASES, ids=lambda v: str(v))
def test_an_old_option_name_acts_as_the_new_one_and_says_it_is_deprecated(
    before, new, old, value, dest, after, capsys
):
    given = [value] if value is not None else []
    expected = value if value is not None else True
    assert getattr(parse([*before, new, *given, *after]), dest) == expected
    assert capsys.readouterr().err == ""
    assert getattr(parse([*before, old, *given, *after]), dest) == expected
    err = capsys.readouterr().err
    assert f"loce: warning: {old} is deprecated; use {new}" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("before, new, old, value, dest, after", ALIASES[:3], ids=lambda v: str(v))
def test_help_names_the_old_spelling(before, new, old, value, dest, after):
    command = " ".join(w for w in before[:2] if not w.startswith("-") and w != "R")
    text = subcommand(command).format_help()
    assert new in text and f"formerly {old}" in " ".join(text.split())


def test_a_required_option_is_required_in_either_spelling(capsys):
    with pytest.raises(SystemExit):
        parse(["localize", "R", "--images", "i"])
    assert "--concepts" in capsys.readouterr().err
    assert parse(["localize", "R", "--images", "i", "--concept", "x"]).concepts == "x"


def test_no_two_commands_name_one_idea_differently():
    """The option names the issue found spelled two ways appear in one spelling only (old ones hidden)."""
    retired = {"--k", "--categories", "--concept", "--no-map", "--layer", "--category"}
    for parser in command_parsers(build_parser()):
        visible = {s for a in parser._actions if a.help != argparse.SUPPRESS for s in a.option_strings}
        assert not visible & retired, (parser.prog, visible & retired)
        if "--model" in visible and parser.prog.endswith("compare-methods"):
            pytest.fail("compare-methods filters with --models, like analyze")


# ------------------------------------------------------------------------------------------- global options
def test_global_options_are_accepted_after_every_command():
    parsers = command_parsers(build_parser())
    assert {p.prog.split(" ", 1)[1] for p in parsers} >= {"fit", "cbm", "cbm train", "cbm eval", "report"}
    for parser in parsers:
        assert {"--debug", "--jobs"} <= set(parser._option_string_actions), parser.prog
    args = parse(["cbm", "train", "--scenes", "s", "--out", "o", "--debug", "--jobs", "a,b"])
    assert args.debug and args.read_jobs == "a,b" and args.func.__name__ == "run_train"
    args = parse(["--debug", "--jobs", "j", "info", "R"])
    assert args.debug and args.read_jobs == "j"
    args = parse(["info", "R", "--jobs", "j"])
    assert not args.debug and args.read_jobs == "j"


# ------------------------------------------------------------------------------------------------- streams
def _printed_messages(path: Path):
    """(text, to stderr?) of every ``print(...)`` in a CLI module whose text starts like a note or a warning."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print" and node.args:
            first = node.args[0]
            parts = first.values if isinstance(first, ast.JoinedStr) else [first]
            head = next((p.value for p in parts if isinstance(p, ast.Constant)), "")
            if isinstance(head, str) and head.lstrip("\n").lower().startswith(("note", "warning", "loce: ")):
                stream = next((ast.unparse(k.value) for k in node.keywords if k.arg == "file"), "")
                yield head, stream == "sys.stderr"


def test_every_subcommand_prints_notes_and_warnings_to_stderr():
    """Tables and results go to stdout; every note and warning of every subcommand goes to stderr (through
    print_note / print_warning, or ``loce: error`` in main.py). The one exception is the run summary's caveat
    line (``WARNING: ... RANDOM weights``): part of the printed result, so that a saved stdout says so (the
    warning itself goes to stderr when the model loads)."""
    found = [(p.name, text, err) for p in sorted(CLI_DIR.glob("*.py")) for text, err in _printed_messages(p)]
    assert len(found) >= 4
    wrong = [(name, text) for name, text, err in found if not err and not text.startswith("\nWARNING: ")]
    assert not wrong
    modules = {p.stem for p in CLI_DIR.glob("*.py")} - {"__init__", "common", "main", "engine_options"}
    for name in modules:  # a module's own note / warning prints would be found above; helpers are allowed
        source = (CLI_DIR / f"{name}.py").read_text(encoding="utf-8")
        assert 'print(f"note' not in source and 'print("note' not in source, name


def test_notes_go_to_stderr_and_tables_to_stdout(capsys):
    from loce.cli.common import print_note, print_warning

    print_note("a note")
    print_warning("a warning")
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == "loce: note: a note\nloce: warning: a warning\n"


# ------------------------------------------------------------------------------------------------- defaults
def _targets():
    from loce.activations import CacheOptions
    from loce.analysis.run import AnalysisSettings, analyze_run
    from loce.baselines import EmbedOptions, compare_methods, embed_run
    from loce.baselines.location import location_analysis, paste_grid, scene_background, scene_object
    from loce.baselines.outputs import write_method_comparison
    from loce.cbm import compare_models, train_on_scenes
    from loce.cbm.train import CBMConfig
    from loce.data import load_coco, load_folder, load_voc
    from loce.engines.options import RayOptions
    from loce.localize.run import localize_run
    from loce.pipeline import fit_run
    from loce.report.collect import collect_report
    from loce.run_options import RunOptions
    from loce.scenes import generate_scenes

    data = [load_coco, load_voc, load_folder]
    renamed_data = {"voc_split": "split"}
    ray = {"gpus_per_worker": (RayOptions, "gpus_per_worker")}
    cache = {"activation_cache_dtype": (CacheOptions, "dtype")}  # on/off and GB: converted, checked below
    converted = {"activation_cache", "activation_cache_limit"}
    return {  # command: (Python targets, {dest: parameter or (target, parameter)}, CLI-only dests)
        "fit": (
            [fit_run, RunOptions, *data],
            {"preset": "settings", **renamed_data, **ray, **cache},
            {"batch_memory", "engine", *converted},
        ),
        "embed": (
            [embed_run, RunOptions, EmbedOptions, *data],
            {"preset": "settings", **renamed_data, **ray, **cache},
            {"batch_memory", "engine", *converted},
        ),
        "analyze": ([AnalysisSettings, analyze_run], {"no_average_precision": None, **ray}, {"engine"}),
        "compare-methods": ([compare_methods, write_method_comparison], {"knn": "knn_k"}, set()),
        "location": (
            [location_analysis, EmbedOptions],
            {
                "preset": "settings",
                "object": (scene_object, "category"),
                "object_size": (scene_object, "size"),
                "grid": (paste_grid, "grid"),
                "background_index": (scene_background, "index"),
            },
            {"background", "batch_size"},
        ),
        "localize": ([localize_run, *data], {**renamed_data, **cache}, converted),
        "cbm train": (
            [CBMConfig, train_on_scenes],
            {"model": "backbone", "layers": "layer", "train_batch_size": (CBMConfig, "batch_size"), **cache},
            converted,
        ),
        "cbm eval": ([compare_models], {**cache}, converted),
        "report": ([collect_report], {"examples": "examples_per_concept"}, set()),
        "scenes": ([generate_scenes], {}, {"n"}),
    }


def _python_default(targets, name):
    for target in targets:
        names = (
            {f.name for f in dataclasses.fields(target)}
            if dataclasses.is_dataclass(target)
            else set(inspect.signature(target).parameters)
        )
        if name in names:
            from loce.cli.common import default_of

            try:
                return True, default_of(target, name)
            except TypeError:
                continue
    return False, None


def _same(cli, python) -> bool:
    if isinstance(python, (tuple, list)) and isinstance(cli, str):
        return [str(v) for v in python] == split_list(cli)
    if isinstance(python, (tuple, list)) and isinstance(cli, (tuple, list)):
        return list(python) == list(cli)
    return cli == python


@pytest.mark.parametrize("command", list(_targets()))
def test_every_cli_default_is_the_python_default(command):
    from loce.cli.common import default_of

    targets, renamed, cli_only = _targets()[command]
    checked = 0
    for action in subcommand(command)._actions:
        default = action.default
        if action.dest in ("help", "func", "command", "debug", "read_jobs") or not action.option_strings:
            continue
        if default in (None, False, argparse.SUPPRESS) or action.dest in cli_only:
            continue
        target = renamed.get(action.dest, action.dest)
        if target is None:
            continue
        if isinstance(target, tuple):
            found, python = True, default_of(*target)
        else:
            found, python = _python_default(targets, target)
        assert found, f"loce {command} {action.option_strings[0]}: no Python default to take it from"
        assert _same(default, python), f"loce {command} {action.option_strings[0]}: {default!r} != {python!r}"
        checked += 1
    assert checked >= 1


def test_the_converted_defaults_are_the_python_ones():
    from loce.activations import CacheOptions
    from loce.batches import DEFAULT_MAX_BATCH_BYTES

    for command in ("fit", "embed", "localize", "cbm train", "cbm eval"):
        args = {a.dest: a.default for a in subcommand(command)._actions}
        assert args["activation_cache"] == ("on" if CacheOptions().enabled else "off")
        assert CacheOptions.parse_limit_gb(args["activation_cache_limit"]) == CacheOptions().limit_bytes
    for command in ("fit", "embed"):
        args = {a.dest: a.default for a in subcommand(command)._actions}
        assert args["batch_memory"] * 2**20 == DEFAULT_MAX_BATCH_BYTES


def test_find_subconcepts_defaults_to_the_method_of_loce_analyze():
    from loce.analysis.run import AnalysisSettings
    from loce.analysis.subconcepts import find_subconcepts
    from loce.cli.common import default_of

    assert default_of(find_subconcepts, "method") == AnalysisSettings().subconcept_method
    assert default_of(find_subconcepts, "n_dims") == AnalysisSettings().subconcept_dims
    assert parse(["analyze", "R"]).subconcept_method == default_of(find_subconcepts, "method")
