"""Global concept vectors (Net2Vec style): one vector per concept fitted over all of its samples at once.

Where a LoCE is the vector that reconstructs ONE sample's mask, the global vector ``v`` minimises the sum over
all of the concept's samples of the same per-sample objective (the fit settings' objective, the paper's balanced
pseudo-BCE by default, each sample balanced by its own ``alpha`` exactly as in a LoCE fit):
``L(v) = sum_i loss_i(v) + penalty(v)``. It is solved by the fitting engine (:func:`loce.fit.engine.solve_shared`:
the LoCE fit's grid operator, objective and solver with the samples stacked, e.g. AdamW, lr 0.1, 50 full-batch
steps for ``"paper"``); samples are checked and left out exactly as a LoCE fit skips them.

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

from loce.devices import resolve_device
from loce.errors import InputError
from loce.fit.engine import solve_shared
from loce.fit.fitter import (
    check_fit_inputs,
    chunk_elements,
    flag_unusable,
    initial_vectors,
    shared_channel_scales,
)
from loce.fit.projection import projection_iou
from loce.fit.settings import FitSettings, resolve_settings


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
    device = resolve_device(device, error=InputError)
    acts, targets = check_fit_inputs(activations, masks, None, settings)
    n, c, h, w = acts.shape
    status, detail = list(targets.status), list(targets.detail)
    flag_unusable(acts.float(), range(n), status, detail)
    used = np.array([s == "ok" for s in status], dtype=bool)
    if not used.any():
        reasons = sorted(set(status))
        raise InputError(f"none of the {n} samples can be used for a global vector (reasons: {reasons})")
    rows = np.flatnonzero(used)
    a = acts[torch.from_numpy(rows)].to(device=device, dtype=torch.float32)
    scales = shared_channel_scales(a)
    if scales is not None:
        a = a * scales[:, :, None, None]
    chunk = max(1, chunk_elements(device) // (c * h * w + 4 * settings.grid * settings.grid))
    solution = solve_shared(
        a,
        targets.soft[torch.from_numpy(rows)].to(device),
        initial_vectors(settings, 1, c, seed).to(device),
        settings,
        chunk=chunk,
    )
    vector = solution.vector if scales is None else solution.vector * scales[0]
    iou = np.full(n, np.nan)
    loss = np.full(n, np.nan)
    loss[rows] = solution.loss.double().cpu().numpy()
    iou[rows] = projection_iou(
        solution.logits,
        [targets.masks[i] for i in rows],
        convention=settings.iou_convention,
        grid=settings.grid,
    )
    return SharedVectorFit(
        vector=vector.cpu().numpy().astype(np.float32),
        used=used,
        status=status,
        iou=iou,
        loss=loss,
        steps=solution.steps,
        settings_id=settings.settings_id,
    )
