"""Model specs, their preprocessing, and the EfficientNet-Lite models with their real ImageNet weights."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from loce.errors import InputError, ModelSpecError
from loce.models import LoadedModel, imagenet_class_names, load_model
from loce.preprocessing import IMAGENET_MEAN, IMAGENET_STD, Preprocessing

CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


# ----------------------------------------------------------------------------------------- preprocessing
def test_preprocessing_normalises_known_pixel_values():
    prep = Preprocessing(size=(4, 6), mean=(0.5, 0.25, 0.0), std=(0.5, 0.25, 2.0))
    white = np.full((4, 6, 3), 255, dtype=np.uint8)
    black = np.zeros((4, 6, 3), dtype=np.uint8)
    batch = prep([white, black])
    assert batch.shape == (2, 3, 4, 6) and batch.dtype == torch.float32
    # (1 - mean) / std and (0 - mean) / std per channel
    torch.testing.assert_close(batch[0, :, 0, 0], torch.tensor([1.0, 3.0, 0.5]))
    torch.testing.assert_close(batch[1, :, 0, 0], torch.tensor([-1.0, -1.0, 0.0]))


def test_preprocessing_stretches_the_whole_image_without_crop():
    # A 40 x 60 image with a white top-left quadrant (20 x 30): stretched to 4 x 6, the quadrant is the top-left
    # 2 x 3 cells. A centre crop would cut the left columns and move the quadrant.
    image = np.zeros((40, 60, 3), dtype=np.uint8)
    image[:20, :30] = 255
    out = Preprocessing(size=(4, 6), mean=(0, 0, 0), std=(1, 1, 1))([image])[0, 0]
    assert out[0, 0] == pytest.approx(1.0) and out[0, 1] == pytest.approx(1.0)
    assert (
        out[3, 5] == pytest.approx(0.0)
        and out[0, 4] == pytest.approx(0.0)
        and out[3, 0] == pytest.approx(0.0)
    )
    assert out[:2, :3].mean() > 0.75 and out[2:, 3:].mean() < 0.25
    # Mass is conserved by the stretch: a quarter of the image is white.
    assert out.mean().item() == pytest.approx(0.25, abs=0.02)


def test_preprocessing_rejects_non_rgb_uint8():
    prep = Preprocessing(size=(8, 8))
    with pytest.raises(InputError, match="image 1 has shape \\(8, 8\\)"):
        prep([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint8)])
    with pytest.raises(InputError, match="float"):
        prep([np.zeros((8, 8, 3), np.float32)])
    with pytest.raises(InputError, match="empty"):
        prep([])
    with pytest.raises(ValueError, match="std"):
        Preprocessing(std=(1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="height, width"):
        Preprocessing(size=(0, 8))


def test_preprocessing_round_trips_through_json():
    prep = Preprocessing(size=(240, 320), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    data = json.loads(json.dumps(prep.to_dict()))
    assert Preprocessing.from_dict(data) == prep
    with pytest.raises(InputError, match="resize method 'center-crop'"):
        Preprocessing.from_dict({**data, "resize": "center-crop"})
    with pytest.raises(InputError, match="lacks the key 'std'"):
        Preprocessing.from_dict({"size": [1, 1], "mean": [0, 0, 0]})


# ----------------------------------------------------------------------------------------- EfficientNet-Lite
def is_frozen_eval(module: nn.Module) -> bool:
    return not module.training and not any(p.requires_grad for p in module.parameters())


def test_efficientnet_lite0_real_weights_see_the_cat():
    skimage_data = pytest.importorskip("skimage.data")
    loaded = load_model("efficientnet-lite0")
    assert is_frozen_eval(loaded.module)
    assert loaded.preprocessing == Preprocessing(size=(224, 224), mean=(0.5,) * 3, std=(0.5,) * 3)
    with torch.no_grad():
        probabilities = loaded.module(loaded.preprocessing([skimage_data.chelsea()])).softmax(-1)[0]
    top = int(probabilities.argmax())
    assert top in CAT_CLASSES
    assert probabilities[list(CAT_CLASSES)].sum() > 0.5
    assert loaded.class_names is not None and "cat" in loaded.class_names[top].lower()


@pytest.mark.parametrize(("spec", "size"), [("efficientnet-lite1", 240), ("efficientnet-lite2", 260)])
def test_larger_lite_models_real_weights_see_the_cat(spec, size):
    skimage_data = pytest.importorskip("skimage.data")
    loaded = load_model(spec)
    assert loaded.preprocessing.size == (size, size)
    with torch.no_grad():
        logits = loaded.module(loaded.preprocessing([skimage_data.chelsea()]))
    assert int(logits.argmax()) in CAT_CLASSES


def test_lite_random_weights_differ_from_real_ones():
    real = load_model("efficientnet-lite0").module.state_dict()["_conv_head.weight"]
    random = load_model("efficientnet-lite0", weights=False)
    assert random.class_names is None
    assert not torch.equal(random.module.state_dict()["_conv_head.weight"], real)
    with pytest.raises(ModelSpecError, match="one set of weights"):
        load_model("efficientnet-lite0", weights="IMAGENET1K_V1")


def test_imagenet_class_names_offline():
    names = imagenet_class_names()
    assert names is not None and len(names) == 1000
    assert names[285] == "Egyptian cat" and names[0] == "tench"


# ----------------------------------------------------------------------------------------- torchvision / timm
def test_torchvision_spec_random_weights_with_imagenet_preprocessing():
    loaded = load_model("torchvision:resnet18")
    assert isinstance(loaded, LoadedModel) and is_frozen_eval(loaded.module)
    assert loaded.preprocessing == Preprocessing(size=(224, 224), mean=IMAGENET_MEAN, std=IMAGENET_STD)
    assert loaded.class_names is None and loaded.options["weights"] is None
    json.dumps(loaded.describe())


def test_torchvision_spec_errors():
    with pytest.raises(ModelSpecError, match="no model 'resnet19'.*resnet18"):
        load_model("torchvision:resnet19")
    with pytest.raises(ModelSpecError, match="no weights 'FOO'.*IMAGENET1K_V1"):
        load_model("torchvision:resnet18@FOO")


def test_timm_spec_uses_timm_data_config_and_size_override():
    vit = load_model("timm:vit_tiny_patch16_224", depth=1)
    assert vit.preprocessing == Preprocessing(size=(224, 224), mean=(0.5,) * 3, std=(0.5,) * 3)
    swin = load_model(
        "timm:swin_tiny_patch4_window7_224", img_size=(64, 96), window_size=2, depths=(1, 1, 1, 1)
    )
    assert swin.preprocessing == Preprocessing(size=(64, 96), mean=IMAGENET_MEAN, std=IMAGENET_STD)
    assert is_frozen_eval(swin.module) and swin.options["img_size"] == (64, 96)


def test_timm_spec_errors():
    with pytest.raises(ModelSpecError, match="no model 'vit_tiny_patch16_22'.*vit_tiny_patch16_224"):
        load_model("timm:vit_tiny_patch16_22")
    with pytest.raises(ModelSpecError, match="suffix 'weights'"):
        load_model("timm:vit_tiny_patch16_224@weights")


def test_missing_extra_names_the_pip_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # makes `import timm` raise ImportError
    with pytest.raises(ModelSpecError, match=r'pip install "loce\[timm\]"'):
        load_model("timm:resnet18")
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ModelSpecError, match=r'pip install "loce\[hf\]"'):
        load_model("hf:some/model")


def test_unknown_spec_lists_known_prefixes():
    with pytest.raises(
        ModelSpecError, match="unknown model spec 'resnet50'.*torchvision:NAME.*timm:NAME.*hf:"
    ):
        load_model("resnet50")
    with pytest.raises(ModelSpecError, match="string or a torch.nn.Module"):
        load_model(42)


# ----------------------------------------------------------------------------------------- hf
@pytest.fixture(scope="module")
def vit_dir(tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    config = transformers.ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
    )
    path = tmp_path_factory.mktemp("vit")
    transformers.ViTModel(config).save_pretrained(path)
    return path


def test_hf_local_dir_without_processor_uses_imagenet_defaults(vit_dir):
    loaded = load_model(f"hf:{vit_dir}")
    assert type(loaded.module).__name__ == "ViTModel" and is_frozen_eval(loaded.module)
    assert loaded.preprocessing == Preprocessing()
    assert loaded.class_names is None  # generic LABEL_0 ... labels are not class names


def test_hf_processor_config_sets_preprocessing(tmp_path, vit_dir):
    transformers = pytest.importorskip("transformers")
    for name in ("config.json", "model.safetensors"):
        (tmp_path / name).write_bytes((vit_dir / name).read_bytes())
    processor = transformers.ViTImageProcessor(
        size={"height": 32, "width": 48}, image_mean=[0.1, 0.2, 0.3], image_std=[0.4, 0.5, 0.6]
    )
    processor.save_pretrained(tmp_path)
    loaded = load_model(f"hf:{tmp_path}")
    assert loaded.preprocessing == Preprocessing(size=(32, 48), mean=(0.1, 0.2, 0.3), std=(0.4, 0.5, 0.6))
    (tmp_path / "preprocessor_config.json").write_text(
        json.dumps({"size": {"shortest_edge": 64}, "do_normalize": False})
    )
    assert load_model(f"hf:{tmp_path}").preprocessing == Preprocessing(
        size=(64, 64), mean=(0, 0, 0), std=(1, 1, 1)
    )


def test_hf_missing_dir_is_a_spec_error(tmp_path):
    with pytest.raises(ModelSpecError, match="could not load hf:"):
        load_model(f"hf:{tmp_path / 'missing'}")


# ----------------------------------------------------------------------------------------- modules and devices
def test_module_from_python_is_frozen_and_warns_without_preprocessing():
    module = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Dropout(0.5))
    with pytest.warns(UserWarning, match="no preprocessing given"):
        loaded = load_model(module)
    assert loaded.preprocessing == Preprocessing() and loaded.spec == "module:Sequential"
    assert is_frozen_eval(loaded.module)
    prep = Preprocessing(size=(32, 32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_model(nn.Conv2d(3, 4, 3), preprocessing=prep).preprocessing is prep


def test_preprocessing_override_and_device_errors():
    prep = Preprocessing(size=(320, 320))
    assert load_model("efficientnet-lite0", weights=False, preprocessing=prep).preprocessing is prep
    if not torch.cuda.is_available():
        with pytest.raises(ModelSpecError, match="CUDA is not available"):
            load_model("efficientnet-lite0", device="cuda")
    with pytest.raises(ModelSpecError, match="unknown device 'gpu0'"):
        load_model("efficientnet-lite0", device="gpu0")


def test_core_import_does_not_pull_optional_extras():
    code = (
        "import sys, loce.models, loce.capture, loce.preprocessing\n"
        "print(sorted(m for m in ('torchvision', 'timm', 'transformers') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
