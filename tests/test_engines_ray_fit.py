"""The Ray engine of `loce fit` / `loce embed`: the local engine's rows, resume after a killed driver, faults."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import ray_helpers
from loce.baselines import embed_run
from loce.cli.main import main
from loce.data import load_coco
from loce.engines import RayOptions
from loce.engines.ray_cluster import EngineError, WorkerPlan, import_ray, plan_workers
from loce.engines.ray_fit import FAULT_ENV, ray_embed_run, ray_fit_run
from loce.errors import InputError
from loce.pipeline import fit_run
from loce.store import LoCEStore
from planted_data import planted_model, write_planted_coco
from ray_helpers import SRC, TESTS

KEY = ["sample_id", "concept", "layer", "method"]
pytestmark = pytest.mark.xdist_group("ray")
ray_cluster = ray_helpers.ray_cluster  # the module-scoped local cluster


def _rows(run: Path) -> pd.DataFrame:
    frame = LoCEStore.open(run).frame(
        status=None, columns=[*KEY, "status", "detail", "iou", "steps", "vector"]
    )
    return frame.sort_values(KEY, na_position="first").reset_index(drop=True)


def assert_same_rows(run: Path, reference: Path) -> None:
    """Same keys, statuses and details; vectors and IoUs equal to 1e-6; no key twice."""
    a, b = _rows(run), _rows(reference)
    assert not a.duplicated(KEY).any()
    pd.testing.assert_frame_equal(
        a[[*KEY, "status", "detail", "steps"]], b[[*KEY, "status", "detail", "steps"]]
    )
    ok = (a["status"] == "ok").to_numpy()
    va, vb = a["vector"][ok].tolist(), b["vector"][ok].tolist()
    assert [len(v) for v in va] == [len(v) for v in vb]
    np.testing.assert_allclose(np.concatenate(va), np.concatenate(vb), atol=1e-6)
    np.testing.assert_allclose(a["iou"][ok].to_numpy(float), b["iou"][ok].to_numpy(float), atol=1e-6)


@pytest.fixture
def planted_with_bad_inputs(tmp_path):
    """12 planted images, one unreadable and one whose size contradicts its annotation (data skips)."""
    ann, images = write_planted_coco(tmp_path / "data", n=12)
    (images / "img_001.png").write_bytes(b"not a png at all")
    with Image.open(images / "img_002.png") as im:
        im.resize((48, 48)).save(images / "img_002.png")
    return ann, images


def test_worker_pool_is_sized_from_the_cluster():
    # 2 cores: two actors share what the decode tasks leave; a third does not fit and is refused with the figures.
    plan = plan_workers({"CPU": 2.0}, RayOptions(workers=2))
    assert plan.workers == 2 and plan.cpus * 2 + plan.decode_cpus <= 2.0
    assert plan_workers({"CPU": 8.0}, RayOptions()) == WorkerPlan(workers=7, cpus=1.0, gpus=0.0)
    assert plan_workers({"CPU": 16.0, "GPU": 4.0}, RayOptions(gpus_per_worker=0.5)).workers == 8
    with pytest.raises(EngineError, match="2 CPU.*--workers 2 or fewer"):
        plan_workers({"CPU": 2.0}, RayOptions(workers=3))
    with pytest.raises(EngineError, match="0 GPU"):
        plan_workers({"CPU": 4.0}, RayOptions(gpus_per_worker=1))


def test_missing_ray_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(EngineError, match=r'pip install "loce\[ray\]"'):
        import_ray()


@pytest.mark.slow
def test_ray_fit_gives_the_local_rows(ray_cluster, planted_with_bad_inputs, tmp_path):
    ann, images = planted_with_bad_inputs
    dataset = load_coco(ann, images)
    fit_run(dataset, planted_model(), ["pool"], tmp_path / "local", batch_size=4, progress=False)
    summary = ray_fit_run(dataset, planted_model(), ["pool"], tmp_path / "ray", batch_size=4, progress=False,
                          ray_options=RayOptions(workers=2))  # fmt: skip
    assert_same_rows(tmp_path / "ray", tmp_path / "local")
    assert summary.images_processed == 12 and summary.vectors == 20
    assert summary.skips == {"corrupt_image": 1, "image_size_mismatch": 1}
    # the one-off start-up (worker processes, model load in the actors) is told apart from the work
    assert 0 < summary.timings.startup < summary.timings.total
    shards = sorted(p.name for p in (tmp_path / "ray" / "loces").iterdir())
    assert shards == [f"loce.planted-{k:06d}.parquet" for k in (1, 2, 3)]  # one per group of 4 whole images
    # Resume as the local engine does: the unreadable image, repaired since, is computed again.
    (images / "img_001.png").write_bytes((images / "img_000.png").read_bytes())
    fit_run(dataset, planted_model(), ["pool"], tmp_path / "local", batch_size=4, progress=False)
    again = ray_fit_run(dataset, planted_model(), ["pool"], tmp_path / "ray", batch_size=4, progress=False,
                        ray_options=RayOptions(workers=2))  # fmt: skip
    assert again.images_done_before == 12 and again.images_processed == 0 and again.retried_embedded == 1
    assert_same_rows(tmp_path / "ray", tmp_path / "local")
    assert "corrupt_image" not in set(_rows(tmp_path / "ray")["status"])
    # --strict: the worker's data error reaches the caller as the same one-line error as locally
    with pytest.raises(InputError, match="img_002.png"):
        ray_fit_run(load_coco(ann, images, strict=True), planted_model(), ["pool"], tmp_path / "strict",
                    batch_size=4, strict=True, progress=False, ray_options=RayOptions(workers=1))  # fmt: skip


@pytest.mark.slow
def test_dead_workers_are_retried_and_write_once(ray_cluster, planted_with_bad_inputs, tmp_path, monkeypatch):
    ann, images = planted_with_bad_inputs
    dataset = load_coco(ann, images)
    embed_run(
        dataset,
        planted_model(),
        ["pool"],
        tmp_path / "local",
        method="masked-pool",
        batch_size=3,
        progress=False,
    )
    # The actor computing group 1 dies before writing its shard, the one computing group 2 right after writing it.
    before, after = tmp_path / "died-before", tmp_path / "died-after"
    monkeypatch.setenv(FAULT_ENV, f"1:before_write:{before};2:after_write:{after}")
    summary = ray_embed_run(dataset, planted_model(), ["pool"], tmp_path / "ray", method="masked-pool", batch_size=3,
                            progress=False, ray_options=RayOptions(workers=1))  # fmt: skip
    assert before.exists() and after.exists(), "the injected faults did not happen"
    assert_same_rows(tmp_path / "ray", tmp_path / "local")
    assert len(list((tmp_path / "ray" / "loces").iterdir())) == 4  # 12 images / 3, each group written once
    assert summary.images_processed == 12 and summary.skips == {"corrupt_image": 1, "image_size_mismatch": 1}


KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import ray
    from loce.data import load_coco
    from loce.engines import RayOptions
    from loce.engines.ray_fit import ray_fit_run
    from planted_data import planted_model

    class Slow(type(planted_model().module)):
        def forward(self, x):
            time.sleep(0.4)  # widen the window in which the kill lands mid-run
            return super().forward(x)

    model = planted_model()
    model.module.__class__ = Slow
    ray.init(address={address!r}, logging_level="WARNING", runtime_env={{"env_vars": {{"PYTHONPATH": {path!r}}}}})
    ray_fit_run(load_coco({ann!r}, {images!r}), model, ["pool"], {out!r}, batch_size=2, progress=False,
                ray_options=RayOptions(workers=1))
    """
)


