"""Model-side bad-input corpus: every case is a clear one-line LoceError of a known class naming the problem.

Each case builds its input in ``tmp_path`` (checkpoints, py: files) and runs it through the library; a few run
through the CLI to check that the user sees one ``loce: error:`` line and exit code 1 (no traceback). Random
weights only, nothing downloaded (the offline cases run with ``LOCE_OFFLINE=1`` and empty caches).
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from loce.capture import LayerCapture, check_layers
from loce.cli.main import main
from loce.errors import InputError, LayerError, LoceError, ModelSpecError
from loce.models import load_model
from planted_data import write_planted_coco


def _resnet_checkpoint(tmp: Path, **kwargs) -> Path:
    path = tmp / "resnet18.pt"
    torch.save(load_model("torchvision:resnet18", **kwargs).module.state_dict(), path)
    return path


def _pickled_module(tmp: Path) -> Path:
    path = tmp / "model.pt"
    torch.save(torch.nn.Conv2d(3, 4, 1), path)  # a whole pickled module
    return path


def _write(tmp: Path, name: str, text: str | bytes) -> Path:
    path = tmp / name
    path.write_bytes(text if isinstance(text, bytes) else textwrap.dedent(text).encode())
    return path


_PY_SOURCE = """
    import torch
    def raises():
        raise ValueError("depth must be positive")
    def returns_int():
        return 3
    def build():
        return torch.nn.Conv2d(3, 4, 1)
