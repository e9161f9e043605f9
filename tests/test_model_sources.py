"""Where a model's weights come from: checkpoints, py: specs, constructor kwargs, the cache when offline."""

from __future__ import annotations

import socket
import textwrap

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from loce.cli.main import main
from loce.data import load_coco
from loce.errors import InputError, ModelSpecError
from loce.model_identity import state_dict_fingerprint
from loce.models import load_model
from loce.pipeline import fit_run
from loce.store import LoCEStore
from planted_data import write_planted_coco


def _resnet18(**kwargs):
    return load_model("torchvision:resnet18", **kwargs).module


@pytest.fixture
def finetuned(tmp_path):
    """A torchvision resnet18 with 3 classes whose head has known values, saved as a state dict."""
    module = _resnet18(num_classes=3)
    with torch.no_grad():
        module.fc.bias.copy_(torch.tensor([0.25, -1.0, 2.0]))
        module.conv1.weight.mul_(3.0)
    path = tmp_path / "finetuned.pt"
    torch.save(module.state_dict(), path)
    return module, path


def test_weights_file_is_loaded_exactly(finetuned):
    module, path = finetuned
    loaded = load_model("torchvision:resnet18", weights_file=path, num_classes=3)
    assert state_dict_fingerprint(loaded.module) == state_dict_fingerprint(module)
    torch.testing.assert_close(loaded.module.fc.bias, torch.tensor([0.25, -1.0, 2.0]))
    assert loaded.pretrained is None and loaded.weights_source == f"checkpoint {path.resolve()}"


def test_wrapped_and_safetensors_checkpoints(finetuned, tmp_path):
    module, _ = finetuned
    wrapped = tmp_path / "lightning.ckpt.pt"
    torch.save({"state_dict": module.state_dict(), "epoch": 3}, wrapped)
    single = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(single))
    for path in (wrapped, single):
        loaded = load_model("torchvision:resnet18", weights_file=path, num_classes=3)
        assert state_dict_fingerprint(loaded.module) == state_dict_fingerprint(module)


def test_fit_with_a_checkpoint_records_it(finetuned, tmp_path):
    _, path = finetuned
    ann, images = write_planted_coco(tmp_path / "data", n=2)
    out = tmp_path / "run"
    code = main(["fit", "--model", "torchvision:resnet18", "--weights", str(path), "--model-kwargs",
                 '{"num_classes": 3}', "--layers", "layer2", "--input-size", "64", "64", "--coco", str(ann),
                 "--images", str(images), "--out", str(out), "--no-progress"])  # fmt: skip
    assert code == 0
    identity = LoCEStore.open(out).jobs["loce.torchvision_resnet18"].model_identity
    assert identity["weights_file"] == str(path.resolve()) and identity["model_kwargs"] == {"num_classes": 3}
    assert identity["fingerprint"] == state_dict_fingerprint(finetuned[0])


def test_pickled_module_checkpoint_is_refused(finetuned, tmp_path):
    module, _ = finetuned
    pickled = tmp_path / "whole_model.pt"
    torch.save(module, pickled)  # a whole pickled nn.Module, as many training scripts save
    with pytest.raises(ModelSpecError, match=r"whole_model.pt holds pickled Python objects.*state_dict\(\)"):
        load_model("torchvision:resnet18", weights_file=pickled, num_classes=3)


def test_mismatched_checkpoint_names_keys(finetuned):
    _, path = finetuned
    with pytest.raises(
        ModelSpecError, match=r"2 keys of another shape .*fc.weight \(3, 512\) vs \(1000, 512\)"
    ):
        load_model("torchvision:resnet18", weights_file=path)
    with pytest.raises(ModelSpecError, match=r"\d+ missing keys \(layer1\.2\.conv1\.weight, .*, \.\.\.\)"):
        load_model("torchvision:resnet34", weights_file=path, num_classes=3)
    extra = path.with_name("extra.pt")
    torch.save({**torch.load(path, weights_only=True), "head.extra": torch.zeros(2)}, extra)
    with pytest.raises(ModelSpecError, match=r"1 unexpected keys \(head\.extra\)"):
        load_model("torchvision:resnet18", weights_file=extra, num_classes=3)


def test_py_spec_from_a_file_and_a_module(tmp_path, monkeypatch):
    source = tmp_path / "my_models.py"
    source.write_text(
        textwrap.dedent("""
        import torch
        def build(width=4):
            net = torch.nn.Sequential(torch.nn.Conv2d(3, width, 3, padding=1), torch.nn.ReLU())
            torch.nn.init.constant_(net[0].weight, 0.5)
            return net
        def not_a_module():
            return 3
    """)
    )
    loaded = load_model(f"py:{source}:build", width=6)
    assert loaded.module[0].out_channels == 6 and loaded.weights_source == f"py:{source}:build"
    assert float(loaded.module[0].weight.mean()) == 0.5
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_model("py:my_models:build").module[0].out_channels == 4
    with pytest.raises(ModelSpecError, match="returned int, not a torch.nn.Module"):
        load_model("py:my_models:not_a_module")
    with pytest.raises(ModelSpecError, match="has no function 'buidl'; close names: build"):
        load_model("py:my_models:buidl")


