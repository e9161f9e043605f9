"""The batched LoCE solver: one chunk of independent samples optimised as one tensor program.

Per step and sample, with activations ``A`` (``C x hw``) and the interpolation matrices ``U_h`` (``G x h``),
``U_w`` (``G x w``) of the common ``G x G`` grid:

- logits on the native grid ``z = v^T A`` (``h x w``), on the grid ``Z = U_h z U_w^T`` (``G x G``);
- the objective's gradient ``dL/dZ`` on the grid (hand-written, see :mod:`loce.fit.objectives`);
- back to the native grid ``dL/dz = U_h^T (dL/dZ) U_w`` and to the vector ``dL/dv = A dL/dz``;
- one solver update (see :mod:`loce.fit.solvers`).

This is exactly the gradient of the paper's formulation (all channels upsampled to ``G x G`` first), because
upsampling is linear, at a cost of ``O(C hw + G^2 (h + w))`` instead of ``O(C G^2)`` per sample and step. All
products are batched matrix multiplications over the chunk, the ``G x G`` ones into buffers allocated once per
chunk; the products with ``A`` use ``A`` stored as ``hw x C``, the fastest layout measured for them.

Two problems share that machinery and one descent loop (``_descend``: solver steps, early stop, freezing):
:func:`solve_chunk` fits one vector per sample (LoCEs), :func:`solve_shared` one vector to all samples stacked,
its gradient summed over them (the ``global`` baseline, :mod:`loce.baselines.global_vector`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from loce.fit.objectives import Objective, get_objective
from loce.fit.settings import FitSettings
from loce.fit.solvers import Solver, get_solver
from loce.fit.targets import interpolation_matrix


class GridOperator:
    """Bilinear upsampling of ``n x h x w`` logits to the ``G x G`` grid, and its adjoint, for up to ``n`` samples.

    The large intermediate results live in buffers allocated once per chunk: fresh multi-megabyte tensors at
    every step would cost page faults that take longer than the arithmetic. :meth:`up` returns a view of the
    grid buffer, which the objective then overwrites in place; a later :meth:`up` overwrites it again.

    Example:
        >>> op = GridOperator(7, 7, 100, 3, "cpu")
        >>> op.up(torch.zeros(3, 7, 7)).shape
        torch.Size([3, 10000])
    """

    def __init__(self, h: int, w: int, grid: int, n: int, device: str | torch.device) -> None:
        self.h, self.w, self.grid = h, w, grid
        self.rows = interpolation_matrix(grid, h, device=device)  # G x h
        self.rows_t = self.rows.T.contiguous()  # h x G
        self.cols = interpolation_matrix(grid, w, device=device)  # G x w
        self.cols_t = self.cols.T.contiguous()  # w x G
        self._wide = torch.empty(n, h, grid, device=device)  # z U_w^T
        self._grid = torch.empty(n, grid, grid, device=device)  # U_h z U_w^T, then the objective's gradient
        self._short = torch.empty(n, h, grid, device=device)  # U_h^T g

    # The operation orders below were the fastest of the alternatives measured on CPU (2-3x apart).

    def up(self, z: Tensor) -> Tensor:
        """``m x h x w`` -> ``m x G^2`` (row-major grid): ``U_h z U_w^T`` per sample (a view of the buffer)."""
        m, g = z.shape[0], self.grid
        wide = torch.mm(z.reshape(m * self.h, self.w), self.cols_t, out=self._wide[:m].view(m * self.h, g))
        out = torch.matmul(self.rows, wide.view(m, self.h, g), out=self._grid[:m])
        return out.view(m, g * g)

    def down(self, grad: Tensor) -> Tensor:
        """The adjoint of :meth:`up`: ``m x G^2`` -> ``m x hw``, ``U_h^T g U_w`` per sample."""
        m, g = grad.shape[0], self.grid
        short = torch.matmul(self.rows_t, grad.view(m, g, g), out=self._short[:m])  # m x h x G
        narrow_t = torch.mm(
            self.cols_t, short.view(m * self.h, g).T
        )  # w x (m h): the fast layout of this GEMM
        return narrow_t.view(self.w, m, self.h).permute(1, 2, 0).reshape(m, self.h * self.w)


@dataclass
class ChunkSolution:
    """What :func:`solve_chunk` returns for ``n`` samples."""

    vectors: Tensor  # n x C
    loss: Tensor  # n, at the final vectors (objective + penalty)
    steps: Tensor  # n, int64: updates applied
    logits: Tensor  # n x h x w at the final vectors


@dataclass
class SharedSolution:
    """What :func:`solve_shared` returns for one vector fitted to ``n`` samples."""

    vector: Tensor  # C
    loss: Tensor  # n: each sample's data term at the final vector (the penalty belongs to the vector)
    steps: int  # updates applied
    logits: Tensor  # n x h x w at the final vector


def _take(tensors: dict[str, Tensor], keep: Tensor) -> dict[str, Tensor]:
    return {k: t[keep] for k, t in tensors.items()}


def _samples_last(activations: Tensor) -> Tensor:
    """``n x C x h x w`` -> ``n x hw x C``, the layout fastest for both products with the activations."""
    n, c, h, w = activations.shape
    return activations.reshape(n, c, h * w).transpose(1, 2).contiguous()


class _Independent:
    """The data term of ``n`` independent problems: row ``i`` of ``v`` is fitted to sample ``i`` alone."""

    def __init__(
        self, acts: Tensor, state: dict[str, Tensor], op: GridOperator, objective: Objective
    ) -> None:
        self.acts, self.state, self.op, self.objective = acts, state, op, objective

    def gradient(self, v: Tensor, need_loss: bool) -> tuple[Tensor, Tensor | None]:
        """``dL_i/dv_i`` (``m x C``) and, when ``need_loss``, ``L_i`` (``m``) for the ``m`` live problems."""
        op = self.op
        z = torch.bmm(v.unsqueeze(1), self.acts.transpose(1, 2)).view(-1, op.h, op.w)
        grad_grid, loss = self.objective.loss_and_grad(op.up(z), self.state, need_loss=need_loss)
        return torch.bmm(op.down(grad_grid).unsqueeze(1), self.acts).squeeze(1), loss

    def keep(self, keep: Tensor) -> None:
        """Drop the problems (samples) where ``keep`` is False."""
        self.acts, self.state = self.acts[keep], _take(self.state, keep)


class _Shared:
    """The data term of one problem: ``v`` (``1 x C``) fitted to all samples, ``L = sum_i L_i`` over chunks."""

    def __init__(self, parts: list[tuple[Tensor, dict[str, Tensor]]], op: GridOperator, objective: Objective):
        self.parts, self.op, self.objective = parts, op, objective

    def sample_logits(self, v: Tensor, acts: Tensor) -> Tensor:
        """``z_i = v^T A_i`` (``m x h x w``) for the ``m x hw x C`` activations of one chunk."""
        return torch.matmul(acts, v[0]).view(acts.shape[0], self.op.h, self.op.w)

    def gradient(self, v: Tensor, need_loss: bool) -> tuple[Tensor, Tensor | None]:
        """``dL/dv`` (``1 x C``) and, when ``need_loss``, ``L`` (``1``): the samples' terms summed."""
        grad = torch.zeros_like(v)
        total = torch.zeros(1, device=v.device) if need_loss else None
        for acts, state in self.parts:
            m, hw, c = acts.shape
            grad_grid, loss = self.objective.loss_and_grad(
                self.op.up(self.sample_logits(v, acts)), state, need_loss=need_loss
            )
            grad.addmm_(self.op.down(grad_grid).reshape(1, m * hw), acts.reshape(m * hw, c))
            if total is not None:
                total += loss.sum()
        return grad, total

    def keep(self, keep: Tensor) -> None:
        """Nothing to drop: the one problem is only ever frozen as a whole, which ends the descent."""


