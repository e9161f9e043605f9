"""LoCEFitter: agreement with the naive paper formulation, planted recovery, batching, skips, early stop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest_fit import naive
from loce.errors import InputError
from loce.fit import PRESETS, LoCEFitter, logits, prepare_targets, projection_iou

MIXED_SIZES = ((60, 80), (45, 45), (30, 100))


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_paper_preset_agrees_with_the_naive_implementation():
    problem = naive.planted_problem(6, 12, 7, 9, mask_sizes=MIXED_SIZES, seed=0)
    reference = naive.naive_fit(problem.activations, problem.masks, contraction="einsum")
    fitter = LoCEFitter("paper").fit(problem.activations, problem.masks)
    ours, theirs = fitter.embeddings_, reference.vectors.numpy()
    assert np.abs(ours - theirs).max() < 1e-4
    assert _cosine(ours, theirs).min() > 0.9999
    np.testing.assert_allclose(fitter.loss_, reference.loss.numpy(), rtol=1e-4)
    assert fitter.status_ == ["ok"] * 6 and (fitter.steps_ == 50).all()
    assert np.abs(ours).max() > 0.5  # the fit moved far from the zero init: the comparison is not vacuous


def test_planted_problem_is_recovered():
    problem = naive.planted_problem(6, 4, 14, 14, mask_sizes=((120, 160), (90, 90)), seed=1)
    planted = problem.planted.numpy()
    # The planted vector itself scores IoU 1 (up to pixels whose logit is ~0).
    assert projection_iou(logits(problem.planted, problem.activations), problem.masks).min() > 0.999
    paper = LoCEFitter().fit(problem.activations, problem.masks)
    # An unbiased objective run to convergence recovers the mask and the planted direction.
    converged = LoCEFitter(PRESETS["paper"].replace(objective="mse", weight_decay=0.0, lr=0.5, steps=1000))
    converged.fit(problem.activations, problem.masks)
    assert converged.iou_.min() > 0.98
    assert _cosine(converged.embeddings_, planted).min() > 0.999
    # The paper's setting finds the direction too (its pseudo-BCE dilates the mask a little, so IoU < 1).
    assert _cosine(paper.embeddings_, planted).mean() > 0.9
    assert paper.iou_.min() > 0.45


def test_batch_equals_one_at_a_time_and_chunking_does_not_matter():
    problem = naive.planted_problem(5, 16, 7, 7, mask_sizes=MIXED_SIZES, seed=2)
    together = LoCEFitter("paper").fit(problem.activations, problem.masks)
    chunked = LoCEFitter("paper", chunk_size=2).fit(problem.activations, problem.masks)
    np.testing.assert_allclose(chunked.embeddings_, together.embeddings_, rtol=0, atol=1e-6)
    for i in range(5):
        alone = LoCEFitter("paper").fit(problem.activations[i : i + 1], problem.masks[i : i + 1])
        np.testing.assert_allclose(alone.embeddings_[0], together.embeddings_[i], rtol=0, atol=1e-6)
        assert alone.iou_[0] == pytest.approx(together.iou_[i], abs=1e-3)
        assert alone.loss_[0] == pytest.approx(together.loss_[i], rel=1e-5)


def test_degenerate_inputs_are_recorded_skips_without_nan():
    problem = naive.planted_problem(8, 6, 7, 7, mask_sizes=((40, 40),), seed=3)
    acts = problem.activations.clone()
    masks = list(problem.masks)
    masks[0] = np.zeros((40, 40), bool)
    masks[1] = np.ones((40, 40), bool)
    acts[2, 3, 1, 1] = float("nan")
    acts[3, 0, 0, 0] = float("inf")
    acts[4] = torch.arange(6.0)[:, None, None]  # every channel constant over space
    acts[5] = 0.0
    fitter = LoCEFitter("paper").fit(acts, masks)
    assert fitter.status_ == [
        "empty_mask",
        "full_mask",
        "nonfinite_activations",
        "nonfinite_activations",
        "constant_activations",
        "constant_activations",
        "ok",
        "ok",
    ]
    assert all(d for d in fitter.detail_[:6])
    assert "sample 2" in fitter.detail_[2] and "NaN" in fitter.detail_[2]
    assert np.isfinite(fitter.embeddings_).all()
    assert not fitter.embeddings_[:6].any()
    skipped = ~fitter.result_.ok
    assert np.isnan(fitter.iou_[skipped]).all() and np.isnan(fitter.loss_[skipped]).all()
    assert np.isfinite(fitter.iou_[~skipped]).all() and np.isfinite(fitter.loss_[~skipped]).all()
    assert (fitter.steps_[skipped] == 0).all() and (fitter.steps_[~skipped] == 50).all()
    assert fitter.mask_area_.tolist()[:2] == [0, 1600]
    # the good samples are unaffected by their degenerate neighbours
    alone = LoCEFitter("paper").fit(problem.activations[6:], masks[6:])
    np.testing.assert_allclose(fitter.embeddings_[6:], alone.embeddings_, rtol=0, atol=1e-6)


def test_early_stop_freezes_converged_samples():
    problem = naive.planted_problem(6, 8, 7, 7, mask_sizes=((50, 50),), seed=4)
    acts = problem.activations.clone()
    acts[::2] *= 1e-6  # tiny activations: the loss barely moves, so these samples converge at once
    settings = PRESETS["paper"].replace(steps=40, tol=1e-4, patience=2)
    fitter = LoCEFitter(settings).fit(acts, problem.masks)
    assert (fitter.steps_[::2] < 40).all()
    assert (fitter.steps_[1::2] == 40).all()
    for i in range(6):
        # a frozen sample holds exactly the vector after its recorded number of steps; the others ran on
        plain = settings.replace(tol=None, steps=int(fitter.steps_[i]))
        alone = LoCEFitter(plain).fit(acts[i : i + 1], problem.masks[i : i + 1])
        np.testing.assert_allclose(fitter.embeddings_[i], alone.embeddings_[0], rtol=0, atol=1e-6)
        assert fitter.loss_[i] == pytest.approx(alone.loss_[0], rel=1e-5)


def test_targets_are_reusable_across_layers():
    problem = naive.planted_problem(4, 8, 7, 7, mask_sizes=MIXED_SIZES, seed=5)
    other_layer = torch.nn.functional.avg_pool2d(problem.activations, 2, stride=1)  # 8 x 6 x 6
    fitter = LoCEFitter("paper")
    targets = fitter.prepare_targets(problem.masks)
    for acts in (problem.activations, other_layer):
        with_targets = fitter.fit(acts, targets=targets).embeddings_.copy()
        with_masks = LoCEFitter("paper").fit(acts, problem.masks).embeddings_
        np.testing.assert_array_equal(with_targets, with_masks)
    with pytest.raises(InputError, match="grid 50"):
        LoCEFitter(PRESETS["paper"].replace(grid=50)).fit(problem.activations, targets=targets)


def test_input_errors_name_the_problem():
    acts = torch.randn(2, 4, 5, 5)
    masks = [np.eye(5, dtype=bool)] * 2
    with pytest.raises(InputError, match="B x C x h x w"):
        LoCEFitter().fit(acts[0], masks)
    with pytest.raises(InputError, match="2 activation maps but 1 masks"):
        LoCEFitter().fit(acts, masks[:1])
    with pytest.raises(InputError, match="exactly one of"):
        LoCEFitter().fit(acts, masks, targets=prepare_targets(masks))
    with pytest.raises(InputError, match="exactly one of"):
        LoCEFitter().fit(acts)


def test_results_frame_and_other_dtypes():
    problem = naive.planted_problem(3, 5, 6, 6, mask_sizes=((30, 30),), seed=6)
    f32 = LoCEFitter("paper").fit(problem.activations, problem.masks)
    f64 = LoCEFitter("paper").fit(problem.activations.double(), problem.masks)
    np.testing.assert_array_equal(f64.embeddings_, f32.embeddings_)
    assert f32.embeddings_.dtype == np.float32 and f32.n_features_in_ == 5
    frame = f32.result_.to_frame(vectors=True)
    assert list(frame.columns) == [
        "status",
        "detail",
        "iou",
        "loss",
        "steps",
        "mask_area",
        "settings_id",
        "vector",
    ]
    assert len(frame) == 3 and (frame["settings_id"] == PRESETS["paper"].settings_id).all()


def test_normal_init_is_seeded():
    problem = naive.planted_problem(3, 5, 6, 6, mask_sizes=((30, 30),), seed=7)
    settings = PRESETS["paper"].replace(init="normal", init_std=0.5, steps=3)
    a = LoCEFitter(settings, seed=1).fit(problem.activations, problem.masks).embeddings_
    b = LoCEFitter(settings, seed=1).fit(problem.activations, problem.masks).embeddings_
    c = LoCEFitter(settings, seed=2).fit(problem.activations, problem.masks).embeddings_
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 0.1