def test_unknown_bare_name_suggests_prefixed_specs():
    with pytest.raises(ModelSpecError, match="Did you mean 'torchvision:resnet50' or 'timm:resnet50'"):
        load_model("resnet50")


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """Empty torch and Hugging Face caches and a socket layer that fails the test if anything connects."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    attempts = []

    def refuse(address, *args, **kwargs):
        attempts.append(address)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", lambda self, address: refuse(address))
    return attempts


@pytest.mark.parametrize(
    "spec, command",
    [
        (
            "timm:vit_small_patch16_224@pretrained",
            "timm.create_model('vit_small_patch16_224', pretrained=True)",
        ),
        ("torchvision:resnet50@DEFAULT", "get_model('resnet50', weights='ResNet50_Weights.IMAGENET1K_V2')"),
        ("hf:google/vit-base-patch16-224", "hf download google/vit-base-patch16-224"),
    ],
)
def test_uncached_pretrained_weights_fail_fast_offline(no_network, monkeypatch, spec, command):
    monkeypatch.setenv("LOCE_OFFLINE", "1")
    with pytest.raises(ModelSpecError, match="not in the local cache") as err:
        load_model(spec)
    assert command in str(err.value) and "LOCE_OFFLINE=1 is set" in str(err.value)
    assert no_network == []  # decided from the environment and the cache alone


def test_uncached_weights_probe_the_host_once_and_fail_fast(no_network, monkeypatch):
    monkeypatch.delenv("LOCE_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    from loce import weights_cache

    monkeypatch.setattr(weights_cache, "_probed", {})
    with pytest.raises(ModelSpecError, match=r"download.pytorch.org cannot be reached"):
        load_model("torchvision:resnet18@DEFAULT")
    assert [address[0] for address in no_network] == ["download.pytorch.org"]


def test_bad_model_kwargs_json_is_one_line(tmp_path, capsys):
    code = main(["layers", "torchvision:resnet18", "--model-kwargs", "{num_classes: 3}"])
    assert code == 1
    assert "--model-kwargs '{num_classes: 3}' is not valid JSON" in capsys.readouterr().err


def test_fit_uses_model_kwargs(tmp_path):
    ann, images = write_planted_coco(tmp_path / "data", n=2)
    vit = load_model("timm:vit_tiny_patch16_224", depth=2, dynamic_img_size=True)
    vit.preprocessing = type(vit.preprocessing)(size=(48, 80))
    summary = fit_run(load_coco(ann, images), vit, ["blocks.1"], tmp_path / "run", progress=False)
    assert summary.vectors == 4
    X, _ = LoCEStore.open(tmp_path / "run").vectors(layer="blocks.1")
    assert X.shape == (4, 192) and np.isfinite(X).all()


def _half_normalise(image: np.ndarray) -> torch.Tensor:
    """The planted model's preprocessing written as a plain function: [0, 255] -> [-1, 1], no resize."""
    return torch.from_numpy((image.astype(np.float32) / 255.0 - 0.5) / 0.5).permute(2, 0, 1)


def test_preprocessing_function_fits_like_the_equivalent_preprocessing(tmp_path):
    from planted_data import PlantedNet, planted_model

    ann, images = write_planted_coco(tmp_path / "data", n=4)
    dataset = load_coco(ann, images)
    fit_run(dataset, planted_model(), ["pool"], tmp_path / "a", progress=False)
    # Used to fail with AttributeError: 'function' object has no attribute 'to_dict'.
    loaded = load_model(PlantedNet(), preprocessing=_half_normalise)
    assert loaded.preprocessing.size == (64, 64)
    fit_run(dataset, loaded, ["pool"], tmp_path / "b", progress=False)
    X_a, meta_a = LoCEStore.open(tmp_path / "a").vectors(layer="pool")
    X_b, meta_b = LoCEStore.open(tmp_path / "b").vectors(layer="pool")
    order_a = np.lexsort((meta_a["concept"], meta_a["sample_id"]))
    order_b = np.lexsort((meta_b["concept"], meta_b["sample_id"]))
    np.testing.assert_allclose(X_a[order_a], X_b[order_b], atol=1e-5)
    recorded = LoCEStore.open(tmp_path / "b").jobs["loce.module_PlantedNet"].preprocessing
    assert recorded == {"resize": "callable", "callable": f"{__name__}._half_normalise", "size": [64, 64]}


def test_preprocessing_function_errors_are_one_line():
    with pytest.raises(InputError, match=r"returned \(64, 64\); it must return a 3 x H x W tensor"):
        load_model(torch.nn.Conv2d(3, 4, 1), preprocessing=lambda image: torch.zeros(64, 64))
    with pytest.raises(InputError, match="must be a Preprocessing or a function of one image, got int"):
        load_model(torch.nn.Conv2d(3, 4, 1), preprocessing=3)
