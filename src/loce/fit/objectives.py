"""Objectives: what a LoCE's projection should match, with hand-written gradients for a batch of samples.

An objective sees the logits ``z`` of one chunk on the common grid, flattened to ``n x N`` (``N = grid^2``, one
row per sample), and the soft targets ``t`` in the same layout. It returns the per-sample loss and the gradient
with respect to the logits; the fitter carries that gradient back to ``v`` through the (linear) upsampling and
the 1 x 1 convolution. Samples never interact: every reduction is along dimension 1.

New objectives plug in by name::

    @register_objective("my_loss")
    class MyLoss(Objective):
        def prepare(self, target): ...
        def loss_and_grad(self, logits, state, need_loss): ...

Every objective also adds ``l1 * sum|v| + l2 * sum v^2`` from the settings (both 0 in the paper).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from loce.fit.settings import FitSettings

State = dict[str, Tensor]

_OBJECTIVES: dict[str, type[Objective]] = {}


def register_objective(name: str) -> Callable[[type[Objective]], type[Objective]]:
    """Class decorator adding an :class:`Objective` subclass to the registry under ``name``."""

    def add(cls: type[Objective]) -> type[Objective]:
        cls.name = name
        _OBJECTIVES[name] = cls
        return cls

    return add


def available_objectives() -> list[str]:
    """Names of the registered objectives, sorted."""
    return sorted(_OBJECTIVES)


def get_objective(name: str) -> type[Objective]:
    """The objective class registered under ``name`` (a ``KeyError`` naming the choices otherwise)."""
    try:
        return _OBJECTIVES[name]
    except KeyError:
        raise KeyError(
            f"unknown objective {name!r}; registered objectives: {available_objectives()}"
        ) from None


# Logits are clamped to +-LOGIT_BOUND before the sigmoid: y then changes by at most sigmoid(-40) ~ 4e-18, but
# y, y (1 - y) and the gradients stay out of the float32 denormal range, which is 10-100x slower on CPUs.
LOGIT_BOUND = 40.0


def bounded_sigmoid_(logits: Tensor) -> Tensor:
    """In-place ``sigmoid(clamp(logits, -40, 40))`` (see :data:`LOGIT_BOUND`)."""
    return torch.sigmoid_(logits.clamp_(-LOGIT_BOUND, LOGIT_BOUND))


def chain_sigmoid_(dloss_dy: Tensor, y: Tensor) -> Tensor:
    """``dloss_dy * y * (1 - y)``, the gradient with respect to the logits, in one fused kernel, written into ``y``."""
    return torch.ops.aten.sigmoid_backward.grad_input(dloss_dy, y, grad_input=y)


def foreground_share(target: Tensor) -> Tensor:
    """Per-sample fraction of grid pixels with ``t > 0`` (``1 - alpha`` in the paper's notation)."""
    return (target > 0).to(target.dtype).mean(dim=1)


class Objective:
    """Base class: per-sample loss on the grid plus the settings' L1/L2 penalty on ``v``.

    Subclasses implement :meth:`prepare` (per-sample constants computed once per chunk; every tensor in the
    returned dict has the samples along dimension 0, so the fitter can drop frozen samples) and
    :meth:`loss_and_grad`.
    """

    name = "base"

    def __init__(self, settings: FitSettings) -> None:
        self.settings = settings

    def prepare(self, target: Tensor) -> State:
        """Per-sample constants for the soft targets ``target`` (``n x N``, values in [0, 1])."""
        raise NotImplementedError

    def loss_and_grad(self, logits: Tensor, state: State, need_loss: bool) -> tuple[Tensor, Tensor | None]:
        """Gradient with respect to ``logits`` (``n x N``) and, when ``need_loss``, the loss per sample (``n``).

        ``logits`` may be overwritten, and the gradient may be written into it (the fitter does not use the
        logits afterwards, and reuses the buffer at the next step): avoid allocating ``n x N`` tensors.
        """
        raise NotImplementedError

    def loss(self, logits: Tensor, state: State) -> Tensor:
        """Loss per sample (data term only; see :meth:`penalty`)."""
        return self.loss_and_grad(logits.clone(), state, True)[1]

    def penalty(self, v: Tensor) -> tuple[Tensor, Tensor] | None:
        """``(loss per sample, gradient)`` of ``l1 * sum|v| + l2 * sum v^2``, or ``None`` when both are 0."""
        l1, l2 = self.settings.l1, self.settings.l2
        if l1 == 0 and l2 == 0:
            return None
        loss = l1 * v.abs().sum(dim=1) + l2 * (v * v).sum(dim=1)
        grad = l1 * torch.sign(v) + (2 * l2) * v
        return loss, grad


@register_objective("pseudo_bce")
class PseudoBCE(Objective):
    """The paper's balanced pseudo-BCE (Net2Vec), linear in the prediction ``y = sigmoid(z)``, summed over pixels.

    ``alpha = 1 - share of grid pixels with t > 0``;
    ``loss = -sum_p [alpha t_p y_p + (1 - alpha)(1 - t_p)(1 - y_p)]``.

    Use it to reproduce or compare with the publication (preset ``"paper"``). Because the loss is linear in ``y``
    it never stops rewarding sharper sigmoids, so ``|v|`` keeps growing (AdamW's weight decay and the fixed step
    count bound it): the LoCE depends on the step count, which is why the paper's 50 steps are part of the setting.

    Implementation: the loss equals ``K + sum_p c_p y_p`` with ``c = (1 - alpha)(1 - t) - alpha t`` and
    ``K = -sum_p (1 - alpha)(1 - t_p)``, so ``dloss/dz = c y (1 - y)``: per step three passes over the grid
    (clamp, sigmoid, fused ``c y (1 - y)``), and one more for the loss when it is needed (early stop, end).
    """

    def prepare(self, target: Tensor) -> State:
        alpha = (1 - foreground_share(target)).unsqueeze(1)
        background = (1 - alpha) * (1 - target)
        return {"c": background - alpha * target, "k": -background.sum(dim=1)}

    def loss_and_grad(self, logits, state, need_loss):
        y = bounded_sigmoid_(logits)
        c = state["c"]
        loss = state["k"] + (c * y).sum(dim=1) if need_loss else None  # pairwise sum: accurate
        return chain_sigmoid_(c, y), loss


@register_objective("bce")
class BalancedBCE(Objective):
    """True binary cross-entropy on the logits, balanced like the paper, averaged over pixels, plus ``l2 |v|^2``.

    ``loss = (1/N) sum_p [-alpha t_p log y_p - (1 - alpha)(1 - t_p) log(1 - y_p)] + l2 sum_k v_k^2``
    (computed stably with softplus). With ``l2 > 0`` the problem is strictly convex in ``v``: it has one optimum,
    so LoCEs fitted to a tolerance (preset ``"bce"``) depend on the data, not on the optimiser's path or the step
    count. Use it when you want that, e.g. to compare layers or models fairly; its vectors differ from the paper's.
    """

    def prepare(self, target: Tensor) -> State:
        n_pixels = target.shape[1]
        alpha = (1 - foreground_share(target)).unsqueeze(1)
        positive = alpha * target / n_pixels
        weight = positive + (1 - alpha) * (1 - target) / n_pixels
        return {"weight": weight, "neg_positive": -positive}

    def loss_and_grad(self, logits, state, need_loss):
        loss = None
        if need_loss:
            softplus = torch.nn.functional.softplus(logits)
            loss = (state["weight"] * softplus).sum(dim=1) + (state["neg_positive"] * logits).sum(dim=1)
        y = bounded_sigmoid_(logits)
        return torch.addcmul(state["neg_positive"], state["weight"], y, out=y), loss


@register_objective("dice")
class SoftDice(Objective):
    """Soft Dice loss on ``y = sigmoid(z)``: ``1 - (2 sum t y + 1) / (sum t + sum y + 1)``.

    Scores overlap directly and is insensitive to the object/background ratio without any ``alpha``; use it for
    very small objects, where pixel-wise losses are dominated by the background. Not convex: start from zeros.
    """

    smooth = 1.0

    def prepare(self, target: Tensor) -> State:
        return {"t": target, "t_sum": target.sum(dim=1)}

    def loss_and_grad(self, logits, state, need_loss):
        t = state["t"]
        y = bounded_sigmoid_(logits)
        denom = (state["t_sum"] + y.sum(dim=1) + self.smooth).unsqueeze(1)
        dice = (2 * (t * y).sum(dim=1, keepdim=True) + self.smooth) / denom
        dloss_dy = (dice - 2 * t) / denom
        return chain_sigmoid_(dloss_dy, y), (1 - dice.squeeze(1)) if need_loss else None


@register_objective("mse")
class SquaredError(Objective):
    """Mean squared error between ``y = sigmoid(z)`` and the soft target, plus ``l1 |v|_1 + l2 |v|^2``.

    The formulation of the GCPV predecessor (set ``l1`` / ``l2`` in the settings; L1 makes ``v`` sparse, i.e.
    few channels explain the concept). Unbalanced: on small objects it favours predicting background; prefer
    ``pseudo_bce`` or ``dice`` there. Use it to compare with GCPV-style concept vectors.
    """

    def prepare(self, target: Tensor) -> State:
        return {"t": target}

    def loss_and_grad(self, logits, state, need_loss):
        y = bounded_sigmoid_(logits)
        residual = y - state["t"]
        loss = (residual * residual).mean(dim=1) if need_loss else None
        return chain_sigmoid_(residual.mul_(2.0 / y.shape[1]), y), loss
