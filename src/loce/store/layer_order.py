"""Layers in the order of the network: the one place tables, figures and report sections get their layer order.

A fit records, per job, each layer's position in ``model.named_modules()`` (the manifest's
``jobs[NAME]["layer_depth"]``, written by :func:`loce.runs.job_spec`). :class:`LayerOrder` reads those positions
from one or more runs and sorts layer names, (model, layer) pairs and tables by them. Layers a run did not record
(runs written before the record existed) follow in natural order (``_blocks.4`` before ``_blocks.10``), never
alphabetically.

Example:
    >>> order = LayerOrder({("m", "head"): 9, ("m", "stem"): 0})
    >>> order.sort(["head", "stem", "blocks.10", "blocks.4"], model="m")
    ['stem', 'head', 'blocks.4', 'blocks.10']
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["LayerOrder", "module_depths", "natural_key"]


def natural_key(text: str) -> list[object]:
    """Sort key that orders ``blocks.5`` before ``blocks.11`` (digits compared as numbers, case ignored).

    Example:
        >>> sorted(["blocks.11", "blocks.5"], key=natural_key)
        ['blocks.5', 'blocks.11']
    """
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", str(text))]


def module_depths(module: Any, layers: Iterable[str]) -> dict[str, int]:
    """Each of ``layers``' position in ``module.named_modules()`` (the network's order); unknown names are left out.

    Example:
        >>> import torch
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.ReLU())
        >>> module_depths(net, ["1", "0"])
        {'1': 2, '0': 1}
    """
    module = getattr(module, "module", module)
    wanted = set(layers)
    positions = {name: k for k, (name, _) in enumerate(module.named_modules()) if name in wanted}
    return {name: positions[name] for name in layers if name in positions}


class LayerOrder:
    """Sorts layers by their recorded depth per model; unrecorded layers after them, in natural order.

    Args:
        depths: ``{(model, layer): position}``; build it from runs with :meth:`from_runs`.
    """

    def __init__(self, depths: Mapping[tuple[str, str], int] | None = None) -> None:
        self.depths = dict(depths or {})
        self._any: dict[str, int] = {}
        for (_, layer), depth in self.depths.items():
            self._any[layer] = min(depth, self._any.get(layer, depth))

    @classmethod
    def from_manifests(cls, manifests: Iterable[Any]) -> LayerOrder:
        """From :class:`~loce.store.Manifest` objects (or their ``jobs`` lists); the first record of a layer wins."""
        depths: dict[tuple[str, str], int] = {}
        for manifest in manifests:
            for job in getattr(manifest, "jobs", manifest) or []:
                for layer, depth in (job.get("layer_depth") or {}).items():
                    depths.setdefault((str(job.get("model")), str(layer)), int(depth))
        return cls(depths)

    @classmethod
    def from_runs(cls, runs: str | Path | Sequence[str | Path]) -> LayerOrder:
        """From the manifests of run directories; a run without a readable manifest adds nothing."""
        from loce.errors import LoceError
        from loce.store.manifest import read_manifest

        manifests = []
        for run in [runs] if isinstance(runs, (str, Path)) else runs:
            try:
                manifests.append(read_manifest(Path(run)))
            except (LoceError, OSError):
                continue
        return cls.from_manifests(manifests)

    def key(self, layer: str, model: str | None = None) -> tuple:
        """The sort key of ``layer`` (of ``model``; any model's record when ``None``)."""
        depth = self.depths.get((str(model), str(layer))) if model is not None else None
        if depth is None:
            depth = self._any.get(str(layer))
        return (0, depth, natural_key(layer)) if depth is not None else (1, 0, natural_key(layer))

    def sort(self, layers: Iterable[str], model: str | None = None) -> list[str]:
        """``layers`` (duplicates dropped) in network order."""
        return sorted(dict.fromkeys(layers), key=lambda layer: self.key(layer, model))

    def pair_key(self, model: str, layer: str) -> tuple:
        """Sort key of a (model, layer) pair: models in natural order, then their layers by depth."""
        return (natural_key(model), self.key(layer, model))

    def sort_pairs(self, pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        """(model, layer) pairs: by model, then by layer depth within the model."""
        return sorted(dict.fromkeys(pairs), key=lambda p: self.pair_key(*p))

    def sort_frame(
        self, frame: pd.DataFrame, layer: str = "layer", model: str | None = "model"
    ) -> pd.DataFrame:
        """``frame``'s rows stably sorted by (model, layer depth); other columns keep their order within a layer."""
        if frame.empty or layer not in frame.columns:
            return frame
        has_model = model is not None and model in frame.columns
        keys = [
            self.pair_key(str(m), str(v)) if has_model else self.key(str(v))
            for m, v in zip(frame[model] if has_model else frame[layer], frame[layer])
        ]
        index = sorted(range(len(frame)), key=lambda i: keys[i])
        return frame.iloc[index].reset_index(drop=True)
