"""Gaussian mixtures of LoCEs, per concept and label-agnostic, with the number of components chosen by BIC.

The mixtures live in a reduced space: a PCA of the LoCEs (default, statistically sounder: the space keeps the
directions of largest variance and is linear, so means map back to LoCEs) or a 2-D UMAP (the paper's figures).
Components whose weight is below ``min_weight`` are flagged: their members are outlier candidates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from loce.analysis.errors import AnalysisError
from loce.analysis.inputs import ConceptIndex, prepare
from loce.analysis.reduce import Reducer, fit_reducer
from loce.reprs import short_repr

OVERALL = "(all)"


@dataclass
class MixtureFit:
    """One Gaussian mixture chosen by BIC.

    Attributes:
        name: the concept, or ``"(all)"`` for the label-agnostic mixture.
        members: indices (into the analysed LoCEs) of the fitted points.
        candidates: the component numbers tried; ``bic`` their BIC (lower is better).
        weights, means, covariances: the chosen mixture in the reduced space (``covariances`` c x d x d).
        assignment: most likely component of each member.
        small: per component, weight < ``min_weight`` (outlier components).
        composition: c x K concept counts of the members assigned to each component.
    """

    __repr__ = short_repr

    name: str
    members: np.ndarray
    candidates: np.ndarray
    bic: np.ndarray
    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    assignment: np.ndarray
    small: np.ndarray
    composition: np.ndarray

    @property
    def n_components(self) -> int:
        return int(self.weights.size)

    @property
    def outlier_members(self) -> np.ndarray:
        """Indices of the members assigned to small components."""
        return self.members[self.small[self.assignment]]


@dataclass
class GMMResult:
    """Per-concept and label-agnostic mixtures in one reduced space (see :func:`fit_gmms`)."""

    __repr__ = short_repr

    space: str
    reducer: Reducer = field(repr=False)
    embedding: np.ndarray = field(repr=False)
    concepts: np.ndarray = field(repr=False)
    labels: np.ndarray = field(repr=False)
    per_concept: dict[str, MixtureFit]
    overall: MixtureFit | None
    min_weight: float

    def mixtures(self) -> list[MixtureFit]:
        return [*self.per_concept.values(), *([self.overall] if self.overall is not None else [])]

    def to_frame(self) -> pd.DataFrame:
        """One row per component: mixture, component, weight, members, small flag, majority concept, mean."""
        rows = []
        for fit in self.mixtures():
            sizes = np.bincount(fit.assignment, minlength=fit.n_components)
            for c in range(fit.n_components):
                counts = fit.composition[c]
                total = max(1, int(counts.sum()))
                rows.append(
                    {
                        "mixture": fit.name,
                        "n_components": fit.n_components,
                        "component": c,
                        "weight": float(fit.weights[c]),
                        "n_members": int(sizes[c]),
                        "small": bool(fit.small[c]),
                        "majority_concept": self.concepts[int(counts.argmax())] if counts.sum() else "",
                        "majority_share": float(counts.max() / total),
                        "mean": fit.means[c].tolist(),
                    }
                )
        return pd.DataFrame(rows)

    def bic_frame(self) -> pd.DataFrame:
        """BIC of every candidate number of components of every mixture."""
        return pd.DataFrame(
            [
                {
                    "mixture": fit.name,
                    "n_components": int(k),
                    "bic": float(b),
                    "chosen": int(k) == fit.n_components,
                }
                for fit in self.mixtures()
                for k, b in zip(fit.candidates, fit.bic)
            ]
        )

    def outliers(self) -> pd.DataFrame:
        """LoCEs in small components of their concept's mixture (and of the label-agnostic one)."""
        rows = []
        for fit in self.mixtures():
            for member, component in zip(fit.members, fit.assignment):
                if fit.small[component]:
                    rows.append(
                        {
                            "index": int(member),
                            "concept": self.labels[member],
                            "mixture": fit.name,
                            "component": int(component),
                            "weight": float(fit.weights[component]),
                        }
                    )
        return pd.DataFrame(rows, columns=["index", "concept", "mixture", "component", "weight"])


def fit_mixture(
    Y: np.ndarray,
    candidates: Sequence[int],
    *,
    covariance_type: str = "full",
    reg_covar: float = 1e-6,
    min_component_size: int = 1,
    seed: int = 0,
) -> tuple[object, np.ndarray, np.ndarray]:
    """Fit one ``GaussianMixture`` per candidate number of components and keep the lowest BIC.

    Candidates larger than the number of points are skipped; ties go to fewer components. A fit in which a
    component holds fewer than ``min_component_size`` points (by most likely component) is not eligible: in d
    dimensions a full covariance needs more than d points, and BIC rewards a near-singular component on a few
    points with an unbounded likelihood. Its BIC is still reported. One component is always eligible.

    Returns:
        ``(best_model, tried_candidates, bics)``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> Y = np.concatenate([rng.normal(0, 1, (40, 2)), rng.normal(9, 1, (40, 2))])
        >>> int(fit_mixture(Y, range(1, 5), min_component_size=10)[0].n_components)
        2
    """
    from sklearn.mixture import GaussianMixture

    tried = np.array(sorted({int(c) for c in candidates if 1 <= int(c) <= Y.shape[0]}), dtype=np.int64)
    if tried.size == 0:
        raise AnalysisError(
            f"no candidate number of components fits {Y.shape[0]} points: {list(candidates)}."
        )
    best, best_bic, bics = None, np.inf, []
    for c in tried:
        if c > 1 and c * min_component_size > Y.shape[0]:
            bics.append(float("nan"))  # cannot give every component its minimum size
            continue
        model = GaussianMixture(c, covariance_type=covariance_type, reg_covar=reg_covar, random_state=seed)
        model.fit(Y)
        bic = float(model.bic(Y))
        bics.append(bic)
        sizes = np.bincount(model.predict(Y), minlength=c)
        eligible = c == 1 or sizes.min() >= min_component_size
        if eligible and (best is None or bic < best_bic):
            best, best_bic = model, bic
    if best is None:  # only reached when 1 is not a candidate
        raise AnalysisError(
            f"no mixture of {list(tried)} components gives every component {min_component_size} of the "
            f"{Y.shape[0]} points; lower min_component_size."
        )
    return best, tried, np.array(bics)


