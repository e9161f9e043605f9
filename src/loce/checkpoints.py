"""Reading a user's checkpoint into a constructed model: state dicts only, strictly, never unpickled objects.

Accepted: ``torch.save(model.state_dict(), "w.pt")`` (``.pt`` / ``.pth`` / ``.bin``, read with
``torch.load(weights_only=True)``), the same dict wrapped under ``"state_dict"`` or ``"model"`` (Lightning and
training-script checkpoints), and ``.safetensors`` files. A whole pickled ``nn.Module`` is refused with the line
that converts it.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from loce.errors import ModelSpecError

__all__ = ["load_weights_file", "read_state_dict"]

_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict")
_SHOWN_KEYS = 4


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file, without unpickling any Python object.

    Raises:
        ModelSpecError: the file is missing, unreadable, a pickled module / object, or holds no tensors.

    Example:
        >>> state = read_state_dict("finetuned.pt")  # doctest: +SKIP
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelSpecError(f"checkpoint {path} does not exist (or is not a file).")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError as exc:
            raise ModelSpecError(
                f"reading {path} needs the optional dependency {exc.name!r}; install it with pip install "
                'safetensors (it comes with "loce[hf]").'
            ) from None
        try:
            return dict(load_file(str(path), device="cpu"))
        except Exception as exc:  # safetensors raises its own SafetensorError for any damage
            raise ModelSpecError(f"checkpoint {path} is not a readable safetensors file ({exc}).") from None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" not in str(exc) and "GLOBAL" not in str(exc):
            raise ModelSpecError(
                f"checkpoint {path} cannot be read as a torch state dict (not a torch.save file: "
                f"{str(exc).splitlines()[-1][:80]})."
            ) from None
        raise ModelSpecError(
            f"checkpoint {path} holds pickled Python objects (e.g. a whole nn.Module), which loce does not "
            "unpickle; save the weights only: torch.save(model.state_dict(), 'weights.pt') "
            f"({str(exc).splitlines()[0][:80]})."
        ) from None
    except (RuntimeError, OSError, EOFError, ValueError) as exc:
        raise ModelSpecError(
            f"checkpoint {path} cannot be read as a torch state dict ({str(exc).splitlines()[0][:120]})."
        ) from None
    return _tensors_of(data, path)


def _tensors_of(data: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(data, Mapping):
        for key in _WRAPPER_KEYS:
            inner = data.get(key)
            if (
                isinstance(inner, Mapping)
                and inner
                and all(isinstance(v, torch.Tensor) for v in inner.values())
            ):
                return dict(inner)
        if data and all(isinstance(v, torch.Tensor) for v in data.values()):
            return dict(data)
    raise ModelSpecError(
        f"checkpoint {path} is not a state dict (a mapping of names to tensors, possibly under "
        f"{'/'.join(_WRAPPER_KEYS)}); got {type(data).__name__}. Save it with torch.save(model.state_dict(), PATH)."
    )


def load_weights_file(module: nn.Module, path: str | Path) -> Path:
    """Load a checkpoint's tensors into ``module`` strictly; return the resolved checkpoint path.

    Raises:
        ModelSpecError: as :func:`read_state_dict`, or when keys are missing, unexpected or of another shape
            (the message names a few of each).

    Example:
        >>> torch.save(torch.nn.Linear(2, 2).state_dict(), "w.pt")  # doctest: +SKIP
        >>> load_weights_file(torch.nn.Linear(2, 2), "w.pt")  # doctest: +SKIP
    """
    path = Path(path).expanduser().resolve()
    state = read_state_dict(path)
    expected = module.state_dict()
    if state and all(k.startswith("module.") for k in state) and not any(k in expected for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}  # saved from DataParallel / DDP
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong_shape = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys ({_few(missing)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys ({_few(unexpected)})")
    if wrong_shape:
        problems.append(
            f"{len(wrong_shape)} keys of another shape (checkpoint vs model: {_few(wrong_shape)})"
        )
    if problems:
        raise ModelSpecError(
            f"checkpoint {path} does not fit the {type(module).__name__} of the spec: "
            + "; ".join(problems)
            + ". Check the spec and --model-kwargs (e.g. num_classes) match the checkpoint's architecture."
        )
    module.load_state_dict(state, strict=True)
    return path


def _few(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOWN_KEYS])
    return shown + (", ..." if len(keys) > _SHOWN_KEYS else "")
