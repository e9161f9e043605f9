"""``py:MODULE:FUNCTION`` and ``py:path/to/file.py:FUNCTION`` specs: a user's function that returns an nn.Module.

The function is called with the ``--model-kwargs`` as keyword arguments; whatever weights it loads are the
model's (the run records their fingerprint, so a function that later returns other weights is noticed).
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from loce.errors import ModelSpecError

__all__ = ["build_py_module", "resolve_py_function"]


def resolve_py_function(target: str) -> Callable[..., Any]:
    """The function a ``py:`` spec names (the part after ``py:``: ``MODULE:FUNCTION`` or ``FILE.py:FUNCTION``).

    Raises:
        ModelSpecError: malformed spec, missing file, a module that fails to import, no such function.

    Example:
        >>> resolve_py_function("torchvision.models:resnet18").__name__
        'resnet18'
    """
    source, sep, name = target.rpartition(":")
    if not sep or not source or not name:
        raise ModelSpecError(
            f"py spec 'py:{target}' needs MODULE:FUNCTION or path/to/file.py:FUNCTION, e.g. "
            "py:my_models:build or py:./models.py:build."
        )
    module, where = _import(source, target)
    function = getattr(module, name, None)
    if not callable(function):
        public = [n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n, None))]
        close = difflib.get_close_matches(name, public, n=3)
        hint = f"; close names: {', '.join(close)}" if close else ""
        raise ModelSpecError(f"py spec 'py:{target}': {where} has no function {name!r}{hint}.")
    return function


def _import(source: str, target: str) -> tuple[Any, str]:
    """Import a module by name or a Python file by path; return it and how to name it in messages."""
    is_file = source.endswith(".py") or "/" in source or "\\" in source
    where = source
    try:
        if not is_file:
            return importlib.import_module(source), where
        path = Path(source).expanduser()
        where = str(path)
        if not path.is_file():
            raise ModelSpecError(f"py spec 'py:{target}': {path} does not exist (or is not a file).")
        module_name = "loce_user_model_" + "".join(c if c.isalnum() else "_" for c in str(path.resolve()))
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise ModelSpecError(f"py spec 'py:{target}': {path} cannot be imported as Python source.")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
        return module, where
    except ModelSpecError:
        raise
    except ModuleNotFoundError as exc:
        raise ModelSpecError(
            f"py spec 'py:{target}': cannot import {exc.name!r} ({where}); check the module name and that it is "
            "importable (run from its directory or pass a file path)."
        ) from None
    except Exception as exc:  # the user's module failing to import: one line naming it
        raise ModelSpecError(
            f"py spec 'py:{target}': importing {where} failed ({type(exc).__name__}: {_first_line(exc)})."
        ) from None


def build_py_module(target: str, model_kwargs: dict[str, Any]) -> nn.Module:
    """Call the function of a ``py:`` spec with ``model_kwargs`` and check it returned an ``nn.Module``.

    Raises:
        ModelSpecError: as :func:`resolve_py_function`, the function raising, or returning something else.
    """
    function = resolve_py_function(target)
    try:
        built = function(**model_kwargs)
    except Exception as exc:  # the user's builder failing: one line naming it
        raise ModelSpecError(
            f"py spec 'py:{target}' raised {type(exc).__name__}: {_first_line(exc)}"
            + (f" (called with --model-kwargs {model_kwargs})" if model_kwargs else "")
            + "."
        ) from None
    if not isinstance(built, nn.Module):
        raise ModelSpecError(
            f"py spec 'py:{target}' returned {type(built).__name__}, not a torch.nn.Module; return the network."
        )
    return built


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [""])[0][:160]