def _descend(
    vectors: Tensor, problem: _Independent | _Shared, settings: FitSettings, solver: Solver
) -> Tensor:
    """``settings.steps`` solver updates of ``vectors`` (``m x C``, in place); returns the updates per vector.

    The objective is the problem's data term plus the settings' penalty on each vector. With ``settings.tol``
    set, a vector whose loss changed by at most ``tol * max(|loss|, 1)`` for ``settings.patience`` consecutive
    steps is frozen (it no longer changes, its step count stops) and dropped from the problem.
    """
    m = vectors.shape[0]
    device = vectors.device
    steps = torch.full((m,), settings.steps, dtype=torch.int64)
    objective = problem.objective
    early_stop = settings.tol is not None
    alive = torch.arange(m, device=device)
    v = vectors
    solver_state = solver.init_state(v)
    previous: Tensor | None = None
    calm = torch.zeros(m, dtype=torch.int64, device=device)
    for step in range(1, settings.steps + 1):
        grad_v, loss = problem.gradient(v, early_stop)
        penalty = objective.penalty(v)
        if penalty is not None:
            grad_v += penalty[1]
            loss = loss + penalty[0] if loss is not None else None
        if early_stop:
            if previous is not None:
                small = (loss - previous).abs() <= settings.tol * previous.abs().clamp(min=1.0)
                calm = torch.where(small, calm + 1, torch.zeros_like(calm))
                done = calm >= settings.patience
                if bool(done.any()):
                    finished = alive[done]
                    vectors[finished] = v[done]
                    steps[finished.cpu()] = step - 1
                    keep = ~done
                    if not bool(keep.any()):
                        alive = alive[keep]
                        break
                    alive, v = alive[keep], v[keep]
                    problem.keep(keep)
                    solver_state = _take(solver_state, keep)
                    grad_v, loss, calm = grad_v[keep], loss[keep], calm[keep]
            previous = loss
        solver.step(v, grad_v, solver_state, step)
    if v is not vectors and alive.numel():
        vectors[alive] = v
    return steps


