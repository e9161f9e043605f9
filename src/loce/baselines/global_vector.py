"""Global concept vectors (Net2Vec style): one vector per concept fitted over all of its samples at once.

Where a LoCE is the vector that reconstructs ONE sample's mask, the global vector ``v`` minimises the sum over
all of the concept's samples of the same per-sample objective (the fit settings' objective, the paper's balanced
pseudo-BCE by default, each sample balanced by its own ``alpha`` exactly as in a LoCE fit):
``L(v) = sum_i loss_i(v) + penalty(v)``. It is solved with the settings' solver (AdamW, lr 0.1, 50 full-batch
steps for ``"paper"``) with the exact native-grid gradient (as in :mod:`loce.fit.engine`): per step and sample the
logits ``z_i = v^T A_i`` are formed on the layer's grid and only they are upsampled to the common grid.

Net2Vec balances with one ``alpha`` over the whole data set instead of one per sample; here every sample weighs
alike whatever its object's size, which keeps the global vector comparable to the LoCEs it is compared with.

Example:
    >>> import numpy as np, torch
    >>> acts = torch.randn(6, 8, 7, 7)
    >>> masks = [np.pad(np.ones((20, 20), bool), 22) for _ in range(6)]
    >>> fit = fit_shared_vector(acts, masks)
    >>> fit.vector.shape, int(fit.used.sum())
    ((8,), 6)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from loce.errors import InputError
from loce.fit.fitter import activation_problems
from loce.fit.objectives import get_objective
from loce.fit.projection import projection_iou
from loce.fit.settings import FitSettings, resolve_settings
from loce.fit.solvers import get_solver
from loce.fit.targets import interpolation_matrix, prepare_targets

# Samples per chunk of the gradient computation (bounded memory: chunk * (C hw + 4 G^2) floats).
CHUNK_ELEMENTS = 1 << 24


class _Grid:
    """Bilinear upsampling ``U_h z U_w^T`` of ``n x h x w`` logits to the ``G x G`` grid, and its adjoint."""

    def __init__(self, h: int, w: int, grid: int, device: torch.device) -> None:
        self.h, self.w, self.grid = h, w, grid
        self.rows = interpolation_matrix(grid, h, device=device)  # G x h
        self.cols = interpolation_matrix(grid, w, device=device)  # G x w

    def up(self, z: torch.Tensor) -> torch.Tensor:
        return torch.matmul(torch.matmul(self.rows, z), self.cols.T).reshape(z.shape[0], -1)

    def down(self, grad: torch.Tensor) -> torch.Tensor:
        g = grad.view(-1, self.grid, self.grid)
        return torch.matmul(torch.matmul(self.rows.T, g), self.cols).reshape(g.shape[0], -1)


@dataclass
class SharedVectorFit:
    """A global vector and how well it localises each sample it was fitted on.

    Attributes:
        vector: the ``C`` float32 vector.
        used: per input sample, whether it took part (non-empty, non-full mask, finite, non-constant activations).
        status: per input sample, ``"ok"`` or why it was left out.
        iou: per input sample, the IoU of the vector's thresholded projection with the mask (``nan`` if unused).
        loss: per input sample, the objective at the final vector (``nan`` if unused).
        steps: optimiser steps taken.
        settings_id: id of the fit settings used.
    """

    vector: np.ndarray
    used: np.ndarray
    status: list[str]
    iou: np.ndarray
    loss: np.ndarray
    steps: int
    settings_id: str

    def describe(self) -> dict[str, object]:
        """Counts and IoU statistics (JSON-able; stored in a global row's ``detail``)."""
        iou = self.iou[self.used]
        return {
            "samples": int(self.used.sum()),
            "samples_left_out": int((~self.used).sum()),
            "mean_iou": float(iou.mean()) if iou.size else None,
            "median_iou": float(np.median(iou)) if iou.size else None,
            "iou_zero": int((iou == 0).sum()),
        }


def fit_shared_vector(
    activations: torch.Tensor,
    masks: Sequence[np.ndarray],
    settings: str | FitSettings | dict = "paper",
    *,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> SharedVectorFit:
    """Fit one vector whose projection reconstructs the masks of all samples together.

    Args:
        activations: ``n x C x h x w`` activations of one layer (the concept's samples).
        masks: ``n`` boolean masks, each at its own image's resolution.
        settings: fit settings (preset name, dict or :class:`~loce.fit.FitSettings`); objective, solver, grid,
            steps, learning rate and penalties are used as for LoCEs (``tol`` stops on the summed loss).
        device: where to compute.
        seed: seed of a ``"normal"`` initialisation.

    Returns:
        The :class:`SharedVectorFit`.

    Raises:
        InputError: when the shapes do not fit or no sample is usable.
    """
    settings = resolve_settings(settings)
    acts = torch.as_tensor(activations)
    if acts.ndim != 4 or acts.shape[0] != len(masks):
        raise InputError(
            f"activations of shape {tuple(acts.shape)} and {len(masks)} masks: pass n x C x h x w activations "
            "and one mask per sample"
        )
    n, c, h, w = acts.shape
    device = torch.device(device)
    targets = prepare_targets(masks, settings.grid, resize=settings.target_resize)
    nonfinite, constant = (t.cpu().numpy() for t in activation_problems(acts.float()))
    status = list(targets.status)
    for i in range(n):
        if status[i] == "ok" and nonfinite[i]:
            status[i] = "nonfinite_activations"
        elif status[i] == "ok" and constant[i]:
            status[i] = "constant_activations"
    used = np.array([s == "ok" for s in status], dtype=bool)
    if not used.any():
        reasons = sorted(set(status))
        raise InputError(f"none of the {n} samples can be used for a global vector (reasons: {reasons})")
    rows = np.flatnonzero(used)
    a = acts[torch.from_numpy(rows)].to(device=device, dtype=torch.float32).reshape(rows.size, c, h * w)
    grid = settings.grid
    op = _Grid(h, w, grid, device)
    objective = get_objective(settings.objective)(settings)
    solver = get_solver(settings.solver)(settings)
    chunk = max(1, CHUNK_ELEMENTS // (c * h * w + 4 * grid * grid))
    soft = targets.soft[torch.from_numpy(rows)].to(device).reshape(rows.size, grid * grid)
    parts = [(a[s : s + chunk], objective.prepare(soft[s : s + chunk])) for s in range(0, rows.size, chunk)]

    if settings.init == "normal":
        v = (
            torch.randn(1, c, generator=torch.Generator().manual_seed(int(seed))).to(device)
            * settings.init_std
        )
    else:
        v = torch.zeros(1, c, device=device)
    solver_state = solver.init_state(v)
    need_loss = settings.tol is not None
    previous, calm, steps = None, 0, settings.steps
    for step in range(1, settings.steps + 1):
        grad = torch.zeros(1, c, device=device)
        total = torch.zeros((), device=device)
        for part, state in parts:
            z = torch.matmul(v, part).view(-1, h, w)
            grad_grid, loss = objective.loss_and_grad(op.up(z), state, need_loss=need_loss)
            grad += torch.einsum("nk,nck->c", op.down(grad_grid), part).unsqueeze(0)
            if need_loss:
                total += loss.sum()
        penalty = objective.penalty(v)
        if penalty is not None:
            grad += penalty[1]
            total += penalty[0].sum()
        if need_loss:
            if previous is not None and abs(float(total - previous)) <= settings.tol * max(
                abs(float(previous)), 1.0
            ):
                calm += 1
                if calm >= settings.patience:
                    steps = step - 1
                    break
            else:
                calm = 0
            previous = total
        solver.step(v, grad, solver_state, step)

    iou = np.full(n, np.nan)
    loss = np.full(n, np.nan)
    logit_maps, losses = [], []
    for part, state in parts:
        z = torch.matmul(v, part).view(-1, h, w)
        losses.append(objective.loss_and_grad(op.up(z), state, need_loss=True)[1].double().cpu().numpy())
        logit_maps.append(z)
    loss[rows] = np.concatenate(losses)
    iou[rows] = projection_iou(
        torch.cat(logit_maps),
        [targets.masks[i] for i in rows],
        convention=settings.iou_convention,
        grid=settings.grid,
    )
    return SharedVectorFit(
        vector=v[0].cpu().numpy().astype(np.float32),
        used=used,
        status=status,
        iou=iou,
        loss=loss,
        steps=int(steps),
        settings_id=settings.settings_id,
    )
