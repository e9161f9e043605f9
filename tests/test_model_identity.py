"""A model's identity: the weights fingerprint, pretrained or random, recorded per job; resume and reload by it."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from torch import nn

from loce.cli.main import main
from loce.data import load_coco
from loce.errors import ModelSpecError, StoreError
from loce.model_identity import describe_weights, state_dict_fingerprint
from loce.models import LoadedModel, RandomWeightsWarning, load_model, load_model_from_identity
from loce.pipeline import fit_run
from loce.preprocessing import Preprocessing
from loce.store import LoCEStore
from planted_data import write_planted_coco


class ConvPool(nn.Module):
    """``pool``: a 1x1 convolution then 4 x 4 average pooling; its weights are what the fingerprint sees."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.mix = nn.Conv2d(3, 3, 1, bias=False)
        with torch.no_grad():
            self.mix.weight.copy_(torch.eye(3).view(3, 3, 1, 1) * scale)
        self.pool = nn.AvgPool2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.mix(x)).mean((2, 3))


def conv_model(scale: float = 1.0) -> LoadedModel:
    prep = Preprocessing((64, 64), (0.5,) * 3, (0.5,) * 3)
    return load_model(ConvPool(scale), preprocessing=prep)


@pytest.fixture
def planted(tmp_path):
    ann, images = write_planted_coco(tmp_path / "data", n=6)
    return load_coco(ann, images)


def test_fingerprint_is_sha256_over_sorted_names_dtypes_shapes_and_bytes():
    state = {"b": torch.tensor([1.0, 2.0]), "a": torch.tensor([[3]], dtype=torch.int64)}
    expected = hashlib.sha256()
    expected.update(b"a|torch.int64|(1, 1)\n" + np.array([3], np.int64).tobytes())
    expected.update(b"b|torch.float32|(2,)\n" + np.array([1.0, 2.0], np.float32).tobytes())
    assert state_dict_fingerprint(state) == expected.hexdigest()


def test_fingerprint_changes_with_one_value_and_not_with_a_copy():
    a, b = ConvPool(), ConvPool()
    assert state_dict_fingerprint(a) == state_dict_fingerprint(b)
    with torch.no_grad():
        b.mix.weight[0, 0, 0, 0] += 1e-6
    assert state_dict_fingerprint(a) != state_dict_fingerprint(b)


def test_identity_records_random_weights_and_warns():
    with pytest.warns(RandomWeightsWarning, match="torchvision:resnet18 has RANDOM weights"):
        loaded = load_model("torchvision:resnet18")
    identity = loaded.identity()
    assert identity["pretrained"] is False and identity["weights_source"] == "random init"
    assert identity["spec"] == "torchvision:resnet18" and len(identity["fingerprint"]) == 64
    assert identity["preprocessing"]["size"] == [224, 224]
    # The random initialisation is seeded: loading the same spec again gives the same network.
    assert load_model("torchvision:resnet18").identity()["fingerprint"] == identity["fingerprint"]
    assert describe_weights(identity).startswith("RANDOM weights (random init), fingerprint ")


def test_identity_of_a_user_module():
    identity = conv_model().identity()
    assert identity["pretrained"] is None and identity["weights_source"] == "user module"
    assert identity["fingerprint"] == state_dict_fingerprint(ConvPool())


def test_job_records_identity_and_refuses_other_weights(planted, tmp_path):
    run = tmp_path / "run"
    fit_run(planted, conv_model(1.0), ["pool"], run, job="j", batch_size=3, progress=False)
    recorded = json.loads((run / "manifest.json").read_text())["jobs"][0]["model_identity"]
    assert recorded == json.loads(json.dumps(conv_model(1.0).identity()))
    # The same spec string and layers with other weights used to resume onto the old LoCEs; now refused.
    other = conv_model(2.0)
    with pytest.raises(StoreError) as err:
        fit_run(planted, other, ["pool"], run, job="j", batch_size=3, progress=False)
    message = str(err.value)
    assert f"was fitted with weights {recorded['fingerprint'][:12]} (user module)" in message
    assert f"this model has {other.identity()['fingerprint'][:12]}" in message
    assert message.endswith("use another --job or --out")
    # The same weights resume (nothing recomputed).
    again = fit_run(planted, conv_model(1.0), ["pool"], run, job="j", batch_size=3, progress=False)
    assert again.images_done_before == 6 and again.images_processed == 0


