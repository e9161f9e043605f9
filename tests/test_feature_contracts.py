"""The libraries' own feature contracts (``loce.feature_contracts``) with random weights and tiny configs.

Ground truth: timm's ``forward_intermediates(output_fmt="NCHW")``, Hugging Face ``reshaped_hidden_states``,
hand-computed references (tokens reshaped without their prefix tokens, a residual sum recomputed from the block's
own modules). Nothing is downloaded.
"""

from __future__ import annotations

import pytest
import torch

from capture_helpers import images, model, raw_outputs
from loce.capture import GRAPH_NODE, LayerCapture, LayerSource, Layout, list_layers
from loce.cli.main import main
from loce.data import load_coco
from loce.errors import LayerError
from loce.feature_contracts import UNRESOLVED_TOKENS, fx_node_names, library_of, match_layout
from loce.layouts import resolve_layout
from loce.models import load_model
from loce.pipeline import fit_run
from loce.store import LoCEStore
from planted_data import write_planted_coco


# ----------------------------------------------------------------------------------------- matching
def test_match_layout_reads_nchw_nhwc_and_prefixed_tokens():
    g = torch.Generator().manual_seed(0)
    nchw = torch.randn(2, 5, 3, 4, generator=g)
    assert match_layout(nchw, [nchw.clone()]) == Layout("nchw")
    assert match_layout(nchw.permute(0, 2, 3, 1), [nchw]) == Layout("nhwc")
    # 2 prefix tokens, then the 3 x 4 grid row-major: token 2 + 4 i + j is cell (i, j)
    tokens = torch.cat([torch.randn(2, 2, 5, generator=g), nchw.permute(0, 2, 3, 1).reshape(2, 12, 5)], 1)
    assert match_layout(tokens, [torch.randn(2, 5, 3, 4, generator=g), nchw]) == Layout("tokens", 2, (3, 4))
    assert match_layout(tokens, [tokens.clone()]) == UNRESOLVED_TOKENS  # a token contract: grid still open
    assert match_layout(tokens[:, 1:], [nchw]) == Layout("tokens", 1, (3, 4))
    assert match_layout(tokens.flip(1), [nchw]) is None  # prefix tokens at the end are no match
    assert match_layout(nchw, [nchw + 1e-2]) is None and match_layout(nchw[:1], [nchw]) is None


def test_library_of_names_the_library_of_a_module():
    assert library_of(model("timm:vit_tiny_patch16_224", img_size=32, depth=2).module) == "timm"
    assert library_of(model("torchvision:resnet18").module) == "torchvision"
    assert library_of(torch.nn.Conv2d(3, 4, 1)) is None
    assert fx_node_names(torch.nn.Conv2d(3, 4, 1)) == ()


# ----------------------------------------------------------------------------------------- timm
def swin_with_16_channels():
    # Stage 0 outputs N x 16 x 16 x 16 at 64 x 64: NCHW and NHWC readings both fit the input, the shape cannot
    # tell them apart (the guess says NCHW).
    return model(
        "timm:swin_tiny_patch4_window7_224",
        img_size=64,
        window_size=2,
        embed_dim=16,
        num_heads=(1, 2, 4, 8),
        depths=(1, 1, 1, 1),
    )


def test_timm_stage_that_fits_both_readings_follows_timm_not_the_guess():
    module = swin_with_16_channels().module
    x = images(2, (64, 64))
    raw = raw_outputs(module, ["layers.0"], x)["layers.0"]
    assert tuple(raw.shape) == (2, 16, 16, 16)
    assert resolve_layout(raw.shape, (64, 64)) == Layout("nchw")  # what reading the shape alone would do
    capture = LayerCapture(module, ["layers.0", "layers.1"])
    out = capture(x)
    assert capture.sources((64, 64))["layers.0"] == LayerSource("timm", Layout("nhwc"))
    torch.testing.assert_close(out["layers.0"], raw.permute(0, 3, 1, 2))  # channels are the last axis
    references = module.forward_intermediates(x, indices=[0, 1], intermediates_only=True, output_fmt="NCHW")
    torch.testing.assert_close(out["layers.0"], references[0])
    torch.testing.assert_close(out["layers.1"], references[1])
    info = next(i for i in list_layers(module, (64, 64)) if i.name == "layers.0")
    assert (info.contract, info.layout, info.guessed, info.shape) == ("timm", "nhwc", False, (16, 16, 16))


