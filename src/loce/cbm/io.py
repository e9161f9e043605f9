"""A trained CBM on disk: ``model.pt`` (a state dict, read with ``weights_only=True``), ``cbm.json`` (what it is:
settings, concepts, classes, backbone, layer, dataset, split) and ``history.csv`` (per-epoch losses); the names:
:class:`loce.run_layout.CbmModelFiles`.

Example:
    >>> saved = load_cbm("RUN/cbm/loc")  # doctest: +SKIP
    >>> saved.info["concepts"], saved.model  # doctest: +SKIP
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from loce.cbm.model import ConceptBottleneck
from loce.errors import InputError
from loce.run_layout import CbmModelFiles
from loce.store.atomic import atomic_output, write_bytes_atomic


@dataclass
class SavedCBM:
    """A CBM read back from disk: the model (eval mode), its record and its training history."""

    path: Path
    model: ConceptBottleneck
    info: dict[str, Any]
    history: pd.DataFrame

    @property
    def name(self) -> str:
        """The display name recorded at training (``"CBM"`` / ``"Loc-CBM"``)."""
        return str(self.info.get("name") or self.path.name)


def save_cbm(
    directory: str | Path, model: ConceptBottleneck, info: dict[str, Any], history: pd.DataFrame
) -> Path:
    """Write ``model.pt``, ``cbm.json`` and ``history.csv`` into ``directory`` (atomically, file by file).

    ``info`` must hold ``in_channels``, ``concepts``, ``classes`` and ``config`` (with ``pooling``).
    """
    files = CbmModelFiles(Path(directory))
    directory = files.directory
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_output(files.model) as fh:
        torch.save(model.state_dict(), fh)
    write_bytes_atomic(files.info, json.dumps(info, indent=2, sort_keys=True).encode("utf-8"))
    write_bytes_atomic(files.history, history.to_csv(index=False).encode("utf-8"))
    return directory


def load_cbm(directory: str | Path) -> SavedCBM:
    """Read a CBM written by :func:`save_cbm`.

    Raises:
        InputError: naming the directory when a file is missing or does not fit the record.
    """
    files = CbmModelFiles(Path(directory))
    directory = files.directory
    info_path, model_path = files.info, files.model
    if not info_path.is_file() or not model_path.is_file():
        raise InputError(
            f"{directory} is not a trained CBM (it needs {info_path.name} and {model_path.name}); train one with "
            f"`loce cbm train --scenes DIR --out {directory}`"
        )
    info = json.loads(info_path.read_text(encoding="utf-8"))
    model = ConceptBottleneck(
        int(info["in_channels"]),
        len(info["concepts"]),
        len(info["classes"]),
        pooling=info["config"]["pooling"],
    )
    try:
        state = torch.load(model_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError) as exc:
        raise InputError(
            f"{model_path} does not fit its record {info_path}: {exc}; train the model again"
        ) from None
    model.eval()
    history_path = files.history
    history = pd.read_csv(history_path) if history_path.is_file() else pd.DataFrame()
    return SavedCBM(directory, model, info, history)
