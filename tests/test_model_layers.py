"""Layers whose output is not one map per image (window attention) and layer checks before a run writes anything."""

from __future__ import annotations

import functools

import pytest
import torch

from loce.capture import WINDOW_BATCH, LayerCapture, check_layers, list_layers
from loce.cli.main import main
from loce.data import load_coco
from loce.errors import LayerError
from loce.models import load_model
from loce.pipeline import fit_run
from planted_data import write_planted_coco

WINDOW_ATTENTION = "layers.0.blocks.0.attn"


@functools.cache
def swin():
    # 64 x 64 input, patch 4: a 16 x 16 grid in stage 0, windows of 2 x 2 -> 64 windows per image.
    return load_model("timm:swin_tiny_patch4_window7_224", img_size=64, window_size=2)


def test_window_attention_is_flagged_in_the_layer_list():
    infos = {i.name: i for i in list_layers(swin())}
    attn = infos[WINDOW_ATTENTION]
    assert attn.layout == f"{WINDOW_BATCH}: 64 rows per image"
    assert infos["layers.0.blocks.0"].layout == "nhwc" and infos["layers.0.blocks.0"].shape == (96, 16, 16)


def test_window_attention_is_refused_by_capture_naming_the_layer():
    x = torch.zeros(3, 3, 64, 64)
    with pytest.raises(LayerError, match=rf"layer '{WINDOW_ATTENTION}' outputs 192 rows for 3 images"):
        LayerCapture(swin().module, [WINDOW_ATTENTION], stop_after_last=False)(x)
    with pytest.raises(LayerError, match=rf"layer '{WINDOW_ATTENTION}' outputs 64 rows for 1 image"):
        LayerCapture(swin().module, [WINDOW_ATTENTION])(x)  # the first call probes one image
    stage = LayerCapture(swin().module, ["layers.0.blocks.0"])(x)["layers.0.blocks.0"]
    assert stage.shape == (3, 96, 16, 16)


def test_fit_refuses_window_attention_before_writing_anything(tmp_path):
    ann, images = write_planted_coco(tmp_path / "data", n=2)
    run = tmp_path / "run"
    with pytest.raises(LayerError, match="its batch is not the images"):
        fit_run(load_coco(ann, images), swin(), [WINDOW_ATTENTION], run, progress=False)
    assert not run.exists()


def test_check_layers_names_unknown_layers_before_a_run():
    with pytest.raises(LayerError, match="no layer 'layers.0.blocks.9'.*Close names"):
        check_layers(swin(), ["layers.0.blocks.9"])


def test_cli_layers_hides_window_layers_and_says_so(capsys):
    assert main(["layers", "timm:swin_tiny_patch4_window7_224", "--random", "--model-kwargs",
                 '{"img_size": 64, "window_size": 2}']) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert f"\n{WINDOW_ATTENTION} " not in out and "layers.0.blocks.0 " in out
    assert "layers output one row per window, not per image (layers.0.blocks.0.attn" in out
