"""The concept locator: radius schedules, Gaussian masks and the alignment loss against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from loce.cbm.locator import RadiusSchedule, alignment_loss, gaussian_masks, grid_peaks, minmax_normalize
from loce.errors import InputError


def test_linear_schedule_hand_values():
    s = RadiusSchedule(start=0.5, end=0.1, steps=100, kind="linear")
    # r = 0.5 + (0.1 - 0.5) * t / 100
    assert [s(t) for t in (0, 25, 50, 75, 100)] == pytest.approx([0.5, 0.4, 0.3, 0.2, 0.1])
    assert s(250) == pytest.approx(0.1) and s(-5) == pytest.approx(0.5)


def test_cosine_schedule_hand_values():
    s = RadiusSchedule(start=0.5, end=0.1, steps=100, kind="cosine")
    # r = 0.1 + 0.4 * (1 + cos(pi t / 100)) / 2
    assert s(0) == pytest.approx(0.5)
    assert s(25) == pytest.approx(0.1 + 0.2 * (1 + math.cos(math.pi / 4)))  # 0.441421
    assert s(25) == pytest.approx(0.441421, abs=1e-6)
    assert s(50) == pytest.approx(0.3)
    assert s(75) == pytest.approx(0.158579, abs=1e-6)
    assert s(100) == pytest.approx(0.1) and s(1000) == pytest.approx(0.1)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_schedules_shrink_monotonically_from_start_to_end(kind):
    values = RadiusSchedule(start=1.0, end=0.1, steps=37, kind=kind).values()
    assert len(values) == 38
    assert values[0] == pytest.approx(1.0) and values[-1] == pytest.approx(0.1)
    assert (np.diff(values) <= 1e-12).all()
    assert (np.diff(values) < 0).sum() == 37  # strictly shrinking at every step


def test_constant_schedule_and_invalid_settings():
    assert RadiusSchedule(0.5, 0.2, 10, "constant").values().tolist() == [0.2] * 11
    with pytest.raises(InputError, match="shrink"):
        RadiusSchedule(start=0.1, end=0.5)
    with pytest.raises(InputError, match="schedule"):
        RadiusSchedule(kind="exponential")


def test_gaussian_masks_hand_values():
    # peak (1, 2) on a 3 x 4 grid, sigma 1: G(1,2) = 1, G(0,2) = exp(-1/2), G(2,0) = exp(-(1 + 4)/2)
    masks = gaussian_masks(torch.tensor([[[1.0, 2.0]]]), (3, 4), sigma=1.0)
    assert masks.shape == (1, 1, 3, 4)
    assert masks[0, 0, 1, 2].item() == pytest.approx(1.0)
    assert masks[0, 0, 0, 2].item() == pytest.approx(math.exp(-0.5))  # 0.606531
    assert masks[0, 0, 2, 0].item() == pytest.approx(math.exp(-2.5))  # 0.082085


def test_grid_peaks_first_maximum():
    maps = torch.zeros(1, 2, 3, 3)
    maps[0, 0, 2, 1] = 1.0
    maps[0, 1, 0, 2] = maps[0, 1, 2, 0] = 1.0
    assert grid_peaks(maps).tolist() == [[[2.0, 1.0], [0.0, 2.0]]]


def test_minmax_normalize_hand_values():
    maps = torch.tensor([[[[2.0, 4.0, 3.0]], [[-1.0, -1.0, -1.0]]]])  # 1 x 2 x 1 x 3
    out = minmax_normalize(maps)
    assert out[0, 0, 0].tolist() == pytest.approx([0.0, 1.0, 0.5])
    assert out[0, 1, 0].tolist() == [0.0, 0.0, 0.0]  # a constant map becomes zeros


def test_alignment_loss_hand_values():
    # one 1 x 3 map [1, 0.5, 0] (already min-max normalised); radius 1/3 of the larger side (3) -> sigma 1 cell;
    # peak at column 0: G = [1, exp(-1/2), exp(-2)];  (G n - n)^2 = [0, (0.393469 * 0.5)^2, 0]; mean 0.012902
    maps = torch.tensor([[[[1.0, 0.5, 0.0]]]])
    expected = ((1 - math.exp(-0.5)) * 0.5) ** 2 / 3
    assert alignment_loss(maps, radius=1 / 3).item() == pytest.approx(expected)
    assert expected == pytest.approx(0.012902, abs=1e-6)
    # min-max normalisation: the same shape at any level and scale costs the same (logits 4z - 7)
    assert alignment_loss(4 * maps - 7, radius=1 / 3).item() == pytest.approx(expected)
    # without it, the loss sees the raw values: [0.5, 0.25, 0] costs a quarter
    assert alignment_loss(0.5 * maps, 1 / 3, normalization="none").item() == pytest.approx(expected / 4)
    assert alignment_loss(0.5 * maps, 1 / 3).item() == pytest.approx(expected)
    # weights: only the first of two maps counts
    two = torch.cat([maps, torch.tensor([[[[0.0, 1.0, 1.0]]]])], dim=1)
    assert alignment_loss(two, 1 / 3, weights=torch.tensor([[1.0, 0.0]])).item() == pytest.approx(expected)
    # a concentrated map costs nothing, a spread one costs more with a smaller radius
    spot = torch.zeros(1, 1, 5, 5)
    spot[0, 0, 2, 2] = 1.0
    assert alignment_loss(spot, 0.1).item() == pytest.approx(0.0, abs=1e-12)
    broad = spot.clone()
    broad[0, 0, 1:4, 1:4] = 0.9  # a 3 x 3 plateau just under the peak
    broad[0, 0, 2, 2] = 1.0
    assert alignment_loss(broad, 0.1).item() > alignment_loss(broad, 0.5).item() > 0
    with pytest.raises(InputError, match="normalization"):
        alignment_loss(spot, 0.1, normalization="softmax")


def test_alignment_loss_gradient_lowers_the_map_away_from_its_peak_relative_to_its_range():
    maps = torch.tensor([[[[3.0, 2.0, 1.0, 0.0]]]], requires_grad=True)
    alignment_loss(maps, radius=0.2).backward()
    grad = maps.grad[0, 0, 0]
    # descent raises the peak (it widens the range) and lowers the cells between the peak and the minimum
    assert grad[0].item() < 0
    assert grad[1].item() > 0 and grad[2].item() > 0
    # the loss is blind to the level and scale: no gradient along z -> z + c or z -> (1 + e) z
    assert grad.sum().item() == pytest.approx(0.0, abs=1e-6)
    assert (grad * maps.detach()[0, 0, 0]).sum().item() == pytest.approx(0.0, abs=1e-6)
    raw = torch.tensor([[[[0.9, 0.6, 0.3]]]], requires_grad=True)
    alignment_loss(raw, radius=0.2, normalization="none").backward()
    assert raw.grad[0, 0, 0, 0].item() == pytest.approx(0.0)  # raw: the peak is under the mask (G = 1)
    assert (raw.grad[0, 0, 0, 1:] > 0).all()  # and every other cell is pushed down
