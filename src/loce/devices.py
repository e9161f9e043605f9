"""Devices: where a module lives, and a device name checked before anything is moved there.

Example:
    >>> import torch
    >>> module_device(torch.nn.Linear(2, 2)), resolve_device("cpu")
    (device(type='cpu'), device(type='cpu'))
"""

from __future__ import annotations

import torch
from torch import nn

from loce.errors import LoceError, ModelSpecError


def module_device(module: nn.Module) -> torch.device:
    """The device of the module's first parameter or buffer (the CPU for a module without any).

    Example:
        >>> module_device(torch.nn.ReLU())
        device(type='cpu')
    """
    for tensor in module.parameters():
        return tensor.device
    for tensor in module.buffers():
        return tensor.device
    return torch.device("cpu")


def resolve_device(device: str | torch.device, error: type[LoceError] = ModelSpecError) -> torch.device:
    """``device`` as a ``torch.device``, or ``error`` naming it when it is unknown or not available here.

    Example:
        >>> resolve_device("gpu0")
        Traceback (most recent call last):
        ...
        loce.errors.ModelSpecError: unknown device 'gpu0'; use 'cpu', 'cuda', 'cuda:N' or 'mps'.
    """
    try:
        torch_device = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise error(f"unknown device {device!r}; use 'cpu', 'cuda', 'cuda:N' or 'mps'.") from exc
    if torch_device.type == "cuda" and not torch.cuda.is_available():
        raise error(f"device {device!r} requested but CUDA is not available here; use device='cpu'.")
    if torch_device.type == "mps" and not torch.backends.mps.is_available():
        raise error(f"device {device!r} requested but MPS is not available here; use device='cpu'.")
    return torch_device
