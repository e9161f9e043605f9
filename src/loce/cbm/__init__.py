"""Concept bottleneck models with a concept locator (Loc-CBM style) on a frozen backbone.

A concept layer (1x1 convolution) turns a backbone layer's feature map into one activation map per concept;
spatially pooled, the maps are the concepts' presence scores (supervised by the annotations), and a linear head
on the concept probabilities predicts the class. The concept locator (:mod:`loce.cbm.locator`) turns each map's
peak into a Gaussian mask whose radius shrinks during training and adds the alignment loss between the masked
and the raw map, which concentrates each concept in space.

The shortest use (``loce cbm train`` / ``loce cbm eval`` do the same)::

    from loce.cbm import CBMConfig, compare_models, train_on_scenes
    train_on_scenes("scenes", "RUN/cbm/plain", CBMConfig(locator=False), cache="RUN/cache/activations")
    train_on_scenes("scenes", "RUN/cbm/loc", CBMConfig(locator=True), cache="RUN/cache/activations")
    compare_models(["RUN/cbm/plain", "RUN/cbm/loc"], loce_run="RUN").table

Modules: :mod:`~loce.cbm.model`, :mod:`~loce.cbm.locator`, :mod:`~loce.cbm.train`, :mod:`~loce.cbm.evaluate`,
:mod:`~loce.cbm.data` (labels, split, feature cache), :mod:`~loce.cbm.io`, :mod:`~loce.cbm.experiment`.
"""

from loce.cbm.data import SceneLabels, load_scenes, scene_labels, split_ids
from loce.cbm.evaluate import CBMPredictions, MapItem, localize_maps, predict, recognition
from loce.cbm.experiment import TrainSummary, compare_models, train_on_scenes
from loce.cbm.io import SavedCBM, load_cbm, save_cbm
from loce.cbm.locator import RadiusSchedule, alignment_loss, gaussian_masks, grid_peaks
from loce.cbm.model import CBMOutput, ConceptBottleneck
from loce.cbm.outputs import Comparison
from loce.cbm.train import CBMConfig, TrainResult, train_cbm

__all__ = [
    "CBMConfig",
    "CBMOutput",
    "CBMPredictions",
    "Comparison",
    "ConceptBottleneck",
    "MapItem",
    "RadiusSchedule",
    "SavedCBM",
    "SceneLabels",
    "TrainResult",
    "TrainSummary",
    "alignment_loss",
    "compare_models",
    "gaussian_masks",
    "grid_peaks",
    "load_cbm",
    "load_scenes",
    "localize_maps",
    "predict",
    "recognition",
    "save_cbm",
    "scene_labels",
    "split_ids",
    "train_cbm",
    "train_on_scenes",
]
