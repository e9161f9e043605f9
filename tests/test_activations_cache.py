"""The activation source and its cache: hits, misses, deleted / damaged / stale entries, the size limit, float16,
and the run-level properties (same rows with a cold, warm or no cache; one forward pass per image for a run)."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn

import loce.capture as capture_module
from loce.activations import ActivationSource, CacheOptions, cache_dir, iter_activations
from loce.activations.cache import directory_bytes
from loce.baselines import embed_run
from loce.data import load_coco
from loce.errors import StoreError
from loce.models import LoadedModel
from loce.pipeline import fit_run
from loce.preprocessing import Preprocessing
from loce.store import LoCEStore
from planted_data import write_planted_coco

KEY = ["method", "sample_id", "concept", "layer"]


class TwoLayerNet(nn.Module):
    """Two strided convolutions with fixed random weights (non-trivial floats at two layers)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.b = nn.Conv2d(4, 6, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.relu(self.a(x))).mean(dim=(2, 3))


def two_layer_model() -> LoadedModel:
    return LoadedModel(module=TwoLayerNet().eval(), preprocessing=Preprocessing((64, 64), (0.5,) * 3, (0.5,) * 3),
                       spec="two-layer")  # fmt: skip


@pytest.fixture
def data(tmp_path):
    ann, images = write_planted_coco(tmp_path / "data", n=6)
    return load_coco(ann, images), (ann, images)


def all_activations(dataset, cache: CacheOptions | None, layers=("a", "b")):
    """``({layer: N x C x h x w}, counts)`` of every image of ``dataset`` through a fresh source."""
    parts: dict[str, list[torch.Tensor]] = {layer: [] for layer in layers}
    with ActivationSource(two_layer_model(), layers, cache=cache) as source:
        for item in iter_activations(source, dataset, batch_size=4):
            for layer in layers:
                parts[layer].append(item.activations[layer])
    return {layer: torch.cat(p) for layer, p in parts.items()}, source.counts


def assert_close(a: torch.Tensor, b: torch.Tensor) -> None:
    """Equal to 1e-6 (a batch of other images may move a convolution's float sums in the last digits)."""
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


def entries(directory) -> list:
    return sorted(p for p in directory.rglob("*.npz"))


def test_a_warm_cache_serves_every_image_with_the_same_numbers(data, tmp_path):
    dataset, _ = data
    options = CacheOptions(directory=tmp_path / "cache")
    plain, plain_counts = all_activations(dataset, None)
    cold, cold_counts = all_activations(dataset, options)
    warm, warm_counts = all_activations(dataset, options)
    assert (plain_counts.forwarded, plain_counts.cached) == (6, 0)
    assert (cold_counts.forwarded, cold_counts.cached) == (6, 0)
    assert (warm_counts.forwarded, warm_counts.cached) == (0, 6)
    assert len(entries(tmp_path / "cache")) == 12  # one per (image, layer)
    for layer in ("a", "b"):
        assert warm[layer].dtype == torch.float32
        assert torch.equal(plain[layer], cold[layer]) and torch.equal(cold[layer], warm[layer])
    # another layer set shares the entries of the layers it has in common
    _, counts = all_activations(dataset, options, layers=("a",))
    assert (counts.forwarded, counts.cached) == (0, 6)


def test_a_disabled_cache_writes_nothing(data, tmp_path):
    dataset, _ = data
    _, counts = all_activations(dataset, CacheOptions(enabled=False, directory=tmp_path / "cache"))
    assert counts.forwarded == 6 and not (tmp_path / "cache").exists()


def test_deleted_and_damaged_entries_are_recomputed(data, tmp_path):
    dataset, _ = data
    options = CacheOptions(directory=tmp_path / "cache")
    reference, _ = all_activations(dataset, options)
    files = entries(tmp_path / "cache")
    files[0].write_bytes(b"not an npz file")  # damaged
    files[1].write_bytes(files[1].read_bytes()[:100])  # truncated
    np.savez(
        files[2], activation=np.array([object()], dtype=object), meta=np.zeros(1, np.uint8)
    )  # a pickle inside
    files[3].unlink()  # deleted
    again, counts = all_activations(dataset, options)
    assert counts.forwarded >= 1 and counts.forwarded + counts.cached == 6
    for layer in reference:
        assert_close(again[layer], reference[layer])
    _, counts = all_activations(dataset, options)  # the damaged entries were rewritten
    assert (counts.forwarded, counts.cached) == (0, 6)
    import shutil

    shutil.rmtree(tmp_path / "cache")  # the whole cache deleted: recomputed, not an error
    again, counts = all_activations(dataset, options)
    assert counts.forwarded == 6
    assert_close(again["b"], reference["b"])


