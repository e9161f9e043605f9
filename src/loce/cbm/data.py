"""Labels, splits and cached backbone features of a scene-world dataset for concept-bottleneck training.

- Concepts are the dataset's categories; an image's concept label is 1 when the category is annotated in it.
- Classes are the image-level ``"scene_class"`` the scene generator writes (:mod:`loce.scenes.classes`: a fixed
  rule over the objects present, so recognising the concepts is what recognising the scene takes). Any COCO
  file whose image records carry a class key works (``class_key``).
- The train / test split is a seeded hash of the sample ids (independent of file order), recorded by id.
- Backbone features of one layer come from the activation source (:mod:`loce.activations`): images already in
  the activation cache (keyed by model weights, preprocessing and layer, validated against each image file) are
  not forwarded again, so the plain and the Loc-CBM model, every evaluation and ``loce localize`` on the same
  images share one forward pass per image.

Example:
    >>> dataset = load_scenes("scenes")  # doctest: +SKIP
    >>> labels = scene_labels(dataset)  # doctest: +SKIP
    >>> train, test = split_ids(labels.sample_ids, test_fraction=0.25, seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from loce.activations import ActivationSource, CacheOptions, iter_activations
from loce.data import ConceptDataset, load_coco
from loce.errors import InputError
from loce.models import LoadedModel
from loce.scenes import SCENE_CLASSES


@dataclass
class SceneLabels:
    """Concept presence and class labels of a dataset's samples (rows in dataset order).

    Attributes:
        sample_ids: the samples' ids.
        concepts: concept names (columns of ``presence``).
        classes: class names (values of ``class_index``).
        presence: ``N x K`` float32 0 / 1.
        class_index: ``N`` int64.
    """

    sample_ids: list[str]
    concepts: list[str]
    classes: list[str]
    presence: np.ndarray
    class_index: np.ndarray

    def subset(self, ids: Sequence[str]) -> SceneLabels:
        """The rows of ``ids``, in that order."""
        position = {sid: i for i, sid in enumerate(self.sample_ids)}
        rows = [position[sid] for sid in ids]
        return SceneLabels(
            list(ids), self.concepts, self.classes, self.presence[rows], self.class_index[rows]
        )


def load_scenes(scenes: str | Path) -> ConceptDataset:
    """The COCO dataset a scene-world folder holds (``annotations.json`` + ``images/``).

    Raises:
        InputError: when the folder has no ``annotations.json`` (make one with ``loce scenes --out DIR``).
    """
    root = Path(scenes)
    annotations = root / "annotations.json"
    if not annotations.is_file():
        raise InputError(
            f"{root} holds no annotations.json; render a scene world with `loce scenes --out {root}` or pass the "
            "folder that has annotations.json and images/"
        )
    return load_coco(annotations, root / "images", strict=True)


def scene_labels(
    dataset: ConceptDataset, class_key: str = "scene_class", classes: Sequence[str] | None = None
) -> SceneLabels:
    """Concept presence from the annotations and the class from each image record's ``class_key``.

    Args:
        dataset: the dataset (images without any annotated concept are not in a COCO dataset).
        class_key: the image-record key holding the class name.
        classes: the class names in order (default: :data:`loce.scenes.SCENE_CLASSES`, plus any other names found).

    Raises:
        InputError: naming the first sample without a class.
    """
    class_names = list(classes or SCENE_CLASSES)
    concepts = list(dataset.categories)
    presence = np.zeros((len(dataset), len(concepts)), dtype=np.float32)
    index = np.zeros(len(dataset), dtype=np.int64)
    column = {c: k for k, c in enumerate(concepts)}
    for i, sample in enumerate(dataset):
        name = sample.metadata.get(class_key)
        if name is None:
            raise InputError(
                f"image {sample.rel_path} has no {class_key!r} in its annotation record; CBM training needs a class "
                "per image (the scene world writes 'scene_class')"
            )
        if name not in class_names:
            class_names.append(str(name))
        index[i] = class_names.index(name)
        for concept in sample.concepts:
            presence[i, column[concept]] = 1.0
    return SceneLabels([s.sample_id for s in dataset], concepts, class_names, presence, index)


def split_ids(
    sample_ids: Sequence[str], test_fraction: float = 0.25, seed: int = 0
) -> tuple[list[str], list[str]]:
    """A seeded train / test split of ids: the ``test_fraction`` with the smallest hash of ``(seed, id)``.

    Example:
        >>> train, test = split_ids([str(i) for i in range(8)], test_fraction=0.25, seed=0)
        >>> len(train), len(test), sorted(set(train) & set(test))
        (6, 2, [])
    """
    if not 0 < test_fraction < 1:
        raise InputError(f"test_fraction must lie between 0 and 1, got {test_fraction}")
    keys = {sid: hashlib.sha256(f"{seed}:{sid}".encode()).hexdigest() for sid in sample_ids}
    ranked = sorted(sample_ids, key=lambda s: keys[s])
    n_test = max(1, round(len(ranked) * test_fraction))
    test = set(ranked[:n_test])
    return [s for s in sample_ids if s not in test], [s for s in sample_ids if s in test]


def extract_features(
    model: LoadedModel,
    dataset: Sequence,
    layer: str,
    *,
    batch_size: int = 32,
    progress: bool = True,
    cache: CacheOptions | None = None,
) -> np.ndarray:
    """``N x C x h x w`` float32 activations of ``layer`` for every sample's image (in order), through the
    activation source: images whose entries are in ``cache`` (e.g. written by ``loce localize`` on the same
    images) are not forwarded again.

    Raises:
        InputError: naming an image (or mask) that cannot be read.
    """
    from tqdm.auto import tqdm

    parts = []
    bar = tqdm(
        total=len(dataset), desc=f"features {layer}", unit="img", disable=not progress, file=sys.stderr
    )
    with ActivationSource(model, [layer], device=model.device, cache=cache) as source:
        for item in iter_activations(source, list(dataset), batch_size, strict=True, max_bytes=None,
                                     keep_unannotated=True):  # fmt: skip
            if item.batch.image_samples:
                parts.append(item.activations[layer].to(torch.float32).cpu().numpy())
            bar.update(len(item.batch.samples))
    bar.close()
    if not parts:
        raise InputError("no images to compute features of")
    features = np.concatenate(parts)
    if features.shape[0] != len(dataset):  # every image is kept under strict decoding; say so if not
        raise InputError(
            f"features of {features.shape[0]} images for {len(dataset)} samples; check the dataset"
        )
    return features