def test_layers_inside_timm_blocks_keep_the_hook_contract():
    module = model("timm:vit_tiny_patch16_224", img_size=32, depth=2).module
    x = images(2, (32, 32))
    capture = LayerCapture(module, ["blocks.1", "blocks.1.mlp"])
    out = capture(x)
    sources = capture.sources((32, 32))
    assert sources["blocks.1"].contract == "timm" and sources["blocks.1.mlp"] == LayerSource("hook")
    mlp = raw_outputs(module, ["blocks.1.mlp"], x)["blocks.1.mlp"]  # 1 CLS + 2 x 2 tokens
    torch.testing.assert_close(out["blocks.1.mlp"], mlp[:, 1:].reshape(2, 2, 2, 192).permute(0, 3, 1, 2))


def test_explicit_layouts_override_the_contract():
    module = swin_with_16_channels().module
    x = images(1, (64, 64))
    forced = LayerCapture(module, ["layers.0"], layouts={"layers.0": "nchw"})(x)["layers.0"]
    torch.testing.assert_close(forced, raw_outputs(module, ["layers.0"], x)["layers.0"])


# ----------------------------------------------------------------------------------------- Hugging Face Swin
@pytest.fixture(scope="module")
def hf_swin(tmp_path_factory):
    """A tiny random HF Swin (patch 4, windows of 2, two stages) saved with save_pretrained."""
    transformers = pytest.importorskip("transformers")
    config = transformers.SwinConfig(
        image_size=32, patch_size=4, embed_dim=8, depths=[1, 1], num_heads=[1, 2], window_size=2
    )
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("swin")
    transformers.SwinModel(config).save_pretrained(path)
    return load_model(f"hf:{path}")


def test_hf_swin_stages_are_its_reshaped_hidden_states_on_a_non_square_input(hf_swin):
    module = hf_swin.module
    x = images(2, (32, 48))
    layers = ["embeddings", "encoder.layers.0", "encoder.layers.1"]
    capture = LayerCapture(module, layers)
    out = capture(x)
    with torch.no_grad():
        result = module(x, output_hidden_states=True)
    # hidden state k + 1 is stage k's output (after its patch merging); 8 x 12 patches, merged to 4 x 6
    grids = {"embeddings": (8, 12), "encoder.layers.0": (4, 6), "encoder.layers.1": (4, 6)}
    for k, name in enumerate(layers):
        torch.testing.assert_close(out[name], result.reshaped_hidden_states[k])
        tokens = result.hidden_states[k]
        h, w = grids[name]
        by_hand = tokens.reshape(2, h, w, tokens.shape[2]).permute(0, 3, 1, 2)
        torch.testing.assert_close(out[name], by_hand)
        assert capture.sources((32, 48))[name] == LayerSource("hf", Layout("tokens", 0, (h, w)))
    info = next(i for i in list_layers(module, (32, 48)) if i.name == "encoder.layers.0")
    assert (info.contract, info.shape, info.guessed) == ("hf", (16, 4, 6), False)


