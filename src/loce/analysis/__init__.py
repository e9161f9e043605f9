"""Analyses of LoCE distributions (METHOD.md section 2): pure functions over ``(X, labels[, ids])``.

``X`` is an N x D array of LoCEs (one layer, or several concatenated), ``labels`` their N concept names. Every
analysis returns a dataclass with arrays and a ``to_frame()`` (pandas); nothing here reads files or draws.

- :func:`concept_purity`: purity of an adaptive hierarchical clustering;
- :func:`separation_overlap`, :func:`confused_pairs`: one-vs-one separation and overlap, confused pairs;
- :func:`fit_gmms`: BIC-selected Gaussian mixtures per concept and label-agnostic (PCA or UMAP space);
- :func:`find_subconcepts`: sub-concepts of one concept with centroid LoCEs;
- :func:`find_outliers`: summed cosine distance, LOF, IsolationForest;
- :func:`knn`, :func:`retrieval_scores`: exact k-NN, precision@k (the paper's "mAP@k") and true mAP;
- :func:`separation_index`: per-concept inter / intra distance ratio;
- :class:`ConceptPredictor`: a new LoCE's concept by nearest cluster centroid or k-NN voting;
- :func:`analyze_paper`, :func:`protocol_sample`, :func:`group_size`: the publication's protocol (seeds);
- :func:`compare`: any of them side by side across models and layers;
- :func:`analysis_dir`, :func:`read_table`, :func:`read_summary`: where ``loce analyze`` writes per protocol
  (``RUN/analysis/``, ``RUN/analysis_paper/``) and reading it back with clear errors;
- :func:`read_figure_data`: what ``loce analyze`` stored per (model, layer) for the figures (2-D map, mixtures,
  dendrogram, neighbours...; layout in ``docs/ANALYSIS.md``).

Example:
    >>> import numpy as np
    >>> from loce.analysis import retrieval_scores
    >>> X = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    >>> retrieval_scores(X, ["a", "a", "b", "b"], ks=[1]).precision_at(1)
    1.0
"""

from loce.analysis.compare import ANALYSES, compare, register_analysis
from loce.analysis.distances import cosine_distances, normalize_rows
from loce.analysis.errors import AnalysisError, SingleConceptError, TooFewSamplesError, TooManySamplesError
from loce.analysis.figure_data import FigureData, build_figure_data
from loce.analysis.figure_files import list_figure_data, read_figure_data, write_figure_data
from loce.analysis.gmm import GMMResult, MixtureFit, fit_gmms
from loce.analysis.inputs import drop_small_concepts, stratified_subsample
from loce.analysis.neighbours import NeighbourhoodScan, scan_neighbourhoods
from loce.analysis.outliers import (
    OutlierResult,
    find_outliers,
    isolation_forest_stability,
    summed_cosine_distance,
)
from loce.analysis.output import PROTOCOLS, AtomicOutput, analysis_dir, read_summary, read_table
from loce.analysis.paper import PURITY_PRESETS, analyze_paper, group_size, protocol_sample
from loce.analysis.prediction import ConceptPredictor
from loce.analysis.purity import PurityResult, concept_purity, linkage_matrix
from loce.analysis.reduce import Reducer, fit_reducer
from loce.analysis.retrieval import DEFAULT_KS, KnnResult, RetrievalResult, knn, retrieval_scores
from loce.analysis.separation import (
    ConceptSeparation,
    ConfusedPairs,
    confused_pairs,
    separation_index,
    separation_overlap,
)
from loce.analysis.subconcepts import SubConcepts, find_subconcepts

__all__ = [
    "ANALYSES",
    "PROTOCOLS",
    "PURITY_PRESETS",
    "ConceptPredictor",
    "analyze_paper",
    "group_size",
    "protocol_sample",
    "separation_index",
    "AtomicOutput",
    "analysis_dir",
    "isolation_forest_stability",
    "read_summary",
    "read_table",
    "DEFAULT_KS",
    "AnalysisError",
    "ConceptSeparation",
    "ConfusedPairs",
    "FigureData",
    "GMMResult",
    "KnnResult",
    "MixtureFit",
    "NeighbourhoodScan",
    "OutlierResult",
    "PurityResult",
    "Reducer",
    "RetrievalResult",
    "SingleConceptError",
    "SubConcepts",
    "TooFewSamplesError",
    "TooManySamplesError",
    "build_figure_data",
    "compare",
    "concept_purity",
    "confused_pairs",
    "cosine_distances",
    "drop_small_concepts",
    "find_outliers",
    "find_subconcepts",
    "fit_gmms",
    "fit_reducer",
    "knn",
    "linkage_matrix",
    "list_figure_data",
    "normalize_rows",
    "read_figure_data",
    "register_analysis",
    "retrieval_scores",
    "scan_neighbourhoods",
    "separation_overlap",
    "stratified_subsample",
    "summed_cosine_distance",
    "write_figure_data",
]
