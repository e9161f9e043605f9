"""A concept bottleneck on a frozen backbone's feature map, keeping one spatial activation map per concept.

``features (B x C x h x w)`` -> standardised per channel (training-set statistics) -> concept layer
(``1 x 1`` convolution with bias, ``K`` outputs) -> concept logit maps ``z`` (``B x K x h x w``) -> concept
activation maps ``a = sigmoid(z)`` in [0, 1]. Spatial pooling of the logits (``"max"`` or ``"mean"``) gives the
pooled concept scores ``s`` (``B x K``), which are the concepts' presence logits (trained with BCE against the
annotations). The linear class head sees only the concept probabilities ``sigmoid(s)`` (the bottleneck): every
class decision is a weighted vote of named concepts.

Each concept filter is a concept vector plus a bias, and its map is the projection ``sigmoid(v . A + b)`` of
METHOD.md section 1, so CBM maps and LoCE projections are measured the same way.

Pooling: ``"max"`` (default) scores a concept by its strongest cell: a small object anywhere in the image can
switch it on, and only that cell gets the concept loss's gradient. ``"mean"`` scores by the average logit over
the grid, which favours concepts (or context) that cover large areas and asks the whole map to rise or fall.

The concept layer is a single ``1 x 1`` convolution on purpose: ``3 x 3`` and two-layer heads were tried on the
scene world and, with about a hundred training images, both recognised and localised worse (with and without the
concept locator), see :mod:`loce.cbm.train`.

Example:
    >>> import torch
    >>> cbm = ConceptBottleneck(in_channels=16, n_concepts=3, n_classes=4)
    >>> out = cbm(torch.randn(2, 16, 7, 7))
    >>> out.maps.shape, out.concept_logits.shape, out.class_logits.shape
    (torch.Size([2, 3, 7, 7]), torch.Size([2, 3]), torch.Size([2, 4]))
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from loce.errors import InputError

POOLINGS: tuple[str, ...] = ("max", "mean")


@dataclass
class CBMOutput:
    """One forward pass: concept logit maps ``z``, activation maps ``sigmoid(z)``, concept and class logits."""

    logit_maps: Tensor
    concept_logits: Tensor
    class_logits: Tensor

    @property
    def maps(self) -> Tensor:
        """The concept activation maps ``sigmoid(z)``, ``B x K x h x w`` in [0, 1]."""
        return torch.sigmoid(self.logit_maps)


class ConceptBottleneck(nn.Module):
    """Concept layer (1x1 conv) + spatial pooling + linear class head on concept probabilities (module docstring).

    Args:
        in_channels: channels of the backbone features.
        n_concepts: number of concepts ``K`` (one map each).
        n_classes: number of classes.
        pooling: ``"max"`` or ``"mean"``.
    """

    def __init__(self, in_channels: int, n_concepts: int, n_classes: int, pooling: str = "max") -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise InputError(f"unknown pooling {pooling!r}; choose one of {list(POOLINGS)}")
        self.pooling = pooling
        self.register_buffer("feature_mean", torch.zeros(in_channels))
        self.register_buffer("feature_std", torch.ones(in_channels))
        self.concept_layer = nn.Conv2d(in_channels, n_concepts, kernel_size=1)
        self.head = nn.Linear(n_concepts, n_classes)

    def set_feature_statistics(self, features: Tensor) -> None:
        """Standardise inputs with the per-channel mean and standard deviation of ``features`` (N x C x h x w)."""
        flat = features.transpose(0, 1).reshape(features.shape[1], -1).to(torch.float32)
        self.feature_mean.copy_(flat.mean(dim=1))
        self.feature_std.copy_(flat.std(dim=1).clamp_min(1e-6))

    def concept_logit_maps(self, features: Tensor) -> Tensor:
        """The concept logit maps ``z``, ``B x K x h x w``."""
        x = (features - self.feature_mean.view(1, -1, 1, 1)) / self.feature_std.view(1, -1, 1, 1)
        return self.concept_layer(x)

    def forward(self, features: Tensor) -> CBMOutput:
        """Logit maps, concept logits (pooled) and class logits of ``B x C x h x w`` features."""
        z = self.concept_logit_maps(features)
        concept_logits = z.amax(dim=(2, 3)) if self.pooling == "max" else z.mean(dim=(2, 3))
        class_logits = self.head(torch.sigmoid(concept_logits))
        return CBMOutput(z, concept_logits, class_logits)
