"""Objectives: hand-written gradients equal autograd of independently written losses; each one decreases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest_fit import naive
from loce.fit import PRESETS, FitSettings, LoCEFitter, available_objectives, get_objective


def _targets(n: int, grid: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = (torch.rand(n, grid, grid, generator=g) > 0.7).double()
    t[:, :3] = 0.5  # soft values
    t[0, 3:6] = 0.0  # exact zeros beside soft values
    return t


def _alpha(t: torch.Tensor) -> torch.Tensor:
    return 1 - (t > 0).double().mean(dim=(1, 2), keepdim=True)


def reference_loss(name: str, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The objectives as written in their docstrings, per sample, with autograd-able torch ops."""
    y = torch.sigmoid(z)
    if name == "pseudo_bce":
        a = _alpha(t)
        return -(a * t * y + (1 - a) * (1 - t) * (1 - y)).sum(dim=(1, 2))
    if name == "bce":
        a = _alpha(t)
        per_pixel = -a * t * F.logsigmoid(z) - (1 - a) * (1 - t) * F.logsigmoid(-z)
        return per_pixel.mean(dim=(1, 2))
    if name == "dice":
        return 1 - (2 * (t * y).sum(dim=(1, 2)) + 1) / (t.sum(dim=(1, 2)) + y.sum(dim=(1, 2)) + 1)
    if name == "mse":
        return ((y - t) ** 2).mean(dim=(1, 2))
    raise KeyError(name)


@pytest.mark.parametrize("name", ["pseudo_bce", "bce", "dice", "mse"])
def test_gradient_equals_autograd(name):
    n, grid = 3, 12
    t = _targets(n, grid, seed=1)
    z = (4 * torch.randn(n, grid, grid, dtype=torch.float64)).requires_grad_(True)
    reference_loss(name, z, t).sum().backward()

    objective = get_objective(name)(FitSettings(objective=name))
    state = objective.prepare(t.reshape(n, -1))
    grad, loss = objective.loss_and_grad(z.detach().reshape(n, -1).clone(), state, need_loss=True)
    torch.testing.assert_close(loss, reference_loss(name, z.detach(), t), rtol=1e-10, atol=1e-9)
    torch.testing.assert_close(grad.reshape(n, grid, grid), z.grad, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(objective.loss(z.detach().reshape(n, -1), state), loss)


def test_penalty_gradient_equals_autograd():
    objective = get_objective("mse")(FitSettings(objective="mse", l1=0.3, l2=0.7))
    v = torch.tensor([[0.5, -2.0, 1.5], [-0.1, 0.2, 3.0]], dtype=torch.float64, requires_grad=True)
    (0.3 * v.abs().sum(dim=1) + 0.7 * (v**2).sum(dim=1)).sum().backward()
    loss, grad = objective.penalty(v.detach())
    torch.testing.assert_close(grad, v.grad)
    torch.testing.assert_close(loss, 0.3 * v.detach().abs().sum(1) + 0.7 * (v.detach() ** 2).sum(1))
    assert get_objective("pseudo_bce")(PRESETS["paper"]).penalty(v.detach()) is None


@pytest.mark.parametrize("name", sorted(available_objectives()))
def test_each_objective_decreases_its_loss_on_a_planted_problem(name):
    problem = naive.planted_problem(6, 8, 10, 10, mask_sizes=((60, 80), (50, 50)), seed=3)
    base = FitSettings(objective=name, l2=1e-3 if name == "bce" else 0.0)
    start = LoCEFitter(base.replace(steps=0)).fit(problem.activations, problem.masks)
    end = LoCEFitter(base.replace(steps=60)).fit(problem.activations, problem.masks)
    assert (start.steps_ == 0).all() and (end.steps_ == 60).all()
    assert np.all(end.loss_ < start.loss_ - 1e-3 * np.abs(start.loss_))
    assert np.all(end.iou_ > 0.3)  # at v = 0 nothing is predicted (IoU 0)
    assert np.all(start.iou_ == 0)
