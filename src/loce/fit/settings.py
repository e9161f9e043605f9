"""Fit settings: one frozen dataclass, a stable id for it, and named presets.

Everything that changes a fitted LoCE lives in :class:`FitSettings`; things that only change speed or memory
(device, chunk size) do not, so two runs with the same :attr:`FitSettings.settings_id` are comparable.
``PRESETS["paper"]`` reproduces the publication's settings exactly (METHOD.md, section 1).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from loce.errors import InputError
from loce.fit.targets import TARGET_RESIZES

SETTINGS_SCHEMA = "loce.fit.settings/1"
INITS = ("zeros", "normal")
IOU_CONVENTIONS = ("paper", "native")


class FitSettingsError(InputError):
    """Fit settings that cannot be used: an unknown preset, objective or solver, or an out-of-range value."""


@dataclass(frozen=True)
class FitSettings:
    """How LoCEs are fitted. The defaults are the paper's setting (``PRESETS["paper"]``).

    Attributes:
        objective: name in the objective registry (:func:`loce.fit.objectives.available_objectives`).
        solver: name in the solver registry (:func:`loce.fit.solvers.available_solvers`).
        grid: side of the square common grid on which prediction and target are compared (paper: 100).
        target_resize: how the binary mask becomes the soft grid target: ``"skimage"`` (paper;
            ``skimage.transform.resize(mask.astype(float), (grid, grid))`` with its defaults: a Gaussian
            anti-aliasing pre-filter when shrinking), ``"bilinear_antialias"`` (a triangle filter,
            ``torch.nn.functional.interpolate(mode="bilinear", antialias=True, align_corners=False)``; not the
            paper's target) or ``"area"`` (box average, the covered fraction of each grid cell when downscaling).
        init: ``"zeros"`` (paper) or ``"normal"`` (N(0, init_std^2), drawn from the fitter's ``seed``).
        init_std: standard deviation of the ``"normal"`` initialisation.
        steps: maximal number of full-batch optimiser steps (paper: 50).
        lr: learning rate (paper: 0.1).
        weight_decay: the solver's weight decay (AdamW: decoupled, paper 0.01; Adam: added to the gradient).
        betas: Adam(W) moment decay rates (paper: (0.9, 0.999)).
        eps: Adam(W) denominator epsilon (paper: 1e-8).
        l1: weight of ``sum |v|`` added to the objective (0 in the paper).
        l2: weight of ``sum v^2`` added to the objective (0 in the paper).
        tol: per-sample early stop: a sample is frozen once its loss changed by at most
            ``tol * max(|loss|, 1)`` for ``patience`` consecutive steps. ``None`` (paper) never stops early.
        patience: consecutive small changes needed before a sample is frozen.
        iou_convention: how the stored IoU is scored (it does not change the vector): ``"paper"`` (the
            projection formed on the grid, resized to the mask's resolution as scikit-image does, thresholded at
            0.5) or ``"native"`` (the logits resized bilinearly from the layer's own grid to the mask's
            resolution, thresholded at 0; cheaper). See :func:`loce.fit.projection_iou`.

    Example:
        >>> s = FitSettings(steps=20)
        >>> s.steps, len(s.settings_id)
        (20, 12)
        >>> FitSettings.from_dict(s.to_dict()) == s
        True
    """

    objective: str = "pseudo_bce"
    solver: str = "adamw"
    grid: int = 100
    target_resize: str = "skimage"
    init: str = "zeros"
    init_std: float = 0.01
    steps: int = 50
    lr: float = 0.1
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    l1: float = 0.0
    l2: float = 0.0
    tol: float | None = None
    patience: int = 3
    iou_convention: str = "paper"

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        from loce.fit.objectives import available_objectives
        from loce.fit.solvers import available_solvers

        problems = []
        if self.objective not in available_objectives():
            problems.append(f"objective {self.objective!r} is not one of {available_objectives()}")
        if self.solver not in available_solvers():
            problems.append(f"solver {self.solver!r} is not one of {available_solvers()}")
        if self.target_resize not in TARGET_RESIZES:
            problems.append(f"target_resize {self.target_resize!r} is not one of {list(TARGET_RESIZES)}")
        if self.iou_convention not in IOU_CONVENTIONS:
            problems.append(f"iou_convention {self.iou_convention!r} is not one of {list(IOU_CONVENTIONS)}")
        if self.init not in INITS:
            problems.append(f"init {self.init!r} is not one of {list(INITS)}")
        if int(self.grid) != self.grid or self.grid < 1:
            problems.append(f"grid must be a positive integer, got {self.grid!r}")
        if int(self.steps) != self.steps or self.steps < 0:
            problems.append(f"steps must be a non-negative integer, got {self.steps!r}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            problems.append(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        for name in ("lr", "weight_decay", "eps", "l1", "l2", "init_std"):
            if not getattr(self, name) >= 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.tol is not None and not self.tol >= 0:
            problems.append(f"tol must be None or >= 0, got {self.tol!r}")
        if int(self.patience) != self.patience or self.patience < 1:
            problems.append(f"patience must be a positive integer, got {self.patience!r}")
        if problems:
            raise FitSettingsError("invalid fit settings: " + "; ".join(problems) + ".")

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-able dict (``betas`` as a list)."""
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FitSettings:
        """Rebuild settings from :meth:`to_dict` output; unknown keys are an error (they would change the id).

        Settings written before ``iou_convention`` existed scored IoU the native way and get ``"native"``.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        data = {"iou_convention": "native", **data}
        unknown = sorted(set(data) - known)
        if unknown:
            raise FitSettingsError(
                f"unknown fit setting(s) {unknown}; known settings are {sorted(known)}. "
                "Were these settings written by a newer version of loce?"
            )
        return cls(**data)

    @property
    def settings_id(self) -> str:
        """A 12-hex-digit id, stable across processes and machines: sha256 of the canonical JSON of the settings."""
        payload = json.dumps(
            {"schema": SETTINGS_SCHEMA, **self.to_dict()}, sort_keys=True, separators=(",", ":")
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:12]

    def replace(self, **changes: Any) -> FitSettings:
        """A copy with some fields changed, e.g. ``PRESETS["paper"].replace(steps=100)``."""
        return dataclasses.replace(self, **changes)


PRESETS: dict[str, FitSettings] = {
    # The publication's setting (METHOD.md section 1): pseudo-BCE, 100 x 100 grid, scikit-image's resize as the
    # soft target, zeros init, AdamW lr 0.1 / wd 0.01 / betas (0.9, 0.999), 50 steps, no early stop; IoU scored
    # the publication's way.
    "paper": FitSettings(),
    # The paper's objective and optimiser on a 50 x 50 common grid (4x less work per step), IoU scored natively.
    # On real photos (benchmarks/fit_speed.py, EfficientNet-Lite0 _blocks.10 / _blocks.14, 80 pairs) about 1.8x
    # less CPU time than "paper" at a mean IoU of +0.002 / -0.031 (scored the paper's way); its vectors differ
    # (mean cosine 0.91 / 0.83), so compare fast LoCEs only with fast LoCEs. (Early stopping lost 0.07-0.11 IoU
    # for 1.3x: not worth it.)
    "fast": FitSettings(grid=50, iou_convention="native"),
    # True (balanced) BCE on logits with an explicit L2 penalty, solved by Adam to a small tolerance: a convex
    # problem with a unique optimum, so the LoCE depends on the data, not on the optimiser's path. On planted data
    # its IoU is higher than the paper's (0.85-0.91 vs 0.82-0.83); its vectors differ (cosine 0.6-0.8).
    "bce": FitSettings(
        objective="bce",
        solver="adam",
        weight_decay=0.0,
        l2=1e-3,
        steps=200,
        tol=1e-5,
        patience=3,
        iou_convention="native",
    ),
}


def resolve_settings(settings: str | FitSettings | dict[str, Any]) -> FitSettings:
    """Turn a preset name, a settings dict or a :class:`FitSettings` into :class:`FitSettings`.

    Example:
        >>> resolve_settings("paper") == PRESETS["paper"]
        True
    """
    if isinstance(settings, FitSettings):
        return settings
    if isinstance(settings, str):
        if settings not in PRESETS:
            raise FitSettingsError(f"unknown fit preset {settings!r}; choose one of {sorted(PRESETS)}.")
        return PRESETS[settings]
    if isinstance(settings, dict):
        return FitSettings.from_dict(settings)
    raise FitSettingsError(
        f"fit settings must be a preset name, a dict or a FitSettings, got {type(settings).__name__}."
    )
