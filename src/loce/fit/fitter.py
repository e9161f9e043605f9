"""``LoCEFitter``: fit one Local Concept Embedding per (image, concept) for a batch of activations and masks.

Estimator style: settings in the constructor, ``fit`` returns ``self``, results in trailing-underscore
attributes. Degenerate samples (empty or full mask, non-finite or spatially constant activations) are never
fitted: they get a zero vector, ``nan`` IoU and loss, 0 steps, and a reason in ``status_`` with a sentence in
``detail_``, so nothing downstream ever sees a NaN vector. Channels of extreme magnitude are rescaled by exact
powers of two before fitting and the LoCE scaled back (:func:`channel_scales`), so activations of 1e25 or 1e-30
fit like ordinary ones; an empty batch gives empty results.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from loce.devices import resolve_device
from loce.errors import InputError
from loce.fit.engine import solve_chunk
from loce.fit.objectives import get_objective
from loce.fit.projection import projection_iou
from loce.fit.settings import FitSettings, resolve_settings
from loce.fit.solvers import get_solver
from loce.fit.targets import FitTargets, prepare_targets
from loce.fit.threads import run_parallel
from loce.reprs import short_repr

# Elements (floats) one chunk may hold: the activations (C h w per sample) + the grid buffers (~4 G^2).
# On the CPU chunks that stay in the cache are fastest (measured: ~1.5M elements, e.g. 8 samples at C = 768 on
# 14 x 14, 28 at C = 80); GPUs want large chunks.
CHUNK_ELEMENTS = {"cpu": 3 << 19, "cuda": 1 << 27}
INTEGER_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
# On CUDA the budget follows the free memory (torch.cuda.mem_get_info): this share of it, at this many bytes per
# budgeted element (float32 activations and grid buffers, plus their gradients, AdamW moments and temporaries).
CUDA_FREE_SHARE = 0.5
CUDA_BYTES_PER_ELEMENT = 4 * 6


def chunk_elements(device: torch.device) -> int:
    """Elements one chunk may hold on ``device``: a constant on the CPU, a share of the free memory on CUDA.

    Example:
        >>> chunk_elements(torch.device("cpu")) == CHUNK_ELEMENTS["cpu"]
        True
    """
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return max(1 << 20, int(free * CUDA_FREE_SHARE) // CUDA_BYTES_PER_ELEMENT)
    return CHUNK_ELEMENTS.get(device.type, CHUNK_ELEMENTS["cuda"])


# A channel whose spatial spread is below this fraction of its largest magnitude counts as constant.
CONSTANT_RTOL = 1e-6
# Channels whose largest magnitude lies outside [2^-40, 2^40] (about 1e-12 .. 1e12) are rescaled by a power of two
# before fitting (see channel_scales); inside it nothing changes, so ordinary layers fit exactly as the paper's.
SAFE_EXPONENT = 40


@dataclass
class FitResult:
    """Per-sample results of one :meth:`LoCEFitter.fit` call (rows in the order of the input batch).

    Attributes:
        embeddings: ``B x C`` float32 LoCEs (zero rows for skipped samples).
        iou: IoU of the thresholded projection with the mask, at the mask's resolution (``nan`` if skipped),
            scored by ``settings.iou_convention`` (see :func:`loce.fit.projection_iou`).
        loss: final loss (objective + penalty) at the returned vector (``nan`` if skipped).
        steps: optimiser updates applied (fewer than ``settings.steps`` after an early stop; 0 if skipped).
        mask_area: foreground pixels of the mask at its own resolution.
        status: ``"ok"`` or the skip reason (``empty_mask``, ``full_mask``, ``nonfinite_activations``,
            ``constant_activations``).
        detail: a sentence explaining a skip, or flagging an ``ok`` LoCE with IoU 0 (the paper's "not
            converged"); empty otherwise.
        settings_id: :attr:`FitSettings.settings_id` of the settings used.
    """

    __repr__ = short_repr

    embeddings: np.ndarray
    iou: np.ndarray
    loss: np.ndarray
    steps: np.ndarray
    mask_area: np.ndarray
    status: list[str]
    detail: list[str]
    settings_id: str
    ok: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.ok = np.array([s == "ok" for s in self.status], dtype=bool)

    def to_frame(self, vectors: bool = False):
        """The results as a pandas DataFrame, one row per sample (with a ``vector`` column if ``vectors``)."""
        import pandas as pd

        frame = pd.DataFrame(
            {
                "status": self.status,
                "detail": self.detail,
                "iou": self.iou,
                "loss": self.loss,
                "steps": self.steps,
                "mask_area": self.mask_area,
                "settings_id": self.settings_id,
            }
        )
        if vectors:
            frame["vector"] = list(self.embeddings)
        return frame


def activation_problems(activations: Tensor) -> tuple[Tensor, Tensor]:
    """Per sample of ``n x C x h x w``: (has non-finite values, is spatially constant in every channel).

    A channel is constant when its spread over the grid is at most ``CONSTANT_RTOL`` times its own largest
    magnitude; one huge constant channel (a bias-like map) does not make the other channels constant.
    """
    flat = activations.flatten(2)
    nonfinite = ~torch.isfinite(flat).flatten(1).all(dim=1)
    high, low = flat.amax(dim=2), flat.amin(dim=2)
    magnitude = torch.maximum(high.abs(), low.abs())
    constant = ~nonfinite & ((high - low) <= CONSTANT_RTOL * magnitude).all(dim=1)
    return nonfinite, constant


def flag_unusable(activations: Tensor, rows: Sequence[int], status: list[str], detail: list[str]) -> None:
    """Mark the samples ``rows`` whose activations (``len(rows) x C x h x w``) no vector can be fitted to.

    A sample still ``"ok"`` in ``status`` becomes ``"nonfinite_activations"`` or ``"constant_activations"`` (see
    :func:`activation_problems`), with a sentence in ``detail``; both lists are indexed by sample and changed in
    place.

    Example:
        >>> status, detail = ["ok", "ok"], ["", ""]
        >>> flag_unusable(torch.stack([torch.randn(2, 3, 3), torch.ones(2, 3, 3)]), [0, 1], status, detail)
        >>> status
        ['ok', 'constant_activations']
    """
    h, w = activations.shape[2:]
    nonfinite, constant = (t.cpu().numpy() for t in activation_problems(activations))
    for j, i in enumerate(rows):
        if status[i] == "ok" and nonfinite[j]:
            status[i] = "nonfinite_activations"
            detail[i] = (
                f"sample {i}: the activations contain NaN or infinite values; check the model and layer "
                "(e.g. an fp16 overflow)."
            )
        elif status[i] == "ok" and constant[j]:
            status[i] = "constant_activations"
            detail[i] = (
                f"sample {i}: every channel is constant over the {h} x {w} grid, so no vector can localise "
                "anything; use a layer with spatial resolution."
            )


def initial_vectors(settings: FitSettings, n: int, c: int, seed: int = 0) -> Tensor:
    """The ``n x C`` start of the optimisation: zeros, or ``init_std`` times seeded normal noise (``init="normal"``).

    Example:
        >>> initial_vectors(resolve_settings("paper"), 2, 3).tolist()
        [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    """
    if settings.init == "normal":
        generator = torch.Generator().manual_seed(int(seed))
        return torch.randn(n, c, generator=generator) * settings.init_std
    return torch.zeros(n, c)


def channel_scales(activations: Tensor) -> Tensor | None:
    """Power-of-two factors ``s`` (``n x C``) for channels of extreme magnitude, or ``None`` when none is extreme.

    The objective depends on ``v`` only through ``z = sum_k v_k A_k``, which is unchanged by
    ``(A_k, v_k) -> (s_k A_k, v_k / s_k)``; powers of two make the rescaling exact in floating point. A channel
    whose largest magnitude ``m`` lies outside ``[2^-40, 2^40]`` gets ``s = 2^-e`` with ``m = f 2^e``,
    ``0.5 <= f < 1`` (so its values land in [-1, 1]); every other channel keeps ``s = 1``. Without it, float32
    fitting breaks at such magnitudes: at ``1e25`` Adam's second moment overflows and every step is zero (a zero
    vector), and below ``1e-12`` the gradients underflow beneath Adam's epsilon.
    """
    return _power_of_two_scales(_channel_magnitudes(activations))


def shared_channel_scales(activations: Tensor) -> Tensor | None:
    """:func:`channel_scales` for ONE vector fitted to all ``n`` samples: a ``1 x C`` factor per channel.

    A channel's magnitude is its largest over all samples, so every sample is rescaled alike and the objective,
    a function of ``z_i = sum_k v_k A_ik``, is unchanged by ``(A_ik, v_k) -> (s_k A_ik, v_k / s_k)``.

    Example:
        >>> shared_channel_scales(torch.ones(2, 3, 4, 4)) is None
        True
    """
    return _power_of_two_scales(_channel_magnitudes(activations).amax(dim=0, keepdim=True))


def _channel_magnitudes(activations: Tensor) -> Tensor:
    """Largest magnitude of each channel of each sample: ``n x C`` from ``n x C x h x w``."""
    flat = activations.flatten(2)
    return torch.maximum(flat.amax(dim=2).abs(), flat.amin(dim=2).abs())


def _power_of_two_scales(magnitude: Tensor) -> Tensor | None:
    """``2^-e`` where the magnitude ``f 2^e`` lies outside ``[2^-40, 2^40]``, else 1; ``None`` when none does."""
    _, exponent = torch.frexp(magnitude)
    extreme = (magnitude > 0) & ((exponent > SAFE_EXPONENT) | (exponent < -SAFE_EXPONENT))
    if not bool(extreme.any()):
        return None
    return torch.where(
        extreme, torch.ldexp(torch.ones_like(magnitude), -exponent), torch.ones_like(magnitude)
    )


def check_fit_inputs(
    activations: Tensor, masks: Sequence[np.ndarray] | None, targets: FitTargets | None, settings: FitSettings
) -> tuple[Tensor, FitTargets]:
    """Validate ``B x C x h x w`` activations with ``B`` masks (or their prepared ``targets``) for ``settings``.

    Returns the activations as a tensor and the soft targets (prepared from ``masks`` when not given).

    Raises:
        InputError: naming the problem (shape, dtype, empty grid, both or neither of masks and targets, targets
            prepared for other settings, counts that differ).

    Example:
        >>> import numpy as np
        >>> acts, targets = check_fit_inputs(torch.randn(1, 4, 7, 7), [np.eye(8, dtype=bool)], None,
        ...                                  resolve_settings("paper"))
        >>> targets.status
        ('ok',)
    """
    acts = torch.as_tensor(activations)
    if acts.ndim != 4:
        raise InputError(
            f"activations must be a B x C x h x w tensor, got shape {tuple(acts.shape)}; "
            "reshape ViT tokens to their patch grid first (see loce.capture)."
        )
    if not (acts.is_floating_point() or acts.dtype in INTEGER_DTYPES):
        raise InputError(f"activations have dtype {acts.dtype}; pass real numbers (float, or integers).")
    if acts.shape[1] == 0 or acts.shape[2] == 0 or acts.shape[3] == 0:
        raise InputError(
            f"activations of shape {tuple(acts.shape)} have no channels or no grid cells; a LoCE needs "
            "C >= 1 channels on an h x w grid with h, w >= 1."
        )
    if (masks is None) == (targets is None):
        raise InputError(
            "pass exactly one of `masks` (boolean H x W arrays) and `targets` (prepare_targets)."
        )
    if targets is None:
        targets = prepare_targets(masks, settings.grid, resize=settings.target_resize)
    elif (targets.grid, targets.resize) != (settings.grid, settings.target_resize):
        raise InputError(
            f"targets were prepared for grid {targets.grid} with {targets.resize!r} resizing, but the settings "
            f"use grid {settings.grid} with {settings.target_resize!r}; prepare them with "
            "fitter.prepare_targets(masks)."
        )
    if len(targets) != acts.shape[0]:
        raise InputError(
            f"{acts.shape[0]} activation maps but {len(targets)} masks; pass one mask per sample, in order."
        )
    return acts, targets


class LoCEFitter:
    """Fits LoCEs: per sample, the vector ``v`` whose projection ``sigmoid(sum_k v_k A_k)`` reconstructs its mask.

    Args:
        settings: a preset name (``"paper"``, ``"fast"``, ``"bce"``; see :data:`loce.fit.PRESETS`), a settings
            dict or a :class:`FitSettings`.
        device: where to compute (``"cpu"``, ``"cuda"``, ...). Inputs may live anywhere; results are numpy.
        chunk_size: samples solved together; ``None`` chooses it from a memory budget (the batch is never
            materialised on the ``G x G`` grid as a whole). Results do not depend on it. On the CPU, chunks are
            solved in parallel by ``torch.get_num_threads()`` threads, each with single-threaded torch operations
            (the global torch thread setting is 1 during the call and restored afterwards).
        seed: seed of the random initialisation (only used with ``init="normal"``).

    Example:
        >>> import numpy as np, torch
        >>> acts = torch.randn(4, 16, 7, 7)
        >>> masks = [np.pad(np.ones((20, 20), bool), 20) for _ in range(4)]
        >>> fitter = LoCEFitter("paper").fit(acts, masks)
        >>> fitter.embeddings_.shape, fitter.status_
        ((4, 16), ['ok', 'ok', 'ok', 'ok'])
    """

    def __init__(
        self,
        settings: str | FitSettings | dict = "paper",
        *,
        device: str | torch.device = "cpu",
        chunk_size: int | None = None,
        seed: int = 0,
    ) -> None:
        self.settings = settings
        self.device = device
        self.chunk_size = chunk_size
        self.seed = seed

    def prepare_targets(self, masks: Sequence[np.ndarray]) -> FitTargets:
        """Soft targets of ``masks`` for this fitter's settings; reuse them for every layer of the same images."""
        settings = resolve_settings(self.settings)
        return prepare_targets(masks, settings.grid, resize=settings.target_resize)

    def _chunk_size(self, b: int, c: int, hw: int, grid: int, device: torch.device, workers: int) -> int:
        if self.chunk_size is not None:
            if int(self.chunk_size) < 1:
                raise InputError(f"chunk_size must be a positive integer or None, got {self.chunk_size!r}.")
            return int(self.chunk_size)
        if b == 0:  # an empty batch: nothing to solve, empty results
            return 1
        budget = chunk_elements(device)
        by_budget = max(1, budget // (c * hw + 4 * grid * grid))
        n_chunks = -(-b // by_budget)
        n_chunks = -(-n_chunks // workers) * workers  # equal shares for the workers
        return max(1, -(-b // n_chunks))

    def fit(
        self,
        activations: Tensor,
        masks: Sequence[np.ndarray] | None = None,
        *,
        targets: FitTargets | None = None,
    ) -> LoCEFitter:
        """Fit one LoCE per sample.

        Args:
            activations: ``B x C x h x w`` activations of one layer (any float dtype and device).
            masks: ``B`` boolean masks, each at its own image's resolution (the union of the concept's
                instances). Alternatively pass ``targets``.
            targets: the output of :meth:`prepare_targets` / :func:`loce.fit.prepare_targets` for these masks,
                to avoid recomputing soft targets for every layer.

        Returns:
            ``self``, with ``embeddings_``, ``iou_``, ``loss_``, ``steps_``, ``mask_area_``, ``status_``,
            ``detail_``, ``result_`` (a :class:`FitResult`) and ``settings_`` set.

        Raises:
            InputError: on shapes that do not fit together, bad masks, or unusable settings.
        """
        settings = resolve_settings(self.settings)
        device = resolve_device(self.device, error=InputError)
        acts, targets = check_fit_inputs(activations, masks, targets, settings)
        b, c, h, w = acts.shape
        objective = get_objective(settings.objective)(settings)
        solver = get_solver(settings.solver)(settings)
        init = initial_vectors(settings, b, c, self.seed)

        embeddings = np.zeros((b, c), dtype=np.float32)
        iou = np.full(b, np.nan)
        loss = np.full(b, np.nan)
        steps = np.zeros(b, dtype=np.int64)
        status, detail = list(targets.status), list(targets.detail)
        # On the CPU, chunks run in parallel threads, each with single-threaded torch ops: a step is many small
        # operations, and per-operation thread synchronisation is slow, badly so on a shared machine.
        workers = torch.get_num_threads() if device.type == "cpu" else 1
        chunk = self._chunk_size(b, c, h * w, settings.grid, device, workers)
        starts = range(0, b, chunk)

        def fit_chunk(start: int) -> None:  # writes rows start..start+chunk of the result arrays
            rows = np.arange(start, min(start + chunk, b))
            part = acts[start : rows[-1] + 1].to(device=device, dtype=torch.float32)
            flag_unusable(part, rows, status, detail)
            keep = np.array([status[i] == "ok" for i in rows])
            if not keep.any():
                return
            fit_rows = rows[keep]
            if not keep.all():
                part = part[torch.from_numpy(keep).to(device)]
            scales = channel_scales(part)
            if scales is not None:
                part = part * scales[:, :, None, None]
            target = targets.soft[fit_rows].to(device)
            solution = solve_chunk(part, target, init[fit_rows].to(device), settings, objective, solver)
            vectors = solution.vectors if scales is None else solution.vectors * scales
            embeddings[fit_rows] = vectors.cpu().numpy()
            loss[fit_rows] = solution.loss.double().cpu().numpy()
            steps[fit_rows] = solution.steps.numpy()
            fit_masks = [targets.masks[i] for i in fit_rows]
            iou[fit_rows] = projection_iou(
                solution.logits, fit_masks, convention=settings.iou_convention, grid=settings.grid
            )

        if device.type == "cpu":
            run_parallel(fit_chunk, starts, workers)
        else:
            for start in starts:
                fit_chunk(start)
        for i in np.flatnonzero(iou == 0):
            detail[i] = (
                f"sample {i}: IoU 0 at the mask's resolution (the paper counts such a LoCE as not converged)."
            )

        self.settings_ = settings
        self.result_ = FitResult(
            embeddings=embeddings,
            iou=iou,
            loss=loss,
            steps=steps,
            mask_area=targets.mask_area.copy(),
            status=status,
            detail=detail,
            settings_id=settings.settings_id,
        )
        self.embeddings_ = embeddings
        self.iou_ = iou
        self.loss_ = loss
        self.steps_ = steps
        self.mask_area_ = self.result_.mask_area
        self.status_ = status
        self.detail_ = detail
        self.n_features_in_ = c
        return self