def test_an_edited_image_is_never_served_from_the_cache(data, tmp_path):
    dataset, (ann, images) = data
    options = CacheOptions(directory=tmp_path / "cache")
    all_activations(dataset, options)
    path = images / "img_000.png"
    stat = path.stat()
    pixels = np.asarray(Image.open(path).convert("RGB")).copy()
    pixels[:8] = 255  # same size in pixels, other content
    Image.fromarray(pixels).save(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # even with the old modification time
    edited, counts = all_activations(load_coco(ann, images), options)
    assert (counts.forwarded, counts.cached) == (1, 5)
    fresh, _ = all_activations(load_coco(ann, images), None)
    assert_close(edited["a"], fresh["a"])


def test_the_size_limit_is_never_exceeded(data, tmp_path):
    dataset, _ = data
    all_activations(dataset, CacheOptions(directory=tmp_path / "probe"))
    per_image = directory_bytes(tmp_path / "probe") / 6
    limit = int(per_image * 2.5)
    options = CacheOptions(directory=tmp_path / "cache", limit_bytes=limit)
    reference, counts = all_activations(dataset, options)
    assert directory_bytes(tmp_path / "cache") <= limit
    assert 2 <= len(entries(tmp_path / "cache")) <= 5
    again, counts = all_activations(dataset, options)  # what is there is served; the rest is forwarded
    assert counts.cached >= 1 and counts.forwarded >= 1
    assert directory_bytes(tmp_path / "cache") <= limit
    assert_close(again["b"], reference["b"])


def test_float16_entries_are_a_separate_opt_in_cache(data, tmp_path):
    dataset, _ = data
    reference, _ = all_activations(dataset, None)
    half = CacheOptions(directory=tmp_path / "cache", dtype="float16")
    cold, _ = all_activations(dataset, half)
    served, counts = all_activations(dataset, half)
    assert counts.cached == 6
    # a miss is rounded as a hit is: the numbers do not depend on the cache's state
    assert torch.equal(cold["a"], served["a"])
    assert served["a"].dtype == torch.float32
    assert torch.allclose(served["a"], reference["a"], rtol=2e-3, atol=2e-3)
    _, counts = all_activations(
        dataset, CacheOptions(directory=tmp_path / "cache")
    )  # float32 never reads them
    assert counts.forwarded == 6


def store_rows(run) -> pd.DataFrame:
    frame = LoCEStore.open(run).frame(status=None, columns=[*KEY, "status", "vector"])
    return frame.sort_values(KEY, na_position="first").reset_index(drop=True)


def assert_same_vectors(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert a[KEY + ["status"]].equals(b[KEY + ["status"]])
    for u, v in zip(a["vector"], b["vector"]):
        assert (u is None) == (v is None)
        if u is not None:
            np.testing.assert_allclose(np.asarray(u), np.asarray(v), atol=1e-6, rtol=0)


def run_methods(dataset, run, **options):
    model = two_layer_model()
    summaries = [fit_run(dataset, model, ["a", "b"], run, batch_size=4, progress=False, **options)]
    for method in ("window", "masked-pool", "global"):
        summaries.append(embed_run(dataset, model, ["a", "b"], run, method=method, batch_size=4, progress=False,
                                   **options))  # fmt: skip
    return summaries


def test_store_rows_do_not_depend_on_the_cache(data, tmp_path, monkeypatch):
    dataset, _ = data
    forwarded = []
    call = capture_module.LayerCapture.__call__

    def counted(self, inputs, **kwargs):
        if inputs.abs().sum() > 0:  # not the all-zero image that checks the layers before a run
            forwarded.append(int(inputs.shape[0]))
        return call(self, inputs, **kwargs)

    monkeypatch.setattr(capture_module.LayerCapture, "__call__", counted)
    cold = run_methods(dataset, tmp_path / "cold")
    assert sum(forwarded) == 6  # one forward pass per image over fit + window + masked-pool + global
    images_forwarded = [s.images_forwarded for s in cold]
    assert images_forwarded == [6, 0, 0, 0] and [s.images_cached for s in cold] == [0, 6, 6, 6]
    forwarded.clear()
    import shutil

    warm_run = tmp_path / "warm"
    shutil.copytree(cache_dir(tmp_path / "cold"), cache_dir(warm_run))
    warm = run_methods(dataset, warm_run)
    assert [s.images_forwarded for s in warm] == [0, 0, 0, 0]
    off = run_methods(dataset, tmp_path / "off", activation_cache=False)
    assert [s.images_forwarded for s in off] == [6, 6, 6, 6] and not cache_dir(tmp_path / "off").exists()
    assert_same_vectors(store_rows(tmp_path / "cold"), store_rows(warm_run))
    assert_same_vectors(store_rows(tmp_path / "cold"), store_rows(tmp_path / "off"))


def test_a_float16_cache_is_recorded_in_the_job(data, tmp_path):
    dataset, _ = data
    half = CacheOptions(dtype="float16")
    fit_run(
        dataset,
        two_layer_model(),
        ["a"],
        tmp_path / "run",
        batch_size=4,
        progress=False,
        activation_cache=half,
    )
    job = LoCEStore.open(tmp_path / "run").manifest.jobs[0]
    assert job["fit_settings"]["activation_dtype"] == "float16" and job["settings_id"].endswith("+float16")
    assert job["environment"]["torch_threads"] == torch.get_num_threads()
    with pytest.raises(StoreError, match="activation_dtype"):
        fit_run(dataset, two_layer_model(), ["a"], tmp_path / "run", batch_size=4, progress=False)