def default_min_component_size(n_dims: int, covariance_type: str = "full") -> int:
    """Smallest component a mixture may have in ``n_dims`` dimensions: ``d + 1`` for full covariances, else 2.

    A full covariance is singular on d points or fewer, and BIC rewards such a component with an unbounded
    likelihood (measured on the scene world, PCA-10: without the limit 8 of 11 concepts took the largest number
    of components offered, each with covariance eigenvalues of 1e-6, the ``reg_covar`` floor; with it every
    concept keeps one component with eigenvalues >= 0.11).

    Example:
        >>> default_min_component_size(10)
        11
    """
    return int(n_dims) + 1 if covariance_type == "full" else 2


def _full_covariances(model: object) -> np.ndarray:
    cov, kind = np.asarray(model.covariances_), model.covariance_type
    n, d = model.means_.shape
    if kind == "full":
        return cov
    if kind == "diag":
        return np.stack([np.diag(c) for c in cov])
    if kind == "spherical":
        return np.stack([np.eye(d) * c for c in cov])
    return np.broadcast_to(cov, (n, d, d)).copy()  # tied


def fit_gmms(
    X: object,
    labels: object,
    *,
    space: str = "pca",
    n_dims: int | None = None,
    max_components: int = 6,
    overall_max_components: int | None = None,
    per_concept: bool = True,
    label_agnostic: bool = True,
    min_weight: float = 0.05,
    covariance_type: str = "full",
    reg_covar: float = 1e-6,
    min_component_size: int | None = None,
    normalize: bool = False,
    reducer: Reducer | None = None,
    seed: int = 0,
) -> GMMResult:
    """Fit BIC-selected Gaussian mixtures per concept and over all LoCEs, in a PCA or UMAP space.

    Args:
        X: N x D LoCEs.
        labels: N concept names.
        space: ``"pca"`` (default) or ``"umap"`` (2-D, the paper's figures; needs ``loce[umap]``).
        n_dims: dimensions of the space (default 10 for PCA, 2 for UMAP).
        max_components: per-concept candidates are 1 .. max_components.
        overall_max_components: label-agnostic candidates 1 .. this (default ``min(2 K + 2, 30)``).
        per_concept, label_agnostic: which mixtures to fit.
        min_weight: components lighter than this are flagged ``small`` (outlier components).
        covariance_type, reg_covar: passed to ``sklearn.mixture.GaussianMixture``.
        min_component_size: a mixture is only chosen if each component holds at least this many points
            (default :func:`default_min_component_size`: ``d + 1`` in d dimensions with full covariances;
            see :func:`fit_mixture`). 1 gives plain BIC selection.
        normalize: unit-normalise the LoCEs before the reduction (cosine geometry).
        reducer: an already fitted :class:`Reducer` to reuse (then ``space``/``n_dims`` are ignored).
        seed: random state of the reduction and of the mixtures.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> X = np.concatenate([rng.normal(0, 1, (40, 5)), rng.normal(8, 1, (40, 5))])
        >>> result = fit_gmms(X, ["a"] * 80, n_dims=2, label_agnostic=False)
        >>> result.per_concept["a"].n_components
        2
    """
    X, labels = prepare(X, labels, dtype=np.float64)
    index = ConceptIndex.from_labels(labels)
    if not 0 <= min_weight < 1:
        raise AnalysisError(f"min_weight must be in [0, 1), got {min_weight}.")
    if reducer is None:
        dims = n_dims or (10 if space == "pca" else 2)
        reducer, embedding = fit_reducer(X, space, dims, normalize=normalize, seed=seed)
    else:
        embedding = reducer.transform(X)
    if min_component_size is None:
        min_component_size = default_min_component_size(embedding.shape[1], covariance_type)
    options = {
        "covariance_type": covariance_type,
        "reg_covar": reg_covar,
        "min_component_size": int(min_component_size),
        "seed": seed,
    }

    def fit_one(name: str, members: np.ndarray, candidates: range) -> MixtureFit:
        Y = embedding[members]
        model, tried, bics = fit_mixture(Y, candidates, **options)
        assignment = model.predict(Y)
        composition = np.zeros((model.n_components, index.n_concepts), dtype=np.int64)
        np.add.at(composition, (assignment, index.codes[members]), 1)
        return MixtureFit(
            name,
            members,
            tried,
            bics,
            model.weights_.copy(),
            model.means_.copy(),
            _full_covariances(model),
            assignment,
            model.weights_ < min_weight,
            composition,
        )

    fits = {}
    if per_concept:
        for k, concept in enumerate(index.concepts.tolist()):
            fits[concept] = fit_one(concept, index.members(k), range(1, max_components + 1))
    overall = None
    if label_agnostic:
        top = overall_max_components or min(2 * index.n_concepts + 2, 30)
        overall = fit_one(OVERALL, np.arange(labels.size), range(1, top + 1))
    return GMMResult(reducer.method, reducer, embedding, index.concepts, labels, fits, overall, min_weight)
