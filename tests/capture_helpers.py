"""Inputs and an independent reference for capture tests: seeded images and raw module outputs from plain hooks."""

from __future__ import annotations

import functools

import torch
from torch import nn

from loce.layouts import first_tensor
from loce.models import LoadedModel, load_model


@functools.cache
def model(spec: str, **kwargs) -> LoadedModel:
    """Models are built once per test session (random weights, eval mode)."""
    return load_model(spec, **kwargs)


def images(n: int, size: tuple[int, int], seed: int = 0) -> torch.Tensor:
    """``n`` seeded standard-normal images of ``size`` (H, W)."""
    return torch.randn(n, 3, *size, generator=torch.Generator().manual_seed(seed))


def raw_outputs(module: nn.Module, layers: list[str], x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The unprocessed first-tensor outputs of ``layers``, collected by plain hooks (independent of LayerCapture)."""
    found, named = {}, dict(module.named_modules())
    handles = [
        named[n].register_forward_hook(lambda m, a, o, n=n: found.__setitem__(n, first_tensor(o).clone()))
        for n in layers
    ]
    try:
        with torch.no_grad():
            module(x)
    finally:
        for handle in handles:
            handle.remove()
    return found