@pytest.mark.slow
def test_rerun_after_the_driver_is_killed_completes_the_run(ray_cluster, tmp_path):
    ann, images = write_planted_coco(tmp_path / "data", n=10)
    dataset = load_coco(ann, images)
    fit_run(dataset, planted_model(), ["pool"], tmp_path / "local", batch_size=2, progress=False)
    out = tmp_path / "killed"
    script = tmp_path / "driver.py"
    path = os.pathsep.join([str(SRC), str(TESTS)])
    script.write_text(KILL_SCRIPT.format(address=ray_cluster.address_info["address"], ann=str(ann),
                                         images=str(images), out=str(out), path=path))  # fmt: skip
    env = {**os.environ, "PYTHONPATH": path, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen([sys.executable, str(script)], env=env)
    deadline = time.monotonic() + 150
    while proc.poll() is None and time.monotonic() < deadline and len(list(out.glob("loces/*.parquet"))) < 2:
        time.sleep(0.05)
    assert proc.poll() is None, "the driver finished (or failed) before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written = len(LoCEStore.open(out).completed_samples("loce.planted"))
    assert 0 < written < 10
    time.sleep(1.0)  # Ray stops the dead driver's actors
    summary = ray_fit_run(dataset, planted_model(), ["pool"], out, batch_size=2, progress=False,
                          ray_options=RayOptions(workers=1))  # fmt: skip
    assert summary.images_done_before == written and summary.images_processed == 10 - written
    assert_same_rows(out, tmp_path / "local")


@pytest.mark.slow
def test_cli_fit_and_embed_with_the_ray_engine(ray_cluster, planted_with_bad_inputs, tmp_path, capsys):
    ann, images = planted_with_bad_inputs
    common = ["--model", "efficientnet-lite0", "--input-size", "64", "64", "--coco", str(ann), "--images",
              str(images), "--batch-size", "5", "--no-progress"]  # fmt: skip
    threads = torch.get_num_threads()
    for engine in ("local", "ray"):
        out = str(tmp_path / engine)
        # The actors run torch on the driver's thread count; so does the local reference: a different thread
        # count sums the real model's convolutions in another order (~1e-7), which 50 optimiser steps amplify.
        torch.set_num_threads(1)
        assert (
            main(
                ["fit", *common, "--layers", "_blocks.5", "--out", out, "--engine", engine, "--workers", "2"]
            )
            == 0
        )
        assert main(["embed", "--method", "window", *common, "--layers", "_blocks.5", "--out", out,
                     "--engine", engine, "--workers", "1"]) == 0  # fmt: skip
    torch.set_num_threads(threads)
    printed = capsys.readouterr().out
    assert "20 LoCEs of _blocks.5 written" in printed
    assert printed.count("(Ray workers importing torch and the model") == 2  # the ray fit and the ray embed
    assert_same_rows(tmp_path / "ray", tmp_path / "local")
    code = main(["embed", "--method", "global", *common, "--layers", "_blocks.5", "--out", str(tmp_path / "g"),
                 "--engine", "ray"])  # fmt: skip
    assert code == 1 and "--engine local" in capsys.readouterr().err
