"""Solvers: batched first-order optimisers, written by hand, one independent problem per row of ``v``.

A solver updates the ``n x C`` parameter tensor in place from its gradient. All of them are elementwise, so a
batch gives exactly the per-sample results of one-at-a-time runs, and frozen samples can be dropped from the
state between steps (every state tensor has the samples along dimension 0).

New solvers plug in by name::

    @register_solver("my_solver")
    class MySolver(Solver):
        def init_state(self, params): ...
        def step(self, params, grad, state, step): ...
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from loce.fit.settings import FitSettings

State = dict[str, Tensor]

_SOLVERS: dict[str, type[Solver]] = {}


def register_solver(name: str) -> Callable[[type[Solver]], type[Solver]]:
    """Class decorator adding a :class:`Solver` subclass to the registry under ``name``."""

    def add(cls: type[Solver]) -> type[Solver]:
        cls.name = name
        _SOLVERS[name] = cls
        return cls

    return add


def available_solvers() -> list[str]:
    """Names of the registered solvers, sorted."""
    return sorted(_SOLVERS)


def get_solver(name: str) -> type[Solver]:
    """The solver class registered under ``name`` (a ``KeyError`` naming the choices otherwise)."""
    try:
        return _SOLVERS[name]
    except KeyError:
        raise KeyError(f"unknown solver {name!r}; registered solvers: {available_solvers()}") from None


class Solver:
    """Base class of the batched solvers; reads ``lr``, ``betas``, ``eps`` and ``weight_decay`` from the settings."""

    name = "base"

    def __init__(self, settings: FitSettings) -> None:
        self.settings = settings

    def init_state(self, params: Tensor) -> State:
        """Fresh optimiser state for ``params`` (``n x C``)."""
        raise NotImplementedError

    def step(self, params: Tensor, grad: Tensor, state: State, step: int) -> None:
        """Apply update number ``step`` (1-based) to ``params`` in place."""
        raise NotImplementedError


def _adam_update(params: Tensor, grad: Tensor, state: State, step: int, settings: FitSettings) -> None:
    """The Adam moment update and parameter step, in the same operation order as ``torch.optim.Adam``."""
    beta1, beta2 = settings.betas
    exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
    exp_avg.lerp_(grad, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    step_size = settings.lr / (1 - beta1**step)
    bias_correction2_sqrt = math.sqrt(1 - beta2**step)
    denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(settings.eps)
    params.addcdiv_(exp_avg, denom, value=-step_size)


@register_solver("adamw")
class AdamW(Solver):
    """AdamW with decoupled weight decay, numerically the update of ``torch.optim.AdamW`` (the paper's solver).

    Use it for the ``paper`` preset and whenever results must be comparable with the publication: the weight
    decay shrinks ``v`` by ``lr * weight_decay`` per step independently of the objective's scale.
    """

    def init_state(self, params):
        return {"exp_avg": torch.zeros_like(params), "exp_avg_sq": torch.zeros_like(params)}

    def step(self, params, grad, state, step):
        if self.settings.weight_decay != 0:
            params.mul_(1 - self.settings.lr * self.settings.weight_decay)
        _adam_update(params, grad, state, step, self.settings)


@register_solver("adam")
class Adam(Solver):
    """Adam with weight decay added to the gradient (L2-coupled), numerically ``torch.optim.Adam``.

    Use it with objectives that carry their own penalty (``l1`` / ``l2`` in the settings, ``weight_decay=0``):
    then the fixed point of the iteration is the optimum of the objective as written, e.g. the unique optimum of
    ``bce`` with ``l2 > 0``, which AdamW's decoupled decay would shift.
    """

    def init_state(self, params):
        return {"exp_avg": torch.zeros_like(params), "exp_avg_sq": torch.zeros_like(params)}

    def step(self, params, grad, state, step):
        if self.settings.weight_decay != 0:
            grad = grad.add(params, alpha=self.settings.weight_decay)
        _adam_update(params, grad, state, step, self.settings)


@register_solver("sgd")
class MomentumSGD(Solver):
    """Gradient descent with heavy-ball momentum ``betas[0]`` (``torch.optim.SGD(momentum=betas[0])`` semantics).

    Its updates scale with the gradient (no per-channel normalisation), so it treats all channels on the same
    footing and is invariant to rotations of the activation space; use it for mean-reduced objectives
    (``bce``, ``mse``, ``dice``) with a larger learning rate when Adam's sign-like first steps are not wanted.
    Weight decay is added to the gradient.
    """

    def init_state(self, params):
        return {"momentum": torch.zeros_like(params)}

    def step(self, params, grad, state, step):
        if self.settings.weight_decay != 0:
            grad = grad.add(params, alpha=self.settings.weight_decay)
        momentum = state["momentum"]
        if step == 1:
            momentum.copy_(grad)
        else:
            momentum.mul_(self.settings.betas[0]).add_(grad)
        params.add_(momentum, alpha=-self.settings.lr)
