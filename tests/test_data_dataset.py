"""ConceptDataset (loce.data.dataset): sequence behaviour, selection, description, verification."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fixtures_data import make_folder_dataset, truncate_file, write_garbage
from loce.data import ConceptAnnotation, ConceptDataset, Sample, load_folder
from loce.data.dataset import selection_key
from loce.errors import InputError


def toy_dataset(n: int = 30) -> ConceptDataset:
    """n in-memory samples: every one has "a", every second "b", every third "c" (no files involved)."""
    samples = []
    for i in range(n):
        names = ["a"] + (["b"] if i % 2 == 0 else []) + (["c"] if i % 3 == 0 else [])
        concepts = {c: ConceptAnnotation(c, load_mask=lambda: np.ones((2, 2), bool)) for c in names}
        samples.append(
            Sample(f"s{i:03d}", Path(f"/x/{i}.png"), f"{i}.png", concepts, load_image=lambda: None)
        )
    return ConceptDataset(samples, ["a", "b", "c"], "/x", format="toy")


def test_sequence_protocol_and_lookups():
    ds = toy_dataset(6)
    assert len(ds) == 6 and ds[0].sample_id == "s000" and ds[-1].sample_id == "s005"
    assert [s.sample_id for s in ds[1:3]] == ["s001", "s002"]
    assert [s.sample_id for s in ds] == [f"s{i:03d}" for i in range(6)]
    assert ds.by_id("s004") is ds[4]
    with pytest.raises(KeyError):
        ds.by_id("nope")
    assert ds.counts() == {"a": 6, "b": 3, "c": 2}
    assert [(s.sample_id, c) for s, c in ds.pairs()][:4] == [
        ("s000", "a"),
        ("s000", "b"),
        ("s000", "c"),
        ("s001", "a"),
    ]


def test_concepts_outside_the_categories_are_rejected():
    sample = toy_dataset(1)[0]
    with pytest.raises(ValueError, match="outside the categories"):
        ConceptDataset([sample], ["a"], "/x")


def test_filter_by_categories_drops_other_concepts_and_empty_samples():
    ds = toy_dataset(6).filter(categories=["c"])
    assert ds.categories == ["c"] and [s.sample_id for s in ds] == ["s000", "s003"]
    assert all(list(s.concepts) == ["c"] for s in ds)
    with pytest.raises(InputError, match="'z'.*available: a, b, c"):
        toy_dataset(6).filter(categories=["z"])


def test_cap_keeps_the_smallest_seeded_keys_per_category():
    ds = toy_dataset(30)
    capped = ds.filter(max_per_category=4, seed=7)
    assert capped.counts() == {"a": 4, "b": 4, "c": 4}
    for category in ds.categories:
        ids = sorted(
            (s.sample_id for s in ds if category in s.concepts), key=lambda i: selection_key(7, category, i)
        )
        assert {s.sample_id for s in capped if category in s.concepts} == set(ids[:4])
    assert capped.exclusions["max_per_category"] == (30 + 15 + 10) - 12
    assert [s.sample_id for s in capped] == sorted(s.sample_id for s in capped)  # dataset order kept
    assert {s.sample_id for s in ds.filter(max_per_category=4, seed=8)} != {s.sample_id for s in capped}


def test_cap_is_stable_when_the_dataset_grows_or_is_reordered():
    small, large = toy_dataset(30), toy_dataset(60)
    kept_small = {s.sample_id for s in small.filter(categories=["a"], max_per_category=5)}
    kept_large = {s.sample_id for s in large.filter(categories=["a"], max_per_category=5)}
    # an image of the small set is only displaced by a new image with a smaller key
    displaced = kept_small - kept_large
    newcomers = kept_large - kept_small
    assert len(displaced) == len(newcomers)
    assert all(int(i[1:]) >= 30 for i in newcomers)
    reordered = ConceptDataset(list(reversed(list(small))), small.categories, small.root)
    assert {s.sample_id for s in reordered.filter(categories=["a"], max_per_category=5)} == kept_small


def test_invalid_cap_is_an_input_error():
    with pytest.raises(InputError, match="at least 1"):
        toy_dataset(3).filter(max_per_category=0)


def test_describe_is_json_serialisable():
    info = json.loads(json.dumps(toy_dataset(6).filter(categories=["a", "b"], max_per_category=2).describe()))
    assert info["format"] == "toy" and info["categories"] == ["a", "b"]
    assert info["pairs_per_category"] == {"a": 2, "b": 2}
    assert info["options"] == {"categories": ["a", "b"], "max_per_category": 2, "seed": 0}


def test_verify_records_unusable_images_and_keeps_the_rest(tmp_path):
    fx = make_folder_dataset(tmp_path / "data")
    ds = load_folder(fx.root)
    truncate_file(fx.root / "images" / "a.png", keep=0.5)
    assert [s.sample_id for s in ds.verify()] == ["a", "sub/b"]  # the header is still readable
    checked = ds.verify(decode=True)
    assert [s.sample_id for s in checked] == ["sub/b"]
    assert checked.skips.counts() == {"truncated_image": 1} and checked.skips.records[0].stage == "verify"
    write_garbage(fx.root / "images" / "a.png")
    assert ds.verify().skips.counts() == {"corrupt_image": 1}
    strict = load_folder(fx.root, strict=True)
    with pytest.raises(InputError, match="a.png"):
        strict.verify()