"""


def _py(tmp: Path, function: str, **kwargs):
    path = _write(tmp, "user_models.py", _PY_SOURCE)
    return load_model(f"py:{path}:{function}", **kwargs)


def _window_layer(tmp: Path):
    swin = load_model("timm:swin_tiny_patch4_window7_224", img_size=64, window_size=2, depths=(1, 1, 1, 1))
    check_layers(swin, ["layers.0.blocks.0.attn"])


# (case id, expected error class, message substring, action(tmp_path))
CASES: list[tuple[str, type[LoceError], str, Callable[[Path], object]]] = [
    (
        "bare-name",
        ModelSpecError,
        "Did you mean 'torchvision:resnet50' or 'timm:resnet50'",
        lambda t: load_model("resnet50"),
    ),
    (
        "unknown-prefix",
        ModelSpecError,
        "unknown model spec 'keras:resnet50'",
        lambda t: load_model("keras:resnet50"),
    ),
    ("not-a-spec-type", ModelSpecError, "string or a torch.nn.Module", lambda t: load_model(3.5)),
    (
        "torchvision-typo",
        ModelSpecError,
        "torchvision has no model 'resnet5'; close names: resnet50",
        lambda t: load_model("torchvision:resnet5"),
    ),
    (
        "timm-typo",
        ModelSpecError,
        "timm has no model 'vit_smal_patch16_224'",
        lambda t: load_model("timm:vit_smal_patch16_224"),
    ),
    (
        "torchvision-weights-tag",
        ModelSpecError,
        "has no weights 'IMAGENET9K'",
        lambda t: load_model("torchvision:resnet18@IMAGENET9K"),
    ),
    (
        "timm-suffix",
        ModelSpecError,
        "timm spec suffix 'best' is unknown",
        lambda t: load_model("timm:resnet18@best"),
    ),
    ("hf-missing-dir", ModelSpecError, "does not exist", lambda t: load_model(f"hf:{t / 'nope'}")),
    (
        "unknown-kwarg",
        ModelSpecError,
        'cannot be built with --model-kwargs {"depthh": 3}',
        lambda t: load_model("torchvision:resnet18", depthh=3),
    ),
    (
        "unknown-layer",
        LayerError,
        "no layer 'layer5'. Close names: layer4, layer3",
        lambda t: check_layers(load_model("torchvision:resnet18"), ["layer5"]),
    ),
    ("window-layer", LayerError, "outputs 64 rows for 1 image", _window_layer),
    (
        "bad-layout",
        LayerError,
        "layout 'rows' is unknown",
        lambda t: LayerCapture(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1)), ["0"], layouts={"0": "rows"}),
    ),
    (
        "vit-input-size",
        LayerError,
        "input failed",
        lambda t: check_layers(
            _with_size(load_model("timm:vit_tiny_patch16_224", depth=1), (320, 480)), ["blocks.0"]
        ),
    ),
    (
        "missing-checkpoint",
        ModelSpecError,
        "missing.pt does not exist",
        lambda t: load_model("torchvision:resnet18", weights_file=t / "missing.pt"),
    ),
    (
        "pickled-checkpoint",
        ModelSpecError,
        "holds pickled Python objects",
        lambda t: load_model("torchvision:resnet18", weights_file=_pickled_module(t)),
    ),
    (
        "shape-mismatch",
        ModelSpecError,
        "keys of another shape (checkpoint vs model: fc.weight (10, 512)",
        lambda t: load_model("torchvision:resnet18", weights_file=_resnet_checkpoint(t, num_classes=10)),
    ),
    (
        "missing-keys",
        ModelSpecError,
        "missing keys (layer1.2.",
        lambda t: load_model("torchvision:resnet34", weights_file=_resnet_checkpoint(t)),
    ),
    (
        "not-a-state-dict",
        ModelSpecError,
        "is not a state dict",
        lambda t: load_model("torchvision:resnet18", weights_file=_tensor_list(t)),
    ),
    (
        "corrupt-pt",
        ModelSpecError,
        "cannot be read as a torch state dict",
        lambda t: load_model("torchvision:resnet18", weights_file=_write(t, "bad.pt", b"\x00garbage" * 10)),
    ),
    (
        "corrupt-safetensors",
        ModelSpecError,
        "not a readable safetensors file",
        lambda t: load_model("torchvision:resnet18", weights_file=_write(t, "bad.safetensors", b"{}" * 8)),
    ),
    (
        "weights-and-pretrained",
        ModelSpecError,
        "both choose the weights",
        lambda t: load_model("torchvision:resnet18", weights=True, weights_file=_resnet_checkpoint(t)),
    ),
    ("py-malformed", ModelSpecError, "needs MODULE:FUNCTION", lambda t: load_model("py:just_a_name")),
    ("py-missing-file", ModelSpecError, "does not exist", lambda t: load_model(f"py:{t / 'none.py'}:build")),
    (
        "py-missing-module",
        ModelSpecError,
        "cannot import 'no_such_module_xyz'",
        lambda t: load_model("py:no_such_module_xyz:build"),
    ),
    (
        "py-syntax-error",
        ModelSpecError,
        "failed (SyntaxError",
        lambda t: load_model("py:" + str(_write(t, "broken.py", "def build(:\n")) + ":build"),
    ),
    (
        "py-no-function",
        ModelSpecError,
        "has no function 'biuld'; close names: build",
        lambda t: _py(t, "biuld"),
    ),
    ("py-raises", ModelSpecError, "raised ValueError: depth must be positive", lambda t: _py(t, "raises")),
    (
        "py-returns-int",
        ModelSpecError,
        "returned int, not a torch.nn.Module",
        lambda t: _py(t, "returns_int"),
    ),
    (
        "py-pretrained",
        ModelSpecError,
        "--pretrained / weights= do not apply",
        lambda t: _py(t, "build", weights=True),
    ),
    (
        "unknown-device",
        ModelSpecError,
        "unknown device 'gpu0'",
        lambda t: load_model(torch.nn.Conv2d(3, 4, 1), device="gpu0"),
    ),
    (
        "offline-uncached",
        ModelSpecError,
        "not in the local cache",
        lambda t: load_model("timm:resnet18@pretrained"),
    ),
]


def _with_size(model, size):
    model.preprocessing = type(model.preprocessing)(size=size)
    return model


def _tensor_list(tmp: Path) -> Path:
    path = tmp / "list.pt"
    torch.save([torch.zeros(2)], path)
    return path


@pytest.fixture
def offline(monkeypatch, tmp_path):
    monkeypatch.setenv("LOCE_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))


@pytest.mark.parametrize("case, error, message, action", CASES, ids=[c[0] for c in CASES])
def test_model_bad_input(case, error, message, action, tmp_path, offline):
    with pytest.raises(error) as info:
        action(tmp_path)
    text = str(info.value)
    assert message in text
    assert "\n" not in text  # one line


CLI_CASES = [
    (
        "cli-bad-kwargs-json",
        ["layers", "torchvision:resnet18", "--model-kwargs", "{num_classes: 3}"],
        "is not valid JSON",
        InputError,
    ),
    (
        "cli-kwargs-not-object",
        ["layers", "torchvision:resnet18", "--model-kwargs", "[3]"],
        "must be a JSON object",
        InputError,
    ),
    (
        "cli-vit-input-size",
        [
            "fit",
            "--model",
            "timm:vit_tiny_patch16_224",
            "--model-kwargs",
            '{"depth": 1}',
            "--layers",
            "blocks.0",
            "--input-size",
            "320",
            "480",
        ],
        "does not accept a 320 x 480 input (AssertionError: Input height (320) doesn't match model (224).); use its "
        "own input size --input-size 224 224",
        ModelSpecError,
    ),
]


@pytest.mark.parametrize("case, argv, message, error", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_model_bad_input_cli(case, argv, message, error, tmp_path, capsys):
    if argv[0] == "fit":
        ann, images = write_planted_coco(tmp_path / "data", n=1)
        argv = argv + ["--coco", str(ann), "--images", str(images), "--out", str(tmp_path / "run")]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    last = err.splitlines()[-1]  # a random-weights warning line may come first
    assert last.startswith("loce: error: ") and message in last and "Traceback" not in err
    assert not (tmp_path / "run").exists()  # refused before anything is written
    with pytest.raises(error, match=re.escape(message)):
        main(["--debug", *argv])
