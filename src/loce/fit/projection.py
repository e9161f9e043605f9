"""Projections of LoCEs onto activations (heat maps) and the IoU score of a LoCE at its mask's resolution.

The projection of ``v`` onto activations ``A`` (``C x h x w``) is ``sigmoid(z)`` with ``z = sum_k v_k A_k``.
Two conventions bring it to another size (an image's, a mask's):

- ``"native"``: ``sigmoid(U_H z U_W^T)``, the logits resized bilinearly from the layer's grid
  (:func:`loce.fit.targets.resize_bilinear`), which equals resizing all ``C`` channels first and then projecting.
- ``"paper"`` (the publication's): the projection formed on the ``grid x grid`` common grid from bilinearly
  upsampled activations (computed exactly by upsampling only ``z``), ``P = sigmoid(U_G z U_G^T)``, then ``P``
  resized to the target size as scikit-image's ``resize`` does (:func:`loce.fit.targets.skimage_resize`).

This module is the one place of that maths: the 1 x 1 convolution (:func:`logits` for one vector per sample,
:func:`concept_logits` for every vector on every sample), the conventions (:func:`projection_maps`, on logits of
any leading shape; :func:`project` on vectors and activations), the native resize (:func:`resize_maps`) and the
IoU (:func:`mask_iou` of boolean maps, :func:`projection_iou` of logits at each mask's resolution). Fitting,
localisation, the concept bottleneck's evaluation and the report's figures all use these.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from loce.errors import InputError
from loce.fit.targets import as_binary_mask, resize_bilinear, skimage_resize

PROJECTION_CONVENTIONS = ("native", "paper")

# Elements of one stack of full-resolution predictions: bounded memory for large images; on the CPU a stack
# that stays in the cache is about twice as fast as a large one.
IOU_CHUNK_ELEMENTS = {"cpu": 1 << 20, "other": 1 << 24}


def logits(vectors: Tensor, activations: Tensor) -> Tensor:
    """The 1 x 1 convolution ``z_b = sum_k v_bk A_bk``: ``B x h x w`` from ``B x C`` vectors and ``B x C x h x w``."""
    b, c, h, w = activations.shape
    return torch.bmm(vectors.unsqueeze(1), activations.reshape(b, c, h * w)).view(b, h, w)


def concept_logits(vectors: Tensor | np.ndarray, activations: Tensor) -> Tensor:
    """``z[b, k] = sum_c v[k, c] A[b, c]``: ``B x K x h x w`` logits of ``K x C`` vectors on ``B x C x h x w``.

    Every vector on every sample (where :func:`logits` pairs vector ``b`` with sample ``b``).

    Raises:
        InputError: when the vectors' length differs from the activations' channel count.

    Example:
        >>> concept_logits(torch.ones(1, 2), torch.ones(1, 2, 3, 3))[0, 0, 0, 0].item()
        2.0
    """
    acts = torch.as_tensor(activations)
    if acts.ndim != 4:
        raise InputError(f"activations must be B x C x h x w, got shape {tuple(acts.shape)}.")
    vec = torch.as_tensor(vectors, dtype=torch.float32, device=acts.device)
    if vec.ndim == 1:
        vec = vec.unsqueeze(0)
    if vec.ndim != 2 or vec.shape[1] != acts.shape[1]:
        raise InputError(
            f"concept vectors of shape {tuple(vec.shape)} do not fit activations with C={acts.shape[1]} channels; "
            "project vectors onto the layer they were computed on."
        )
    return torch.einsum("kc,bchw->bkhw", vec, acts.to(torch.float32))


def resize_maps(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """``... x h x w`` maps (logits, heat maps) resized bilinearly to ``size`` (``align_corners=False``).

    The ``"native"`` convention's resize: on logits it equals resizing all channels first, then projecting.
    Maps already of that size are returned as they are.

    Example:
        >>> resize_maps(torch.tensor([[[0.0, 1.0]]]), (1, 4)).tolist()
        [[[0.0, 0.25, 0.75, 1.0]]]
    """
    size = (int(size[0]), int(size[1]))
    if tuple(maps.shape[-2:]) == size:
        return maps
    lead, (h, w) = maps.shape[:-2], maps.shape[-2:]
    return resize_bilinear(maps.reshape(-1, h, w), size).view(*lead, *size)


def _check_convention(convention: str) -> None:
    if convention not in PROJECTION_CONVENTIONS:
        raise InputError(
            f"unknown projection convention {convention!r}; use one of {list(PROJECTION_CONVENTIONS)}."
        )


def _paper_maps(z: Tensor, size: tuple[int, int] | None, grid: int) -> Tensor:
    """The publication's projection of logits ``z`` (``n x h x w``): on the ``grid x grid`` grid, resized to ``size``."""
    on_grid = torch.sigmoid(resize_bilinear(z, (grid, grid)))
    return on_grid if size is None else skimage_resize(on_grid, size)