def test_run_written_before_identities_still_resumes(planted, tmp_path):
    run = tmp_path / "run"
    fit_run(planted, conv_model(1.0), ["pool"], run, job="j", batch_size=3, progress=False)
    path = run / "manifest.json"
    manifest = json.loads(path.read_text())
    del manifest["jobs"][0]["model_identity"]
    path.write_text(json.dumps(manifest))
    assert LoCEStore.open(run).jobs["j"].model_identity == {}
    again = fit_run(planted, conv_model(2.0), ["pool"], run, job="j", batch_size=3, progress=False)
    assert again.images_done_before == 6


def test_reload_by_identity_gets_the_same_weights_and_refuses_others(tmp_path):
    loaded = load_model("torchvision:resnet18", preprocessing=Preprocessing(size=(64, 80)))
    identity = loaded.identity()
    again = load_model_from_identity(identity)
    assert again.identity()["fingerprint"] == identity["fingerprint"]
    assert again.preprocessing.size == (64, 80)
    changed = dict(identity, fingerprint="0" * 64)
    with pytest.raises(ModelSpecError, match="fitted with weights 000000000000 .*loads today are not"):
        load_model_from_identity(changed)
    with pytest.raises(ModelSpecError, match="nn.Module passed from Python and cannot be reloaded"):
        load_model_from_identity(conv_model().identity())


def test_reload_by_identity_uses_the_recorded_checkpoint(tmp_path):
    source = load_model("torchvision:resnet18", num_classes=3)
    with torch.no_grad():
        source.module.fc.bias.fill_(0.5)
    path = tmp_path / "finetuned.pt"
    torch.save(source.module.state_dict(), path)
    loaded = load_model("torchvision:resnet18", weights_file=path, num_classes=3)
    identity = loaded.identity()
    assert identity["weights_source"] == f"checkpoint {path.resolve()}" and identity["pretrained"] is None
    assert identity["fingerprint"] == state_dict_fingerprint(source.module)
    assert load_model_from_identity(identity).identity()["fingerprint"] == identity["fingerprint"]
    path.unlink()
    with pytest.raises(ModelSpecError, match="finetuned.pt, which no longer exists"):
        load_model_from_identity(identity)


def test_cli_says_random_weights_loudly_in_load_summary_and_info(tmp_path, capsys):
    ann, images = write_planted_coco(tmp_path / "data", n=2)
    out = tmp_path / "run"
    code = main(["fit", "--model", "torchvision:resnet18", "--layers", "layer2", "--input-size", "64", "64",
                 "--coco", str(ann), "--images", str(images), "--out", str(out), "--no-progress"])  # fmt: skip
    assert code == 0
    captured = capsys.readouterr()
    assert "loce: warning: torchvision:resnet18 has RANDOM weights" in captured.err
    assert "WARNING: torchvision:resnet18 has RANDOM weights" in captured.out
    assert main(["info", str(out)]) == 0
    fingerprint = LoCEStore.open(out).jobs["loce.torchvision_resnet18"].model_identity["fingerprint"]
    assert (
        f"model weights: RANDOM weights (random init), fingerprint {fingerprint[:12]}"
        in capsys.readouterr().out
    )
    # Resuming the same command: the seeded random initialisation is the same network, so it resumes.
    code = main(["fit", "--model", "torchvision:resnet18", "--layers", "layer2", "--input-size", "64", "64",
                 "--coco", str(ann), "--images", str(images), "--out", str(out), "--no-progress"])  # fmt: skip
    assert code == 0 and "0 images processed (2 already stored)" in capsys.readouterr().out
