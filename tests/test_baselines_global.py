"""Global (Net2Vec-style) vectors: the LoCE objective summed over a concept's samples, solved for one vector."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest_fit import naive
from loce.baselines.global_vector import fit_shared_vector
from loce.errors import InputError
from loce.fit import PRESETS, LoCEFitter


def planted(n: int, seed: int = 0, noise: float = 0.3):
    """Channel 0 is +1 on the object's cells and -1 elsewhere; the other 7 channels are noise."""
    rng = np.random.default_rng(seed)
    acts = rng.normal(scale=noise, size=(n, 8, 8, 8)).astype(np.float32)
    masks = []
    for i in range(n):
        r, c = rng.integers(0, 5, size=2)
        cells = np.zeros((8, 8), bool)
        cells[r : r + 3, c : c + 3] = True
        acts[i, 0] = np.where(cells, 1.0, -1.0)
        masks.append(np.kron(cells, np.ones((8, 8), bool)))  # 64 x 64 mask aligned with the 8 x 8 grid
    return torch.from_numpy(acts), masks


def test_one_sample_gives_the_loce_of_that_sample():
    acts, masks = planted(1)
    shared = fit_shared_vector(acts, masks, "paper")
    loce = LoCEFitter("paper").fit(acts, masks)
    np.testing.assert_allclose(shared.vector, loce.embeddings_[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(shared.iou, loce.iou_, atol=1e-9)
    assert shared.steps == 50 and shared.status == ["ok"]


def test_the_loss_is_a_sum_over_samples():
    """Copies of one sample: the gradient is scaled, AdamW's step is not, so the vector is the single-sample one."""
    acts, masks = planted(1, seed=4)
    single = fit_shared_vector(acts, masks).vector
    copies = fit_shared_vector(acts.repeat(5, 1, 1, 1), masks * 5).vector
    np.testing.assert_allclose(copies, single, rtol=1e-4, atol=1e-5)


def test_planted_channel_is_found_across_samples():
    acts, masks = planted(24)
    fit = fit_shared_vector(acts, masks)
    assert np.argmax(np.abs(fit.vector)) == 0 and fit.vector[0] > 0
    assert fit.used.all() and np.nanmin(fit.iou) > 0.9
    info = fit.describe()
    assert info["samples"] == 24 and info["iou_zero"] == 0 and info["mean_iou"] > 0.9


def test_unusable_samples_are_left_out_and_reported():
    acts, masks = planted(4)
    masks[1] = np.zeros_like(masks[1])
    acts[2] = float("nan")
    fit = fit_shared_vector(acts, masks)
    assert fit.status == ["ok", "empty_mask", "nonfinite_activations", "ok"]
    assert fit.used.tolist() == [True, False, False, True]
    assert np.isnan(fit.iou[[1, 2]]).all() and np.isfinite(fit.vector).all()
    with pytest.raises(InputError, match="none of the 1 samples"):
        fit_shared_vector(acts[1:2], masks[1:2])


def test_agrees_with_the_naive_summed_objective():
    """An independent implementation: one parameter, all channels upsampled, autograd, torch.optim.AdamW."""
    problem = naive.planted_problem(7, 10, 7, 9, mask_sizes=((60, 80), (45, 45), (30, 100)), seed=3)
    fit = fit_shared_vector(problem.activations, problem.masks, "paper")
    reference = naive.naive_fit(problem.activations, problem.masks, contraction="einsum", shared=True)
    theirs = reference.vectors[0].numpy()
    assert np.abs(fit.vector - theirs).max() < 1e-4
    assert fit.vector @ theirs / (np.linalg.norm(fit.vector) * np.linalg.norm(theirs)) > 0.9999
    np.testing.assert_allclose(fit.loss, reference.loss.numpy(), rtol=1e-4)
    assert np.abs(fit.vector).max() > 0.5  # it moved far from the zero init: the comparison is not vacuous


def test_early_stop_on_the_summed_loss():
    """With a tolerance the summed loss decides: a loose tolerance stops early, the steps are reported."""
    acts, masks = planted(6)
    settings = PRESETS["paper"].replace(tol=1e-2, patience=2)
    fit = fit_shared_vector(acts, masks, settings)
    full = fit_shared_vector(acts, masks, settings.replace(steps=fit.steps))
    assert 2 <= fit.steps < 50
    np.testing.assert_allclose(fit.vector, full.vector, rtol=0, atol=1e-6)


def test_extreme_magnitudes_fit_like_ordinary_ones():
    """A channel at 2^85 (~4e25, beyond float32 Adam's range) is rescaled by a power of two for the fit.

    Ground truth: channel 0 is +-1, so its largest magnitude over the samples is 2^85 = 0.5 * 2^86; it is brought
    to +-0.5 exactly, so the vector is the one of the inputs with channel 0 halved, its entry 0 scaled by 2^-86.
    """
    acts, masks = planted(5)
    unit = acts.clone()
    unit[:, 0] *= 0.5
    huge = acts.clone()
    huge[:, 0] *= 2.0**85
    reference = fit_shared_vector(unit, masks)
    fit = fit_shared_vector(huge, masks)
    expected = reference.vector.copy()
    expected[0] = np.ldexp(expected[0], -86)
    np.testing.assert_array_equal(fit.vector, expected)
    np.testing.assert_array_equal(fit.iou, reference.iou)
    assert np.nanmin(reference.iou) > 0.7  # a real localisation, not a zero vector