def project(
    vectors: Tensor | np.ndarray,
    activations: Tensor,
    size: tuple[int, int] | None = None,
    *,
    convention: str = "native",
    grid: int = 100,
) -> Tensor:
    """Heat maps ``sigmoid(sum_k v_k A_k)`` of LoCEs on activations, optionally resized to ``size``.

    Args:
        vectors: one vector ``(C,)`` projected onto every sample, or one per sample ``(B, C)``.
        activations: ``B x C x h x w`` activations of the layer the vectors were fitted on.
        size: ``(H, W)`` to resize to, or ``None``: the layer's own ``h x w`` grid (``"native"``) or the
            ``grid x grid`` common grid (``"paper"``).
        convention: ``"native"`` (bilinear, ``align_corners=False``, on the logits; exact native-grid trick) or
            ``"paper"`` (formed on the common grid, resized like scikit-image; see the module docstring).
        grid: side of the common grid of the ``"paper"`` convention.

    Returns:
        ``B x H x W`` float32 maps in [0, 1] on the activations' device.

    Raises:
        InputError: when the shapes do not fit together.

    Example:
        >>> import torch
        >>> acts = torch.randn(2, 8, 7, 7)
        >>> project(torch.ones(8), acts, size=(100, 100)).shape
        torch.Size([2, 100, 100])
    """
    _check_convention(convention)
    acts = torch.as_tensor(activations)
    if acts.ndim != 4:
        raise InputError(f"activations must be B x C x h x w, got shape {tuple(acts.shape)}.")
    acts = acts.to(torch.float32)
    vec = torch.as_tensor(vectors, dtype=torch.float32, device=acts.device)
    if vec.ndim == 1:
        vec = vec.unsqueeze(0).expand(acts.shape[0], -1)
    if vec.ndim != 2 or vec.shape[1] != acts.shape[1] or vec.shape[0] != acts.shape[0]:
        raise InputError(
            f"vectors of shape {tuple(vec.shape)} do not fit activations of shape {tuple(acts.shape)}: pass one "
            f"vector of length C={acts.shape[1]} or B x C vectors (B={acts.shape[0]}) from the same layer."
        )
    return projection_maps(logits(vec.contiguous(), acts), size, convention=convention, grid=grid)


def projection_maps(
    z: Tensor, size: tuple[int, int] | None = None, *, convention: str = "native", grid: int = 100
) -> Tensor:
    """The projection's sigmoid maps from logits ``z`` (``... x h x w``, on the layer's grid), at ``size``.

    Args:
        z: logits ``sum_k v_k A_k`` of any leading shape (:func:`logits`, :func:`concept_logits`, a concept
            bottleneck's concept maps).
        size: ``(H, W)`` to bring them to, or ``None`` (see :func:`project`).
        convention: ``"native"`` (``sigmoid`` of the bilinearly resized logits) or ``"paper"`` (formed on the
            ``grid x grid`` common grid, resized like scikit-image).
        grid: side of the common grid of the ``"paper"`` convention.

    Returns:
        float32 maps in [0, 1] of shape ``... x H x W``.

    Example:
        >>> projection_maps(torch.zeros(2, 3, 1, 2), (1, 4)).shape
        torch.Size([2, 3, 1, 4])
    """
    _check_convention(convention)
    z = z.to(torch.float32)
    size = None if size is None else (int(size[0]), int(size[1]))
    if convention == "paper":
        lead, (h, w) = z.shape[:-2], z.shape[-2:]
        maps = _paper_maps(z.reshape(-1, h, w), size, int(grid))
        return maps.view(*lead, *maps.shape[-2:])
    return torch.sigmoid(z if size is None else resize_maps(z, size))


def binary_iou(prediction: np.ndarray, mask: np.ndarray) -> float:
    """IoU of two boolean arrays of one shape; ``nan`` when both are empty (:func:`mask_iou` of one pair).

    Example:
        >>> import numpy as np
        >>> a = np.array([[1, 1, 0, 0]], bool); b = np.array([[0, 1, 1, 0]], bool)
        >>> binary_iou(a, b)
        0.3333333333333333
    """
    prediction, mask = np.asarray(prediction, bool), np.asarray(mask, bool)
    return float(mask_iou(prediction[None], mask[None])[0])


