"""Groups of whole samples with their activations: the iterator every activation consumer loops over.

:func:`iter_activations` decodes groups of samples with the one skip policy of :func:`loce.batches.load_batch`
(an unreadable image or a bad mask becomes a skip row; the next group is decoded in a background thread) and
hands out :class:`ActivationBatch` values whose :attr:`~ActivationBatch.activations` come from an
:class:`~loce.activations.ActivationSource` (the cache, or one forward pass for the images that miss) -- computed
on first use, so a method that never looks at them (the crop baseline) costs no forward pass of whole images.

Example:
    >>> with ActivationSource(model, ["_blocks.10"]) as source:  # doctest: +SKIP
    ...     for item in iter_activations(source, dataset, batch_size=32):
    ...         item.activations["_blocks.10"].shape, len(item.skip_rows)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from loce.activations.source import ActivationSource
from loce.batches import DEFAULT_MAX_BATCH_BYTES, LoadedBatch, iter_batches
from loce.data.sample import Sample


class ActivationBatch:
    """One group of whole samples: the decoded :attr:`batch`, its :attr:`skip_rows` and (lazily) the activations
    of ``batch.image_samples`` at the source's layers."""

    def __init__(self, batch: LoadedBatch, source: ActivationSource) -> None:
        self.batch = batch
        self.source = source
        self._activations: dict[str, torch.Tensor] | None = None

    @property
    def activations(self) -> dict[str, torch.Tensor]:
        """``{layer: N x C x h x w}`` for ``batch.image_samples``, computed (or read from the cache) once."""
        if self._activations is None:
            self._activations = self.source.activations(self.batch)
        return self._activations

    @property
    def skip_rows(self) -> list[dict[str, Any]]:
        """The group's skip rows (unreadable images, bad masks, images without a concept)."""
        return self.batch.skip_rows

    def pair_masks(self) -> list[np.ndarray]:
        """The masks of ``batch.pairs`` in the model's input frame (see :meth:`ActivationSource.frame_masks`)."""
        return self.source.frame_masks([p.mask for p in self.batch.pairs])


def iter_activations(
    source: ActivationSource,
    samples: Sequence[Sample],
    batch_size: int,
    *,
    strict: bool = False,
    max_bytes: int | None = DEFAULT_MAX_BATCH_BYTES,
    prefetch: bool = True,
    keep_unannotated: bool = False,
) -> Iterator[ActivationBatch]:
    """Yield an :class:`ActivationBatch` per group of ``samples`` (see :func:`loce.batches.iter_batches`).

    Args:
        source: the activation source (model, layers, cache).
        samples: the samples, in order.
        batch_size: samples per group (and forward pass).
        strict: raise on the first bad input instead of recording a skip row.
        max_bytes: memory budget of a group's decoded images and masks (``None``: none).
        prefetch: decode the next group in a background thread.
        keep_unannotated: keep images without any annotated concept in ``image_samples`` (projections onto new
            images) instead of recording them as ``no_concepts`` skips.
    """
    for batch in iter_batches(samples, batch_size, strict=strict, prefetch=prefetch, max_bytes=max_bytes,
                              keep_unannotated=keep_unannotated):  # fmt: skip
        yield ActivationBatch(batch, source)
