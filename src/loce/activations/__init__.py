"""Activations of images, computed once: the source every method uses and the cache inside a run.

- :class:`ActivationSource` (``source.py``): a model's layer capture behind the activation cache; counts images
  forwarded and served from the cache.
- :func:`iter_activations` (``batches.py``): groups of whole samples (one skip policy, prefetched) with their
  activations.
- :class:`ActivationCache` (``cache.py``): per-image entries validated against the image file, bounded, atomic.
- :class:`CacheOptions` (``options.py``): on / off, size limit, dtype, directory (default ``RUN/cache/activations``).
"""

from loce.activations.batches import ActivationBatch, iter_activations
from loce.activations.cache import ActivationCache, CacheStats
from loce.activations.options import CACHE_DTYPES, DEFAULT_LIMIT_GB, CacheOptions, cache_dir
from loce.activations.source import ActivationSource, ForwardCounts, model_key

__all__ = [
    "CACHE_DTYPES",
    "DEFAULT_LIMIT_GB",
    "ActivationBatch",
    "ActivationCache",
    "ActivationSource",
    "CacheOptions",
    "CacheStats",
    "ForwardCounts",
    "cache_dir",
    "iter_activations",
    "model_key",
]
