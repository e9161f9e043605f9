"""Devices: where a module lives, and device names checked before use (one helper for models, capture, fit)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from loce.devices import module_device, resolve_device
from loce.errors import InputError, ModelSpecError
from loce.fit import LoCEFitter


def test_module_device_of_parameters_buffers_and_empty_modules():
    assert module_device(torch.nn.Linear(2, 2)) == torch.device("cpu")
    assert module_device(torch.nn.BatchNorm2d(3).requires_grad_(False)) == torch.device("cpu")
    assert module_device(torch.nn.Sequential()) == torch.device("cpu")  # no parameter, no buffer


def test_resolve_device_names_the_problem_with_the_callers_error():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(ModelSpecError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")
    with pytest.raises(InputError, match="unknown device 'gpu0'"):
        resolve_device("gpu0", error=InputError)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_fitter_refuses_unavailable_devices_before_fitting():
    acts, masks = torch.randn(1, 4, 7, 7), [np.eye(8, dtype=bool)]
    with pytest.raises(InputError, match="CUDA is not available"):
        LoCEFitter(device="cuda").fit(acts, masks)
    with pytest.raises(InputError, match="unknown device"):
        LoCEFitter(device="gpu0").fit(acts, masks)
