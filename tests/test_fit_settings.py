"""Fit settings: the paper preset's values, a stable id, round trips, validation."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from loce.fit import PRESETS, FitSettings, FitSettingsError, resolve_settings


def test_paper_preset_is_the_publication_setting():
    p = PRESETS["paper"]
    assert (p.objective, p.solver, p.grid, p.target_resize, p.init, p.iou_convention) == (
        "pseudo_bce",
        "adamw",
        100,
        "skimage",
        "zeros",
        "paper",
    )
    assert (p.lr, p.weight_decay, p.betas, p.eps, p.steps, p.tol) == (0.1, 0.01, (0.9, 0.999), 1e-8, 50, None)
    assert (p.l1, p.l2) == (0.0, 0.0)
    assert {"paper", "fast", "bce"} <= set(PRESETS)


def test_settings_id_is_stable_across_processes():
    here = PRESETS["paper"].settings_id
    code = "from loce.fit import PRESETS; print(PRESETS['paper'].settings_id)"
    there = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert here == there
    assert len(here) == 12 and int(here, 16) >= 0
    # pinned: a changed id orphans every stored LoCE's settings reference; change it only on purpose
    # (changed on purpose when the paper preset's target became scikit-image's resize and its IoU the paper's)
    assert here == "5500bdf2d755"


def test_ids_differ_and_round_trip():
    ids = {s.settings_id for s in PRESETS.values()}
    assert len(ids) == len(PRESETS)
    s = PRESETS["paper"].replace(steps=51)
    assert s.settings_id != PRESETS["paper"].settings_id
    for settings in PRESETS.values():
        data = json.loads(json.dumps(settings.to_dict()))
        assert FitSettings.from_dict(data) == settings
        assert FitSettings.from_dict(data).settings_id == settings.settings_id


def test_settings_written_before_iou_convention_existed_read_as_native():
    old = PRESETS["paper"].to_dict()
    del old["iou_convention"]
    assert FitSettings.from_dict(old).iou_convention == "native"
    assert PRESETS["fast"].iou_convention == "native" and PRESETS["bce"].iou_convention == "native"


def test_resolve_settings():
    assert resolve_settings("paper") is PRESETS["paper"]
    assert resolve_settings({"steps": 7}).steps == 7
    s = FitSettings(lr=0.5)
    assert resolve_settings(s) is s
    with pytest.raises(FitSettingsError, match="unknown fit preset 'papr'"):
        resolve_settings("papr")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"objective": "nope"}, "objective 'nope'"),
        ({"solver": "lbfgs2"}, "solver"),
        ({"steps": -1}, "steps"),
        ({"grid": 0}, "grid"),
        ({"betas": (0.9, 1.0)}, "betas"),
        ({"lr": -1}, "lr"),
        ({"tol": -1.0}, "tol"),
        ({"target_resize": "nearest"}, "target_resize"),
        ({"iou_convention": "exact"}, "iou_convention"),
        ({"init": "ones"}, "init"),
        ({"patience": 0}, "patience"),
    ],
)
def test_invalid_settings_raise(changes, message):
    with pytest.raises(FitSettingsError, match=message):
        FitSettings(**changes)


def test_unknown_keys_raise():
    with pytest.raises(FitSettingsError, match="unknown fit setting"):
        FitSettings.from_dict({"steps": 3, "momentum": 0.9})
