"""LoCE fitting: per (image, concept), the vector whose projection onto a layer's activations reconstructs the mask.

The shortest use::

    from loce.fit import LoCEFitter
    fitter = LoCEFitter("paper").fit(activations, masks)   # B x C x h x w tensor, B boolean H x W masks
    fitter.embeddings_, fitter.iou_, fitter.status_

``"paper"`` reproduces the publication's setting exactly (METHOD.md section 1) with the exact native-grid
computation: logits are formed on the layer's own grid and only they are upsampled. Other objectives and
solvers plug in through registries (:func:`register_objective`, :func:`register_solver`); named settings live in
:data:`PRESETS`. :func:`project` draws heat maps of any vector on activations; :mod:`loce.fit.projection` holds
the projection and IoU maths every other step uses.
"""

from loce.fit.fitter import FitResult, LoCEFitter
from loce.fit.objectives import Objective, available_objectives, get_objective, register_objective
from loce.fit.projection import (
    binary_iou,
    concept_logits,
    logits,
    mask_iou,
    project,
    projection_iou,
    projection_maps,
    resize_maps,
)
from loce.fit.settings import PRESETS, FitSettings, FitSettingsError, resolve_settings
from loce.fit.solvers import Solver, available_solvers, get_solver, register_solver
from loce.fit.targets import FitTargets, interpolation_matrix, prepare_targets, resize_bilinear

__all__ = [
    "PRESETS",
    "FitResult",
    "FitSettings",
    "FitSettingsError",
    "FitTargets",
    "LoCEFitter",
    "Objective",
    "Solver",
    "available_objectives",
    "available_solvers",
    "binary_iou",
    "concept_logits",
    "get_objective",
    "get_solver",
    "interpolation_matrix",
    "logits",
    "mask_iou",
    "prepare_targets",
    "project",
    "projection_iou",
    "projection_maps",
    "register_objective",
    "register_solver",
    "resize_bilinear",
    "resize_maps",
    "resolve_settings",
]