# ----------------------------------------------------------------------------------------- torchvision-fx
def test_torchvision_graph_node_is_the_residual_sum_recomputed_by_hand():
    module = model("torchvision:resnet18").module
    x = images(2, (64, 64))
    layers = ["layer1.0.add", "layer2", "layer1.0.relu_1", "layer1.0.relu"]
    capture = LayerCapture(module, layers)
    out = capture(x)
    assert list(out) == layers
    sources = capture.sources((64, 64))
    assert sources["layer1.0.add"] == LayerSource("torchvision-fx") and sources["layer2"].contract == "hook"
    block, inp = module.layer1[0], raw_outputs(module, ["maxpool"], x)["maxpool"]
    with torch.no_grad():
        by_hand = block.bn2(block.conv2(block.relu(block.bn1(block.conv1(inp))))) + inp
    torch.testing.assert_close(out["layer1.0.add"], by_hand)
    assert (out["layer1.0.add"] < 0).any()  # before the block's final ReLU
    reference = raw_outputs(module, ["layer2", "layer1.0"], x)
    torch.testing.assert_close(out["layer2"], reference["layer2"])
    # the node of the second ReLU call equals the hooked module, which keeps its last call
    torch.testing.assert_close(out["layer1.0.relu_1"], reference["layer1.0"])
    torch.testing.assert_close(out["layer1.0.relu"], reference["layer1.0"])


def test_unknown_torchvision_name_suggests_graph_nodes():
    with pytest.raises(LayerError, match=r"no layer 'layer1.0.ad'.*layer1.0.add"):
        LayerCapture(model("torchvision:resnet18").module, ["layer1.0.ad"])


def test_graph_nodes_are_listed_in_network_order():
    infos = list_layers(model("torchvision:resnet18"), (64, 64))
    names = [i.name for i in infos]
    add = infos[names.index("layer1.0.add")]
    assert (add.type, add.contract, add.shape, add.layout, add.guessed) == (
        GRAPH_NODE, "torchvision-fx", (64, 16, 16), "nchw", True
    )  # fmt: skip
    assert names.index("layer1.0.bn2") < names.index("layer1.0.add") < names.index("layer1.1")
    assert names.count("layer1.0.add") == 1 and "x" not in names


def test_cli_layers_shows_contracts_and_guesses(capsys):
    kwargs = '{"img_size": 32, "depth": 2}'
    assert main(["layers", "timm:vit_tiny_patch16_224", "--random", "--model-kwargs", kwargs]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows["layer"].split()[-2:] == ["contract", "layout"]
    assert " timm " in rows["blocks.1"] and rows["blocks.1"].endswith("tokens (1 prefix, grid 2x2)")
    assert "guessed" not in rows["blocks.1"]
    # a hooked token layer: its grid comes from the model's declared patch size, not from the shape alone
    assert " hook " in rows["blocks.1.mlp"] and rows["blocks.1.mlp"].endswith("tokens (1 prefix, grid 2x2)")
    assert main(["layers", "torchvision:resnet18", "--random", "--input-size", "64", "64"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert " torchvision-fx " in rows["layer1.0.add"] and rows["layer1.0.add"].endswith("nchw, guessed")
    assert " hook " in rows["layer2"] and rows["layer2"].endswith("nchw, guessed")
    out = "\n".join(rows.values())
    assert "layer1.0.relu_1" not in out  # an earlier call of a module: only with --all
    assert main(["layers", "torchvision:resnet18", "--random", "--input-size", "64", "64", "--all"]) == 0
    assert "layer1.0.relu_1 " in capsys.readouterr().out


# ----------------------------------------------------------------------------------------- fitting
@pytest.mark.parametrize(
    ("spec", "kwargs", "layer", "dim"),
    [
        ("timm:vit_small_patch14_reg4_dinov2", {"img_size": 28, "depth": 2}, "blocks.1", 384),
        ("torchvision:resnet18", {}, "layer1.0.add", 64),
    ],
    ids=["timm-registers", "torchvision-graph-node"],
)
def test_loce_fit_runs_on_contract_activations(tmp_path, spec, kwargs, layer, dim):
    ann, image_dir = write_planted_coco(tmp_path / "data", n=2)
    loaded = load_model(spec, **kwargs)
    summary = fit_run(
        load_coco(ann, image_dir), loaded, [layer], tmp_path / "run", settings="fast", progress=False
    )
    assert summary.vectors == 4  # 2 images x 2 concepts
    frame = LoCEStore.open(tmp_path / "run").frame(layer=layer)
    assert (frame["status"] == "ok").all() and (frame["dim"] == dim).all()
    assert frame["iou"].notna().all()
