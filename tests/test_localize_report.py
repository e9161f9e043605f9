"""The report provider reads what ``loce localize`` and ``loce cbm eval`` wrote, and shows nothing without it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from PIL import Image

from loce.report.collect import SECTION_PROVIDERS, SectionContext
from loce.report.sections_localization import localization_sections


def _context(run):
    return SectionContext(runs=[run], rows=pd.DataFrame(), figures=run / "fig", colors={})


def _png(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(path)


def test_provider_is_registered_and_silent_without_outputs(tmp_path):
    assert "loce.report.sections_localization:localization_sections" in SECTION_PROVIDERS
    (tmp_path / "RUN" / "cbm" / "features").mkdir(parents=True)  # a feature cache alone is no comparison
    assert localization_sections(_context(tmp_path / "RUN")) == []


def test_cbm_comparison_becomes_a_section_with_table_and_figures(tmp_path):
    run = tmp_path / "RUN"
    out = run / "cbm" / "comparison"
    out.mkdir(parents=True)
    table = pd.DataFrame(
        {
            "method": ["CBM", "Loc-CBM", "LoCE mean"],
            "accuracy": [0.8, 0.82, np.nan],
            "alignment_error": [0.1, 0.05, 0.08],
            "activation_l1": [0.3, 0.1, 0.05],
        }
    )
    table.to_csv(out / "comparison.csv", index=False)
    pd.DataFrame({"method": ["CBM"], "concept": ["mug"], "alignment_error": [0.1]}).to_csv(
        out / "per_concept.csv", index=False
    )
    record = {
        "test_images": 75,
        "maps_per_method": 215,
        "models": [
            {"name": "CBM", "layer": "_blocks.14", "config": {"locator": False, "pooling": "max", "epochs": 60}},
            {
                "name": "Loc-CBM",
                "layer": "_blocks.14",
                "config": {"locator": True, "pooling": "max", "epochs": 60, "alignment_weight": 10.0,
                           "radius_start": 1.0, "radius_end": 0.1, "radius_schedule": "cosine"},
            },
        ],
        "notes": [],
    }  # fmt: skip
    (out / "comparison.json").write_text(json.dumps(record))
    _png(out / "figures" / "heatmaps.jpg")
    _png(out / "figures" / "metrics.png")
    (section,) = localization_sections(_context(run))
    assert section.key == "cbm"
    assert section.tables[0].frame["method"].tolist() == ["CBM", "Loc-CBM", "LoCE mean"]
    assert "75 held-out scenes" in section.tables[0].caption
    assert "radius 1.0 -> 0.1 (cosine)" in section.tables[0].caption
    assert [f.path.name for f in section.figures] == ["heatmaps.jpg", "metrics.png"]
    assert section.figures[0].wide
