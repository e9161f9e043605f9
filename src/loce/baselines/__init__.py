"""Object-embedding baselines beside LoCEs (METHOD.md section 3; seed paper ``003``), written into the same store.

- ``crop`` (:mod:`~loce.baselines.crop`): the object's mask crop on a black canvas, fed to the model, pooled
  (default: the penultimate feature vector);
- ``window`` (:mod:`~loce.baselines.window`): the k x k grid cells around the cell holding the box centre;
- ``masked-pool`` (:mod:`~loce.baselines.masked_pool`): a layer's activations averaged under the mask;
- ``global`` (:mod:`~loce.baselines.global_vector`): one Net2Vec-style vector per concept, fitted over all its
  samples with the LoCE objective.

:func:`embed_run` stores them (``loce embed``), :func:`compare_methods` scores every method with the same
analyses (``loce compare-methods``), :mod:`~loce.baselines.location` measures how much of an embedding is the
object's position (``loce location``).

Example:
    >>> from loce.baselines import embed_run, compare_methods  # doctest: +SKIP
    >>> embed_run(ds, model, "window", "RUN", ["_blocks.10", "_blocks.14"])  # doctest: +SKIP
    >>> print(compare_methods("RUN").table)  # doctest: +SKIP
"""

from loce.baselines.compare import MethodComparison, compare_methods, list_embeddings
from loce.baselines.crop import PENULTIMATE_LAYERS, CropCanvas, crop_canvas, default_crop_layer, pooled
from loce.baselines.embed import PER_SAMPLE_METHODS, EmbedOptions, LayerVectors, embed_pairs
from loce.baselines.global_run import global_run, global_sample_id
from loce.baselines.global_vector import SharedVectorFit, fit_shared_vector
from loce.baselines.location import (
    LOCATION_METHODS,
    LocationResult,
    LocationScore,
    PositionedImages,
    location_analysis,
    location_score,
    paste_grid,
    reduce_2d,
    scene_background,
    scene_object,
)
from loce.baselines.masked_pool import cell_coverage, masked_pool
from loce.baselines.outputs import methods_dir, write_location, write_method_comparison
from loce.baselines.run import METHODS, embed_run
from loce.baselines.window import center_cell, window_vectors

__all__ = [
    "LOCATION_METHODS",
    "METHODS",
    "PENULTIMATE_LAYERS",
    "PER_SAMPLE_METHODS",
    "CropCanvas",
    "EmbedOptions",
    "LayerVectors",
    "LocationResult",
    "LocationScore",
    "MethodComparison",
    "PositionedImages",
    "SharedVectorFit",
    "cell_coverage",
    "center_cell",
    "compare_methods",
    "crop_canvas",
    "default_crop_layer",
    "embed_pairs",
    "embed_run",
    "fit_shared_vector",
    "global_run",
    "global_sample_id",
    "list_embeddings",
    "location_analysis",
    "location_score",
    "masked_pool",
    "methods_dir",
    "paste_grid",
    "pooled",
    "reduce_2d",
    "scene_background",
    "scene_object",
    "window_vectors",
    "write_location",
    "write_method_comparison",
]
