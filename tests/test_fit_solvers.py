"""Hand-written batched solvers give the updates of the torch.optim classes they are modelled on."""

from __future__ import annotations

import pytest
import torch

from loce.fit import FitSettings, available_solvers, get_solver


def _run_ours(
    name: str, settings: FitSettings, params: torch.Tensor, grads: list[torch.Tensor]
) -> torch.Tensor:
    solver = get_solver(name)(settings)
    p = params.clone()
    state = solver.init_state(p)
    for step, g in enumerate(grads, start=1):
        solver.step(p, g.clone(), state, step)
    return p


def _run_torch(optimizer_cls, kwargs, params: torch.Tensor, grads: list[torch.Tensor]) -> torch.Tensor:
    p = params.clone().requires_grad_(True)
    opt = optimizer_cls([p], **kwargs)
    for g in grads:
        p.grad = g.clone()
        opt.step()
    return p.detach()


@pytest.fixture
def problem():
    g = torch.Generator().manual_seed(0)
    params = torch.randn(4, 9, generator=g)
    grads = [
        torch.randn(4, 9, generator=g) * 10 ** float(torch.randint(-3, 3, (1,), generator=g))
        for _ in range(25)
    ]
    grads[3][0] = 0.0  # a step without gradient for one sample
    return params, grads


def test_adamw_matches_torch(problem):
    s = FitSettings(lr=0.1, weight_decay=0.01, betas=(0.9, 0.999), eps=1e-8)
    ours = _run_ours("adamw", s, *problem)
    ref = _run_torch(
        torch.optim.AdamW, {"lr": 0.1, "weight_decay": 0.01, "betas": (0.9, 0.999), "eps": 1e-8}, *problem
    )
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-6)


def test_adam_matches_torch(problem):
    s = FitSettings(solver="adam", lr=0.05, weight_decay=0.1, betas=(0.8, 0.99), eps=1e-6)
    ours = _run_ours("adam", s, *problem)
    ref = _run_torch(
        torch.optim.Adam, {"lr": 0.05, "weight_decay": 0.1, "betas": (0.8, 0.99), "eps": 1e-6}, *problem
    )
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-6)


def test_sgd_matches_torch(problem):
    s = FitSettings(solver="sgd", lr=0.01, weight_decay=0.05, betas=(0.9, 0.999))
    ours = _run_ours("sgd", s, *problem)
    ref = _run_torch(torch.optim.SGD, {"lr": 0.01, "weight_decay": 0.05, "momentum": 0.9}, *problem)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", available_solvers())
def test_rows_are_independent(name, problem):
    params, grads = problem
    s = FitSettings(solver=name)
    together = _run_ours(name, s, params, grads)
    for i in range(params.shape[0]):
        alone = _run_ours(name, s, params[i : i + 1], [g[i : i + 1] for g in grads])
        torch.testing.assert_close(together[i : i + 1], alone, rtol=0, atol=0)
