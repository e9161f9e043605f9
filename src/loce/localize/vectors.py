"""Concept vectors to project: from a run's store (a LoCE, the concept mean, a ``global`` vector) or given.

Kinds (the ``kind`` column of every localisation table):

- ``"mean"``: the mean of the concept's ``ok`` LoCEs at the layer (the paper's "concept mean").
- ``"loce"``: one LoCE: the given sample's, or else the concept's *most typical* LoCE, the one with the highest
  cosine similarity to the concept mean (a representative choice, not the best-IoU one, which would flatter).
- ``"global"``: the run's ``global`` baseline vector of the concept at the layer (rows with ``method ==
  "global"``; their mean when there are several), when the run has one of the layer's dimension.
- ``"centroid"``: sub-concept centroids (e.g. from :mod:`loce.analysis`), passed in by name.
- ``"custom"``: any other vectors passed in (e.g. from a ``.npy`` / ``.npz`` file, :func:`load_vector_file`).

Example:
    >>> from loce.store import LoCEStore
    >>> store = LoCEStore.open("RUN")  # doctest: +SKIP
    >>> vecs, notes = concept_vectors(store, "mug", "_blocks.14", kinds=("mean", "loce"))  # doctest: +SKIP
    >>> [v.name for v in vecs]  # doctest: +SKIP
    ['mug/mean', 'mug/loce']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from loce.errors import InputError, StoreError
from loce.store import LoCEStore

#: Kinds taken from a run's store, in the default order.
STORE_KINDS: tuple[str, ...] = ("mean", "loce", "global")


@dataclass
class ConceptVector:
    """One vector to project, with what it stands for.

    Attributes:
        concept: the concept it is a vector of (used to pick the ground-truth masks).
        layer: the layer whose activations it is projected onto.
        kind: ``"mean"``, ``"loce"``, ``"global"``, ``"centroid"`` or ``"custom"``.
        vector: ``(C,)`` float32.
        label: a short distinguishing name (sub-concept name, sample id); default the kind.
        source: where it came from, for the record (``"mean of 120 LoCEs"``, a sample id, a file).
    """

    concept: str
    layer: str
    kind: str
    vector: np.ndarray
    label: str = ""
    source: str = ""
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.vector = np.asarray(self.vector, dtype=np.float32).reshape(-1)
        self.label = self.label or self.kind

    @property
    def name(self) -> str:
        """``concept/label``, unique within one projection job."""
        return f"{self.concept}/{self.label}"

    def describe(self) -> dict:
        """A JSON-able record (without the vector's values) of this vector."""
        return {
            "name": self.name,
            "concept": self.concept,
            "layer": self.layer,
            "kind": self.kind,
            "label": self.label,
            "source": self.source,
            "dim": int(self.vector.size),
            "norm": float(np.linalg.norm(self.vector)),
        }


def _loces(store: LoCEStore, concept: str, layer: str, job: str | None) -> tuple[np.ndarray, object]:
    X, meta = store.vectors(layer=layer, concepts=concept, job=job, columns=["sample_id", "iou"])
    if len(X) == 0:
        raise StoreError(
            f"{store.path} has no ok LoCE of concept {concept!r} at layer {layer!r}; check the names with "
            f"`loce info {store.path}`"
        )
    return X, meta


def concept_mean(store: LoCEStore, concept: str, layer: str, job: str | None = None) -> ConceptVector:
    """The mean of a concept's LoCEs at a layer.

    Raises:
        StoreError: when the run has no LoCE of that concept and layer.
    """
    X, _ = _loces(store, concept, layer, job)
    return ConceptVector(concept, layer, "mean", X.mean(axis=0), source=f"mean of {len(X)} LoCEs")


def typical_loce(
    store: LoCEStore, concept: str, layer: str, sample_id: str | None = None, job: str | None = None
) -> ConceptVector:
    """One LoCE of the concept: the given sample's, or the one most cosine-similar to the concept mean.

    Raises:
        StoreError: when there is no LoCE, or ``sample_id`` has none for this concept and layer.
    """
    X, meta = _loces(store, concept, layer, job)
    ids = meta["sample_id"].astype(str).to_numpy()
    if sample_id is not None:
        hits = np.flatnonzero(ids == str(sample_id))
        if not len(hits):
            raise StoreError(
                f"sample {sample_id!r} has no ok LoCE of {concept!r} at {layer!r} in {store.path}; pick another "
                "sample or leave it out to use the most typical LoCE"
            )
        index = int(hits[0])
        how = f"sample {sample_id}"
    else:
        mean = X.mean(axis=0)
        norms = np.linalg.norm(X, axis=1) * max(float(np.linalg.norm(mean)), 1e-12)
        cosine = (X @ mean) / np.maximum(norms, 1e-12)
        index = int(np.argmax(cosine))
        how = f"sample {ids[index]} (most similar to the mean, cosine {cosine[index]:.3f})"
    return ConceptVector(concept, layer, "loce", X[index], source=how, extra={"sample_id": ids[index]})


def global_vector(store: LoCEStore, concept: str, layer: str, dim: int | None = None) -> ConceptVector | None:
    """The run's ``global`` baseline vector of the concept at the layer, or ``None`` when it has none (of ``dim``)."""
    try:
        X, _ = store.vectors(layer=layer, method="global", concepts=concept)
    except StoreError:
        return None
    if len(X) == 0 or (dim is not None and X.shape[1] != dim):
        return None
    return ConceptVector(concept, layer, "global", X.mean(axis=0), source=f"global baseline ({len(X)} rows)")


def concept_vectors(
    store: LoCEStore,
    concept: str,
    layer: str,
    *,
    kinds: Sequence[str] = STORE_KINDS,
    sample_id: str | None = None,
    centroids: Mapping[str, np.ndarray] | None = None,
    job: str | None = None,
) -> tuple[list[ConceptVector], list[str]]:
    """The concept vectors of one concept and layer, and notes on the kinds that are not available.

    Args:
        store: the run.
        concept: concept name.
        layer: layer name.
        kinds: which of :data:`STORE_KINDS` to take from the store.
        sample_id: the sample whose LoCE is the ``"loce"`` kind (default: the most typical one).
        centroids: ``{sub-concept name: (C,) vector}`` to add as ``"centroid"`` vectors.
        job: restrict to one job of the run.

    Returns:
        ``(vectors, notes)``; a note says why a requested kind is missing (e.g. no ``global`` rows).

    Raises:
        InputError: an unknown kind, or a centroid of the wrong length.
        StoreError: when the run has no LoCE of the concept at the layer.
    """
    unknown = sorted(set(kinds) - set(STORE_KINDS))
    if unknown:
        raise InputError(f"unknown vector kind(s) {unknown}; choose from {list(STORE_KINDS)}")
    mean = concept_mean(store, concept, layer, job)
    dim = mean.vector.size
    out: list[ConceptVector] = []
    notes: list[str] = []
    for kind in kinds:
        if kind == "mean":
            out.append(mean)
        elif kind == "loce":
            out.append(typical_loce(store, concept, layer, sample_id, job))
        elif kind == "global":
            found = global_vector(store, concept, layer, dim)
            if found is None:
                notes.append(
                    f"no 'global' vector of {concept!r} at {layer!r} (dimension {dim}) in {store.path}"
                )
            else:
                out.append(found)
    for name, vector in (centroids or {}).items():
        vec = np.asarray(vector, dtype=np.float32).reshape(-1)
        if vec.size != dim:
            raise InputError(
                f"centroid {name!r} has {vec.size} values but layer {layer!r} has {dim} channels; pass centroids "
                "computed from this layer's LoCEs"
            )
        out.append(ConceptVector(concept, layer, "centroid", vec, label=f"centroid:{name}", source=str(name)))
    return out, notes


def load_vector_file(path: str | Path) -> dict[str, np.ndarray]:
    """Named vectors from ``.npy`` (one ``(C,)`` or ``K x C``; named ``v0``, ``v1``...) or ``.npz`` (one per key).

    Files are read with ``allow_pickle=False``.

    Raises:
        InputError: naming the file, when it is missing, not numeric, or not 1-D / 2-D.

    Example:
        >>> vectors = load_vector_file("centroids.npz")  # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"vector file {path} does not exist.")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(
            f"cannot read vectors from {path}: {exc}; write them with numpy.save / numpy.savez"
        ) from None
    if isinstance(loaded, np.ndarray):
        arrays = {"v": loaded}
    else:
        with loaded:
            arrays = {key: loaded[key] for key in loaded.files}
    out: dict[str, np.ndarray] = {}
    for key, array in arrays.items():
        if not np.issubdtype(array.dtype, np.number) or array.ndim not in (1, 2):
            raise InputError(
                f"{path}: entry {key!r} must be a numeric (C,) or K x C array, got {array.dtype} {array.shape}"
            )
        if array.ndim == 1:
            out[key if key != "v" else "v0"] = array.astype(np.float32)
        else:
            for i, row in enumerate(array):
                out[f"{key}{i}"] = row.astype(np.float32)
    return out
