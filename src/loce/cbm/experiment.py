"""The scene-world experiment: train plain / Loc-CBM-style models, then compare them with LoCE localisation.

:func:`train_on_scenes` is ``loce cbm train`` (features cached, model written to a directory);
:func:`compare_models` is ``loce cbm eval``: on the models' held-out test images it measures recognition
(class accuracy, concept accuracy and AUC) and the localisation of every present concept's map (alignment error
to the nearest instance centroid, pointing game, activation L1, IoU), plus the same localisation metrics for the
concept-mean LoCEs of a LoCE run projected onto the same images. It writes::

    OUT/comparison.csv    one row per method: recognition + localisation means
    OUT/per_concept.csv   the localisation metrics per method and concept
    OUT/per_map.csv       one row per (method, image, concept)
    OUT/comparison.json   the models, the LoCE run, settings and notes
    OUT/figures/heatmaps.png, OUT/figures/metrics.png

Example:
    >>> train_on_scenes("scenes", "RUN/cbm/plain", CBMConfig(locator=False), cache="RUN/cache/activations")  # doctest: +SKIP
    >>> train_on_scenes("scenes", "RUN/cbm/loc", CBMConfig(locator=True), cache="RUN/cache/activations")  # doctest: +SKIP
    >>> compare_models(["RUN/cbm/plain", "RUN/cbm/loc"], loce_run="RUN", out="RUN/cbm/comparison")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from loce.activations import CacheOptions
from loce.cbm.data import extract_features, load_scenes, scene_labels, split_ids
from loce.cbm.evaluate import MapItem, localize_maps, predict, recognition
from loce.cbm.io import load_cbm, save_cbm
from loce.cbm.outputs import Comparison, write_comparison
from loce.cbm.train import CBMConfig, train_cbm
from loce.errors import InputError, StoreError
from loce.fit.projection import concept_logits
from loce.localize.engine import instance_centroids
from loce.models import LoadedModel
from loce.reprs import short_repr
from loce.run_layout import CbmComparisonFiles, CbmModelFiles, RunLayout

DEFAULT_BACKBONE = "efficientnet-lite0"
#: 14 x 14 at 224 px: cells of 16 px resolve the scene world's objects (median ~25 px across); at ``_blocks.14``
#: (7 x 7, 32 px cells) a peak has little room to move and the locator's gain is within seed noise (loce.cbm.train).
DEFAULT_LAYER = "_blocks.10"
METRICS = ("alignment_error", "median_alignment_error", "pointing_game", "activation_l1", "iou")


@dataclass
class TrainSummary:
    """What :func:`train_on_scenes` did: where the model is, its test recognition and its history."""

    __repr__ = short_repr

    out: Path
    name: str
    test_recognition: dict[str, float]
    history: pd.DataFrame
    seconds: float


def _backbone(spec: str, device: str) -> LoadedModel:
    from loce.models import load_model

    return load_model(spec, device=device)


def train_on_scenes(
    scenes: str | Path,
    out: str | Path,
    config: CBMConfig | None = None,
    *,
    backbone: str | LoadedModel = DEFAULT_BACKBONE,
    layer: str = DEFAULT_LAYER,
    test_fraction: float = 0.25,
    split_seed: int = 0,
    cache: str | Path | CacheOptions | bool | None = None,
    name: str | None = None,
    device: str = "cpu",
    batch_size: int = 32,
    progress: bool = True,
) -> TrainSummary:
    """Train a CBM (``config.locator``: Loc-CBM style) on a scene world's training split and save it to ``out``.

    Args:
        scenes: the scene-world folder (``annotations.json`` + ``images/``, from ``loce scenes``).
        out: directory for ``model.pt``, ``cbm.json``, ``history.csv``.
        config: training settings (default: :class:`CBMConfig` defaults, locator on).
        backbone: frozen backbone spec (or a loaded model).
        layer: the backbone layer whose feature map the bottleneck reads.
        test_fraction: share of images held out (a seeded hash of the ids, ``split_seed``).
        split_seed: seed of the split (keep it equal for models you compare).
        cache: the activation cache: its directory (default ``out/features``; give a run's
            ``RUN/cache/activations`` to share the forward passes with ``loce localize`` and the other model), a
            :class:`~loce.activations.CacheOptions`, or ``False`` for none.
        name: display name (default ``"Loc-CBM"`` with the locator, else ``"CBM"``).
        device: where the backbone runs.
        batch_size: images per backbone forward pass.
        progress: progress bars on stderr.

    Returns:
        A :class:`TrainSummary`.
    """
    config = config or CBMConfig()
    start = time.perf_counter()
    dataset = load_scenes(scenes)
    labels = scene_labels(dataset)
    train_ids, test_ids = split_ids(labels.sample_ids, test_fraction, split_seed)
    model = backbone if isinstance(backbone, LoadedModel) else _backbone(backbone, device)
    cache_options = feature_cache(cache, CbmModelFiles(Path(out)).features)
    features = extract_features(
        model, dataset, layer, batch_size=batch_size, progress=progress, cache=cache_options
    )
    row = {sid: i for i, sid in enumerate(labels.sample_ids)}
    train_rows = [row[s] for s in train_ids]
    test_rows = [row[s] for s in test_ids]
    train = labels.subset(train_ids)
    result = train_cbm(
        features[train_rows],
        train.presence,
        train.class_index,
        config,
        n_classes=len(labels.classes),
        progress=progress,
    )
    test = labels.subset(test_ids)
    scores = recognition(predict(result.model, features[test_rows]), test.presence, test.class_index)
    name = name or ("Loc-CBM" if config.locator else "CBM")
    seconds = time.perf_counter() - start
    info = {
        "name": name,
        "config": config.to_dict(),
        "concepts": labels.concepts,
        "classes": labels.classes,
        "in_channels": int(features.shape[1]),
        "grid": [int(features.shape[2]), int(features.shape[3])],
        "backbone": model.identity(),  # spec, preprocessing, weights fingerprint: reloaded by identity
        "layer": layer,
        "scenes": str(Path(scenes).resolve()),
        "split": {"test_fraction": test_fraction, "seed": split_seed, "train": train_ids, "test": test_ids},
        "test_recognition": scores,
        "train_seconds": round(seconds, 2),
        "activation_cache": None
        if cache_options.directory is None
        else str(Path(cache_options.directory).resolve()),
    }
    save_cbm(out, result.model, info, result.history)
    return TrainSummary(Path(out), name, scores, result.history, seconds)


def feature_cache(cache: str | Path | CacheOptions | bool | None, default: str | Path) -> CacheOptions:
    """The activation cache of the concept bottleneck's features: a directory, options, ``False`` (none) or
    ``None`` / ``True`` (the cache in ``default``).

    Example:
        >>> feature_cache(None, "m/cache").directory.as_posix(), feature_cache(False, "m/cache").enabled
        ('m/cache', False)
    """
    if isinstance(cache, (str, Path)):
        return CacheOptions(directory=Path(cache))
    options = CacheOptions.of(cache)
    return options if options.directory is not None else replace(options, directory=Path(default))


def _items(dataset_by_id, test_ids: Sequence[str], concepts: Sequence[str]) -> tuple[list[MapItem], list]:
    """One :class:`MapItem` per (test image, present concept), with instance centroids as reference points."""
    items, samples = [], []
    column = {c: k for k, c in enumerate(concepts)}
    for i, sid in enumerate(test_ids):
        sample = dataset_by_id(sid)
        samples.append(sample)
        for concept in sample.concepts:
            if concept in column:
                mask = np.asarray(sample.mask(concept), dtype=bool)
                items.append(MapItem(i, column[concept], mask, instance_centroids(sample, concept)))
    return items, samples


def _summaries(per_map: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    grouped = per_map.groupby(by, sort=False)
    return grouped.agg(
        n_maps=("alignment_error", "size"),
        alignment_error=("alignment_error", "mean"),
        median_alignment_error=("alignment_error", "median"),
        pointing_game=("pointing_game", "mean"),
        activation_l1=("activation_l1", "mean"),
        iou=("iou", "mean"),
    ).reset_index()


def compare_models(
    model_dirs: Sequence[str | Path],
    *,
    loce_run: str | Path | None = None,
    loce_layer: str | None = None,
    scenes: str | Path | None = None,
    out: str | Path | None = None,
    cache: str | Path | CacheOptions | bool | None = None,
    examples: int = 6,
    device: str = "cpu",
    batch_size: int = 32,
    seed: int = 0,
    progress: bool = True,
) -> Comparison:
    """Compare trained CBMs (and a LoCE run's concept means) on the models' common test split.

    Args:
        model_dirs: directories written by :func:`train_on_scenes` (same scenes and split).
        loce_run: a LoCE run (``loce fit RUN``) whose concept-mean LoCEs are projected onto the test images.
        loce_layer: the LoCE layer (default: the CBMs' layer when the run has it, else the run's first layer).
        scenes: the scene folder (default: the one recorded with the models).
        out: output directory (default ``loce_run/cbm/comparison``, or beside the first model).
        cache: the activation cache (as in :func:`train_on_scenes`; default: the first model's).
        examples: test images in the heat-map figure.
        device, batch_size: backbone settings for features not cached yet.
        seed: seed of the choice of example images.
        progress: progress bars on stderr.

    Returns:
        A :class:`Comparison` (files written under ``out``).

    Raises:
        InputError: when the models were trained on different scenes, splits or backbones.
    """
    saved = [load_cbm(d) for d in model_dirs]
    if not saved:
        raise InputError("no trained CBM given; pass the directories written by `loce cbm train`")
    first = saved[0].info
    for s in saved[1:]:
        for key in ("scenes", "split", "backbone", "concepts", "classes"):
            if s.info[key] != first[key]:
                raise InputError(
                    f"{s.path} and {saved[0].path} differ in {key!r}; compare models trained on the same scenes and "
                    "split (same --scenes, --test-fraction and --split-seed)"
                )
    scenes = Path(scenes or first["scenes"])
    dataset = load_scenes(scenes)
    test_ids = list(first["split"]["test"])
    rows = {s.sample_id: i for i, s in enumerate(dataset)}
    missing = [sid for sid in test_ids if sid not in rows]
    if missing:
        raise InputError(f"{len(missing)} test images of the models (e.g. {missing[:3]}) are not in {scenes}")
    test_rows = [rows[sid] for sid in test_ids]
    concepts = list(first["concepts"])
    labels = scene_labels(dataset, classes=first["classes"]).subset(test_ids)
    items, samples = _items(dataset.by_id, test_ids, concepts)
    recorded = first.get("activation_cache") or CbmModelFiles(Path(saved[0].path)).features
    cache_options = feature_cache(cache, recorded)
    backbones: dict[str, LoadedModel] = {}

    def features_of(identity: dict, layer: str) -> np.ndarray:
        from loce.models import load_model_from_identity

        key = json.dumps(identity, sort_keys=True)
        if key not in backbones:
            backbones[key] = load_model_from_identity(identity, device=device)
        test = [dataset[i] for i in test_rows]
        return extract_features(backbones[key], test, layer, batch_size=batch_size, progress=progress,
                                cache=cache_options)  # fmt: skip

    names = display_names(saved)
    per_map, table, maps_of, notes = [], [], {}, []
    for s, name in zip(saved, names):
        info = s.info
        feats = features_of(info["backbone"], info["layer"])
        preds = predict(s.model, feats)
        frame = localize_maps(preds.logit_maps, items)
        frame.insert(0, "method", name)
        per_map.append(frame)
        maps_of[name] = preds.logit_maps
        table.append(
            {
                "method": name,
                "kind": "Loc-CBM" if info["config"]["locator"] else "CBM",
                "layer": info["layer"],
                **recognition(preds, labels.presence, labels.class_index),
            }
        )
    loce_record = None
    if loce_run is not None:
        loce_record, frame, logits, loce_name = _loce_maps(
            loce_run, loce_layer, first, concepts, items, features_of, notes
        )
        if frame is not None:
            per_map.append(frame)
            maps_of[loce_name] = logits
            table.append({"method": loce_name, "kind": "LoCE mean", "layer": loce_record["layer"]})
    per_map_frame = pd.concat(per_map, ignore_index=True)
    per_map_frame.insert(1, "sample_id", [test_ids[i] for i in per_map_frame["index"]])
    per_map_frame.insert(2, "concept_name", [concepts[k] for k in per_map_frame["concept"]])
    per_map_frame = per_map_frame.drop(columns=["index", "concept"]).rename(
        columns={"concept_name": "concept"}
    )
    localisation = _summaries(per_map_frame, ["method"])
    comparison = pd.DataFrame(table).merge(localisation, on="method", how="left")
    per_concept = _summaries(per_map_frame, ["method", "concept"])
    result = Comparison(comparison, per_concept, per_map_frame, notes)
    if out is None:
        out = (
            RunLayout(loce_run).cbm_comparison().directory
            if loce_run is not None
            else CbmComparisonFiles.beside(saved[0].path).directory
        )
    record = {
        "models": [
            {
                "path": str(s.path.resolve()),
                "name": name,
                "config": s.info["config"],
                "layer": s.info["layer"],
                "backbone": s.info["backbone"],
            }
            for s, name in zip(saved, names)
        ],
        "loce": loce_record,
        "scenes": str(scenes.resolve()),
        "test_images": len(test_ids),
        "maps_per_method": int(len(items)),
        "notes": notes,
    }
    write_comparison(result, Path(out), record, samples, items, maps_of, concepts, examples, seed)
    return result


def display_names(saved: Sequence) -> list[str]:
    """One distinct name per model: its recorded name, with its folder added where several models share a name.

    Every table row, map and figure of a comparison is keyed by this name, so two models called ``"CBM"`` (e.g.
    trained with different seeds) must not be merged into one.

    Example:
        >>> from types import SimpleNamespace as M
        >>> display_names([M(name="CBM", path=Path("a/s0")), M(name="CBM", path=Path("a/s1")),
        ...                M(name="Loc-CBM", path=Path("b"))])
        ['CBM (s0)', 'CBM (s1)', 'Loc-CBM']
    """
    recorded = [str(s.name) for s in saved]
    names = [
        f"{name} ({Path(s.path).name})" if recorded.count(name) > 1 else name
        for s, name in zip(saved, recorded)
    ]
    seen: dict[str, int] = {}
    unique = []
    for name in names:  # same name and same folder name (different parents): number them
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if names.count(name) == 1 else f"{name} #{seen[name]}")
    return unique


def _loce_maps(loce_run, loce_layer, first, concepts, items, features_of, notes):
    """Concept-mean LoCEs of a run projected onto the test images: (record, per-map frame, logits, name)."""
    from loce.localize.run import run_job
    from loce.localize.vectors import concept_mean
    from loce.store import LoCEStore

    store = LoCEStore.open(loce_run)
    spec = run_job(store, [loce_layer] if loce_layer else None, None)
    layer = loce_layer or (first["layer"] if first["layer"] in spec.layers else spec.layers[0])
    means, have = [], []
    for concept in concepts:
        try:
            means.append(concept_mean(store, concept, layer, job=spec.name))
            have.append(concept)
        except StoreError as exc:  # a concept without LoCEs is reported, not fatal
            notes.append(f"LoCE run has no concept mean of {concept!r} at {layer}: {exc}")
    if not means:
        notes.append(f"no concept of the CBMs has LoCEs at {layer} in {loce_run}; LoCE localisation left out")
        return None, None, None, None
    identity = spec.model_identity or {"spec": spec.model, "preprocessing": spec.preprocessing}
    feats = torch.as_tensor(features_of(identity, layer))
    logits_have = concept_logits(np.stack([m.vector for m in means]), feats).numpy()
    logits = np.zeros((logits_have.shape[0], len(concepts), *logits_have.shape[2:]), dtype=np.float32)
    for j, concept in enumerate(have):
        logits[:, concepts.index(concept)] = logits_have[:, j]
    chosen = [it for it in items if concepts[it.concept] in have]
    frame = localize_maps(logits, chosen)
    name = "LoCE mean"
    frame.insert(0, "method", name)
    record = {
        "run": str(Path(loce_run).resolve()),
        "job": spec.name,
        "model": spec.model,
        "layer": layer,
        "vectors": [m.describe() for m in means],
    }
    return record, frame, logits, name