def mask_iou(predicted: Tensor | np.ndarray, masks: Tensor | np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """The IoU ``|p & m| / |p | m|`` of each boolean prediction with its mask; ``nan`` where both are empty.

    The one IoU of the package: :func:`projection_iou` (LoCE quality), :func:`binary_iou` and the localisation
    metrics (:func:`loce.localize.metrics.iou_at_threshold`) all count through it.

    Args:
        predicted: ``k x H x W`` booleans (a tensor on any device, or an array).
        masks: ``k`` boolean masks of the same shapes (a ``k x H x W`` tensor or array, or a sequence).

    Returns:
        float64 array of ``k`` IoUs.

    Raises:
        InputError: when the counts or a prediction's and its mask's shapes differ.

    Example:
        >>> import numpy as np
        >>> mask_iou(np.array([[[1, 1, 0]], [[0, 0, 0]]], bool), np.array([[[0, 1, 1]], [[0, 0, 0]]], bool))
        array([0.33333333,        nan])
    """
    pred = torch.as_tensor(predicted)
    if pred.dtype != torch.bool:
        pred = pred != 0
    if isinstance(masks, Tensor):
        masks = masks.detach().cpu().numpy()
    truth = [np.asarray(m, dtype=bool) for m in masks]
    if len(truth) != pred.shape[0]:
        raise InputError(f"{pred.shape[0]} predictions but {len(truth)} masks; pass one mask per prediction.")
    for m in truth:
        if tuple(pred.shape[1:]) != m.shape:
            raise InputError(
                f"prediction {tuple(pred.shape[1:])} and mask {m.shape} must have the same shape."
            )
    if pred.device.type == "cpu":
        # numpy counts booleans an order of magnitude faster than torch's reductions over bool tensors
        pred_np = pred.numpy()
        inter = np.array([np.count_nonzero(p & m) for p, m in zip(pred_np, truth)], dtype=np.int64)
        union = np.array([np.count_nonzero(p) + np.count_nonzero(m) for p, m in zip(pred_np, truth)]) - inter
    else:
        stacked = torch.from_numpy(np.stack(truth)).to(pred.device).flatten(1)
        flat = pred.flatten(1)
        inter = (flat & stacked).sum(dim=1).cpu().numpy()
        union = (flat | stacked).sum(dim=1).cpu().numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.maximum(union, 1), np.nan).astype(np.float64)


def projection_iou(
    logit_maps: Tensor, masks: Sequence[np.ndarray], *, convention: str = "native", grid: int = 100
) -> np.ndarray:
    """The LoCE quality score: IoU between each thresholded projection, at its mask's resolution, and the mask.

    ``convention="native"``: the projection is brought to the mask's own ``H0 x W0`` grid by resizing the logits
    ``z`` (``h x w``) bilinearly with ``align_corners=False`` and thresholded at ``sigmoid(z) > 0.5``, i.e.
    ``z > 0``. ``convention="paper"`` (the publication's): the projection ``sigmoid`` is formed on the
    ``grid x grid`` common grid, resized to ``H0 x W0`` as scikit-image's ``resize`` does, and thresholded at 0.5
    (see :func:`project`). Masks of equal size are processed together in bounded-memory chunks; the batch may mix
    sizes. Both empty gives ``nan``.

    Args:
        logit_maps: ``B x h x w`` logits ``sum_k v_k A_k`` (see :func:`logits`).
        masks: ``B`` boolean masks, each at its own resolution.
        convention: ``"native"`` or ``"paper"``.
        grid: side of the common grid of the ``"paper"`` convention.

    Returns:
        float64 array of ``B`` IoUs.

    Example:
        >>> import numpy as np, torch
        >>> z = torch.tensor([[[-1.0, 1.0]]]); mask = np.array([[False, False, True, True]])
        >>> projection_iou(z, [mask]).tolist(), projection_iou(z, [mask], convention="paper").tolist()
        ([1.0], [1.0])
    """
    _check_convention(convention)
    if len(masks) != logit_maps.shape[0]:
        raise InputError(
            f"{len(masks)} masks for {logit_maps.shape[0]} projections; pass one mask per sample."
        )
    binary = [as_binary_mask(m, i) for i, m in enumerate(masks)]
    iou = np.full(len(binary), np.nan)
    by_shape: dict[tuple[int, int], list[int]] = {}
    for i, m in enumerate(binary):
        by_shape.setdefault(m.shape, []).append(i)
    z = logit_maps.to(torch.float32)
    if convention == "paper" and len(binary):
        z = torch.sigmoid(resize_bilinear(z, (int(grid), int(grid))))
    budget = IOU_CHUNK_ELEMENTS["cpu" if z.device.type == "cpu" else "other"]
    largest = max((h * w for h, w in by_shape), default=0)
    # buffers reused by every chunk: fresh multi-megabyte tensors per chunk cost page faults
    resized = torch.empty(max(budget, largest), device=z.device)
    predicted = torch.empty(max(budget, largest), dtype=torch.bool, device=z.device)
    for shape, members in by_shape.items():
        size = shape[0] * shape[1]
        per_chunk = max(1, budget // size)
        for start in range(0, len(members), per_chunk):
            part = members[start : start + per_chunk]
            k = len(part)
            if convention == "paper":  # computed in an H x k x W layout (see skimage_resize)
                maps = skimage_resize(z[part], shape, clip=False, out=resized)
                rows_first = predicted[: k * size].view(shape[0], k, shape[1])
                above = torch.gt(maps.permute(1, 0, 2), 0.5, out=rows_first).permute(1, 0, 2)
            else:
                maps = resize_bilinear(z[part], shape, out=resized[: k * size])
                above = torch.gt(maps, 0, out=predicted[: k * size].view(k, *shape))
            iou[part] = mask_iou(above, [binary[i] for i in part])
    return iou
