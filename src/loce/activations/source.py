"""The one way images become activations: a model's layer capture behind the run's activation cache.

Every method that needs the activations of whole images asks an :class:`ActivationSource` (the LoCE fit, the
window / masked-pool / global baselines, the location analysis, localisation, the concept-bottleneck features,
and the Ray engine's actors). It serves each image's layers from the cache when they are there and valid, and
forwards only the images that miss (in one pass for all requested layers), then writes their entries. What it
did is counted in :attr:`ActivationSource.counts` (images forwarded, images served from the cache).

Example:
    >>> with ActivationSource(model, ["_blocks.10"], cache=CacheOptions(directory="RUN/cache/activations")) as source:  # doctest: +SKIP
    ...     acts = source.activations(batch)  # {"_blocks.10": N x C x h x w} for batch.image_samples
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from loce.activations.cache import ActivationCache, image_record
from loce.activations.options import CacheOptions
from loce.batches import LoadedBatch
from loce.capture import LayerCapture
from loce.data.sample import Sample
from loce.models import LoadedModel


@dataclass
class ForwardCounts:
    """Images whose activations were computed by a forward pass (``forwarded``) or read from the cache
    (``cached``), other inputs forwarded (``inputs``: e.g. the crop baseline's canvases), and the seconds spent in
    forward passes and cache reads (``seconds``)."""

    forwarded: int = 0
    cached: int = 0
    inputs: int = 0
    seconds: float = 0.0

    def add(self, other: ForwardCounts) -> None:
        """Add another count (e.g. a Ray actor's) to this one."""
        self.forwarded += other.forwarded
        self.cached += other.cached
        self.inputs += other.inputs
        self.seconds += other.seconds


def model_key(model: LoadedModel) -> dict[str, Any]:
    """What identifies a model's activations: its spec, weights fingerprint and preprocessing.

    Example:
        >>> from loce.models import load_model
        >>> from loce.preprocessing import Preprocessing
        >>> key = model_key(load_model(torch.nn.Conv2d(3, 2, 1), preprocessing=Preprocessing(size=(4, 4))))
        >>> sorted(key)
        ['fingerprint', 'preprocessing', 'spec']
    """
    identity = model.identity()
    return {
        "spec": identity["spec"],
        "fingerprint": identity["fingerprint"],
        "preprocessing": identity["preprocessing"],
    }


class ActivationSource:
    """Activations of whole images at ``layers`` under ``model``, from the cache or one forward pass.

    Args:
        model: the :class:`~loce.models.LoadedModel` (moved to ``device``).
        layers: the layers to capture (one forward pass captures all of them).
        layouts: per-layer output layout overrides (see :mod:`loce.capture`).
        device: where the model runs.
        cache: :class:`~loce.activations.CacheOptions` with a ``directory``; ``None`` or disabled: no cache.

    Use it as a context manager (it holds the capture hooks), or call it outside one for a single batch.
    """

    def __init__(
        self,
        model: LoadedModel,
        layers: Sequence[str],
        *,
        layouts: Mapping[str, str] | None = None,
        device: str | torch.device = "cpu",
        cache: CacheOptions | None = None,
    ) -> None:
        self.model = model
        self.layers = list(dict.fromkeys(layers))
        self.layouts = dict(layouts or {})
        self.device = torch.device(device)
        self.module = model.module.to(self.device)
        self.capture = LayerCapture(self.module, self.layers, layouts=self.layouts)
        self.counts = ForwardCounts()
        self.cache = None
        if cache is not None and cache.enabled and cache.directory is not None:
            self.cache = ActivationCache(cache.directory, model_key(model), cache, self.device.type)
        self.frame_mask = getattr(model.preprocessing, "frame_mask", None)

    def __enter__(self) -> ActivationSource:
        self.capture.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.capture.__exit__(*exc_info)

    def forward(self, inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """The capture of preprocessed ``inputs`` (not cached: e.g. crops that are not whole images)."""
        t0 = time.perf_counter()
        out = self.capture(inputs.to(self.device))
        self.counts.inputs += int(inputs.shape[0])
        self.counts.seconds += time.perf_counter() - t0
        return out

    def activations(self, batch: LoadedBatch) -> dict[str, torch.Tensor]:
        """``{layer: N x C x h x w}`` for ``batch.image_samples`` (rows in ``batch.images`` order)."""
        return self.of_images(batch.image_samples, batch.images)

    def of_images(
        self, samples: Sequence[Sample | None], images: Sequence[np.ndarray]
    ) -> dict[str, torch.Tensor]:
        """``{layer: N x C x h x w}`` of decoded ``images``; ``samples[i]`` names the file of image ``i`` (its cache
        entry; ``None``: an image without a file, always forwarded)."""
        t0 = time.perf_counter()
        n = len(images)
        if n == 0:
            return {}
        records = [None] * n
        cached: list[dict[str, torch.Tensor]] = [{} for _ in range(n)]
        if self.cache is not None:
            records = [
                None if s is None else image_record(s.image_path, im) for s, im in zip(samples, images)
            ]
            for i, record in enumerate(records):
                for layer in self.layers:
                    hit = self.cache.get(record, layer, self.layouts.get(layer))
                    if hit is None:
                        break
                    cached[i][layer] = hit
        missing = [i for i in range(n) if len(cached[i]) < len(self.layers)]
        fresh: dict[str, torch.Tensor] = {}
        if missing:
            inputs = self.model.preprocessing([images[i] for i in missing]).to(self.device)
            fresh = self.capture(inputs)
            if self.cache is not None and self.cache.options.dtype != "float32":
                # the cache's precision applies to fresh activations too, so a hit and a miss give the same numbers
                dtype = getattr(torch, self.cache.options.dtype)
                fresh = {layer: acts.to(dtype).to(acts.dtype) for layer, acts in fresh.items()}
        self.counts.forwarded += len(missing)
        self.counts.cached += n - len(missing)
        out = {layer: self._assemble(layer, cached, missing, fresh.get(layer)) for layer in self.layers}
        if self.cache is not None and missing:
            self.cache.put_many([(records[i], layer, self.layouts.get(layer), fresh[layer][j])
                                 for j, i in enumerate(missing) for layer in self.layers])  # fmt: skip
        self.counts.seconds += time.perf_counter() - t0
        return out

    def _assemble(self, layer, cached, missing, fresh: torch.Tensor | None) -> torch.Tensor:
        if len(missing) == len(cached):
            return fresh
        rows: list[torch.Tensor | None] = [c.get(layer) for c in cached]
        for j, i in enumerate(missing):
            rows[i] = fresh[j]
        return torch.stack([r.to(self.device) for r in rows])

    def frame_masks(self, masks: Sequence[np.ndarray]) -> list[np.ndarray]:
        """``masks`` moved into the model's input frame exactly as their images were (letterbox, crop), so they
        align with the activation grid; unchanged under a stretch."""
        return [m if self.frame_mask is None else self.frame_mask(m) for m in masks]
