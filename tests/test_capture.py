"""Contract tests of activation capture over architecture families, all with random weights (nothing downloaded).

Ground truth: shapes from each architecture's strides and widths, timm's own ``forward_intermediates(...,
output_fmt="NCHW")``, the raw module outputs seen by an independent hook, and the module's own forward.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from capture_helpers import images, model, raw_outputs
from loce.capture import LayerCapture, LayerSource, Layout, capture_activations, list_layers
from loce.errors import LayerError
from loce.feature_contracts import UNRESOLVED_TOKENS
from loce.models import load_model

torch.manual_seed(0)


# ----------------------------------------------------------------------------------------- CNN contract
# (spec, input size, {layer: (C, h, w)}) with shapes from each architecture's widths and strides.
CNN_CASES = [
    (
        "torchvision:resnet18",
        (64, 96),
        {"layer1": (64, 16, 24), "layer3": (256, 4, 6), "layer4": (512, 2, 3)},
    ),
    (
        "torchvision:efficientnet_b0",
        (64, 64),
        {"features.3": (40, 8, 8), "features.5": (112, 4, 4), "features.8": (1280, 2, 2)},
    ),
    (
        "torchvision:mobilenet_v3_small",
        (64, 64),
        {"features.1": (16, 16, 16), "features.3": (24, 8, 8), "features.12": (576, 2, 2)},
    ),
    ("torchvision:mobilenet_v3_large", (64, 64), {"features.4": (40, 8, 8), "features.16": (960, 2, 2)}),
]


@pytest.mark.parametrize(("spec", "size", "expected"), CNN_CASES, ids=[c[0] for c in CNN_CASES])
def test_cnn_maps_have_architecture_shapes_and_equal_raw_outputs(spec, size, expected):
    loaded = model(spec)
    x = images(2, size)
    with LayerCapture(loaded.module, list(expected)) as capture:
        out = capture(x)
    raw = raw_outputs(loaded.module, list(expected), x)
    assert list(out) == list(expected)
    for name, shape in expected.items():
        assert tuple(out[name].shape) == (2, *shape), name
        assert out[name].dtype == torch.float32 and not out[name].requires_grad
        assert torch.isfinite(out[name]).all()
        torch.testing.assert_close(out[name], raw[name])


def test_captured_map_is_a_copy_not_modified_by_later_inplace_ops():
    # torchvision ResNet applies ReLU(inplace=True) to bn1's output: the captured bn1 must keep negatives.
    loaded = model("torchvision:resnet18")
    out = LayerCapture(loaded.module, ["bn1", "relu"], stop_after_last=False)(images(2, (64, 64)))
    assert (out["bn1"] < 0).any()
    torch.testing.assert_close(out["relu"], out["bn1"].clamp(min=0))


def test_module_called_twice_keeps_last_call_with_and_without_stopping():
    # layer1.0.relu is applied twice inside the block; its last call is the block's output.
    loaded = model("torchvision:resnet18")
    x = images(2, (64, 64))
    for stop in (True, False):
        out = LayerCapture(loaded.module, ["layer1.0.relu", "layer1.0"], stop_after_last=stop)(x)
        torch.testing.assert_close(out["layer1.0.relu"], out["layer1.0"])


# ----------------------------------------------------------------------------------------- token / NHWC contract
# (spec, constructor kwargs, input size, layer, index for forward_intermediates, prefix tokens, (C, h, w))
TOKEN_CASES = [
    ("timm:vit_tiny_patch16_224", {"img_size": 32, "depth": 2}, (32, 32), "blocks.1", 1, 1, (192, 2, 2)),
    (
        "timm:vit_tiny_patch16_224",
        {"img_size": (48, 32), "depth": 2},
        (48, 32),
        "blocks.1",
        1,
        1,
        (192, 3, 2),
    ),
    (
        "timm:vit_small_patch14_reg4_dinov2",
        {"img_size": 28, "depth": 2},
        (28, 28),
        "blocks.0",
        0,
        5,
        (384, 2, 2),
    ),
    (
        "timm:deit_tiny_distilled_patch16_224",
        {"img_size": (32, 48), "depth": 2},
        (32, 48),
        "blocks.1",
        1,
        2,
        (192, 2, 3),
    ),
]


@pytest.mark.parametrize(
    ("spec", "kwargs", "size", "layer", "index", "prefix", "shape"),
    TOKEN_CASES,
    ids=["vit-square", "vit-nonsquare", "vit-reg4", "deit-distilled"],
)
def test_vit_tokens_lose_prefix_and_become_the_patch_grid(spec, kwargs, size, layer, index, prefix, shape):
    loaded = model(spec, **kwargs)
    module = loaded.module
    assert module.num_prefix_tokens == prefix
    x = images(2, size)
    with LayerCapture(module, [layer]) as capture:
        out = capture(x)[layer]
    # the layout is timm's (forward_intermediates), not read off the shape
    assert capture.sources(size)[layer] == LayerSource("timm", Layout("tokens", prefix, shape[1:]))
    assert tuple(out.shape) == (2, *shape)
    assert torch.isfinite(out).all()
    tokens = raw_outputs(module, [layer], x)[layer]
    assert tokens.shape[1] == prefix + shape[1] * shape[2]
    grid = tokens[:, prefix:].reshape(2, shape[1], shape[2], shape[0]).permute(0, 3, 1, 2)
    torch.testing.assert_close(out, grid)
    reference = module.forward_intermediates(x, indices=[index], intermediates_only=True, output_fmt="NCHW")[
        0
    ]
    torch.testing.assert_close(out, reference)


@pytest.mark.parametrize(
    ("spec", "kwargs", "layers"),
    [
        (
            "timm:swin_tiny_patch4_window7_224",
            {"img_size": 64, "window_size": 2},
            {"layers.0": (96, 16, 16), "layers.2": (384, 4, 4), "layers.3": (768, 2, 2)},
        ),
        ("timm:convnext_tiny", {"depths": (1, 1, 2, 1)}, {"stages.0": (96, 16, 16), "stages.3": (768, 2, 2)}),
    ],
    ids=["swin-nhwc-stages", "convnext"],
)
def test_hierarchical_stages_match_timm_intermediates(spec, kwargs, layers):
    module = model(spec, **kwargs).module
    x = images(2, (64, 64))
    capture = LayerCapture(module, list(layers))
    out = capture(x)
    assert {source.contract for source in capture.sources((64, 64)).values()} == {"timm"}
    indices = [int(name.split(".")[1]) for name in layers]
    references = module.forward_intermediates(x, indices=indices, intermediates_only=True, output_fmt="NCHW")
    for (name, shape), reference in zip(layers.items(), references):
        assert tuple(out[name].shape) == (2, *shape), name
        assert torch.isfinite(out[name]).all()
        torch.testing.assert_close(out[name], reference)


def test_convnext_block_internals_in_nhwc_are_permuted():
    module = model("timm:convnext_tiny", depths=(1, 1, 2, 1)).module
    x = images(2, (64, 64))
    layer = "stages.1.blocks.0.mlp"  # ConvNeXt's MLP runs channels-last: N x 8 x 8 x 192
    raw = raw_outputs(module, [layer], x)[layer]
    assert tuple(raw.shape) == (2, 8, 8, 192)
    out = LayerCapture(module, [layer])(x)[layer]
    torch.testing.assert_close(out, raw.permute(0, 3, 1, 2))
    forced = LayerCapture(module, [layer], layouts={layer: "nchw"})(x)[layer]
    assert tuple(forced.shape) == (2, 8, 8, 192)


# ----------------------------------------------------------------------------------------- HF DETR
@pytest.fixture(scope="module")
def detr_dir(tmp_path_factory):
    """A tiny random DETR (ResNet backbone built from a config, no timm, no download) saved with save_pretrained."""
    transformers = pytest.importorskip("transformers")
    backbone = transformers.ResNetConfig(
        embedding_size=16,
        hidden_sizes=[16, 24, 32, 48],
        depths=[1, 1, 1, 1],
        layer_type="basic",
        out_features=["stage4"],
    )
    config = transformers.DetrConfig(
        backbone_config=backbone,
        d_model=32,
        encoder_layers=2,
        decoder_layers=1,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        num_queries=5,
    )
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("detr")
    transformers.DetrModel(config).save_pretrained(path)
    (path / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "size": {"height": 96, "width": 128},
                "image_mean": [0.4, 0.4, 0.4],
                "image_std": [0.2, 0.3, 0.4],
            }
        )
    )
    return path


def test_detr_encoder_layer_tokens_become_backbone_grid(detr_dir):
    loaded = load_model(f"hf:{detr_dir}")
    assert loaded.preprocessing.size == (96, 128)
    x = images(2, (96, 128))
    layers = ["input_projection", "encoder.layers.0", "encoder"]  # 4-D map, plain tensor, BaseModelOutput
    out = LayerCapture(loaded.module, layers)(x)
    assert tuple(out["input_projection"].shape) == (2, 32, 3, 4)  # stride 32, 96 x 128 -> 3 x 4
    assert tuple(out["encoder.layers.0"].shape) == (2, 32, 3, 4)
    assert all(torch.isfinite(t).all() for t in out.values())
    with torch.no_grad():
        result = loaded.module(x)
    grid = result.encoder_last_hidden_state.reshape(2, 3, 4, 32).permute(0, 3, 1, 2)
    torch.testing.assert_close(out["encoder"], grid)  # the ModelOutput's first field, row-major grid
    # encoder layers are DETR's encoder_hidden_states (hf contract); the grid is read off the shape
    sources = LayerCapture(loaded.module, layers).sources((96, 128))
    assert sources["encoder.layers.0"] == LayerSource("hf", UNRESOLVED_TOKENS)
    assert sources["input_projection"] == LayerSource("hook")
    infos = {i.name: i for i in list_layers(loaded)}
    assert infos["encoder.layers.1"].contract == "hf" and infos["encoder.layers.1"].guessed
    assert infos["encoder.layers.1"].shape == (32, 3, 4)


def test_detr_forward_kwargs_are_sliced_for_the_probe(detr_dir):
    loaded = load_model(f"hf:{detr_dir}")
    x = images(3, (96, 128))
    mask = torch.ones(3, 96, 128, dtype=torch.long)
    with LayerCapture(loaded.module, ["encoder.layers.1"]) as capture:
        out = capture(x, pixel_mask=mask)["encoder.layers.1"]
    assert tuple(out.shape) == (3, 32, 3, 4)
    full = LayerCapture(loaded.module, ["encoder.layers.1"], stop_after_last=False)(x)["encoder.layers.1"]
    torch.testing.assert_close(out, full)


def test_hf_vit_cls_token_removed_using_config_patch_size(tmp_path):
    transformers = pytest.importorskip("transformers")
    config = transformers.ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
    )
    transformers.ViTModel(config).save_pretrained(tmp_path)
    module = load_model(f"hf:{tmp_path}").module
    x = images(2, (32, 32))
    capture = LayerCapture(module, ["layers.1"])
    out = capture(x)["layers.1"]
    assert capture.sources((32, 32))["layers.1"] == LayerSource("hf", UNRESOLVED_TOKENS)
    info = next(i for i in list_layers(module, (32, 32)) if i.name == "layers.1")
    assert (info.contract, info.layout, info.guessed) == ("hf", "tokens (1 prefix, grid 4x4)", False)
    assert tuple(out.shape) == (2, 16, 4, 4)
    with torch.no_grad():
        tokens = module(x, output_hidden_states=True).hidden_states[2]  # output of layers.1
    assert tokens.shape[1] == 1 + 16
    torch.testing.assert_close(out, tokens[:, 1:].reshape(2, 4, 4, 16).permute(0, 3, 1, 2))


# ----------------------------------------------------------------------------------------- hooks and stopping
class Counter:
    def __init__(self, module: nn.Module):
        self.calls = 0
        self.handle = module.register_forward_hook(self)

    def __call__(self, *args):
        self.calls += 1


def test_stop_after_last_skips_later_modules_in_any_request_order():
    loaded = model("torchvision:resnet18")
    module = loaded.module
    counter = Counter(module.fc)
    x = images(3, (64, 64))
    try:
        with LayerCapture(module, ["layer3", "layer1"], stop_after_last=True) as capture:
            first = capture(x)  # the first call probes one image through the whole model
            probe_calls = counter.calls
            second = capture(x)
            assert counter.calls == probe_calls == 1  # fc never ran on the batch
        full = LayerCapture(module, ["layer3", "layer1"], stop_after_last=False)(x)
        assert counter.calls == 2
    finally:
        counter.handle.remove()
    for name in ("layer1", "layer3"):
        torch.testing.assert_close(first[name], full[name])
        torch.testing.assert_close(second[name], full[name])


def test_stop_passes_through_models_that_catch_exception():
    class Guarded(nn.Module):
        def __init__(self):
            super().__init__()
            self.first = nn.Conv2d(3, 4, 1)
            self.second = nn.Conv2d(4, 4, 1)
            self.fell_back = 0

        def forward(self, x):
            try:
                x = self.first(x)
            except Exception:
                self.fell_back += 1
            return self.second(x)

    net = Guarded().eval()
    counter = Counter(net.second)
    with LayerCapture(net, ["first"]) as capture:
        capture(torch.zeros(2, 3, 4, 4))
        capture(torch.zeros(2, 3, 4, 4))
    assert net.fell_back == 0 and counter.calls == 1  # only the probe reached `second`


def active_hooks(module: nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in module.modules())


def test_hooks_removed_after_context_and_after_exceptions():
    module = model("torchvision:resnet18").module
    before = active_hooks(module)
    with LayerCapture(module, ["layer2", "layer4"]) as capture:
        assert active_hooks(module) == before + 2
        capture(images(1, (64, 64)))
    assert active_hooks(module) == before
    with pytest.raises(RuntimeError, match="boom"), LayerCapture(module, ["layer2"]):
        raise RuntimeError("boom")
    assert active_hooks(module) == before
    with pytest.raises(LayerError, match="'fc'.*no spatial grid"), LayerCapture(module, ["fc"]) as capture:
        capture(images(1, (64, 64)))  # raised inside a hook, mid-forward
    assert active_hooks(module) == before
    LayerCapture(module, ["layer1"])(images(1, (64, 64)))  # used without `with`: hooks for that call only
    assert active_hooks(module) == before


def test_unknown_layer_lists_close_matches():
    module = model("torchvision:resnet18").module
    with pytest.raises(LayerError, match=r"no layer 'layr3'.*layer3"):
        LayerCapture(module, ["layr3"])
    with pytest.raises(LayerError, match="no layers requested"):
        LayerCapture(module, [])


def test_layer_that_never_runs_is_reported():
    class WithUnused(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.unused = nn.Conv2d(4, 4, 1)

        def forward(self, x):
            return self.conv(x)

    with pytest.raises(LayerError, match="did not run"):
        LayerCapture(WithUnused(), ["unused"])(torch.zeros(1, 3, 8, 8))
    infos = {i.name: i for i in list_layers(WithUnused(), (8, 8))}
    assert infos["unused"].layout == "not run" and infos["unused"].shape is None
    assert infos["conv"].shape == (4, 8, 8)


def test_capture_activations_batches_equal_one_pass_and_accepts_uint8_images():
    loaded = model("torchvision:resnet18")
    x = images(5, (64, 64))
    whole = LayerCapture(loaded.module, ["layer2"])(x)["layer2"]
    batched = capture_activations(loaded, x, ["layer2"], batch_size=2)["layer2"]
    torch.testing.assert_close(batched, whole)
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, size=(40 + 10 * i, 60, 3), dtype=np.uint8) for i in range(3)]
    from_arrays = capture_activations(loaded, arrays, ["layer4"], batch_size=2)["layer4"]
    assert tuple(from_arrays.shape) == (3, 512, 7, 7)  # preprocessing stretches to 224 x 224
    expected = LayerCapture(loaded.module, ["layer4"])(loaded.preprocessing(arrays))["layer4"]
    torch.testing.assert_close(from_arrays, expected)


# ----------------------------------------------------------------------------------------- listing and CLI
def test_list_layers_reports_normalised_and_raw_shapes():
    infos = {i.name: i for i in list_layers(model("torchvision:resnet18"), (64, 96))}
    assert infos["layer4"].shape == (512, 2, 3) and infos["layer4"].layout == "nchw"
    assert infos["fc"].shape == (1000,) and infos["fc"].layout == "raw"
    assert infos["layer1.0.relu"].calls == 2
    swin = {
        i.name: i for i in list_layers(model("timm:swin_tiny_patch4_window7_224", img_size=64, window_size=2))
    }
    assert swin["layers.3"].shape == (768, 2, 2) and swin["layers.3"].layout == "nhwc"
    vit = {i.name: i for i in list_layers(model("timm:vit_tiny_patch16_224", img_size=(48, 32), depth=2))}
    assert vit["blocks.1"].shape == (192, 3, 2) and vit["blocks.1"].layout.startswith("tokens (1 prefix")
    leaves = list_layers(model("torchvision:resnet18"), (64, 64), leaf_only=True)
    assert "layer1" not in {i.name for i in leaves} and "layer1.0.conv1" in {i.name for i in leaves}


def test_list_layers_explains_a_failing_input_size():
    vit = model("timm:vit_tiny_patch16_224", img_size=32, depth=2)  # fixed 32 x 32 position embeddings
    with pytest.raises(LayerError, match="input size"):
        list_layers(vit, (48, 48))


def test_cli_layers_prints_table(capsys):
    from loce.cli.main import main

    assert main(["layers", "timm:vit_tiny_patch16_224"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("blocks.11 "))
    assert "192 x 14 x 14" in row and "tokens (1 prefix" in row
    assert "blocks.11.norm1" not in out  # leaves inside blocks only with --all
    assert main(["layers", "timm:vit_tiny_patch16_224", "--all", "--input-size", "224", "224"]) == 0
    out = capsys.readouterr().out
    assert "blocks.11.norm1" in out and "head " in out


def test_cli_layers_efficientnet_lite0_shapes(capsys):
    from loce.cli.main import main

    assert main(["layers", "efficientnet-lite0"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[2:]}
    assert "80 x 14 x 14" in rows["_blocks.5"] and "112 x 14 x 14" in rows["_blocks.8"]
    assert "192 x 7 x 7" in rows["_blocks.11"] and "320 x 7 x 7" in rows["_blocks.15"]


def test_cli_layers_errors_are_one_line(capsys):
    from loce.cli.main import main

    assert main(["layers", "nosuch:model"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("loce: error: unknown model spec") and len(err.strip().splitlines()) == 1
    with pytest.raises(SystemExit):
        main(["layers", "--help"])
    assert "examples:" in capsys.readouterr().out
