"""Execution engines beyond the local loop: the same rows, the same store, computed on a Ray cluster.

``loce fit|embed|analyze --engine ray`` use these modules; the local engine is :func:`loce.runs.run_batches` and
the analysis functions themselves. Nothing here imports Ray at import time: a plain ``pip install loce`` works
without it, and the Ray engine says ``pip install "loce[ray]"`` when it is missing.

- :mod:`loce.engines.ray_cluster`: connecting to (or starting) a cluster, sizing the worker pool from its resources.
- :mod:`loce.engines.ray_fit`: ``fit`` / ``embed`` as a Ray Data pipeline (decode tasks -> model actors -> shards).
- :mod:`loce.engines.ray_analysis`: the exact blocked neighbour pass as Ray tasks over query blocks, and an
  approximate (faiss) mode for very large stores.

See docs/SCALE.md for when to use which engine.
"""

from loce.engines.options import ENGINES, RayOptions

__all__ = ["ENGINES", "RayOptions"]
