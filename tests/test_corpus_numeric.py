"""Numeric bad-input corpus of the fitter: each case with its expected outcome.

Every case builds its own activations and masks and expects one of: a specific error class with a message
substring, specific skip statuses (zero vectors, NaN IoU), or a correct fit checked against ground truth (the
planted problem's fit at ordinary scale, exact power-of-two rescaling, or the naive paper implementation).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch

from conftest_fit import naive
from loce.errors import InputError
from loce.fit import PRESETS, FitSettingsError, LoCEFitter, prepare_targets


def _problem(b: int = 3, seed: int = 11):
    """A small planted problem whose channels all have their largest magnitude in [0.5, 1)."""
    problem = naive.planted_problem(b, 6, 7, 7, mask_sizes=((40, 40),), seed=seed)
    acts = problem.activations.double()
    magnitude = acts.abs().amax(dim=(2, 3), keepdim=True)
    _, exponent = torch.frexp(magnitude)
    unit = torch.ldexp(acts, -exponent).float()  # exact: divided by powers of two
    return unit, list(problem.masks)


@dataclass
class Case:
    """Inputs (``build() -> (activations, masks)``), fitter settings, and the expected outcome."""

    build: Callable[[], tuple]
    error: type[Exception] | None = None
    message: str = ""
    statuses: list[str] | None = None
    check: Callable[[LoCEFitter, tuple], None] | None = None
    settings: object = "paper"
    kwargs: dict = field(default_factory=dict)


def _fit(case: Case, inputs: tuple) -> LoCEFitter:
    acts, masks, *rest = inputs
    extra = rest[0] if rest else {}
    return LoCEFitter(case.settings, **case.kwargs).fit(acts, masks, **extra)


def _with(change: Callable[[torch.Tensor, list], tuple]) -> Callable[[], tuple]:
    def build():
        acts, masks = _problem()
        return change(acts.clone(), masks)

    return build


def _set(index, value):
    def change(acts, masks):
        acts[index] = value
        return acts, masks

    return change


def _scaled(power: int):
    """Ground truth: scaling every channel by 2^power scales the LoCE by 2^-power exactly; the IoU is unchanged."""

    def check(fitter, inputs):
        unit, masks = _problem()
        reference = LoCEFitter("paper").fit(unit, masks)
        assert fitter.status_ == ["ok"] * len(masks)
        np.testing.assert_array_equal(fitter.embeddings_, np.ldexp(reference.embeddings_, -power))
        np.testing.assert_array_equal(fitter.iou_, reference.iou_)
        assert (reference.iou_ > 0.4).all()  # a real localisation, not a zero vector

    return check


def _one_huge_constant_channel(fitter, inputs):
    # ground truth: the 1e30 channel is brought to 1e30 * 2^-100 (in [0.5, 1)) exactly; the sample is not constant
    unit, masks = _problem()
    unit[:, 2] = float(np.ldexp(np.float32(1e30), -100))
    reference = LoCEFitter("paper").fit(unit, masks)
    assert fitter.status_ == ["ok"] * 3
    expected = reference.embeddings_.copy()
    expected[:, 2] = np.ldexp(expected[:, 2], -100)
    np.testing.assert_array_equal(fitter.embeddings_, expected)
    np.testing.assert_array_equal(fitter.iou_, reference.iou_)
    assert (fitter.iou_ > 0.2).all()  # the other five channels still localise


def _agrees_with_naive(fitter, inputs):
    acts, masks = inputs
    reference = naive.naive_fit(acts, masks, contraction="einsum").vectors.numpy()
    assert fitter.status_ == ["ok"] * len(masks)
    cosine = (fitter.embeddings_ * reference).sum(1) / (
        np.linalg.norm(fitter.embeddings_, axis=1) * np.linalg.norm(reference, axis=1)
    )
    assert cosine.min() > 0.9999
    assert np.isfinite(fitter.iou_).all()


def _equals_float32_fit(fitter, inputs):
    acts, masks = inputs
    reference = LoCEFitter("paper").fit(torch.as_tensor(acts).float(), masks)
    np.testing.assert_array_equal(fitter.embeddings_, reference.embeddings_)


def _empty_result(fitter, inputs):
    assert fitter.embeddings_.shape == (0, 6)
    assert fitter.status_ == [] and fitter.iou_.shape == (0,) and fitter.steps_.shape == (0,)


def _neighbour_unaffected(fitter, inputs):
    unit, masks = _problem()
    alone = LoCEFitter("paper").fit(unit[1:], masks[1:])
    # Equal up to the rounding of batched arithmetic (a batch of 3 and of 2 may take other BLAS kernels: 1 ulp
    # here on some CPUs); a neighbour hurt by the huge sample would be off by orders of magnitude more.
    np.testing.assert_allclose(fitter.embeddings_[1:], alone.embeddings_, rtol=1e-6, atol=1e-6)
    assert fitter.status_ == ["ok"] * 3


def _one_pixel_mask():
    acts, masks = _problem(2)
    single = np.zeros((40, 40), bool)
    single[17, 23] = True
    return acts, [single, masks[1]]


def _tiny_masks():
    acts, _ = _problem(2)
    return acts, [np.array([[True, False]]), np.array([[False], [True], [False]])]


def _bad_mask(mask):
    def build():
        acts, masks = _problem(1)
        return acts, [mask]

    return build


def _wrong_grid_targets():
    acts, masks = _problem(1)
    return acts, None, {"targets": prepare_targets(masks, grid=50)}


CASES: dict[str, Case] = {
    # errors: a specific class and message
    "activations_3d": Case(
        lambda: (torch.zeros(6, 7, 7), [np.eye(7, dtype=bool)]), InputError, "B x C x h x w"
    ),
    "zero_channels": Case(
        lambda: (torch.zeros(2, 0, 7, 7), [np.eye(7, dtype=bool)] * 2), InputError, "no channels"
    ),
    "zero_grid_cells": Case(
        lambda: (torch.zeros(2, 6, 0, 7), [np.eye(7, dtype=bool)] * 2), InputError, "no grid cells"
    ),
    "fewer_masks_than_maps": Case(
        lambda: (torch.randn(2, 6, 7, 7), [np.eye(7, dtype=bool)]),
        InputError,
        "2 activation maps but 1 masks",
    ),
    "more_masks_than_maps": Case(
        lambda: (torch.randn(1, 6, 7, 7), [np.eye(7, dtype=bool)] * 3), InputError, "1 activation maps but 3"
    ),
    "complex_activations": Case(
        lambda: (torch.zeros(1, 6, 7, 7, dtype=torch.complex64), [np.eye(7, dtype=bool)]), InputError, "dtype"
    ),
    "bool_activations": Case(
        lambda: (torch.zeros(1, 6, 7, 7, dtype=torch.bool), [np.eye(7, dtype=bool)]), InputError, "dtype"
    ),
    "mask_3d": Case(_bad_mask(np.zeros((4, 4, 3), bool)), InputError, "2-D"),
    "mask_0_255": Case(_bad_mask(np.eye(9, dtype=np.uint8) * 255), InputError, "values other than 0 and 1"),
    "mask_soft_floats": Case(_bad_mask(np.full((9, 9), 0.5)), InputError, "values other than 0 and 1"),
    "mask_strings": Case(_bad_mask(np.full((3, 3), "a")), InputError, "values other than 0 and 1"),
    "mask_without_pixels": Case(_bad_mask(np.zeros((0, 5), bool)), InputError, "no pixels"),
    "unknown_preset": Case(
        _with(lambda a, m: (a, m)), FitSettingsError, "unknown fit preset", settings="exact"
    ),
    "negative_steps": Case(
        _with(lambda a, m: (a, m)),
        FitSettingsError,
        "steps",
        settings={**PRESETS["paper"].to_dict(), "steps": -1},
    ),
    "chunk_size_zero": Case(_with(lambda a, m: (a, m)), InputError, "chunk_size", kwargs={"chunk_size": 0}),
    "targets_of_another_grid": Case(_wrong_grid_targets, InputError, "grid 50"),
    # recorded skips: zero vector, NaN IoU, a status naming the reason
    "nan_activation": Case(
        _with(_set((0, 3, 2, 2), float("nan"))), statuses=["nonfinite_activations", "ok", "ok"]
    ),
    "inf_activation": Case(
        _with(_set((1, 0, 0, 0), float("inf"))), statuses=["ok", "nonfinite_activations", "ok"]
    ),
    "minus_inf_activation": Case(
        _with(_set((2, 5, 6, 6), float("-inf"))), statuses=["ok", "ok", "nonfinite_activations"]
    ),
    "float64_beyond_float32": Case(
        _with(lambda a, m: _set((0, 1, 3, 3), 1e300)(a.double(), m)),
        statuses=["nonfinite_activations", "ok", "ok"],
    ),
    "all_zero_activations": Case(_with(_set(0, 0.0)), statuses=["constant_activations", "ok", "ok"]),
    "every_channel_constant": Case(
        _with(_set(1, torch.arange(6.0)[:, None, None].expand(6, 7, 7))),
        statuses=["ok", "constant_activations", "ok"],
    ),
    "one_by_one_grid": Case(
        lambda: (torch.randn(2, 6, 1, 1), [np.eye(5, dtype=bool)] * 2),
        statuses=["constant_activations", "constant_activations"],
    ),
    "empty_mask": Case(
        _with(lambda a, m: (a, [np.zeros((40, 40), bool), *m[1:]])), statuses=["empty_mask", "ok", "ok"]
    ),
    "full_mask": Case(
        _with(lambda a, m: (a, [*m[:2], np.ones((40, 40), bool)])), statuses=["ok", "ok", "full_mask"]
    ),
    "one_pixel_image_full": Case(
        _with(lambda a, m: (a[:1], [np.ones((1, 1), bool)])), statuses=["full_mask"]
    ),
    # correct fits, checked against ground truth
    "huge_magnitude_1e25": Case(_with(lambda a, m: (a * 2.0**85, m)), check=_scaled(85)),
    "huge_magnitude_1e35": Case(_with(lambda a, m: (a * 2.0**118, m)), check=_scaled(118)),
    "tiny_magnitude_1e-30": Case(_with(lambda a, m: (a * 2.0**-100, m)), check=_scaled(-100)),
    "one_constant_channel_at_1e30": Case(
        _with(_set((slice(None), 2), 1e30)), check=_one_huge_constant_channel
    ),
    "huge_sample_beside_ordinary_ones": Case(
        _with(lambda a, m: (torch.cat([a[:1] * 2.0**90, a[1:]]), m)), check=_neighbour_unaffected
    ),
    "one_pixel_mask": Case(_one_pixel_mask, check=_agrees_with_naive),
    "masks_of_two_and_three_pixels": Case(_tiny_masks, check=_agrees_with_naive),
    "integer_activations": Case(
        _with(lambda a, m: ((a * 8).round().to(torch.int64), m)), check=_equals_float32_fit
    ),
    "float16_activations": Case(_with(lambda a, m: (a.half(), m)), check=_equals_float32_fit),
    "empty_batch": Case(lambda: (torch.zeros(0, 6, 7, 7), []), check=_empty_result),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_numeric_corpus(name):
    case = CASES[name]
    inputs = case.build()
    if case.error is not None:
        with pytest.raises(case.error, match=case.message):
            _fit(case, inputs)
        return
    fitter = _fit(case, inputs)
    assert np.isfinite(fitter.embeddings_).all()
    if case.statuses is not None:
        assert fitter.status_ == case.statuses
        skipped = ~fitter.result_.ok
        assert not fitter.embeddings_[skipped].any()
        assert np.isnan(fitter.iou_[skipped]).all() and (fitter.steps_[skipped] == 0).all()
        assert all(fitter.detail_[i] for i in np.flatnonzero(skipped))
        assert np.isfinite(fitter.iou_[~skipped]).all()
    if case.check is not None:
        case.check(fitter, inputs)


def test_corpus_covers_enough_cases():
    assert len(CASES) >= 20
