"""The paper's LoCE optimisation written naively, and planted test problems; used by fit_speed.py and the tests.

``naive_fit`` is the formulation as the reference implementation does it: every channel of the activations is
upsampled to the 100 x 100 grid with ``F.interpolate`` first, the projection is the broadcast product
``(upsampled * v[:, :, None, None]).sum(1)``, and a ``B x C`` parameter is optimised with autograd and
``torch.optim.AdamW`` for 50 steps on the summed per-sample pseudo-BCE losses; the soft targets are
``skimage.transform.resize(mask.astype(float), (100, 100))``, the publication's. Its timing matches the reference's
measured on this machine (about 1.5 s per LoCE at C = 768, batch 64). ``contraction="einsum"`` computes the same
projection as one batched matrix product instead: a stronger naive baseline (same upsampled data, ~5x faster).

It shares no code with ``loce.fit`` on purpose: agreement between the two is evidence that both implement
METHOD.md section 1.

``planted_problem`` builds activations and masks such that a known vector reconstructs every mask exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


def naive_targets(masks: list[np.ndarray], grid: int = 100) -> torch.Tensor:
    """Each boolean mask resized to ``grid x grid`` as the publication does: scikit-image's ``resize`` defaults."""
    from skimage.transform import resize

    out = [torch.from_numpy(resize(np.asarray(m, dtype=float), (grid, grid))) for m in masks]
    return torch.stack(out).float()


def naive_pseudo_bce(y: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Per-sample balanced pseudo-BCE of predictions ``y`` and targets ``t`` (both ``B x G x G``)."""
    alpha = 1 - (t > 0).float().mean(dim=(1, 2), keepdim=True)
    return -(alpha * t * y + (1 - alpha) * (1 - t) * (1 - y)).sum(dim=(1, 2))


@dataclass
class NaiveResult:
    vectors: torch.Tensor  # B x C
    loss: torch.Tensor  # B, at the final vectors


def naive_fit(
    activations: torch.Tensor,
    masks: list[np.ndarray],
    *,
    grid: int = 100,
    steps: int = 50,
    lr: float = 0.1,
    weight_decay: float = 0.01,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    contraction: str = "broadcast",
    shared: bool = False,
) -> NaiveResult:
    """The paper's optimisation, naively: all channels upsampled, autograd, ``torch.optim.AdamW``.

    ``shared=True``: a global (Net2Vec-style) vector instead, ONE ``1 x C`` parameter for all samples, whose
    per-sample losses are summed (``loss`` stays per sample).
    """
    b, c = activations.shape[:2]
    upsampled = F.interpolate(activations.float(), size=(grid, grid), mode="bilinear", align_corners=False)
    target = naive_targets(masks, grid)
    v = torch.zeros(1 if shared else b, c, requires_grad=True)
    optimizer = torch.optim.AdamW([v], lr=lr, weight_decay=weight_decay, betas=betas, eps=eps)

    def predict() -> torch.Tensor:
        per_sample = v.expand(b, c)
        if contraction == "einsum":
            return torch.sigmoid(torch.einsum("bc,bchw->bhw", per_sample, upsampled))
        return torch.sigmoid((upsampled * per_sample[:, :, None, None]).sum(dim=1))

    for _ in range(steps):
        optimizer.zero_grad()
        naive_pseudo_bce(predict(), target).sum().backward()
        optimizer.step()
    with torch.no_grad():
        loss = naive_pseudo_bce(predict(), target)
    return NaiveResult(v.detach().clone(), loss)


@dataclass
class PlantedProblem:
    activations: torch.Tensor  # B x C x h x w
    masks: list[np.ndarray]  # B boolean masks at their own resolution
    planted: torch.Tensor  # B x C: v with sigmoid(resize(v . A)) > 0.5 exactly on each mask


def smooth_fields(n: int, h: int, w: int, generator: torch.Generator, width: float) -> torch.Tensor:
    """``n`` random smooth maps (white noise blurred by a Gaussian of ``width`` cells), unit std each."""
    noise = torch.randn(n, 1, h + 8, w + 8, generator=generator)
    radius = 4
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (x / width) ** 2)
    kernel = kernel / kernel.sum()
    blurred = F.conv2d(noise, kernel.view(1, 1, 1, -1))
    blurred = F.conv2d(blurred, kernel.view(1, 1, -1, 1))[:, 0, :h, :w]
    blurred = blurred - blurred.mean(dim=(1, 2), keepdim=True)
    return blurred / blurred.std(dim=(1, 2), keepdim=True).clamp(min=1e-6)


def planted_problem(
    b: int,
    c: int,
    h: int,
    w: int,
    *,
    mask_sizes: tuple[tuple[int, int], ...] = ((120, 160),),
    foreground: tuple[float, float] = (0.1, 0.35),
    seed: int = 0,
) -> PlantedProblem:
    """Random smooth activations and masks that a known vector reconstructs exactly.

    Channel 0 is a positive, nearly constant "bias-like" channel (``1 + 0.1 * field``); the others are smooth
    fields with random offsets. Per sample, a random direction ``u`` over channels 1..C-1 gives the map
    ``r = resize(u . A) / resize(A_0)`` at the mask's resolution; the mask is ``r > q`` with ``q`` the quantile
    giving a random foreground share in ``foreground``; so ``v* = u - q e_0`` satisfies ``resize(v* . A) > 0``
    exactly on the mask. Mask sizes cycle through ``mask_sizes``.
    """
    g = torch.Generator().manual_seed(seed)
    fields = smooth_fields(b * c, h, w, g, width=max(h, w) / 6).view(b, c, h, w)
    offsets = 0.5 * torch.randn(b, c, 1, 1, generator=g)
    acts = fields + offsets
    acts[:, 0] = 1.0 + 0.1 * fields[:, 0]
    planted = torch.zeros(b, c)
    masks = []
    rng = np.random.default_rng(seed)
    for i in range(b):
        size = mask_sizes[i % len(mask_sizes)]
        u = torch.randn(c, generator=g)
        u[0] = 0
        # Bilinear resizing is linear: resizing the maps u . A and A_0 equals resizing all channels first.
        maps = torch.stack([torch.einsum("c,chw->hw", u, acts[i]), acts[i, 0]])[:, None]
        u_map, bias_map = F.interpolate(maps, size=size, mode="bilinear", align_corners=False)[:, 0]
        ratio = u_map / bias_map
        share = rng.uniform(*foreground)
        q = float(torch.quantile(ratio.flatten().double(), 1 - share))
        masks.append((u_map - q * bias_map > 0).numpy())
        planted[i] = u
        planted[i, 0] = -q
    return PlantedProblem(acts.contiguous(), masks, planted)


def naive_paper_iou(
    activations: torch.Tensor, vectors: torch.Tensor, masks: list[np.ndarray], grid: int = 100
) -> np.ndarray:
    """The publication's IoU, written out: all channels upsampled to ``grid x grid``, projected, ``sigmoid``, the
    map resized to the mask's resolution by ``skimage.transform.resize`` (defaults), thresholded at 0.5."""
    from skimage.transform import resize

    upsampled = F.interpolate(activations.double(), size=(grid, grid), mode="bilinear", align_corners=False)
    maps = torch.sigmoid(torch.einsum("bc,bchw->bhw", vectors.double(), upsampled)).numpy()
    ious = []
    for projection, mask in zip(maps, masks):
        predicted = resize(projection, mask.shape) > 0.5
        union = np.logical_or(predicted, mask).sum()
        ious.append(np.logical_and(predicted, mask).sum() / union if union else np.nan)
    return np.array(ious)