def solve_chunk(
    activations: Tensor,
    target: Tensor,
    init: Tensor,
    settings: FitSettings,
    objective: Objective,
    solver: Solver,
) -> ChunkSolution:
    """Fit ``n`` independent LoCEs: activations ``n x C x h x w``, soft targets ``n x G x G``, init ``n x C``.

    All tensors must be float32 on one device. With ``settings.tol`` set, a sample whose loss changed by at most
    ``tol * max(|loss|, 1)`` for ``settings.patience`` consecutive steps is frozen (its vector no longer changes,
    its step count stops) and dropped from the computation while the others continue.
    """
    n, c, h, w = activations.shape
    grid = settings.grid
    op = GridOperator(h, w, grid, n, activations.device)
    acts = _samples_last(activations)
    full_state = objective.prepare(target.reshape(n, grid * grid))
    vectors = init.clone()
    steps = _descend(vectors, _Independent(acts, full_state, op, objective), settings, solver)

    z = torch.bmm(vectors.unsqueeze(1), acts.transpose(1, 2)).view(n, h, w)
    final_loss = objective.loss_and_grad(op.up(z), full_state, need_loss=True)[1]
    penalty = objective.penalty(vectors)
    if penalty is not None:
        final_loss = final_loss + penalty[0]
    return ChunkSolution(vectors=vectors, loss=final_loss, steps=steps, logits=z)


def solve_shared(
    activations: Tensor, target: Tensor, init: Tensor, settings: FitSettings, *, chunk: int
) -> SharedSolution:
    """Fit ONE vector to ``n`` samples jointly: the sum of the samples' objectives, as :func:`solve_chunk` does.

    The same grid operator, objective and solver as a LoCE fit, with the samples stacked: per step the gradient
    is summed over all samples (in chunks of ``chunk`` samples, bounded memory) and the vector updated once;
    the penalty is added once. ``tol`` stops on the summed loss. One sample gives that sample's LoCE.

    Args:
        activations: ``n x C x h x w`` float32 activations.
        target: ``n x G x G`` soft targets.
        init: the ``1 x C`` initial vector.
        settings: the fit settings; their objective and solver are looked up in the registries.
        chunk: samples processed at once.

    Example:
        >>> from loce.fit import PRESETS
        >>> target = torch.zeros(3, 100, 100); target[:, 20:60, 30:70] = 1
        >>> fit = solve_shared(torch.randn(3, 8, 7, 7), target, torch.zeros(1, 8), PRESETS["paper"], chunk=2)
        >>> fit.vector.shape, fit.loss.shape, fit.steps
        (torch.Size([8]), torch.Size([3]), 50)
    """
    n, c, h, w = activations.shape
    grid = settings.grid
    objective, solver = get_objective(settings.objective)(settings), get_solver(settings.solver)(settings)
    chunk = max(1, min(int(chunk), n))
    op = GridOperator(h, w, grid, chunk, activations.device)
    acts = _samples_last(activations)
    soft = target.reshape(n, grid * grid)
    parts = [(acts[s : s + chunk], objective.prepare(soft[s : s + chunk])) for s in range(0, n, chunk)]
    problem = _Shared(parts, op, objective)
    vector = init.clone()
    steps = _descend(vector, problem, settings, solver)

    logits, losses = [], []
    for part, state in parts:
        z = problem.sample_logits(vector, part)
        losses.append(objective.loss_and_grad(op.up(z), state, need_loss=True)[1])
        logits.append(z)
    return SharedSolution(
        vector=vector[0], loss=torch.cat(losses), steps=int(steps[0]), logits=torch.cat(logits)
    )
